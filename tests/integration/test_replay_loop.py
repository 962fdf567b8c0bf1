"""``gridwatch replay`` runs the worker's own camera loop: the same motion gate, regions,
batching service, backend, tracker, counter and rules, over a clip on a virtual clock.

Real footage (vtest.avi, cut by the gate-apron scenario's recipe), the real offline model
through OpenVINO (the worker's default backend).
"""

from __future__ import annotations

import collections
import time
from pathlib import Path

import pytest

from gridwatch.detectors import with_backend
from gridwatch.evaluation.recipes import build_clip
from gridwatch.evaluation.replay import replay
from gridwatch.evaluation.runner import DetectorPool
from gridwatch.evaluation.scenarios import load_scenario

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"


@pytest.fixture(scope="module")
def crowd_clip() -> tuple[object, Path]:
    sc = load_scenario(SCENARIOS / "crowding" / "gate-apron-crowd")
    assert sc.recipe is not None
    config = sc.config.model_copy(update={"detector": with_backend(sc.config.detector, "openvino")})
    return config, build_clip(sc.recipe)


def _run(config: object, clip: Path) -> tuple[list[tuple[object, ...]], collections.Counter[str]]:
    detector = DetectorPool().get(config.detector)  # type: ignore[attr-defined]
    modes: collections.Counter[str] = collections.Counter()
    analysed: list[float] = []
    events = [
        (e.event.type, e.event.state.value, round(e.video_s, 3), e.event.count)
        for e in replay(
            config,  # type: ignore[arg-type]
            clip,
            detector=detector,
            start_ts=1_795_500_000.0,
            observer=lambda cam, mode, age, ms: modes.update([mode]),
            on_frame=lambda t, image, det: analysed.append(t),
        )
    ]
    modes["analysed"] = len(analysed)
    return events, modes


def test_replay_runs_the_workers_analyser_and_is_deterministic(crowd_clip) -> None:  # type: ignore[no-untyped-def]
    """Two replays of one clip give the same events at the same video times, and the detector
    ran through the analyser: a whole-frame look first, region looks after it (the motion gate
    and regions are in the loop, not whole frames on every analysed frame)."""
    config, clip = crowd_clip
    first, modes = _run(config, clip)
    second, _ = _run(config, clip)
    assert first == second
    assert [(t, s) for t, s, *_ in first] == [("crowding", "raised")]
    assert modes["full"] >= 1
    assert modes["regions"] >= 1, modes
    assert modes["analysed"] >= 16  # 9 s at 2 fps
    assert modes["full"] + modes["regions"] <= modes["analysed"]


def test_realtime_paces_the_clip_and_virtual_time_does_not(crowd_clip) -> None:  # type: ignore[no-untyped-def]
    """``--realtime`` waits for each tick's wall time as a live camera delivers frames; the
    default virtual clock runs as fast as the CPU allows. A frame-rule-only camera (tamper)
    needs no detector, so the difference is the pacing alone."""
    config, clip = crowd_clip
    raw = config.model_dump()  # type: ignore[attr-defined]
    raw["cameras"][0]["rules"] = [{"type": "tamper"}]
    cfg = type(config).model_validate(raw)
    t0 = time.monotonic()
    list(replay(cfg, clip, start_ts=1_795_500_000.0))
    fast = time.monotonic() - t0
    t0 = time.monotonic()
    list(replay(cfg, clip, start_ts=1_795_500_000.0, realtime=True))
    paced = time.monotonic() - t0
    assert paced >= 8.0  # the clip is 9 s long
    assert fast < paced / 2

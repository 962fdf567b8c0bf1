"""``gridwatch eval``: replay every scenario under a directory and score it.

Detectors are built once per distinct ``detector:`` section and shared by the scenarios that
use it (loading a model costs seconds; the suite uses two). Detections are memoised per clip
in the gridwatch cache (:class:`~gridwatch.evaluation.replay.DetectionCache`), so a second run
costs decoding, tracking and the rules only; ``cache=False`` measures from scratch.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gridwatch.config import DetectorConfig
from gridwatch.detectors.base import Detector
from gridwatch.evaluation.recipes import build_clip
from gridwatch.evaluation.replay import (
    DetectionCache,
    ReplayEvent,
    detector_key,
    parse_start,
    replay,
)
from gridwatch.evaluation.scenarios import (
    Match,
    Report,
    Scenario,
    Tally,
    find_scenarios,
    load_scenario,
    score,
)

log = logging.getLogger(__name__)

DEFAULT_CLOCK = "2026-11-23T12:00:00"
"""Wall time a scenario without ``clock`` is replayed at (a Monday noon, local time)."""


@dataclass
class ScenarioResult:
    scenario: Scenario
    tallies: dict[str, Tally]
    matches: list[Match]
    events: list[ReplayEvent]
    seconds: float
    clip: Path


@dataclass
class EvalResult:
    report: Report = field(default_factory=Report)
    scenarios: list[ScenarioResult] = field(default_factory=list)
    seconds: float = 0.0


class DetectorPool:
    """One detector per distinct detector config, built on first use.

    ``backend`` (e.g. ``openvino``) replaces the backend of every config that runs the default
    model, so one suite measures another way of running the same weights; configs naming other
    weights (the Darknet COCO model of the vehicle scenarios) keep theirs.
    """

    def __init__(self, backend: str | None = None) -> None:
        self._built: dict[str, Detector] = {}
        self.backend = backend

    def get(self, cfg: DetectorConfig) -> Detector:
        if self.backend is not None and cfg.model == "default":
            cfg = cfg.model_copy(update={"backend": self.backend})
        key = cfg.model_dump_json()
        if key not in self._built:
            from gridwatch.detectors import build_detector

            t0 = time.perf_counter()
            self._built[key] = build_detector(
                cfg.model,
                cfg.confidence,
                backend=cfg.backend,
                iou=cfg.iou,
                imgsz=cfg.imgsz,
                threads=cfg.threads,
                **({"streams": cfg.streams} if getattr(cfg, "streams", None) else {}),
            )
            log.info("built detector %s in %.1fs", cfg.backend, time.perf_counter() - t0)
        return self._built[key]


def clip_duration(path: Path) -> float:
    """Seconds of video in a clip (last frame's time + one frame)."""
    import av

    with av.open(str(path)) as c:
        s = c.streams.video[0]
        rate = float(s.average_rate or s.guessed_rate or 10)
        if s.frames:
            return float(s.frames) / rate
        if c.duration:
            return float(c.duration) / 1_000_000
    return 0.0


def run_scenario(
    sc: Scenario, pool: DetectorPool, *, cache: bool = True, cache_dir: Path | None = None
) -> ScenarioResult:
    from gridwatch.embedded.media import resolve_cache_dir

    t0 = time.perf_counter()
    clip = build_clip(sc.recipe, cache_dir) if sc.recipe is not None else sc.clip
    assert clip is not None
    detector = None if _frame_only(sc) else pool.get(sc.config.detector)
    det_cache = (
        DetectionCache(
            resolve_cache_dir(cache_dir) / "detections",
            clip,
            detector_key(detector),
        )
        if cache and detector is not None
        else None
    )
    start = parse_start(sc.clock or DEFAULT_CLOCK, sc.config.tzinfo())
    events = list(
        replay(
            sc.config,
            clip,
            camera_id=sc.camera,
            detector=detector,
            start_ts=start,
            faults=sc.faults,
            cache=det_cache,
        )
    )
    tallies, matches = score(sc, events, clip_duration(clip))
    return ScenarioResult(sc, tallies, matches, events, time.perf_counter() - t0, clip)


def _frame_only(sc: Scenario) -> bool:
    """Whether every rule is a frame rule (then no detector is loaded)."""
    return all(r.type in ("tamper", "offline") for r in sc.config.cameras[0].rules)


def evaluate(
    root: Path,
    *,
    cache: bool = True,
    cache_dir: Path | None = None,
    on_start: Callable[[int], None] | None = None,
    on_done: Callable[[ScenarioResult], None] | None = None,
    only: Callable[[Scenario], bool] | None = None,
    backend: str | None = None,
) -> EvalResult:
    """Evaluate every scenario under ``root``; ``on_done`` is called after each (progress)."""
    t0 = time.perf_counter()
    scenarios = [load_scenario(p) for p in find_scenarios(root)]
    if only is not None:
        scenarios = [s for s in scenarios if only(s)]
    if on_start is not None:
        on_start(len(scenarios))
    pool = DetectorPool(backend)
    result = EvalResult()
    for sc in scenarios:
        r = run_scenario(sc, pool, cache=cache, cache_dir=cache_dir)
        result.report.add(sc, r.tallies)
        result.scenarios.append(r)
        if on_done is not None:
            on_done(r)
    result.seconds = time.perf_counter() - t0
    return result


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")

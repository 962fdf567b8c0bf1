"""``gridwatch eval``: replay every scenario under a directory and score it.

Detectors are built once per distinct ``detector:`` section and shared by the scenarios that
use it (loading a model costs seconds; the suite uses two). Detections are memoised per clip
in the gridwatch cache (:class:`~gridwatch.evaluation.replay.DetectionCache`), so a second run
costs decoding, tracking and the rules only; ``cache=False`` measures from scratch.

Real-data scenarios (``data.yaml``, see :mod:`gridwatch.evaluation.scenarios`) also measure
the count each crowding rule sees against the dataset's ground truth, frame by frame
(:mod:`gridwatch.evaluation.count_metrics`), and their results are summed per scene
(:class:`SceneResult`): the same street under several zones and thresholds is one scene. When
their data is missing they are "not run" (with where the data comes from), except under CI
(``CI=true``), where a suite that silently shrank would pass for the wrong reason: there it is
an error.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gridwatch.detectors import DetectorSettings, with_backend
from gridwatch.detectors.base import Detector
from gridwatch.evaluation.count_metrics import CountMetrics, CountSample, pooled_metrics
from gridwatch.evaluation.ground_truth import (
    RULE_DERIVED_TYPES,
    GroundTruth,
    GroundTruthError,
    derive_crowding_incidents,
    derive_rule_incidents,
    video_geometry,
)
from gridwatch.evaluation.recipes import build_clip
from gridwatch.evaluation.replay import (
    CountHook,
    DetectionCache,
    ReplayEvent,
    detector_key,
    parse_start,
    replay,
)
from gridwatch.evaluation.scenarios import (
    DataMissing,
    Match,
    Report,
    Scenario,
    ScenarioError,
    Tally,
    TruthIncident,
    find_scenarios,
    load_scenario,
    resolve_data,
    score,
)
from gridwatch.rules.base import RuleContext
from gridwatch.rules.registry import build_rule
from gridwatch.rules.zones import Zone

log = logging.getLogger(__name__)

DEFAULT_CLOCK = "2026-11-23T12:00:00"
"""Wall time a scenario without ``clock`` is replayed at (a Monday noon, local time)."""


DERIVED_TOLERANCE_S = 2.0
"""Tolerance of an incident derived from ground truth (that of a hand-labelled one)."""


@dataclass
class ScenarioResult:
    scenario: Scenario
    tallies: dict[str, Tally]
    matches: list[Match]
    events: list[ReplayEvent]
    seconds: float
    clip: Path
    counts: dict[str, list[CountSample]] = field(default_factory=dict)
    """Zone id → (video_s, the count its crowding rule saw, the truth's) per analysed frame;
    only for scenarios with ground truth."""
    not_run: str | None = None
    """Why the scenario did not run (its data is missing, and where it comes from)."""


@dataclass
class SceneResult:
    """The real-data scenarios of one scene together: count error per zone and pooled over
    the zones, and the incident tallies of all its scenarios."""

    scene: str
    source: str
    licence: str
    scenarios: list[str] = field(default_factory=list)
    not_run: dict[str, str] = field(default_factory=dict)
    zones: dict[str, CountMetrics] = field(default_factory=dict)
    count: CountMetrics | None = None
    tallies: dict[str, Tally] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "licence": self.licence,
            "scenarios": self.scenarios,
            "not_run": self.not_run,
            "count": None if self.count is None else self.count.as_json(),
            "zones": {z: m.as_json() for z, m in sorted(self.zones.items())},
            "incidents": {t: tally.as_json() for t, tally in sorted(self.tallies.items())},
        }


def scene_results(results: list[ScenarioResult]) -> dict[str, SceneResult]:
    """Group the real-data scenarios by scene.

    Scenarios of one scene usually share zones and differ in thresholds; the count a rule sees
    does not depend on its threshold, so each zone's series is taken once (from the first
    scenario that runs it) instead of being counted once per threshold. A zone id reused with
    another polygon or analysis rate is kept apart as ``scenario/zone``.
    """
    scenes: dict[str, SceneResult] = {}
    seen: dict[tuple[str, str], tuple[Any, ...]] = {}
    groups: dict[str, dict[str, list[CountSample]]] = {}
    for r in results:
        sc = r.scenario
        if sc.data is None:
            continue
        scene = scenes.setdefault(
            sc.data.scene, SceneResult(sc.data.scene, sc.data.source, sc.data.licence)
        )
        if r.not_run is not None:
            scene.not_run[sc.name] = r.not_run
            continue
        scene.scenarios.append(sc.name)
        for t, tally in r.tallies.items():
            scene.tallies.setdefault(t, Tally()).add(tally)
        cam = _camera(sc)
        polygons = {z.id: tuple(map(tuple, z.polygon)) for z in cam.zones}
        for zone_id, samples in r.counts.items():
            signature = (polygons.get(zone_id), cam.analysis_fps)
            key = zone_id
            if (sc.data.scene, zone_id) in seen:
                if seen[(sc.data.scene, zone_id)] == signature:
                    continue
                key = f"{sc.name}/{zone_id}"
            seen[(sc.data.scene, zone_id)] = signature
            groups.setdefault(sc.data.scene, {})[key] = samples
    for name, scene in scenes.items():
        zones = groups.get(name, {})
        scene.zones = {z: pooled_metrics([s]) for z, s in zones.items()}
        scene.count = pooled_metrics(zones.values()) if zones else None
    return scenes


@dataclass
class EvalResult:
    report: Report = field(default_factory=Report)
    scenarios: list[ScenarioResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def scenes(self) -> dict[str, SceneResult]:
        return scene_results(self.scenarios)

    def as_json(self) -> dict[str, Any]:
        """What ``gridwatch eval --json`` writes: ``{rule type: {...}}`` as always and, when
        any scenario names real data, ``"_scenes": {scene: SceneResult.as_json()}``.

        The scene figures go under one extra top-level key rather than a new envelope so that
        readers of the per-rule-type figures keep working; the leading underscore keeps it apart
        from rule types (identifiers that never start with one), so a reader that wants only
        rule types skips keys starting with ``_``.
        """
        out: dict[str, Any] = self.report.as_json()
        scenes = self.scenes
        if scenes:
            out["_scenes"] = {name: scenes[name].as_json() for name in sorted(scenes)}
        return out


class DetectorPool:
    """One detector per distinct detector config, built on first use.

    ``backend`` (e.g. ``openvino``) replaces the backend of every config that runs the default
    model, so one suite measures another way of running the same weights; configs naming other
    weights (the Darknet COCO model of the vehicle scenarios) keep theirs.
    """

    def __init__(self, backend: str | None = None, model: str | None = None) -> None:
        self._built: dict[str, Detector] = {}
        self.backend = backend
        self.model = model
        """Replaces ``model`` the same way (e.g. a path to other weights): passed through to
        the detector config's ``model`` (what :func:`~gridwatch.detectors.build_detector`
        takes)."""

    def get(self, cfg: DetectorSettings) -> Detector:
        if cfg.model == "default":
            if self.backend is not None:  # the keys the backends share are kept
                cfg = with_backend(cfg, self.backend)
            if self.model is not None:
                cfg = cfg.model_copy(update={"model": self.model})
        key = cfg.model_dump_json()
        if key not in self._built:
            t0 = time.perf_counter()  # the worker's own way to build: the config's
            self._built[key] = cfg.build()
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


def in_ci() -> bool:
    """Whether this runs under CI, where missing data fails instead of being skipped."""
    return os.environ.get("CI") == "true"


def _camera(sc: Scenario) -> Any:
    cam = sc.config.cameras[0]
    if sc.camera is not None:
        cam = next(c for c in sc.config.cameras if c.id == sc.camera)
    return cam


def load_ground_truth(sc: Scenario, video: Path, gt_path: Path) -> GroundTruth:
    """The scenario's ground truth, scaled to its video (size and fps read from the file)."""
    assert sc.data is not None
    width, height, rate = video_geometry(video)
    fps = sc.data.fps or rate
    try:
        return GroundTruth.load(
            gt_path, width=width, height=height, fps=fps, frame_offset=sc.data.frame_offset
        )
    except GroundTruthError as exc:
        raise ScenarioError(f"{sc.path}: {exc}") from None


def derived_incidents(sc: Scenario, gt: GroundTruth) -> tuple[TruthIncident, ...]:
    """The crowding incidents the ground truth calls for under each crowding rule of ``sc``."""
    cam = _camera(sc)
    zones = {z.id: Zone(z.id, z.polygon) for z in cam.zones}
    out: list[TruthIncident] = []
    for rule in cam.rules:
        if rule.type != "crowding":
            continue
        if rule.schedule is not None:
            raise ScenarioError(f"{sc.path}: derived incidents do not follow schedules")
        for inc in derive_crowding_incidents(
            gt.series(zones[rule.zone]),
            rule.min_count,
            rule.min_duration_s,
            rule.clear_after_s,
            rule.onset_gap_s,
        ):
            out.append(
                TruthIncident("crowding", rule.zone, inc.start_s, inc.end_s, DERIVED_TOLERANCE_S)
            )
    out += rule_derived_incidents(sc, gt, zones)
    return tuple(sorted(out, key=lambda t: (t.start_s, t.zone or "")))


def rule_derived_incidents(
    sc: Scenario, gt: GroundTruth, zones: Mapping[str, Zone]
) -> list[TruthIncident]:
    """The running, gathering and density incidents the ground truth calls for: each such rule
    of ``sc``, built with the scenario's calibration, run on the truth's people
    (:func:`~gridwatch.evaluation.ground_truth.derive_rule_incidents`)."""
    cam = _camera(sc)
    plane = cam.calibration.plane() if cam.calibration is not None else None
    out: list[TruthIncident] = []
    for i, rule in enumerate(cam.rules):
        if rule.type not in RULE_DERIVED_TYPES:
            continue
        if rule.schedule is not None:
            raise ScenarioError(f"{sc.path}: derived incidents do not follow schedules")
        ctx = RuleContext(zones=zones, calibration=plane, what=f"{sc.path} rule {i}")
        for inc in derive_rule_incidents(build_rule(rule, ctx), gt):  # type: ignore[arg-type]
            zone = getattr(rule, "zone", None)
            out.append(TruthIncident(rule.type, zone, inc.start_s, inc.end_s, DERIVED_TOLERANCE_S))
    return out


def run_scenario(
    sc: Scenario,
    pool: DetectorPool,
    *,
    cache: bool = True,
    cache_dir: Path | None = None,
    data_dir: Path | None = None,
) -> ScenarioResult:
    """Replay and score one scenario. A real-data scenario whose data is missing comes back
    with ``not_run`` set, or raises :class:`DataMissing` under CI."""
    from gridwatch.media_cache import resolve_cache_dir

    t0 = time.perf_counter()
    gt: GroundTruth | None = None
    if sc.data is not None:
        try:
            found = resolve_data(sc, data_dir)
        except DataMissing as exc:
            if in_ci():
                raise
            log.warning("%s not run: %s", sc.name, exc)
            return ScenarioResult(sc, {}, [], [], 0.0, Path(), not_run=str(exc))
        clip: Path | None = found.video
        gt = load_ground_truth(sc, found.video, found.ground_truth)
        if sc.derived:
            sc = dataclasses.replace(sc, incidents=derived_incidents(sc, gt))
    else:
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
    counts: dict[str, list[CountSample]] = {}
    on_count: CountHook | None = None
    if gt is not None:
        truth = gt
        zones = {z.id: Zone(z.id, z.polygon) for z in _camera(sc).zones}

        def pair(video_s: float, seen: Mapping[str, int]) -> None:
            if not truth.covers(video_s):
                return
            for zone_id, predicted in seen.items():
                actual = truth.count(zones[zone_id], video_s)
                counts.setdefault(zone_id, []).append(CountSample(video_s, predicted, actual))

        on_count = pair

    events = list(
        replay(
            sc.config,
            clip,
            camera_id=sc.camera,
            detector=detector,
            start_ts=start,
            faults=sc.faults,
            cache=det_cache,
            on_count=on_count,
        )
    )
    tallies, matches = score(sc, events, clip_duration(clip))
    return ScenarioResult(
        sc, tallies, matches, events, time.perf_counter() - t0, clip, counts=counts
    )


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
    model: str | None = None,
    data_dir: Path | None = None,
) -> EvalResult:
    """Evaluate every scenario under ``root``; ``on_done`` is called after each (progress).

    ``backend`` and ``model`` replace those of every detector config running the default model
    (:class:`DetectorPool`); ``data_dir`` is the root of real footage (see
    :func:`~gridwatch.evaluation.scenarios.data_root`)."""
    t0 = time.perf_counter()
    scenarios = [load_scenario(p) for p in find_scenarios(root)]
    if only is not None:
        scenarios = [s for s in scenarios if only(s)]
    if on_start is not None:
        on_start(len(scenarios))
    pool = DetectorPool(backend, model)
    result = EvalResult()
    for sc in scenarios:
        r = run_scenario(sc, pool, cache=cache, cache_dir=cache_dir, data_dir=data_dir)
        result.report.add(r.scenario, r.tallies)
        result.scenarios.append(r)
        if on_done is not None:
            on_done(r)
    result.seconds = time.perf_counter() - t0
    return result


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")

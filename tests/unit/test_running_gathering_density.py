"""The running, gathering and density rules as state machines: onset, hysteresis both ways
(a short dip keeps the onset, a short lull keeps the incident), one incident per episode, and
the refusal to build on a camera without calibration."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from gridwatch.calibration.ground import GroundPlane
from gridwatch.model import Detections, IncidentEvent
from gridwatch.rules.base import RuleBuildError, RuleContext
from gridwatch.rules.density import DensityRule, DensityRuleConfig
from gridwatch.rules.gathering import GatheringRule, GatheringRuleConfig
from gridwatch.rules.registry import build_rule
from gridwatch.rules.running import RunningRule, RunningRuleConfig
from gridwatch.rules.zones import Zone

SIZE = (100, 100)
PLANE = GroundPlane.from_points(
    [(0, 0), (1, 0), (1, 1), (0, 1)], [(0, 0), (50, 0), (50, 50), (0, 50)]
)
"""A top-down view: 1 % of the picture is 0.5 m."""
ZONE = Zone("z", [(0.0, 0.5), (1.0, 0.5), (1.0, 1.0), (0.0, 1.0)])  # 50 m x 25 m = 1250 m²


def states(events: Sequence[tuple[float, IncidentEvent]]) -> list[tuple[float, str]]:
    return [(round(t, 2), e.state.value) for t, e in events]


# -- running --------------------------------------------------------------------------------


def walkers(xs: Sequence[float], y: float = 80.0) -> Detections:
    """One tracked person per x (tracker ids 1, 2, ...), feet at (x, y) percent."""
    n = len(xs)
    return Detections.from_arrays(
        xyxy=np.array([[x - 1, y - 20, x + 1, y] for x in xs], np.float32).reshape(-1, 4),
        confidence=np.full(n, 0.9),
        class_id=np.zeros(n),
        tracker_id=np.arange(1, n + 1),
        image_size=SIZE,
    )


def run_rule(rule: RunningRule, speeds_pct: Sequence[Sequence[float]], dt: float = 0.1,
             ) -> list[tuple[float, IncidentEvent]]:  # fmt: skip
    """Feed frames where person i moves speeds_pct[k][i] percent per step (0.5 m per %)."""
    xs = [40.0] * len(speeds_pct[0])
    out = []
    for k, step in enumerate(speeds_pct):
        xs = [x + s for x, s in zip(xs, step, strict=True)]
        out += [(k * dt, e) for e in rule.update(walkers(xs), k * dt)]
    return out


def running(**kw: float) -> RunningRuleConfig:
    base = {"type": "running", "speed_mps": 3.0, "window_s": 1.0, "min_duration_s": 1.0,
            "clear_after_s": 1.0, "onset_gap_s": 0.5}  # fmt: skip
    return RunningRuleConfig.model_validate({**base, **kw})


def test_walkers_never_raise_a_runner_does() -> None:
    walk = [[0.28]] * 60  # 1.4 m/s
    assert run_rule(RunningRule(None, running(), plane=PLANE), walk) == []
    run = [[0.28]] * 10 + [[0.8]] * 30 + [[0.28]] * 30  # 4 m/s for 3 s
    got = states(run_rule(RunningRule(None, running(), plane=PLANE), run))
    assert [s for _, s in got] == ["raised", "cleared"]
    raised, cleared = got[0][0], got[1][0]
    assert 2.0 <= raised <= 2.6  # running from 1.0 s, seen after ~0.5 s, + min_duration 1 s
    assert 4.5 <= cleared <= 5.5  # stopped at 4.0 s, the fit falls under 3 m/s within the
    # window (1 s), + clear_after 1 s


def test_running_hysteresis_both_ways() -> None:
    rule = RunningRule(None, running(min_duration_s=1.0, clear_after_s=2.0, onset_gap_s=0.5,
                                     window_s=0.4), plane=PLANE)  # fmt: skip
    # short bursts (0.3 s) below min_duration never raise
    bursts = ([[0.28]] * 8 + [[1.0]] * 3) * 6
    assert run_rule(rule, bursts) == []
    # a 1 s walk inside a 4 s run does not clear it (clear_after 2 s): one incident
    rule = RunningRule(None, running(clear_after_s=2.0), plane=PLANE)
    seq = [[1.0]] * 20 + [[0.28]] * 10 + [[1.0]] * 20 + [[0.0]] * 40
    assert [s for _, s in states(run_rule(rule, seq))] == ["raised", "cleared"]


def test_min_people_alarms_only_on_a_scatter() -> None:
    one_runs = [[0.8, 0.28, 0.28]] * 40
    assert run_rule(RunningRule(None, running(min_people=2), plane=PLANE), one_runs) == []
    scatter = [[0.8, -0.8, 0.28]] * 40
    got = run_rule(RunningRule(None, running(min_people=2), plane=PLANE), scatter)
    assert [e.state.value for _, e in got] == ["raised"]
    assert got[0][1].count == 2
    assert len(got[0][1].details["speeds_mps"]) == 2


def test_a_jumping_box_is_not_a_runner() -> None:
    jumps = [[0.28]] * 10 + [[30.0]] + [[0.28]] * 30  # a 15 m jump in one frame
    assert run_rule(RunningRule(None, running(window_s=0.4), plane=PLANE), jumps) == []


def test_running_in_a_zone_only() -> None:
    rule = RunningRule(Zone("top", [(0, 0), (1, 0), (1, 0.5), (0, 0.5)]), running(), plane=PLANE)
    assert run_rule(rule, [[0.8]] * 40) == []  # feet at y 0.8: outside
    rule = RunningRule(ZONE, running(), plane=PLANE)
    assert [e.state.value for _, e in run_rule(rule, [[0.8]] * 40)] == ["raised"]
    assert rule.rule_key == "running/z"


# -- gathering --------------------------------------------------------------------------------


def people(n: int) -> Detections:
    boxes = [[i % 90, 60, i % 90 + 2, 90] for i in range(n)]
    return Detections.from_arrays(
        xyxy=np.array(boxes, np.float32).reshape(-1, 4),
        confidence=np.full(n, 0.9),
        class_id=np.zeros(n),
        image_size=SIZE,
    )


def feed(rule: GatheringRule | DensityRule, counts: Sequence[int], dt: float = 1.0,
         ) -> list[tuple[float, str]]:  # fmt: skip
    got = [(k * dt, e) for k, n in enumerate(counts) for e in rule.update(people(n), k * dt)]
    return [s for s in states(got) if s[1] != "updated"]


def gathering(**kw: float) -> GatheringRuleConfig:
    base = {"type": "gathering", "zone": "z", "rise": 4, "within_s": 10, "min_duration_s": 2,
            "clear_after_s": 3, "onset_gap_s": 1, "count_window_s": 0}  # fmt: skip
    return GatheringRuleConfig.model_validate({**base, **kw})


def test_a_slow_rise_is_no_gathering_a_fast_one_is() -> None:
    slow = [2] * 4 + [3] * 4 + [4] * 4 + [5] * 4 + [6] * 4 + [7] * 4  # +1 every 4 s
    assert feed(GatheringRule(ZONE, gathering()), slow) == []
    fast = [2, 2, 2, 4, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 3, 3, 3, 3, 3]
    # +4 at 4 s (6 - 2), lasts 2 s; the crowd stays past within_s: still one incident; it
    # disperses at 18 s (under 2 + 4) and clears 3 s later
    assert feed(GatheringRule(ZONE, gathering()), fast) == [(6, "raised"), (20, "cleared")]


def test_gathering_hysteresis_both_ways() -> None:
    # a 1 s dip during the onset keeps it (onset_gap 1 s); a 2 s lull while raised keeps it
    counts = [2, 2, 6, 5, 6, 6, 6, 6, 5, 5, 6, 6, 2, 2, 2, 2, 2]
    assert feed(GatheringRule(ZONE, gathering()), counts) == [(4, "raised"), (14, "cleared")]
    # a rise that lasts 1 s (< min_duration) never raises
    assert feed(GatheringRule(ZONE, gathering()), [2, 2, 7, 2, 2, 7, 2, 2]) == []


def test_gathering_counts_like_crowding_with_the_median_window() -> None:
    rule = GatheringRule(ZONE, gathering(count_window_s=2.0))
    # one frame of doubled boxes (a spike) never moves the median
    assert feed(rule, [2, 2, 2, 9, 2, 2, 2, 2], dt=0.5) == []


# -- density ----------------------------------------------------------------------------------


SMALL = GroundPlane.from_points([(0, 0), (1, 0), (1, 1), (0, 1)], [(0, 0), (4, 0), (4, 4), (0, 4)])
"""A 4 m x 4 m picture: ZONE (its lower half) is 8 m²."""


def density(**kw: float) -> DensityRuleConfig:
    base = {"type": "density", "zone": "z", "max_per_m2": 1.0, "min_duration_s": 2,
            "clear_after_s": 3, "onset_gap_s": 1, "count_window_s": 0}  # fmt: skip
    return DensityRuleConfig.model_validate({**base, **kw})


def test_density_hysteresis_both_ways() -> None:
    area = SMALL.area(ZONE.points)
    assert area == pytest.approx(8.0)
    # 8 people: exactly 1/m², not above; 9: above. A 1 s dip keeps the onset, a 2 s lull
    # keeps the incident; it clears 3 s after the last moment above.
    counts = [8, 9, 8, 9, 9, 10, 10, 8, 8, 10, 10, 8, 8, 8, 8, 8]
    rule = DensityRule(ZONE, density(), area_m2=area)
    assert feed(rule, counts) == [(3, "raised"), (13, "cleared")]
    assert feed(DensityRule(ZONE, density(), area_m2=area), [8] * 10) == []
    assert feed(DensityRule(ZONE, density(), area_m2=area), [9, 8, 8] * 4) == []  # 2 s dips


# -- built from config ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cfg",
    [running(), density(), gathering()],
    ids=["running", "density", "gathering"],
)
def test_rules_build_from_the_registry(cfg: object) -> None:
    ctx = RuleContext(zones={"z": ZONE}, calibration=SMALL, what="camera c rule 0")
    rule = build_rule(cfg, ctx)
    assert rule.type == cfg.type  # type: ignore[attr-defined]


@pytest.mark.parametrize("cfg", [running(), density()], ids=["running", "density"])
def test_metre_rules_refuse_a_camera_without_calibration(cfg: object) -> None:
    ctx = RuleContext(zones={"z": ZONE}, what="camera c rule 0 (x)")
    with pytest.raises(RuleBuildError, match=r"camera c rule 0 .*no calibration"):
        build_rule(cfg, ctx)


def test_density_refuses_a_zone_past_the_horizon() -> None:
    tilted = GroundPlane.from_camera(6.0, 10.0, 70.0)  # the horizon is in the picture
    sky = Zone("z", [(0, 0), (1, 0), (1, 1), (0, 1)])
    ctx = RuleContext(zones={"z": sky}, calibration=tilted, what="camera c rule 0 (density)")
    with pytest.raises(RuleBuildError, match="horizon"):
        build_rule(density(), ctx)


def test_a_camera_builds_them_with_its_calibration() -> None:
    from gridwatch.config import parse_config
    from gridwatch.rules.engine import CameraRules

    text = (
        "grids: [{id: g}]\n"
        "cameras:\n"
        "  - id: c\n"
        "    grid: g\n"
        "    url: rtsp://127.0.0.1/x\n"
        "    analysis_fps: 10\n"
        "    zones: [{id: z, polygon: [[0, 0.5], [1, 0.5], [1, 1], [0, 1]]}]\n"
        "    calibration: {points: [{image: [0, 0], ground: [0, 0]}, {image: [1, 0], ground: "
        "[4, 0]}, {image: [1, 1], ground: [4, 4]}, {image: [0, 1], ground: [0, 4]}]}\n"
        "    rules: [{type: running}, {type: gathering, zone: z, rise: 3},"
        " {type: density, zone: z, max_per_m2: 2}]\n"
    )
    cfg = parse_config(text, "cfg.yaml")
    rules = CameraRules(cfg.cameras[0], cfg, person_classes={0})
    assert [r.rule_key for r in rules.rules] == ["running/*", "gathering/z", "density/z"]
    density_rule = rules.rules[2]
    assert isinstance(density_rule, DensityRule)
    assert density_rule.area_m2 == pytest.approx(8.0)
    assert rules.stitcher is not None  # running follows tracks
    assert rules.counter is not None  # gathering and density count people
    uncalibrated = cfg.cameras[0].model_copy(update={"calibration": None})
    with pytest.raises(RuleBuildError, match=r"camera c rule 0 \(running\).*no calibration"):
        CameraRules(uncalibrated, cfg, person_classes={0})

"""Truths of the running, gathering and density scenarios derived from ground truth: the rule's
own contract run on the annotators' boxes, with their ids as tracks (synthetic MOT text here)."""

from __future__ import annotations

from gridwatch.calibration.ground import GroundPlane
from gridwatch.evaluation.ground_truth import DerivedIncident, GroundTruth, derive_rule_incidents
from gridwatch.rules.gathering import GatheringRule, GatheringRuleConfig
from gridwatch.rules.running import RunningRule, RunningRuleConfig
from gridwatch.rules.zones import Zone

TOP_DOWN = GroundPlane.from_points(
    [(0, 0), (1, 0), (1, 1), (0, 1)], [(0, 0), (100, 0), (100, 100), (0, 100)]
)
"""1 pixel of a 1000 px picture is 0.1 m."""
ZONE = Zone("z", [(0, 0), (1, 0), (1, 1), (0, 1)])


def mot(rows: list[tuple[int, int, float, float]]) -> GroundTruth:
    """(frame, id, left, top) rows of 10 x 40 px boxes in a 1000 x 1000 picture at 10 fps."""
    text = "".join(f"{f},{i},{x},{y},10,40,1,-1,-1,-1\n" for f, i, x, y in rows)
    return GroundTruth.from_text(text, width=1000, height=1000, fps=10)


def test_ids_are_kept_as_track_ids() -> None:
    gt = mot([(1, 7, 0, 0), (1, 9, 50, 0), (2, 9, 52, 0)])
    assert gt.detections_at(0.0).tracker_id.tolist() == [7, 9]
    assert gt.detections_at(0.1).tracker_id.tolist() == [9]


def test_a_truth_runner_is_a_running_incident() -> None:
    # id 1 walks at 1.5 m/s for 3 s, runs at 4 m/s for 3 s (frames 31-60), walks again; id 2
    # stands still beside the path throughout
    rows, x = [], 0.0
    for f in range(1, 121):
        x += 4.0 if 31 <= f <= 60 else 1.5  # px per frame: 0.1 m x 10 fps = 1 m/s per px
        rows += [(f, 1, x, 500), (f, 2, 300, 700)]
    cfg = RunningRuleConfig(type="running", speed_mps=3.0, window_s=1.0, min_duration_s=1.0,
                            clear_after_s=1.0, onset_gap_s=0.0)  # fmt: skip
    incidents = derive_rule_incidents(RunningRule(None, cfg, plane=TOP_DOWN), mot(rows))
    assert len(incidents) == 1
    inc = incidents[0]
    assert 3.2 <= inc.start_s <= 3.8  # running from 3.0 s; the 1 s fit passes 3 m/s about 0.5 s on
    assert inc.raised_s == round(inc.start_s + 1.0, 1)
    assert inc.end_s is not None
    assert 5.8 <= inc.end_s <= 6.6  # stopped at 6.0 s


def test_a_truth_count_rise_is_a_gathering() -> None:
    rows = [(f, i, 20 * i, 500) for f in range(1, 101) for i in range(2 if f < 40 else 6)]
    cfg = GatheringRuleConfig(type="gathering", zone="z", rise=3, within_s=5, min_duration_s=1,
                              clear_after_s=2, count_window_s=0)  # fmt: skip
    got = derive_rule_incidents(GatheringRule(ZONE, cfg), mot(rows))
    assert got == [DerivedIncident(start_s=3.9, raised_s=4.9, end_s=None, peak=6)]

"""Fall: upright then down for min_duration_s; never-upright look-alikes (the vtest jacket) and
brief misreadings never raise; a new track id lying where an upright person was lost inherits
their past, but not from under a static object."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from gridwatch.model import Detections, IncidentState
from gridwatch.rules.fall import FallRule, FallRuleConfig, fall_class_ids
from gridwatch.rules.zones import Zone

SIZE = (400, 400)
NORMAL, FALL = 0, 1
Obj = tuple[int, tuple[float, float, float, float], int]  # track id, xyxy px, class


def dets(objs: Sequence[Obj]) -> Detections:
    return Detections.from_arrays(
        xyxy=np.array([b for _, b, _ in objs], np.float32).reshape(-1, 4),
        confidence=np.full(len(objs), 0.8),
        class_id=[c for _, _, c in objs],
        tracker_id=[t for t, _, _ in objs],
        image_size=SIZE,
    )


STAND = (100.0, 100.0, 130.0, 190.0)  # 30×90: upright
LIE = (90.0, 165.0, 180.0, 195.0)  # 90×30 at the same feet: lying
JACKET = (20.0, 350.0, 90.0, 380.0)


def up(tid: int = 1) -> list[Obj]:
    return [(tid, STAND, NORMAL)]


def down(tid: int = 1, box: tuple[float, float, float, float] = LIE) -> list[Obj]:
    return [(tid, box, FALL)]


def run(rule: FallRule, frames: Sequence[Sequence[Obj] | None]) -> list[tuple[int, str, int]]:
    return [
        (t, e.state.value, e.count)
        for t, f in enumerate(frames)
        for e in rule.update(None if f is None else dets(f), float(t))
    ]


def make(**kw: float) -> FallRule:
    p = {"min_duration_s": 3.0, "clear_after_s": 2.0, "onset_gap_s": 1.5, "min_upright_s": 1.0} | kw
    return FallRule(None, FallRuleConfig(type="fall", **p), fall_classes={FALL})


@pytest.mark.parametrize(
    ("frames", "expected"),
    [
        # upright 2 s, down from t=2: raised 3 s later
        ([up()] * 2 + [down()] * 5, [(5, "raised", 1)]),
        # down, then up again for good: cleared clear_after_s after the last down
        ([up()] * 2 + [down()] * 4 + [up()] * 5, [(5, "raised", 1), (8, "cleared", 0)]),
        # a jacket: down on every frame, never upright: never raises
        ([down(5, JACKET)] * 30, []),
        # a walker misread as down for 1 s: too short
        ([up()] * 3 + [down()] * 2 + [up()] * 5, []),
        # upright for only one frame (0 s of upright time) before going down: not a fall
        ([up()] + [down()] * 6, []),
        # the tracker loses the falling person and starts a new id lying at their feet
        ([up()] * 2 + [[]] + [down(9)] * 5, [(6, "raised", 1)]),
        # missed detections while lying (gaps up to onset_gap_s) do not restart it
        ([up()] * 2 + [down()] * 2 + [[]] + [down()] * 2, [(5, "raised", 1)]),
        # the camera goes away while someone is down: cleared as no data
        ([up()] * 2 + [down()] * 4 + [None] * 3, [(5, "raised", 1), (7, "cleared", 0)]),
    ],
)
def test_fall_table(frames: list[list[Obj] | None], expected: list[tuple[int, str, int]]) -> None:
    assert run(make(), frames) == expected


def test_no_handover_from_under_a_static_down_object() -> None:
    # the jacket is there from the start; a walker passes it, is lost right next to it, and the
    # jacket comes back under a new id: the walker's upright past must not make it a fall
    jacket_box = (100.0, 170.0, 170.0, 195.0)
    frames: list[list[Obj]] = [[(5, jacket_box, FALL), (1, STAND, NORMAL)]] * 3
    frames += [[]] + [[(6, jacket_box, FALL)]] * 8
    assert run(make(), frames) == []


def test_started_at_is_when_they_went_down() -> None:
    rule = make()
    events = [
        e for t, f in enumerate([up()] * 2 + [down()] * 5) for e in rule.update(dets(f), 100.0 + t)
    ]
    (raised,) = events
    assert raised.state is IncidentState.RAISED
    assert raised.started_at == 102.0
    assert raised.observed_at == 105.0
    assert raised.type == "fall"
    assert raised.zone_id is None
    assert raised.rule_key == "fall/*"
    assert raised.details["tracks"] == [1]


def test_aspect_ratio_without_a_fall_class() -> None:
    rule = FallRule(
        None, FallRuleConfig(type="fall", min_duration_s=2, min_upright_s=1)
    )  # COCO-like model
    frames = [[(1, STAND, 0)]] * 2 + [[(1, LIE, 0)]] * 4
    assert run(rule, frames) == [(4, "raised", 1)]


def test_zone_limits_where_falls_count() -> None:
    zone = Zone("far-corner", [(0.6, 0.6), (1.0, 0.6), (1.0, 1.0), (0.6, 1.0)])
    rule = FallRule(zone, FallRuleConfig(type="fall", min_duration_s=2), fall_classes={FALL})
    assert run(rule, [up()] * 2 + [down()] * 5) == []


def test_fall_class_names() -> None:
    assert fall_class_ids({0: "Normal", 1: "Fall"}) == {1}
    assert fall_class_ids({0: "person"}) == frozenset()


def test_params_reject_negative() -> None:
    with pytest.raises(ValueError, match="min_upright_s"):
        FallRuleConfig(type="fall", min_upright_s=-1)

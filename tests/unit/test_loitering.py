"""Loitering (and the dwell core it shares with vehicle_stop): dwell, gaps, id changes, one
incident per zone episode."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from gridwatch.model import Detections, IncidentState
from gridwatch.rules.loitering import LoiteringRule, LoiteringRuleConfig
from gridwatch.rules.vehicle_stop import VehicleStopRule, VehicleStopRuleConfig, vehicle_class_ids
from gridwatch.rules.zones import Zone

ZONE = Zone("gate", [(0.0, 0.5), (1.0, 0.5), (1.0, 1.0), (0.0, 1.0)])  # lower half
SIZE = (200, 200)
Obj = tuple[int, float, float]  # track id, x, feet y (pixels)


def loitering(
    min_dwell_s: float = 60.0,
    max_gap_s: float = 3.0,
    clear_after_s: float = 10.0,
    update_interval_s: float = 5.0,
) -> LoiteringRuleConfig:
    return LoiteringRuleConfig(
        type="loitering",
        zone=ZONE.id,
        min_dwell_s=min_dwell_s,
        max_gap_s=max_gap_s,
        clear_after_s=clear_after_s,
        update_interval_s=update_interval_s,
    )


def vehicle_stop(
    min_dwell_s: float = 60.0, max_gap_s: float = 3.0, clear_after_s: float = 10.0
) -> VehicleStopRuleConfig:
    return VehicleStopRuleConfig(
        type="vehicle_stop",
        zone=ZONE.id,
        min_dwell_s=min_dwell_s,
        max_gap_s=max_gap_s,
        clear_after_s=clear_after_s,
    )


def dets(objs: Sequence[Obj], cls: int = 0) -> Detections:
    boxes = [[x - 5, y - 40, x + 5, y] for _, x, y in objs]
    return Detections.from_arrays(
        xyxy=np.array(boxes, np.float32).reshape(-1, 4),
        confidence=np.full(len(objs), 0.9),
        class_id=np.full(len(objs), cls),
        tracker_id=[t for t, _, _ in objs],
        image_size=SIZE,
    )


IN, OUT = 150.0, 50.0  # feet y inside / outside the zone


def run(rule: LoiteringRule, frames: Sequence[Sequence[Obj] | None]) -> list[tuple[int, str, int]]:
    out = []
    for t, f in enumerate(frames):
        for e in rule.update(None if f is None else dets(f), float(t)):
            out.append((t, e.state.value, e.count))
    return out


def make(dwell: float = 5, gap: float = 2, clear: float = 2, upd: float = 0) -> LoiteringRule:
    return LoiteringRule(ZONE, loitering(dwell, gap, clear, upd))


STAY = [(1, 100.0, IN)]
NEAR = [(9, 103.0, IN)]  # a new id where track 1 was
FAR = [(9, 20.0, IN)]  # a new id far from it


@pytest.mark.parametrize(
    ("frames", "expected"),
    [
        # dwell reached at 5 s; last seen at 7: gone once unseen > max_gap (2), clear 2 s later
        ([STAY] * 8 + [[]] * 6, [(5, "raised", 1), (11, "cleared", 0)]),
        # walking through: 3 s inside, never raised
        ([STAY] * 3 + [[(1, 100.0, OUT)]] * 5, []),
        # never in the zone
        ([[(1, 100.0, OUT)]] * 10, []),
        # sightings 2 s apart (= max_gap, one frame missed) keep the dwell: raised on time
        ([STAY] * 3 + [[]] + [STAY] * 3, [(5, "raised", 1)]),
        # 3 s apart (> max_gap) restart it: raised 5 s after the return at 5
        ([STAY] * 3 + [[]] * 2 + [STAY] * 6, [(10, "raised", 1)]),
        # the tracker gives a new id where the old track was lost: the dwell continues
        ([STAY] * 3 + [[]] + [NEAR] * 4, [(5, "raised", 1)]),
        # a new id elsewhere is someone else: its own dwell
        ([STAY] * 3 + [FAR] * 6, [(8, "raised", 1)]),
        # two loiterers are one incident, updated with the count
        (
            [STAY] * 3 + [[*STAY, (2, 20.0, IN)]] * 6,
            [(5, "raised", 1), (8, "updated", 2)],
        ),
        # the camera goes away: cleared for lack of data
        ([STAY] * 6 + [None] * 5, [(5, "raised", 1), (7, "cleared", 0)]),
    ],
)
def test_loitering_table(
    frames: list[list[Obj] | None], expected: list[tuple[int, str, int]]
) -> None:
    assert run(make(), frames) == expected


def test_started_at_is_entry_and_ids_are_stable() -> None:
    rule = make()
    events = [e for t in range(12) for e in rule.update(dets(STAY if t < 7 else []), 100.0 + t)]
    assert [e.state for e in events] == [IncidentState.RAISED, IncidentState.CLEARED]
    raised, cleared = events
    assert raised.started_at == 100.0
    assert raised.observed_at == 105.0
    assert raised.incident_id("cam") == cleared.incident_id("cam")
    assert raised.type == "loitering"
    assert raised.zone_id == "gate"
    assert raised.details["tracks"] == [1]
    assert raised.details["min_dwell_s"] == 5
    assert cleared.reason == "left_zone"


def test_person_class_filter() -> None:
    rule = LoiteringRule(ZONE, loitering(0, 2, 2), person_classes={1})
    assert rule.update(dets(STAY, cls=0), 0.0) == []
    assert [e.state for e in rule.update(dets(STAY, cls=1), 1.0)] == [IncidentState.RAISED]


def test_untracked_detections_are_ignored() -> None:
    rule = make(dwell=0)
    assert rule.update(dets([(-1, 100.0, IN)]), 0.0) == []


class _Closed:
    def is_active(self, ts: float) -> bool:
        return ts < 5


def test_schedule_end_clears_and_forgets() -> None:
    rule = LoiteringRule(ZONE, loitering(2, 2, 10), schedule=_Closed())
    events = [(t, e.state.value, e.reason) for t in range(8) for e in rule.update(dets(STAY), t)]
    assert events == [(2, "raised", ""), (5, "cleared", "schedule_ended")]


def test_vehicle_stop_counts_one_vehicle_seen_as_car_and_truck() -> None:
    names = {0: "person", 2: "car", 7: "truck"}
    rule = VehicleStopRule(
        ZONE,
        vehicle_stop(3, 2, 2),
        vehicle_classes=vehicle_class_ids(names, ["car", "truck"]),
        class_names=names,
    )
    van = Detections.from_arrays(
        xyxy=[[50, 100, 120, 160], [52, 101, 121, 161], [10, 100, 20, 160]],
        confidence=[0.4, 0.3, 0.9],
        class_id=[2, 7, 0],  # the same van twice, and a person
        tracker_id=[4, 5, 6],
        image_size=SIZE,
    )
    events = [e for t in range(5) for e in rule.update(van, float(t))]
    assert [(e.state.value, e.count, e.type) for e in events] == [("raised", 1, "vehicle_stop")]
    assert events[0].details["classes"] == ["car"]


def test_vehicle_stop_needs_vehicle_classes() -> None:
    with pytest.raises(ValueError, match="vehicle classes"):
        VehicleStopRule(ZONE, vehicle_stop(3), vehicle_classes=[])
    assert vehicle_class_ids({0: "Normal", 1: "Fall"}, ["car"]) == []


def test_params_reject_negative() -> None:
    with pytest.raises(ValueError, match="min_dwell_s"):
        loitering(min_dwell_s=-1)

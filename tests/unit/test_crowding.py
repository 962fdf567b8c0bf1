"""Crowding rule tables: onset, hysteresis, schedule boundaries, threshold, one incident."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Sequence

import numpy as np
import pytest

from gridwatch.model import Detections, IncidentState
from gridwatch.rules.crowding import CrowdingRule, CrowdingRuleConfig
from gridwatch.rules.schedule import Schedule
from gridwatch.rules.zones import Zone

ZONE = Zone("apron", [(0.0, 0.5), (1.0, 0.5), (1.0, 1.0), (0.0, 1.0)])
SIZE = (100, 100)


def crowding(
    min_count: int,
    min_duration_s: float = 10.0,
    clear_after_s: float = 15.0,
    onset_gap_s: float = 2.0,
    update_interval_s: float = 5.0,
) -> CrowdingRuleConfig:
    """The rule's config model; the frame's own count (no median window) unless said."""
    return CrowdingRuleConfig(
        type="crowding",
        zone=ZONE.id,
        min_count=min_count,
        min_duration_s=min_duration_s,
        clear_after_s=clear_after_s,
        onset_gap_s=onset_gap_s,
        update_interval_s=update_interval_s,
        count_window_s=0,
    )


def people(n_in: int, n_out: int = 0) -> Detections:
    """n_in people with feet inside the lower-half zone, n_out standing above it."""
    boxes = [[i * 5, 60, i * 5 + 4, 80] for i in range(n_in)]
    boxes += [[i * 5, 10, i * 5 + 4, 30] for i in range(n_out)]
    n = len(boxes)
    return Detections.from_arrays(
        xyxy=np.array(boxes, dtype=np.float32).reshape(-1, 4),
        confidence=np.full(n, 0.9),
        class_id=np.zeros(n),
        image_size=SIZE,
    )


def run(
    rule: CrowdingRule, counts: Sequence[int | None], t0: float = 0.0, dt_s: float = 1.0
) -> list[tuple[float, str, int]]:
    """Feed one count per second (None = no frame), return (t, state, count) of events."""
    out = []
    for i, c in enumerate(counts):
        t = t0 + i * dt_s
        for e in rule.update(None if c is None else people(c), t):
            out.append((t - t0, e.state.value, e.count))
    return out


def make(
    min_count: int = 3, dur: float = 3, clear: float = 3, gap: float = 0, upd: float = 0
) -> CrowdingRule:
    return CrowdingRule(ZONE, crowding(min_count, dur, clear, gap, upd))


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        # onset: raised only after min_duration_s of continuous crowd
        ([3, 3, 3, 3], [(3, "raised", 3)]),
        ([3, 3, 2, 3, 3, 3, 3], [(6, "raised", 3)]),  # a dip restarts the onset (gap 0)
        # count exactly at threshold counts; one below never raises
        ([2, 2, 2, 2, 2, 2], []),
        # hysteresis: clears only after clear_after_s below the threshold
        ([3, 3, 3, 3, 2, 2, 2, 2], [(3, "raised", 3), (6, "cleared", 2)]),  # 3 s after last crowd
        ([3, 3, 3, 3, 2, 2, 3, 2, 2, 2], [(3, "raised", 3), (9, "cleared", 2)]),
        # one incident per crowd however long it lasts, updates when the count changes
        (
            [3, 3, 3, 3, 4, 4, 5, 3, 0, 0, 0],
            [
                (3, "raised", 3),
                (4, "updated", 4),
                (6, "updated", 5),
                (7, "updated", 3),
                (10, "cleared", 0),
            ],
        ),
        # a camera that goes away (no frames) clears a raised incident after clear_after_s
        ([3, 3, 3, 3, None, None, None, None], [(3, "raised", 3), (6, "cleared", 0)]),
        # no data during onset never raises
        ([3, 3, None, None, None, None], []),
    ],
)
def test_crowding_table(counts: list[int | None], expected: list[tuple[float, str, int]]) -> None:
    assert run(make(), counts) == expected


def test_people_outside_zone_do_not_count() -> None:
    rule = make(min_count=3, dur=0)
    assert rule.update(people(2, n_out=5), 0.0) == []
    assert [e.state for e in rule.update(people(3, n_out=5), 1.0)] == [IncidentState.RAISED]


def test_onset_gap_tolerates_short_dips() -> None:
    rule = make(gap=1.5)
    # dip of one second is tolerated: onset stays at t=0
    events = run(rule, [3, 3, 2, 3, 3])
    assert events == [(3, "raised", 3)]


def test_started_at_is_onset_and_ids_are_stable() -> None:
    rule = make()
    evs = [
        e for i, c in enumerate([3, 3, 3, 3, 0, 0, 0, 0]) for e in rule.update(people(c), 100.0 + i)
    ]
    assert [e.state for e in evs] == [IncidentState.RAISED, IncidentState.CLEARED]
    assert evs[0].started_at == evs[1].started_at == 100.0
    assert evs[0].incident_id("cam") == evs[1].incident_id("cam")
    assert evs[0].sequence == 0
    assert evs[1].sequence == 1
    assert evs[1].peak_count == 3


def test_two_crowds_are_two_incidents() -> None:
    rule = make()
    evs = [
        e
        for i, c in enumerate([3] * 4 + [0] * 4 + [3] * 4)
        for e in rule.update(people(c), float(i))
    ]
    raised = [e for e in evs if e.state is IncidentState.RAISED]
    assert len(raised) == 2
    assert raised[0].incident_id("c") != raised[1].incident_id("c")


def test_update_interval_throttles() -> None:
    rule = make(upd=5)
    events = run(rule, [3, 3, 3, 3, 4, 5, 4, 5, 4, 5, 4])
    assert [s for _, s, _ in events] == ["raised", "updated"]
    assert events[1][0] == 8  # 5 s after the raise, first changed count


def test_boxes_are_normalized_and_only_counted_people() -> None:
    rule = make(min_count=2, dur=0)
    (event,) = rule.update(people(2, n_out=1), 0.0)
    assert np.allclose(event.boxes, [(0.0, 0.6, 0.04, 0.8), (0.05, 0.6, 0.09, 0.8)])


def test_person_class_filter() -> None:
    rule = CrowdingRule(ZONE, crowding(2, 0, 0), person_classes={1})
    assert rule.update(people(3), 0.0) == []  # all class 0


TZ = zoneinfo.ZoneInfo("Asia/Shanghai")


def at(day: int, hh: int, mm: int, ss: int = 0) -> float:
    # 2026-11-23 is a Monday
    return dt.datetime(2026, 11, 23 + day, hh, mm, ss, tzinfo=TZ).timestamp()


@pytest.mark.parametrize(
    ("ts", "active"),
    [
        (at(0, 6, 59, 59), False),
        (at(0, 7, 0), True),  # start inclusive
        (at(0, 8, 29, 59), True),
        (at(0, 8, 30), False),  # end exclusive
        (at(5, 7, 30), False),  # Saturday
        (at(0, 23, 30), True),  # overnight window Mon 22:00-06:00
        (at(1, 5, 59), True),  # ... continues into Tuesday morning
        (at(1, 6, 0), False),
        (at(6, 23, 0), False),  # Sunday night not listed
    ],
)
def test_schedule_boundaries(ts: float, active: bool) -> None:
    s = Schedule(
        [
            (frozenset({"mon", "tue", "wed", "thu", "fri"}), 7 * 60, 8 * 60 + 30),
            (frozenset({"mon"}), 22 * 60, 6 * 60),
        ],
        TZ,
    )
    assert s.is_active(ts) is active


def test_schedule_end_clears_and_start_needs_new_onset() -> None:
    sched = Schedule([(frozenset({"mon"}), 7 * 60, 8 * 60)], TZ)
    rule = CrowdingRule(ZONE, crowding(3, 3, 10), schedule=sched)
    t0 = at(0, 7, 59, 50)
    events = run(rule, [3] * 15, t0=t0)
    assert events == [(3, "raised", 3), (10, "cleared", 3)]
    # before the window opens nothing happens even with a crowd
    rule2 = CrowdingRule(ZONE, crowding(3, 3, 10), schedule=sched)
    events2 = run(rule2, [3] * 8, t0=at(0, 6, 59, 57))
    assert events2 == [(6, "raised", 3)]  # onset at 07:00:00, raised 3 s later


def test_params_reject_negative() -> None:
    with pytest.raises(ValueError, match="min_count"):
        crowding(0)
    with pytest.raises(ValueError, match="clear_after_s"):
        crowding(1, 1, -1)

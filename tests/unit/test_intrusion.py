"""Intrusion: entering a zone during the schedule, one incident per entry episode, static
look-alikes never count."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from gridwatch.model import Detections, IncidentState
from gridwatch.rules.intrusion import IntrusionRule, IntrusionRuleConfig
from gridwatch.rules.zones import Zone

ZONE = Zone("yard", [(0.0, 0.5), (1.0, 0.5), (1.0, 1.0), (0.0, 1.0)])
SIZE = (200, 200)
Obj = tuple[int, float, float]  # track id, x, feet y (px); boxes are 10×40 px


def intrusion(
    min_duration_s: float, clear_after_s: float, onset_gap_s: float, update_interval_s: float
) -> IntrusionRuleConfig:
    return IntrusionRuleConfig(
        type="intrusion",
        zone=ZONE.id,
        min_duration_s=min_duration_s,
        clear_after_s=clear_after_s,
        onset_gap_s=onset_gap_s,
        update_interval_s=update_interval_s,
    )


def dets(objs: Sequence[Obj], cls: int = 0) -> Detections:
    return Detections.from_arrays(
        xyxy=np.array([[x - 5, y - 40, x + 5, y] for _, x, y in objs], np.float32).reshape(-1, 4),
        confidence=np.full(len(objs), 0.9),
        class_id=np.full(len(objs), cls),
        tracker_id=[t for t, _, _ in objs],
        image_size=SIZE,
    )


def run(rule: IntrusionRule, frames: Sequence[Sequence[Obj] | None]) -> list[tuple[int, str, int]]:
    return [
        (t, e.state.value, e.count)
        for t, f in enumerate(frames)
        for e in rule.update(None if f is None else dets(f), float(t))
    ]


def make(**kw: float) -> IntrusionRule:
    params = {"min_duration_s": 1.0, "clear_after_s": 2.0, "onset_gap_s": 1.0,
              "update_interval_s": 0.0} | kw  # fmt: skip
    return IntrusionRule(ZONE, IntrusionRuleConfig(type="intrusion", zone=ZONE.id, **params))


def walk_in(tid: int = 1, x: float = 100.0) -> list[list[Obj]]:
    """Seen outside at y 60 and 90, then inside at 120, 140, 160."""
    return [[(tid, x, y)] for y in (60.0, 90.0, 120.0, 140.0, 160.0)]


STAND_IN = [(7, 100.0, 150.0)]  # found inside and never moving: a jacket on the grass


@pytest.mark.parametrize(
    ("frames", "expected"),
    [
        # walks in (inside from t=2), raised after 1 s, cleared 2 s after the zone empties
        ([*walk_in(), [], [], []], [(3, "raised", 1), (6, "cleared", 0)]),
        # a static object found inside never counts, however long it stays
        ([STAND_IN] * 10, []),
        # ... nor does a one-frame box inside (needs min_duration)
        ([*walk_in()[:3], [], [], []], []),
        # someone first seen inside who then walks (moves more than half their height) counts
        ([[(2, 100.0, 120.0 + 5 * i)] for i in range(6)], [(5, "raised", 1)]),
        # one episode for a group: a second person found inside counts once they moved
        (
            [*walk_in(1), *[[(1, 100.0, 160.0), (2, 50.0, 150.0 + i * 10)] for i in range(3)]],
            [(3, "raised", 1), (7, "updated", 2)],
        ),
        # two visits separated by more than clear_after_s are two incidents
        (
            [*walk_in(1), [], [], [], *walk_in(2)],
            [(3, "raised", 1), (6, "cleared", 0), (11, "raised", 1)],
        ),
        # a short dip (missed detection) does not end the episode
        ([*walk_in(), [], [(1, 100.0, 160.0)], [(1, 100.0, 160.0)]], [(3, "raised", 1)]),
        # camera gone: cleared as no data
        ([*walk_in(), None, None, None], [(3, "raised", 1), (6, "cleared", 0)]),
    ],
)
def test_intrusion_table(
    frames: list[list[Obj] | None], expected: list[tuple[int, str, int]]
) -> None:
    assert run(make(), frames) == expected


def test_group_updates_count() -> None:
    frames = [*walk_in(1), *[[(1, 100.0, 160.0), (2, 50.0, 110.0 + i * 30)] for i in range(3)]]
    events = run(make(), frames)
    assert events[0] == (3, "raised", 1)
    assert (6, "updated", 2) in events


class _Night:
    """Active from t = 10 on."""

    def is_active(self, ts: float) -> bool:
        return ts >= 10


def test_only_during_schedule_and_seen_outside_before_it_counts() -> None:
    rule = IntrusionRule(ZONE, intrusion(1, 2, 1, 0), schedule=_Night())
    # walks in at 2 s (before the schedule), stays: raised once the schedule opens
    frames = [*walk_in(), *[[(1, 100.0, 160.0)]] * 10]
    events = run(rule, frames)
    assert events == [(11, "raised", 1)]
    assert [e.state for e in rule.update(dets([]), 20.0)] == [IncidentState.CLEARED]


def test_schedule_end_clears() -> None:
    class Day:
        def is_active(self, ts: float) -> bool:
            return ts < 6

    rule = IntrusionRule(ZONE, intrusion(1, 5, 1, 0), schedule=Day())
    frames = [*walk_in(), *[[(1, 100.0, 160.0)]] * 5]
    assert [(t, s) for t, s, _ in run(rule, frames)] == [(3, "raised"), (6, "cleared")]


def test_event_fields() -> None:
    rule = make()
    events = [e for t, f in enumerate(walk_in()) for e in rule.update(dets(f), 50.0 + t)]
    (raised,) = events
    assert raised.type == "intrusion"
    assert raised.zone_id == "yard"
    assert raised.state is IncidentState.RAISED
    assert raised.started_at == 52.0
    assert raised.details["tracks"] == [1]


def test_class_filter() -> None:
    rule = IntrusionRule(ZONE, intrusion(0, 2, 0, 0), classes={2})
    assert [e for t, f in enumerate(walk_in()) for e in rule.update(dets(f, cls=0), t)] == []

"""Line crossing: direction, dead band, segment extent, id changes, forbidden-direction and
count-window alerts, counts per class."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from gridwatch.model import Detections, IncidentState
from gridwatch.rules.line_crossing import LineCrossingRule, LineCrossingRuleConfig

SIZE = (200, 200)
# a horizontal line drawn left to right across the middle of the left half: 'in' = moving down
LINE = ((0.0, 0.5), (0.5, 0.5))
Obj = tuple[int, float, float, int]  # track id, x, feet y (px), class


def line(**kw: object) -> LineCrossingRuleConfig:
    """The rule's config model for the line ``gate`` (its id and points come from the rule)."""
    return LineCrossingRuleConfig.model_validate(
        {"type": "line_crossing", "id": "gate", "line": [[0, 0.5], [1, 0.5]], **kw}
    )


def dets(objs: Sequence[Obj]) -> Detections:
    return Detections.from_arrays(
        xyxy=np.array([[x - 5, y - 40, x + 5, y] for _, x, y, _ in objs], np.float32).reshape(
            -1, 4
        ),
        confidence=np.full(len(objs), 0.9),
        class_id=[c for _, _, _, c in objs],
        tracker_id=[t for t, _, _, _ in objs],
        image_size=SIZE,
    )


def path(tid: int, ys: Sequence[float], x: float = 50.0, cls: int = 0) -> list[list[Obj]]:
    return [[(tid, x, y, cls)] for y in ys]


DOWN = path(1, [60, 80, 95, 110, 130])  # crosses y=100 between 95 and 110
UP = path(1, [130, 110, 95, 80, 60])


def run(
    rule: LineCrossingRule, frames: Sequence[Sequence[Obj] | None]
) -> list[tuple[int, str, int]]:
    return [
        (t, e.state.value, e.count)
        for t, f in enumerate(frames)
        for e in rule.update(None if f is None else dets(f), float(t))
    ]


def forbid(direction: str = "in", clear: float = 2.0) -> LineCrossingRule:
    return LineCrossingRule("gate", LINE, line(forbidden_direction=direction, clear_after_s=clear))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("direction", "frames", "expected"),
    [
        ("in", DOWN, [(3, "raised", 1)]),
        ("out", DOWN, []),
        ("out", UP, [(2, "raised", 1), (4, "cleared", 1)]),
        ("in", UP, []),
        # cleared clear_after_s after the last forbidden crossing
        ("in", [*DOWN, [], [], []], [(3, "raised", 1), (5, "cleared", 1)]),
        # jitter on the line (within the 0.01 band = 2 px) never counts
        ("in", path(1, [99, 101, 99, 101, 100, 99, 101]), []),
        # beside the segment's end (x = 150 > 0.5 of the width): its extension does not count
        ("in", path(1, [60, 80, 95, 110, 130], x=150), []),
        # down and back up: one forbidden crossing, the way back is allowed
        ("in", path(1, [80, 110, 130, 110, 80]), [(1, "raised", 1), (3, "cleared", 1)]),
        # two people down one after the other within clear_after_s: one incident, updated
        (
            "in",
            [
                [(1, 50, 60, 0)],
                [(1, 50, 80, 0)],
                [(1, 50, 95, 0), (2, 20, 80, 0)],
                [(1, 50, 110, 0), (2, 20, 95, 0)],
                [(1, 50, 130, 0), (2, 20, 110, 0)],
            ],
            [(3, "raised", 1), (4, "updated", 2)],
        ),
        # ... and more than clear_after_s apart: two incidents
        (
            "in",
            [*DOWN, *path(2, [80, 110, 130])],
            [(3, "raised", 1), (5, "cleared", 1), (6, "raised", 1)],
        ),
        # lost above the line, found below under a new id, still walking down: a crossing
        ("in", [*path(1, [60, 80, 95]), [], *path(9, [115, 130])], [(4, "raised", 1)]),
    ],
)
def test_forbidden_direction_table(
    direction: str, frames: list[list[Obj]], expected: list[tuple[int, str, int]]
) -> None:
    assert run(forbid(direction), frames) == expected


def test_id_swap_against_the_walk_is_not_a_crossing() -> None:
    # person 1 walks up (out) and is lost just below the line; person 2, coming down above it,
    # shows up under a new id where 1 was lost: the jump goes the other way, not a crossing
    rule = forbid("in")
    frames = [*path(1, [150, 130, 108]), [], *path(7, [92, 80])]
    assert run(rule, frames) == []


def test_counts_per_class_and_direction() -> None:
    rule = LineCrossingRule(
        "gate",
        LINE,
        line(max_count=99),
        class_names={0: "person", 2: "car"},
    )
    frames = [
        [(1, 20.0, 80.0, 0), (2, 40.0, 130.0, 2)],
        [(1, 20.0, 120.0, 0), (2, 40.0, 70.0, 2)],
        [(1, 20.0, 80.0, 0), (2, 40.0, 60.0, 2)],
    ]
    run(rule, frames)
    assert rule.counts == {"person": {"in": 1, "out": 1}, "car": {"in": 0, "out": 1}}


@pytest.mark.parametrize(
    ("max_count", "window", "count_direction", "expected"),
    [
        # three people down at t=3, 8, 13: three crossings within 12 s reach 3 at t=13
        (3, 12.0, "both", [(13, "raised", 3)]),
        # a 9 s window never holds three
        (3, 9.0, "both", []),
        (2, 12.0, "in", [(8, "raised", 2), (13, "updated", 3)]),
        (1, 12.0, "out", []),
    ],
)
def test_count_window_table(
    max_count: int, window: float, count_direction: str, expected: list[tuple[int, str, int]]
) -> None:
    rule = LineCrossingRule(
        "gate",
        LINE,
        line(
            max_count=max_count, window_s=window, count_direction=count_direction, clear_after_s=50
        ),
    )
    frames: list[list[Obj]] = []
    for person in range(3):
        frames += path(person + 1, [60, 80, 95, 110, 130])
    assert run(rule, frames) == expected


def test_count_window_clears_after_it_drops() -> None:
    rule = LineCrossingRule("gate", LINE, line(max_count=1, window_s=2, clear_after_s=1))
    events = run(rule, [*DOWN, [], [], [], []])
    assert [(t, s) for t, s, _ in events] == [(3, "raised"), (6, "cleared")]
    assert events[-1][2] == 0


def test_event_fields_and_zone_id_is_the_line() -> None:
    rule = forbid("in")
    (raised,) = [e for t, f in enumerate(DOWN) for e in rule.update(dets(f), 10.0 + t)]
    assert raised.type == "line_crossing"
    assert raised.zone_id == "gate"
    assert raised.rule_key == "line_crossing/gate"
    assert raised.state is IncidentState.RAISED
    assert raised.started_at == 13.0
    assert raised.details["forbidden_direction"] == "in"
    assert raised.details["crossings"] == 1


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"forbidden_direction": "in", "max_count": 3},
        {"max_count": 0},
        {"max_count": 1, "window_s": 0},
    ],
)
def test_params_validation(kw: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"max_count|forbidden_direction|window_s"):
        line(**kw)


def test_degenerate_line_rejected() -> None:
    with pytest.raises(ValueError, match="two different points"):
        LineCrossingRule("x", ((0.1, 0.1), (0.1, 0.1)), line(max_count=1))

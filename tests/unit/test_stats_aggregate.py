"""People-flow statistics, pure parts: the minute accumulator and what it reads of the rules.

Synthetic detections (``synthetic: true``): people walking across a line and standing in a
zone, fed through the camera's real rules (``CameraRules``: crowd counter, crowding rule,
line-crossing rule), so the statistics are checked against what the rules themselves saw.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from gridwatch.config import parse_config
from gridwatch.model import Detections
from gridwatch.rules.engine import CameraRules
from gridwatch.stats.aggregate import CameraStats, MinuteAccumulator
from gridwatch.stats.model import StatsRecord

T0 = dt.datetime(2026, 12, 5, 8, 0, tzinfo=dt.UTC).timestamp()
NO_FEET = np.zeros((0, 2))


def _acc(**kw: int) -> MinuteAccumulator:
    return MinuteAccumulator("cam", "g", ["a", "b"], ["l"], heat_cols=4, heat_rows=2, **kw)


def test_a_minute_closes_when_the_next_sample_is_past_it() -> None:
    acc = _acc()
    assert acc.add(T0 + 0.5, {"a": 3, "b": 1}, {"l": (2, 1)}, np.array([[0.1, 0.1]])) == []
    assert acc.add(T0 + 59.9, {"a": 1}, {"l": (0, 1)}, np.array([[0.9, 0.9], [1.0, 1.0]])) == []
    [rec] = acc.add(T0 + 60.0, {"a": 7}, {}, NO_FEET)
    assert rec.period == "minute"
    assert (rec.start.timestamp(), rec.end.timestamp()) == (T0, T0 + 60)
    assert rec.samples == 2
    assert rec.zones["a"].mean == 2.0
    assert rec.zones["a"].max == 3
    assert rec.zones["b"].mean == 0.5
    assert rec.zones["b"].max == 1
    assert (rec.lines["l"].in_, rec.lines["l"].out) == (2, 2)
    assert rec.heat is not None
    # (0.1, 0.1) -> cell 0; (0.9, 0.9) and the edge point (1, 1) -> the last cell
    assert rec.heat.cells == [1, 0, 0, 0, 0, 0, 0, 2]
    # the sample that closed it opened the next minute
    assert acc.samples == 1


def test_minutes_without_frames_give_no_record_and_tick_closes_a_quiet_minute() -> None:
    acc = _acc()
    acc.add(T0 + 1, {"a": 1}, {}, NO_FEET)
    [rec] = acc.add(T0 + 185, {"a": 2}, {}, NO_FEET)  # three minutes later
    assert rec.start.timestamp() == T0
    assert acc.close_before(T0 + 200) == []  # 08:03 is still open
    [late] = acc.close_before(T0 + 240)
    assert late.start.timestamp() == T0 + 180
    assert late.samples == 1
    assert acc.close_before(T0 + 999) == []


def test_a_clock_step_back_closes_the_open_minute() -> None:
    acc = _acc()
    acc.add(T0 + 30, {"a": 1}, {}, NO_FEET)
    [rec] = acc.add(T0 - 300, {"a": 4}, {}, NO_FEET)
    assert rec.start.timestamp() == T0
    assert rec.samples == 1


def test_a_shorter_test_minute() -> None:
    acc = _acc(minute_s=2)
    acc.add(T0 + 0.1, {"a": 1}, {}, NO_FEET)
    [rec] = acc.add(T0 + 2.1, {"a": 1}, {}, NO_FEET)
    assert rec.end.timestamp() - rec.start.timestamp() == 2


# -- against the camera's real rules ------------------------------------------------------

CAMERA = """
grids: [{id: g}]
cameras:
  - id: gate
    grid: g
    url: rtsp://127.0.0.1:9/x
    analysis_fps: 5
    zones:
      - {id: left, polygon: [[0, 0], [0.5, 0], [0.5, 1], [0, 1]]}
      - {id: right, polygon: [[0.5, 0], [1, 0], [1, 1], [0.5, 1]]}
    rules:
      - {type: crowding, zone: left, min_count: 5, count_window_s: 1}
      - {type: line_crossing, id: door, line: [[0, 0.5], [1, 0.5]], max_count: 100}
"""


def _frame(people: list[tuple[int, float, float]]) -> Detections:
    """Tracked people (id, feet x, feet y), 20×40 px boxes on a 1000×1000 frame."""
    if not people:
        return Detections.empty((1000, 1000))
    xyxy = [[x * 1000 - 10, y * 1000 - 40, x * 1000 + 10, y * 1000] for _, x, y in people]
    return Detections.from_arrays(
        xyxy=xyxy,
        confidence=[0.9] * len(people),
        class_id=[0] * len(people),
        tracker_id=[tid for tid, _, _ in people],
        image_size=(1000, 1000),
    )


def _camera(counting: bool = True) -> tuple[CameraRules, CameraStats, list[StatsRecord]]:
    text = CAMERA if counting else CAMERA + "analysis: {counting: {enabled: false}}\n"
    cfg = parse_config(text)
    cam = cfg.cameras[0]
    rules = CameraRules(cam, cfg, person_classes={0}, class_names={0: "person"})
    out: list[StatsRecord] = []
    stats = CameraStats(cam, rules, out.append, person_classes={0}, heat_cols=2, heat_rows=2)
    return rules, stats, out


def test_crossings_and_zone_counts_are_the_rules_own() -> None:
    """synthetic: true. Person 1 walks down across the door line (in), person 2 walks up
    across it (out), person 3 stands in the right half; 5 fps for 12 s."""
    rules, stats, out = _camera()
    crowding = rules.rules[0]
    door = rules.rules[1]
    seen_left: list[int] = []
    for i in range(60):
        t = T0 + i * 0.2
        y1 = 0.2 + 0.6 * i / 59
        y2 = 0.8 - 0.6 * i / 59
        d = _frame([(1, 0.25, y1), (2, 0.3, y2), (3, 0.75, 0.7)])
        rules.update(d, t)
        stats.observe(d, t)
        seen_left.append(crowding.last_count)  # type: ignore[attr-defined]
    stats.tick(T0 + 60)
    [rec] = out
    assert rec.samples == 60
    assert door.counts == {"person": {"in": 1, "out": 1}}  # type: ignore[attr-defined]
    assert (rec.lines["door"].in_, rec.lines["door"].out) == (1, 1)
    assert rec.zones["left"].mean == pytest.approx(sum(seen_left) / 60, abs=1e-3)
    assert rec.zones["left"].max == max(seen_left) == 2
    assert rec.zones["right"].mean == 1.0
    assert rec.zones["right"].max == 1
    assert rec.heat is not None
    assert sum(rec.heat.cells) == 180
    assert rec.heat.cells[3] >= 60  # person 3, bottom right, every frame


def test_a_one_frame_spike_moves_the_zone_max_only_as_far_as_the_rule_saw_it() -> None:
    """synthetic: true. One frame with four extra boxes in the left zone: the crowding rule's
    median window ignores it, so the statistics do too; the right zone (no crowding rule)
    counts each frame's own people."""
    rules, stats, out = _camera()
    for i in range(20):
        t = T0 + i * 0.2
        people = [(1, 0.2, 0.3), (9, 0.7, 0.3)]
        if i == 10:
            people += [(20 + k, 0.05 + 0.08 * k, 0.9) for k in range(4)]
            people += [(30, 0.8, 0.9)]
        d = _frame(people)
        rules.update(d, t)
        stats.observe(d, t)
    stats.tick(T0 + 61)
    [rec] = out
    assert rec.zones["left"].max == 1
    assert rec.zones["right"].max == 2


def test_without_the_crowd_counter_the_person_boxes_are_counted() -> None:
    rules, stats, out = _camera(counting=False)
    assert rules.counter is None
    for i in range(5):
        d = _frame([(1, 0.2, 0.3), (2, 0.7, 0.3)])
        rules.update(d, T0 + i)
        stats.observe(d, T0 + i)
    stats.tick(T0 + 60)
    [rec] = out
    assert rec.zones["right"].mean == 1.0
    assert rec.samples == 5

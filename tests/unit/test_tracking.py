"""CameraTracker on synthetic boxes: ids must survive motion, short gaps and empty frames.

These are the properties the rules depend on: loitering and line crossing are keyed by track id,
so an id that flips while a person walks, or after they pass behind a lamp post for half a
second, would restart a loitering timer or count a crossing twice.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from gridwatch.model import Detections
from gridwatch.tracking import CameraTracker, bytetrack_defaults

SIZE = (768, 576)
NAMES = {0: "Normal", 1: "Fall"}


def dets(
    boxes: Sequence[tuple[float, float, float, float]],
    conf: float | Sequence[float] = 0.8,
    cls: int | Sequence[int] = 0,
) -> Detections:
    n = len(boxes)
    return Detections.from_arrays(
        xyxy=np.array(boxes, dtype=np.float32).reshape(n, 4),
        confidence=np.broadcast_to(np.asarray(conf, dtype=np.float32), (n,)),
        class_id=np.broadcast_to(np.asarray(cls, dtype=np.int64), (n,)),
        image_size=SIZE,
        class_names=NAMES,
    )


Box = tuple[float, float, float, float]


def person(x: float, y: float = 200.0, w: float = 40.0, h: float = 90.0) -> Box:
    return (x, y, x + w, y + h)


def ids_by_x(out: Detections) -> dict[int, int]:
    """tracker id keyed by the rounded left edge of its (input) box."""
    return {round(float(b[0])): int(t) for b, t in zip(out.xyxy, out.tracker_id, strict=True)}


def test_defaults_come_from_packaged_yaml() -> None:
    cfg = bytetrack_defaults()
    assert cfg["tracker_type"] == "bytetrack"
    assert {"track_high_thresh", "track_low_thresh", "new_track_thresh", "match_thresh"} <= set(cfg)


@pytest.mark.parametrize(
    ("fps", "buffer_s", "frames"),
    [
        (30.0, None, 30),  # the yaml's 30 frames at 30 fps = 1 s
        (10.0, None, 10),
        (2.0, None, 2),
        (2.0, 3.0, 6),
        (0.5, None, 1),  # never below one frame
    ],
)
def test_buffer_is_scaled_to_the_analysis_rate(
    fps: float, buffer_s: float | None, frames: int
) -> None:
    assert CameraTracker(fps, track_buffer_s=buffer_s).buffer_frames == frames


def test_moving_box_keeps_its_id() -> None:
    tracker = CameraTracker(10.0)
    seen: set[int] = set()
    for i in range(30):
        out = tracker.update(dets([person(50 + 6 * i)]))
        assert len(out) == 1
        seen.add(int(out.tracker_id[0]))
    assert seen == {1}


def test_returns_the_input_boxes_not_the_kalman_ones() -> None:
    tracker = CameraTracker(10.0)
    for i in range(10):
        d = dets([person(50 + 7 * i, y=100 + 3 * i)], conf=0.9 - 0.01 * i, cls=i % 2)
        out = tracker.update(d)
        np.testing.assert_array_equal(out.xyxy, d.xyxy)
        np.testing.assert_array_equal(out.confidence, d.confidence)
        np.testing.assert_array_equal(out.class_id, d.class_id)
        assert out.image_size == SIZE
        assert out.class_names == NAMES


def test_two_separated_objects_get_distinct_stable_ids() -> None:
    tracker = CameraTracker(10.0)
    history: list[dict[int, int]] = []
    for i in range(20):
        # a walks right, b walks left, far apart vertically: they never overlap
        out = tracker.update(dets([person(100 + 5 * i, y=80), person(600 - 5 * i, y=400)]))
        assert len(out) == 2
        # input order is kept: row 0 is a, row 1 is b
        assert out.xyxy[0, 1] == 80
        assert out.xyxy[1, 1] == 400
        history.append({0: int(out.tracker_id[0]), 1: int(out.tracker_id[1])})
    assert history[0][0] != history[0][1]
    assert all(h == history[0] for h in history)


def test_order_of_input_rows_does_not_matter() -> None:
    tracker = CameraTracker(10.0)
    a, b = person(100, y=80), person(500, y=380)
    first = tracker.update(dets([a, b]))
    id_a, id_b = int(first.tracker_id[0]), int(first.tracker_id[1])
    swapped = tracker.update(dets([b, a]))  # same objects, rows swapped
    assert swapped.tracker_id.tolist() == [id_b, id_a]


def test_object_that_comes_back_within_the_buffer_keeps_its_id() -> None:
    tracker = CameraTracker(10.0)  # 1 s buffer = 10 frames
    for i in range(10):
        out = tracker.update(dets([person(100 + 4 * i)]))
    tid = int(out.tracker_id[0])
    for _ in range(6):  # 0.6 s behind a lamp post
        assert len(tracker.update(Detections.empty(SIZE, NAMES))) == 0
    out = tracker.update(dets([person(100 + 4 * 16)]))  # where constant motion puts it
    assert out.tracker_id.tolist() == [tid]


def test_object_gone_longer_than_the_buffer_gets_a_new_id() -> None:
    tracker = CameraTracker(10.0, track_buffer_s=0.5)  # 5 frames
    for _ in range(5):
        out = tracker.update(dets([person(300)]))
    tid = int(out.tracker_id[0])
    for _ in range(8):
        tracker.update(Detections.empty(SIZE))
    # a new track is confirmed on its second frame
    assert len(tracker.update(dets([person(300)]))) == 0
    out = tracker.update(dets([person(300)]))
    assert len(out) == 1
    assert int(out.tracker_id[0]) != tid


def test_empty_input() -> None:
    tracker = CameraTracker(10.0)
    out = tracker.update(Detections.empty(SIZE, NAMES))
    assert len(out) == 0
    assert out.image_size == SIZE
    assert out.tracker_id.dtype == np.int64
    assert tracker.frame_count == 1
    # and tracking still starts normally afterwards
    tracker.update(dets([person(100)]))
    assert len(tracker.update(dets([person(104)]))) == 1


def test_new_object_is_confirmed_on_its_second_frame() -> None:
    tracker = CameraTracker(10.0, keep_unmatched=True)
    tracker.update(dets([person(100)]))  # first frame of a tracker: confirmed at once
    out = tracker.update(dets([person(104), person(500, y=400)]))
    assert out.tracker_id[0] == 1
    assert out.tracker_id[1] == -1  # new, unconfirmed: kept with -1 because keep_unmatched
    out = tracker.update(dets([person(108), person(500, y=400)]))
    assert out.tracker_id[0] == 1
    assert out.tracker_id[1] > 1


def test_weak_boxes_do_not_start_tracks_but_extend_them() -> None:
    tracker = CameraTracker(10.0)
    low = bytetrack_defaults()["track_low_thresh"]
    high = bytetrack_defaults()["track_high_thresh"]
    weak = (low + high) / 2
    for i in range(5):
        out = tracker.update(dets([person(100 + 3 * i), person(500, y=400)], conf=[0.8, weak]))
        assert len(out) == 1  # the weak box never becomes a track
    tid = int(out.tracker_id[0])
    out = tracker.update(dets([person(115)], conf=weak))  # a dip in confidence keeps the id
    assert out.tracker_id.tolist() == [tid]


def test_reset_forgets_tracks_and_restarts_ids() -> None:
    tracker = CameraTracker(10.0)
    for i in range(3):
        tracker.update(dets([person(100 + 3 * i), person(400, y=380)]))
    tracker.reset()
    assert tracker.frame_count == 0
    out = tracker.update(dets([person(600, y=50)]))
    assert out.tracker_id.tolist() == [1]


def test_trackers_of_different_cameras_are_independent() -> None:
    a, b = CameraTracker(10.0, camera_id="a"), CameraTracker(10.0, camera_id="b")
    for i in range(3):
        out_a = a.update(dets([person(100 + 3 * i), person(400, y=380)]))
        out_b = b.update(dets([person(200 + 3 * i)]))
    assert sorted(out_a.tracker_id.tolist()) == [1, 2]
    assert out_b.tracker_id.tolist() == [1]


def test_degenerate_boxes_are_ignored() -> None:
    tracker = CameraTracker(10.0, keep_unmatched=True)
    out = tracker.update(dets([person(100), (300, 300, 300, 350)]))  # zero width
    assert out.tracker_id.tolist()[1] == -1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"frame_rate": 0.0},
        {"frame_rate": float("nan")},
        {"frame_rate": 10.0, "track_buffer_s": 0.0},
        {"frame_rate": 10.0, "settings": {"no_such_key": 1}},
    ],
)
def test_bad_parameters_are_rejected(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"frame_rate|track_buffer_s|unknown ByteTrack"):
        CameraTracker(**kwargs)  # type: ignore[arg-type]

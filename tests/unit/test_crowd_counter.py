"""CrowdCounter: counts over tracks and a short window, without props, without hiding a faller.

Every input here is SYNTHETIC: hand-made Detections sequences (boxes in pixels of a 768×576
frame, away from its edges unless a test says otherwise). The real-footage check is
tests/integration/test_crowd_counter_vtest.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from gridwatch.model import Detections
from gridwatch.tracking.counting import CountSettings, CrowdCounter

SIZE = (768, 576)
Box = tuple[float, float, float, float]


def dets(*rows: tuple[Box, int], class_id: int = 0) -> Detections:
    """Synthetic detections: (xyxy, tracker_id) per row."""
    if not rows:
        return Detections.empty(SIZE)
    return Detections.from_arrays(
        xyxy=[r[0] for r in rows],
        confidence=[0.8] * len(rows),
        class_id=[class_id] * len(rows),
        tracker_id=[r[1] for r in rows],
        image_size=SIZE,
    )


def walker(t: float) -> Box:
    """Synthetic upright person (40×100) walking right at 20 px/s."""
    x = 200.0 + 20.0 * t
    return (x, 200.0, x + 40.0, 300.0)


JACKET: Box = (60.0, 440.0, 180.0, 500.0)  # synthetic lying, still box (h/w = 0.5)


def times(start: float, stop: float, fps: float) -> list[float]:
    return [start + k / fps for k in range(round((stop - start) * fps))]


def test_a_one_frame_miss_is_held_and_the_hold_expires_after_hold_s() -> None:
    c = CrowdCounter(CountSettings(hold_s=1.0))
    assert len(c.update(dets((walker(0.0), 1)), 0.0)) == 1
    assert len(c.update(dets((walker(0.5), 1)), 0.5)) == 1
    out = c.update(dets(), 1.0)  # missed
    assert len(out) == 1
    assert out.tracker_id.tolist() == [1]
    np.testing.assert_allclose(out.xyxy[0], walker(0.5))  # at its last box
    assert c.stats.held == 1
    assert c.health()["held"] == 1
    assert len(c.update(dets(), 1.5)) == 1  # 1.0 s since last seen: still held
    assert len(c.update(dets(), 1.6)) == 0  # past hold_s
    assert c.stats.held == 0


def test_a_one_off_false_positive_is_not_held() -> None:
    c = CrowdCounter(CountSettings(hold_s=1.0))
    assert len(c.update(dets((walker(0.0), 5)), 0.0)) == 1
    assert len(c.update(dets(), 0.5)) == 0
    # unconfirmed by the tracker (−1) and seen once: not held either
    assert len(c.update(dets(((400, 100, 440, 200), -1)), 1.0)) == 1
    assert len(c.update(dets(), 1.5)) == 0


def test_only_a_confirmed_track_is_held_across_a_miss() -> None:
    """Synthetic. At 2 fps ByteTrack leaves most walkers at −1 and the counter chains them by
    position (for props and falls), but holds only tracks ByteTrack confirmed: a nearest-box
    chain can be two walkers, and holding it counted one of them twice (live e2e test)."""
    c = CrowdCounter()
    for t in (0.0, 0.5, 1.0):
        assert len(c.update(dets((walker(t), -1)), t)) == 1
    assert len(c.update(dets(), 1.5)) == 0
    confirmed = CrowdCounter()
    for t in (0.0, 0.5, 1.0):
        assert len(confirmed.update(dets((walker(t), 4)), t)) == 1
    assert len(confirmed.update(dets(), 1.5)) == 1
    assert confirmed.stats.held == 1


def test_a_person_back_under_a_new_id_is_not_counted_twice() -> None:
    c = CrowdCounter()
    c.update(dets((walker(0.0), 1)), 0.0)
    c.update(dets((walker(0.5), 1)), 0.5)
    assert len(c.update(dets((walker(1.0), 9)), 1.0)) == 1
    assert len(c.update(dets((walker(1.5), -1)), 1.5)) == 1


def test_a_person_walking_out_of_the_frame_is_not_held() -> None:
    c = CrowdCounter()
    for t, x in ((0.0, 700.0), (0.5, 715.0)):
        c.update(dets(((x, 200.0, x + 40.0, 300.0), 1)), t)
    assert len(c.update(dets(), 1.0)) == 0


def test_a_still_lying_box_becomes_a_prop_after_static_after_s() -> None:
    c = CrowdCounter(CountSettings(static_after_s=120.0), person_classes={0, 1})
    counted = {}
    for t in times(0.0, 150.0, 2.0):
        frame = dets((JACKET, 3), class_id=1)
        counted[t] = len(c.update(frame, t))
        assert len(frame) == 1  # the input (what the fall rule sees) is untouched
    assert all(counted[t] == 1 for t in counted if t < 120.0)
    assert all(counted[t] == 0 for t in counted if t >= 120.0)
    assert c.stats.suppressed == 1
    assert c.stats.props == 1


def test_a_prop_is_found_by_place_even_when_its_track_id_keeps_changing() -> None:
    c = CrowdCounter(CountSettings(static_after_s=20.0))
    tid = 100
    for k, t in enumerate(times(0.0, 30.0, 2.0)):
        if k % 6 == 5:  # flickers out for a frame, and the tracker gives it a new id
            tid += 1
            c.update(dets(), t)
            continue
        n = len(c.update(dets((JACKET, tid if k % 3 else -1)), t))
        assert n == (1 if t < 20.0 else 0), t


def test_a_person_who_walked_then_lies_still_is_counted_long_after_static_after_s() -> None:
    c = CrowdCounter(CountSettings(static_after_s=120.0))
    for t in times(0.0, 10.0, 2.0):
        assert len(c.update(dets((walker(t), 4)), t)) == 1
    x = walker(10.0)[0]
    fallen: Box = (x - 40.0, 260.0, x + 80.0, 310.0)  # lying where they walked, same track
    for t in times(10.0, 610.0, 2.0):
        assert len(c.update(dets((fallen, 4)), t)) == 1, t
    assert c.stats.props == 0


@pytest.mark.parametrize("new_id", [-1, 77])
def test_a_faller_the_tracker_lost_is_still_counted(new_id: int) -> None:
    # the fall changes the box so much that ByteTrack starts over (new id, or none)
    c = CrowdCounter(CountSettings(static_after_s=60.0))
    for t in times(0.0, 5.0, 2.0):
        c.update(dets((walker(t), 4)), t)
    x = walker(5.0)[0]
    fallen: Box = (x - 40.0, 260.0, x + 80.0, 310.0)
    for t in times(5.0, 305.0, 2.0):
        assert len(c.update(dets((fallen, new_id)), t)) == 1, t


def test_a_prop_place_is_forgotten_after_forget_s() -> None:
    c = CrowdCounter(CountSettings(static_after_s=20.0, forget_s=30.0))
    for t in times(0.0, 25.0, 2.0):
        c.update(dets((JACKET, 3)), t)
    assert c.stats.props == 1
    for t in times(25.0, 50.0, 2.0):  # hidden for 25 s < forget_s: still a prop
        c.update(dets(), t)
    assert len(c.update(dets((JACKET, 8)), 50.0)) == 0
    for t in times(50.5, 90.0, 2.0):  # gone for 39.5 s > forget_s
        c.update(dets(), t)
    assert c.stats.places == 0
    assert len(c.update(dets((JACKET, 9)), 90.0)) == 1  # must prove itself static again
    for t in times(90.5, 110.0, 2.0):
        assert len(c.update(dets((JACKET, 9)), t)) == 1
    assert len(c.update(dets((JACKET, 9)), 110.0)) == 0


def test_a_prop_that_starts_moving_is_counted_again() -> None:
    c = CrowdCounter(CountSettings(static_after_s=20.0))
    for t in times(0.0, 25.0, 2.0):
        c.update(dets((JACKET, 3)), t)
    assert len(c.update(dets((JACKET, 3)), 25.0)) == 0
    x0, y0, x1, y1 = JACKET
    for k, t in enumerate(times(25.5, 30.0, 2.0), start=1):
        dx = 8.0 * k  # picked up and carried off, a few px per frame
        assert len(c.update(dets(((x0 + dx, y0, x1 + dx, y1), 3)), t)) == (1 if k >= 2 else 0)


def test_an_upright_box_at_a_prop_place_turns_it_back() -> None:
    bag: Box = (100.0, 400.0, 180.0, 480.0)  # synthetic squat still box (h/w = 1.0)
    c = CrowdCounter(CountSettings(static_after_s=20.0))
    for t in times(0.0, 25.0, 2.0):
        c.update(dets((bag, 3)), t)
    assert len(c.update(dets((bag, 3)), 25.0)) == 0
    assert c.stats.props == 1
    up: Box = (100.0, 385.0, 180.0, 485.0)  # h/w = 1.25, IoU 0.8 with the bag: same place
    assert len(c.update(dets((up, 3)), 25.5)) == 1
    assert len(c.update(dets((bag, 3)), 26.0)) == 1  # a person's place from now on
    assert c.stats.props == 0


def test_state_stays_bounded_over_10000_distinct_tracks() -> None:
    rng = np.random.default_rng(0)
    settings = CountSettings()
    c = CrowdCounter(settings)
    for k in range(10_000):
        x, y = rng.uniform(50, 650), rng.uniform(50, 400)
        box: Box = (x, y, x + 60.0, y + 40.0)  # lying, so every one is a prop candidate
        c.update(dets((box, k + 1)), k * 0.01)
        assert len(c._places) <= settings.max_places
        assert len(c._tracks) <= settings.max_tracks
        assert len(c._by_tracker_id) <= settings.max_tracks
    assert c.stats.places <= 512


def scenario(fps: float, c: CrowdCounter) -> dict[float, int]:
    """Synthetic 40 s: a jacket throughout, a walker missed from 10.1 s to 10.9 s."""
    counts: dict[float, int] = {}
    for t in times(0.0, 40.0, fps):
        rows: list[tuple[Box, int]] = [(JACKET, -1)]
        if not 10.1 <= t < 10.9:
            rows.append((walker(t), 1))
        counts[round(t, 6)] = len(c.update(dets(*rows), t))
    return counts


def test_durations_are_time_not_frame_counts() -> None:
    settings = CountSettings(static_after_s=20.0, hold_s=1.0)
    slow = scenario(2.0, CrowdCounter(settings))
    fast = scenario(10.0, CrowdCounter(settings))
    shared = sorted(set(slow) & set(fast))
    assert len(shared) == 80
    assert [slow[t] for t in shared] == [fast[t] for t in shared]
    assert slow[10.5] == 2  # walker held, jacket not yet a prop
    assert slow[19.5] == 2
    assert slow[20.0] == 1  # jacket a prop from 20 s at both rates
    assert fast[19.9] == 2


def test_person_classes_limit_the_output_and_time_going_back_starts_over() -> None:
    c = CrowdCounter(person_classes={0})
    assert len(c.update(dets((walker(0.0), 1), class_id=2), 0.0)) == 0
    c.update(dets((walker(1.0), 1)), 1.0)
    c.update(dets((walker(1.5), 1)), 1.5)
    assert len(c.update(dets(), 0.5)) == 0  # clock stepped back: nothing is held across it
    assert c.resets == 1


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="hold_s"):
        CountSettings(hold_s=-1)
    with pytest.raises(ValueError, match="same_place_iou"):
        CountSettings(same_place_iou=0)


def test_a_tracker_id_seen_again_after_its_track_was_forgotten() -> None:
    """Synthetic. Regression: tracks without a ByteTrack id (−1) outnumbered the id map, so the
    map kept a forgotten track's id and the id's return raised KeyError (found by the bench)."""
    c = CrowdCounter(CountSettings(), person_classes={0})

    def det(boxes: list[list[float]], tids: list[int]) -> Detections:
        return Detections.from_arrays(
            xyxy=boxes, confidence=[0.9] * len(boxes), class_id=[0] * len(boxes),
            tracker_id=tids, image_size=(1000, 1000),
        )  # fmt: skip

    c.update(det([[10, 10, 30, 60]], [3]), 0.0)
    c.update(det([[10, 10, 30, 60]], [3]), 0.5)
    for k in range(80):  # unconfirmed walkers for 40 s: track 3 is forgotten meanwhile
        walkers = [[100 + 5 * j, 500, 120 + 5 * j, 560] for j in range(3)]
        c.update(det(walkers, [-1, -1, -1]) if k % 2 else det([[600, 100, 620, 160]], [-1]),
                 1.0 + k * 0.5)  # fmt: skip
    assert 3 not in c._by_tracker_id
    out = c.update(det([[400, 400, 420, 460]], [3]), 41.5)
    assert len(out) >= 1

"""The motion gate skips static frames, fires on motion, and only where the zones are."""

from __future__ import annotations

import av
import numpy as np

from gridwatch.ingest.motion import MotionDetector, MotionSettings, luma_plane

H, W = 144, 192


def scene(seed: int = 0, noise: int = 3) -> np.ndarray:
    """A textured still picture plus sensor-like grain (different every call)."""
    base = np.tile(np.linspace(60, 160, W, dtype=np.float32), (H, 1))
    grain = np.random.default_rng(seed).normal(0, noise, (H, W))
    return np.clip(base + grain, 0, 255).astype(np.uint8)


def with_person(img: np.ndarray, x: int, y: int, w: int = 12, h: int = 30) -> np.ndarray:
    out = img.copy()
    out[y : y + h, x : x + w] = 235
    return out


def test_static_frames_with_grain_do_not_fire() -> None:
    gate = MotionDetector(MotionSettings(width=96))
    first = gate.update(scene(0))
    assert first.first
    assert not first.moved
    results = [gate.update(scene(i)) for i in range(1, 20)]
    assert not any(r.moved for r in results)
    assert gate.moving_frames == 0


def test_motion_fires_with_a_box_around_the_mover() -> None:
    gate = MotionDetector(MotionSettings(width=96))
    gate.update(with_person(scene(0), 40, 50))
    r = gate.update(with_person(scene(1), 100, 60))
    assert r.moved
    assert not r.scene_change
    # both the old and the new place changed; every box lies around one of them
    covered_new = any(b[0] <= 100 and b[1] <= 60 and b[2] >= 112 and b[3] >= 90 for b in r.boxes)
    assert covered_new, r.boxes


def test_motion_outside_every_zone_is_ignored() -> None:
    left_half = [(0.0, 0.0), (0.5, 0.0), (0.5, 1.0), (0.0, 1.0)]
    gate = MotionDetector(MotionSettings(width=96), zones=[left_half])
    gate.update(scene(0))
    assert not gate.update(with_person(scene(1), 150, 50)).moved  # right half
    gate.update(scene(2))
    r = gate.update(with_person(scene(3), 30, 50))  # left half
    assert r.moved


def test_a_blob_touching_a_zone_keeps_its_whole_extent() -> None:
    bottom = [(0.0, 0.6), (1.0, 0.6), (1.0, 1.0), (0.0, 1.0)]
    gate = MotionDetector(MotionSettings(width=96), zones=[bottom])
    gate.update(scene(0))
    r = gate.update(with_person(scene(1), 80, 60, h=40))  # y 60..100: feet in the zone
    assert r.moved
    assert min(r.boxes[:, 1]) <= 62  # the head, above the zone, is in the box


def test_privacy_masks_are_cut_out_before_anything() -> None:
    window = [(0.4, 0.2), (0.8, 0.2), (0.8, 0.8), (0.4, 0.8)]
    gate = MotionDetector(MotionSettings(width=96), exclude=[window])
    gate.update(scene(0))
    assert not gate.update(with_person(scene(1), 100, 50)).moved


def test_lights_switched_on_is_a_scene_change() -> None:
    gate = MotionDetector(MotionSettings(width=96))
    gate.update(scene(0))
    r = gate.update(np.clip(scene(1).astype(np.int16) + 80, 0, 255).astype(np.uint8))
    assert r.scene_change
    assert r.moved
    assert r.boxes.tolist() == [[0, 0, W, H]]


def test_anchors_in_zone() -> None:
    bottom = [(0.0, 0.5), (1.0, 0.5), (1.0, 1.0), (0.0, 1.0)]
    gate = MotionDetector(MotionSettings(width=96), zones=[bottom])
    boxes = np.array([[10, 10, 30, 40], [10, 60, 30, 120]], np.float32)
    assert gate.anchors_in_zone(boxes).tolist() == [True, True]  # size unknown yet: all
    gate.update(scene(0))
    assert gate.anchors_in_zone(boxes).tolist() == [False, True]


def test_luma_plane_is_the_y_plane_without_conversion() -> None:
    rgb = np.random.default_rng(1).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
    y = luma_plane(frame)
    assert y.shape == (48, 64)
    assert y.dtype == np.uint8
    expected = np.frombuffer(bytes(frame.planes[0]), np.uint8).reshape(48, -1)[:, :64]
    assert np.array_equal(y, expected)

"""DFL decoding of a cut YOLOv8 Detect head, the upscaling input plan and person classes by name.

Pure numpy: these pin down the arithmetic a static export's cut graph no longer does for us
(anchors at cell centres, softmax-weighted bin distances, stride scaling), so a wrong anchor
offset or stride shows up here and not as boxes half a cell off on a camera.
"""

from __future__ import annotations

import numpy as np
import pytest

from gridwatch.detectors.base import DetectorError
from gridwatch.detectors.ir_models import REG_MAX, dfl_decode, person_ids
from gridwatch.detectors.yolo_io import decode, input_plan


def _reference(maps: list[np.ndarray], input_hw: tuple[int, int]) -> np.ndarray:
    """A slow, obviously-correct decoding, one anchor at a time."""
    cols = []
    for m in maps:
        h, w = m.shape[2:]
        stride = input_hw[0] / h
        for y in range(h):
            for x in range(w):
                v = m[0, :, y, x].astype(np.float64)
                sides = []
                for k in range(4):
                    logits = v[k * REG_MAX : (k + 1) * REG_MAX]
                    p = np.exp(logits - logits.max())
                    p /= p.sum()
                    sides.append(float((p * np.arange(REG_MAX)).sum()))
                left, top, right, bottom = sides
                cx, cy = x + 0.5, y + 0.5
                x1, y1, x2, y2 = cx - left, cy - top, cx + right, cy + bottom
                box = [(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1]
                scores = 1 / (1 + np.exp(-v[4 * REG_MAX :]))
                cols.append(np.concatenate([np.array(box) * stride, scores]))
    return np.stack(cols, axis=1)[None].astype(np.float32)


def _maps(rng: np.random.Generator, nc: int = 3) -> list[np.ndarray]:
    # a 64×96 input: strides 8, 16, 32 give 8×12, 4×6 and 2×3 maps
    return [
        rng.normal(0, 2, (1, 4 * REG_MAX + nc, 64 // s, 96 // s)).astype(np.float32)
        for s in (8, 16, 32)
    ]


def test_matches_the_slow_reference() -> None:
    maps = _maps(np.random.default_rng(0))
    out = dfl_decode(maps, (64, 96))
    assert out.shape == (1, 4 + 3, 8 * 12 + 4 * 6 + 2 * 3)
    np.testing.assert_allclose(out, _reference(maps, (64, 96)), rtol=1e-4, atol=1e-3)


def test_one_sharp_anchor_gives_its_box_in_input_pixels() -> None:
    nc = 2
    maps = [np.full((1, 4 * REG_MAX + nc, 4, 6), -20.0, np.float32) for _ in range(1)]
    m = maps[0]
    m[0, : 4 * REG_MAX] = 0.0
    # anchor at row 1, column 2 (centre 2.5, 1.5 cells), stride 8; l=2, t=1, r=3, b=4 cells
    for side, dist in enumerate((2, 1, 3, 4)):
        m[0, side * REG_MAX + dist, 1, 2] = 40.0
    m[0, 4 * REG_MAX + 1, 1, 2] = 6.0  # class 1
    out = dfl_decode(maps, (32, 48))
    a = 1 * 6 + 2
    x1, y1, x2, y2 = (2.5 - 2) * 8, (1.5 - 1) * 8, (2.5 + 3) * 8, (1.5 + 4) * 8
    np.testing.assert_allclose(
        out[0, :4, a], [(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], atol=1e-3
    )
    assert out[0, 4 + 1, a] == pytest.approx(1 / (1 + np.exp(-6.0)))
    # through the shared decoder: a 192×128 image run at scale 0.5 → doubled pixels
    plan = input_plan((128, 192), max_side=96)
    det = decode(out[0], plan, confidence=0.5, iou=0.5, agnostic=False, class_names={1: "b"})
    assert len(det) == 1
    assert int(det.class_id[0]) == 1
    np.testing.assert_allclose(det.xyxy[0], [x1 * 2, y1 * 2, x2 * 2, y2 * 2], atol=1e-2)


def test_min_score_skips_weak_anchors_but_keeps_strong_ones_exact() -> None:
    maps = _maps(np.random.default_rng(1))
    full = dfl_decode(maps, (64, 96))
    fast = dfl_decode(maps, (64, 96), min_score=0.9)
    strong = full[0, 4:].max(axis=0) >= 0.9
    assert 0 < strong.sum() < strong.size
    np.testing.assert_allclose(fast[0][:, strong], full[0][:, strong], rtol=1e-5)
    assert not fast[0][:, ~strong].any()


def test_batches_decode_each_image() -> None:
    rng = np.random.default_rng(2)
    a, b = _maps(rng), _maps(rng)
    both = dfl_decode([np.concatenate([x, y]) for x, y in zip(a, b, strict=True)], (64, 96))
    np.testing.assert_allclose(both[1:], dfl_decode(b, (64, 96)), rtol=1e-6)


def test_bad_maps_are_refused() -> None:
    with pytest.raises(ValueError, match="channels"):
        dfl_decode([np.zeros((1, 64, 2, 2), np.float32)], (64, 64))
    with pytest.raises(ValueError, match="divide"):
        dfl_decode([np.zeros((1, 65, 3, 2), np.float32)], (64, 64))


def test_input_plan_scales_down_never_up() -> None:
    small = input_plan((388, 690), max_side=960)
    assert small.input_hw == (416, 704)  # native, padded: enlarging is the analyser's call
    assert small.scale == 1.0
    assert input_plan((576, 768), max_side=640).input_hw == (480, 640)


def test_person_classes_by_name() -> None:
    coco = {0: "person", 1: "bicycle", 2: "car"}
    assert person_ids(coco) == {0}
    assert person_ids({0: "Normal", 1: "Fall"}) == {0, 1}
    assert person_ids({0: "Pedestrian", 1: "car"}, ["pedestrian"]) == {0}
    with pytest.raises(DetectorError, match="walker"):
        person_ids(coco, ["person", "walker"])

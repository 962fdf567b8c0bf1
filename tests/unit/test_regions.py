"""Region plans: mosaics carry the right pixels, boxes map back to the frame, fallbacks."""

from __future__ import annotations

import numpy as np
import pytest

from gridwatch.detectors.regions import (
    CANVAS_SHAPES,
    RegionPlan,
    RegionSettings,
    Tile,
    merge_rects,
    pack,
    plan_regions,
    propose,
)
from gridwatch.model import Detections

FRAME = (768, 576)
NATIVE = RegionSettings(scale="native")


def boxes(*rows: tuple[float, float, float, float]) -> np.ndarray:
    return np.array(rows, np.float32).reshape(-1, 4)


def test_no_boxes_means_nothing_to_look_at() -> None:
    plan = plan_regions(FRAME, boxes(), NATIVE)
    assert plan is not None
    assert plan.tiles == ()


def test_regions_covering_most_of_the_frame_fall_back_to_the_whole_frame() -> None:
    spread = boxes(*[(x, y, x + 60, y + 120) for x in range(0, 700, 120) for y in (0, 220, 440)])
    assert plan_regions(FRAME, spread, NATIVE) is None
    assert plan_regions(FRAME, boxes((0, 0, 700, 500)), NATIVE) is None  # wider than a canvas


@pytest.mark.parametrize("scale", ["native", "frame"])
def test_tiles_fit_the_canvas_without_overlapping(scale: str) -> None:
    s = RegionSettings(scale=scale)  # type: ignore[arg-type]
    b = boxes((10, 10, 50, 110), (300, 200, 340, 300), (600, 400, 700, 560), (200, 450, 240, 560))
    plan = plan_regions(FRAME, b, s)
    assert plan is not None
    cw, ch = plan.canvas_size
    assert cw % 32 == 0
    assert ch % 32 == 0
    rects = []
    for t in plan.tiles:
        x, y = t.dst
        w, h = t.size
        assert x >= 0
        assert x + w <= cw
        assert y >= 0
        assert y + h <= ch
        rects.append((x, y, x + w, y + h))
    for i, a in enumerate(rects):
        for c in rects[i + 1 :]:
            assert a[2] <= c[0] or c[2] <= a[0] or a[3] <= c[1] or c[3] <= a[1]
    # every box is inside some tile's source rectangle
    for bx in b:
        assert any(
            t.src[0] <= bx[0] and t.src[1] <= bx[1] and t.src[2] >= bx[2] and t.src[3] >= bx[3]
            for t in plan.tiles
        )


def test_compose_copies_each_region_at_native_resolution() -> None:
    image = np.random.default_rng(0).integers(0, 255, (576, 768, 3), dtype=np.uint8)
    plan = plan_regions(FRAME, boxes((100, 100, 140, 200), (500, 300, 560, 420)), NATIVE)
    assert plan is not None
    canvas = plan.compose(image)
    assert canvas.shape == (plan.canvas_size[1], plan.canvas_size[0], 3)
    for t in plan.tiles:
        x0, y0, x1, y1 = t.src
        dx, dy = t.dst
        assert np.array_equal(canvas[dy : dy + y1 - y0, dx : dx + x1 - x0], image[y0:y1, x0:x1])


def det(rows: list[tuple[float, float, float, float]], conf: float = 0.9) -> Detections:
    return Detections.from_arrays(
        xyxy=np.array(rows, np.float32).reshape(-1, 4),
        confidence=np.full(len(rows), conf, np.float32),
        class_id=np.zeros(len(rows), np.int64),
        image_size=(256, 256),
        class_names={0: "person"},
    )


def two_tile_plan(scale: float = 1.0) -> RegionPlan:
    # tile A: frame (100,100)-(200,300) at canvas (0,0); tile B: frame (400,50)-(500,250)
    # at canvas (110,0); sizes scaled
    sa = (round(100 * scale), round(200 * scale))
    return RegionPlan(
        FRAME,
        (
            Tile((100, 100, 200, 300), (0, 0), sa),
            Tile((400, 50, 500, 250), (110, 0), sa),
        ),
        (256, 256),
        scale,
    )


def test_boxes_map_back_to_frame_coordinates() -> None:
    out = two_tile_plan().map_back(det([(20, 30, 60, 150), (130, 40, 170, 160)]))
    assert sorted(out.xyxy.tolist()) == [[120, 130, 160, 250], [420, 90, 460, 210]]
    assert out.image_size == FRAME


def test_boxes_map_back_through_the_scale() -> None:
    plan = two_tile_plan(scale=0.5)  # tile A is 50×100 in the mosaic
    out = plan.map_back(det([(10, 15, 30, 75)]))
    assert out.xyxy.tolist() == [[120, 130, 160, 250]]


def test_a_box_cut_by_an_inner_edge_is_kept_when_no_region_saw_it_whole() -> None:
    # touches tile A's left edge: a walker who outpaced the region; nobody else saw them
    inner = two_tile_plan().map_back(det([(0, 30, 40, 150)]))
    assert inner.xyxy.tolist() == [[100, 130, 140, 250]]
    # a box sticking out of its tile is clipped to the tile's pixels
    out = two_tile_plan().map_back(det([(60, 150, 101, 210)]))
    assert out.xyxy.tolist() == [[160, 250, 200, 300]]


def test_one_object_seen_by_two_overlapping_regions_is_kept_once_whole() -> None:
    # tiles overlap in the frame: A covers x 100..300, B covers x 200..400 (same rows)
    plan = RegionPlan(
        FRAME,
        (
            Tile((100, 100, 300, 300), (0, 0), (200, 200)),
            Tile((200, 100, 400, 300), (208, 0), (200, 200)),
        ),
        (416, 224),
    )
    whole_in_a = (110, 40, 150, 160)  # frame x 210..250
    cut_in_b = (218, 40, 250, 140)  # frame x 210..242, cut short at the bottom
    out = plan.map_back(det([whole_in_a, cut_in_b]))
    assert out.xyxy.tolist() == [[210, 140, 250, 260]]


def test_merge_rects_only_when_the_union_is_no_bigger() -> None:
    assert merge_rects([[0, 0, 10, 10], [20, 20, 30, 30]]) == [[0, 0, 10, 10], [20, 20, 30, 30]]
    assert merge_rects([[0, 0, 10, 10], [1, 1, 11, 11]]) == [[0, 0, 11, 11]]


def test_propose_follows_a_previous_box_to_where_the_motion_is() -> None:
    mask = np.zeros((144, 192), np.bool_)
    mask[30:55, 30:36] = True  # moved right: pixels at frame x 120..144, y 120..220 (stride 4)
    out = propose(
        FRAME,
        previous=boxes((100, 120, 130, 220)),
        motion_boxes=boxes((100, 120, 144, 220)),
        motion_mask=mask,
        motion_stride=4,
    )
    assert out.tolist() == [[100, 120, 144, 220]]  # no duplicate for the motion blob


def test_propose_keeps_new_motion_elsewhere() -> None:
    out = propose(FRAME, previous=boxes(), motion_boxes=boxes((600, 300, 640, 400)))
    assert out.tolist() == [[600, 300, 640, 400]]


def no_overlap(rects: list[tuple[int, int, int, int]], gap: int = 0) -> bool:
    return all(
        a[2] + gap <= c[0] or c[2] + gap <= a[0] or a[3] + gap <= c[1] or c[3] + gap <= a[1]
        for i, a in enumerate(rects)
        for c in rects[i + 1 :]
    )


@pytest.mark.parametrize("seed", range(20))
def test_pack_places_every_tile_inside_the_canvas_apart_or_says_it_cannot(seed: int) -> None:
    rng = np.random.default_rng(seed)
    sizes = [(int(w), int(h)) for w, h in rng.integers(20, 160, (int(rng.integers(1, 9)), 2))]
    canvas = (256, 256)
    pos = pack(sizes, canvas, gap=4)
    if pos is None:  # only when they cannot fit by area or by a side
        assert sum(w * h for w, h in sizes) > 0.5 * 256 * 256 or max(max(s) for s in sizes) > 256
        return
    rects = [(x, y, x + w, y + h) for (x, y), (w, h) in zip(pos, sizes, strict=True)]
    assert all(r[0] >= 0 and r[1] >= 0 and r[2] <= 256 and r[3] <= 256 for r in rects)
    assert no_overlap(rects, gap=4)


def test_pack_fills_a_canvas_exactly_when_the_tiles_tile_it() -> None:
    assert pack([(64, 64)] * 4, (128, 128)) is not None
    assert pack([(64, 64)] * 5, (128, 128)) is None
    assert pack([(62, 62)] * 4, (128, 128), gap=4) is not None  # 62 + 4 + 62 = 128
    assert pack([(63, 63)] * 4, (128, 128), gap=4) is None


def test_mosaics_come_in_few_shapes_the_smallest_that_fits() -> None:
    """A mosaic's shape is one of the fixed few (the runtime keeps a plan per input shape),
    the smallest by area into which the regions pack."""
    assert len(CANVAS_SHAPES) <= 16
    areas = [w * h for w, h in CANVAS_SHAPES]
    assert areas == sorted(areas)
    assert all(w % 32 == 0 and h % 32 == 0 for w, h in CANVAS_SHAPES)
    rng = np.random.default_rng(1)
    seen = set()
    for _ in range(200):
        n = int(rng.integers(1, 7))
        xy = rng.integers(0, 600, (n, 2)).astype(np.float32)
        wh = rng.integers(20, 120, (n, 2)).astype(np.float32)
        plan = plan_regions(FRAME, np.concatenate([xy, xy + wh], axis=1), RegionSettings())
        if plan is None or not plan.tiles:
            continue
        seen.add(plan.canvas_size)
        assert plan.canvas_size in CANVAS_SHAPES
        sizes = [t.size for t in plan.tiles]
        smaller = [s for s in CANVAS_SHAPES if s[0] * s[1] < plan.area]
        assert all(pack(sizes, s, RegionSettings().gap) is None for s in smaller)
    assert len(seen) >= 5  # the shapes do vary with the regions

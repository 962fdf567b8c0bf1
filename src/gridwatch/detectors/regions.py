"""Region detection: detect only around what moved and what was there, packed into one mosaic.

Running the whole frame every time pays for grass and walls. So, once the motion gate says a
frame deserves a look, the detector looks only at *regions*: rectangles around

* the boxes found in the last second of looks (the "track regions"), widened by how far a
  person may have walked since and tightened to where the motion mask says they went, and
* motion blobs not explained by one of those (someone new),

each with a margin for context.

What the code taught us (``docs/performance.md`` has the figures):

* The issue's plan was one square model input per merged region. On the busy vtest scene
  squares merge into big ones and cost 1.4–1.8× the whole frame. Instead the regions (tight
  rectangles) are **packed into one mosaic** per frame with grey gaps (MaxRects, see
  :func:`gridwatch.detectors.mosaic.pack`): one model call per camera frame.
* **Few mosaic shapes.** The mosaic is the smallest of a fixed set of 14 shapes
  (:data:`~gridwatch.detectors.mosaic.CANVAS_SHAPES`) the regions pack into. Letting the
  canvas take any fitting multiple-of-32 shape made OpenVINO re-plan the model for most calls
  (it caches plans for a bounded number of shapes): 35% more CPU per look than the same pixels
  in a few shapes.
* **Tight margins, no dropped edge boxes.** Margins cost the most pixels (a 16 px + 10%
  margin tripled a walker's box); 8 px suffices once a box cut by a region's inner edge is
  kept rather than dropped (see :meth:`RegionPlan.map_back`).
* The plan also said *native resolution*. At native resolution a region look finds people a
  whole-frame look at 640 misses (a person half behind a sign), so counts jump each time the
  analyser switches between a region look and a whole-frame look (first frame, refresh, scene
  change). ``scale="frame"`` (the default) packs regions at the scale the whole frame is
  detected at: both looks see the same objects, and a 768×576 frame's regions cost 0.69× the
  native pixels. ``scale="native"`` remains for cameras whose people are small.

Boxes found on the mosaic are mapped back to the frame: a box belongs to the region its centre
falls in; of two boxes from different regions for one object the larger (whole) one is kept.

When the regions would cost nearly as much as the whole frame (``full_frame_ratio`` of its
input area) or fit none of the shapes, :func:`plan_regions` returns ``None`` and the caller
runs the whole frame.

>>> import numpy as np
>>> plan = plan_regions((768, 576), np.array([[100, 100, 140, 200]], np.float32), RegionSettings())
>>> plan.tiles[0].src, plan.tiles[0].size, plan.canvas_size
((92, 92, 148, 208), (47, 97), (128, 128))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt

from gridwatch.detectors.mosaic import (
    CANVAS_SHAPES,
    frame_scale,
    merge_rects,
    pack,
    rect_area,
    whole_frame_input_area,
)
from gridwatch.detectors.yolo_io import PAD_VALUE, STRIDE
from gridwatch.model import Detections

__all__ = [
    "CANVAS_SHAPES",
    "FloatBoxes",
    "RegionPlan",
    "RegionSettings",
    "Tile",
    "frame_scale",
    "merge_rects",
    "nms_indices",
    "pack",
    "plan_regions",
    "propose",
    "whole_frame_input_area",
]

FloatBoxes = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class RegionSettings:
    """Tuning of region planning (the config's ``analysis.regions`` section fills it)."""

    margin_px: int = 8
    """Context added around each region on every side, pixels."""
    margin_frac: float = 0.0
    """…plus this fraction of the region's larger side."""
    expand: float = 0.3
    """How far a previous box may have moved, as a fraction of its height (the motion mask
    then says where it went)."""
    min_side: int = 48
    """Smallest region side, pixels (context for the detector)."""
    full_frame_ratio: float = 0.75
    """Run the whole frame instead when the mosaic's area reaches this share of the whole
    frame's model input (the model's cost grows with input area)."""
    max_canvas: int = 640
    """Largest mosaic side; regions that cannot be packed within it mean whole frame."""
    gap: int = 4
    """Grey pixels between regions in the mosaic."""
    upscale: bool = False
    """Regions of a frame smaller than ``imgsz`` are scaled up as the whole frame is
    (:func:`frame_scale`), so both looks see the same objects."""
    scale: Literal["frame", "native"] = "frame"
    """``frame``: regions at the scale the whole frame is detected at (``imgsz`` / the frame's
    longer side), so a region look and a whole-frame look see the same objects and counts do
    not flicker when the mode changes; ``native``: full resolution (finds smaller people,
    costs ``1/scale²`` more)."""

    def __post_init__(self) -> None:
        if self.margin_px < 0 or self.margin_frac < 0 or self.expand < 0:
            raise ValueError("margins and expand must be >= 0")
        if not 0 < self.full_frame_ratio <= 2:
            raise ValueError(f"full_frame_ratio must be in (0, 2], got {self.full_frame_ratio}")
        if self.max_canvas < STRIDE or self.max_canvas % STRIDE:
            raise ValueError(f"max_canvas must be a multiple of {STRIDE}")


@dataclass(frozen=True, slots=True)
class Tile:
    """One region: ``src`` xyxy in the frame (integers), placed at ``dst`` (x, y) in the
    mosaic with size ``size`` (w, h): the region scaled by the plan's ``scale``."""

    src: tuple[int, int, int, int]
    dst: tuple[int, int]
    size: tuple[int, int]

    @property
    def width(self) -> int:
        return self.src[2] - self.src[0]

    @property
    def height(self) -> int:
        return self.src[3] - self.src[1]


@dataclass(frozen=True, slots=True)
class RegionPlan:
    """Where each region of a frame goes in the mosaic the detector sees."""

    frame_size: tuple[int, int]
    """(w, h) of the frame."""
    tiles: tuple[Tile, ...]
    canvas_size: tuple[int, int]
    """(w, h) of the mosaic, multiples of 32."""
    scale: float = 1.0
    """Mosaic pixels per frame pixel (1: native resolution)."""

    @property
    def area(self) -> int:
        return self.canvas_size[0] * self.canvas_size[1]

    @property
    def region_area(self) -> int:
        return sum(t.width * t.height for t in self.tiles)

    def compose(self, image: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        """The mosaic: each region copied (scaled by ``scale``), grey elsewhere."""
        cw, ch = self.canvas_size
        canvas = np.full((ch, cw, 3), PAD_VALUE, np.uint8)
        for t in self.tiles:
            x0, y0, x1, y1 = t.src
            dx, dy = t.dst
            tw, th = t.size
            crop = image[y0:y1, x0:x1]
            if (tw, th) != (x1 - x0, y1 - y0):
                canvas[dy : dy + th, dx : dx + tw] = cv2.resize(
                    crop, (tw, th), interpolation=cv2.INTER_AREA
                )
            else:
                canvas[dy : dy + th, dx : dx + tw] = crop
        return canvas

    def map_back(self, det: Detections, *, iou: float = 0.5, contained: float = 0.6) -> Detections:
        """Boxes found on the mosaic → boxes in the frame (see the module docs).

        A box belongs to the region its centre falls in and is clipped to it. Regions overlap
        in the frame, so one object can be found in two of them, once whole and once cut short
        at an inner edge: of two boxes from different regions that overlap by ``iou``, or where
        ``contained`` of the smaller lies inside the larger, the larger (the whole object) is
        kept. A box cut by an inner edge that no other region saw whole is kept as it is: it
        is an object (a walker who outpaced the region), and its box seeds a region that
        holds all of it at the next look. (Dropping such boxes, as an earlier version did,
        lost the object for good once the margins were tight: recall fell from 0.97 to 0.83
        on the busy vtest scene.)
        """
        fw, fh = self.frame_size
        if len(det) == 0:
            return Detections.empty((fw, fh), det.class_names)
        cx = (det.xyxy[:, 0] + det.xyxy[:, 2]) / 2
        cy = (det.xyxy[:, 1] + det.xyxy[:, 3]) / 2
        rows: list[int] = []
        moved: list[npt.NDArray[np.float32]] = []
        cuts: list[npt.NDArray[np.bool_]] = []
        tile_of: list[int] = []
        k = 1.0 / self.scale
        for ti, t in enumerate(self.tiles):
            dx, dy = t.dst
            tw, th = t.size
            inside = np.flatnonzero((cx >= dx) & (cx < dx + tw) & (cy >= dy) & (cy < dy + th))
            if len(inside) == 0:
                continue
            b = det.xyxy[inside].copy()
            # which sides reach an inner edge of the region (not the frame's): cut there
            x0, y0, x1, y1 = t.src
            tol = _CUT_TOL_PX * self.scale
            c = np.zeros((len(b), 4), bool)
            c[:, 0] = (b[:, 0] <= dx + tol) & (x0 > 0)
            c[:, 1] = (b[:, 1] <= dy + tol) & (y0 > 0)
            c[:, 2] = (b[:, 2] >= dx + tw - tol) & (x1 < fw)
            c[:, 3] = (b[:, 3] >= dy + th - tol) & (y1 < fh)
            cuts.append(c)
            b[:, [0, 2]] = np.clip(b[:, [0, 2]], dx, dx + tw)
            b[:, [1, 3]] = np.clip(b[:, [1, 3]], dy, dy + th)
            b = (b - np.array([dx, dy, dx, dy], np.float32)) * k + np.array(
                [x0, y0, x0, y0], np.float32
            )
            rows.extend(int(i) for i in inside)
            tile_of.extend([ti] * len(b))
            moved.append(b.astype(np.float32))
        if not rows:
            return Detections.empty((fw, fh), det.class_names)
        xyxy = np.concatenate(moved)
        idx = np.array(rows, np.int64)
        tiles = np.array(tile_of, np.int64)
        xyxy, alive = _join_fragments(xyxy, np.concatenate(cuts), tiles)
        conf = det.confidence[idx]
        keep = [i for i in _cross_region_dedup(xyxy, tiles, iou, contained) if alive[i]]
        keep = _without_group_boxes(xyxy, keep)
        return Detections.from_arrays(
            xyxy=xyxy[keep],
            confidence=conf[keep],
            class_id=det.class_id[idx][keep],
            image_size=(fw, fh),
            class_names=det.class_names,
        )


_CUT_TOL_PX = 3.0
"""A box side within this many frame pixels of a region's inner edge was cut by it."""


def _join_fragments(
    xyxy: FloatBoxes, cut: npt.NDArray[np.bool_], tile: npt.NDArray[np.int64]
) -> tuple[FloatBoxes, npt.NDArray[np.bool_]]:
    """One object split between two regions, each holding a part cut at its inner edge, is
    one object: the two parts become their union (the first index keeps it, the second is
    marked dead). Without this, a walker on the seam between two regions counts twice.

    Parts qualify when they come from different regions, at least one is cut on the side
    facing the other, they touch or overlap across the seam (a gap of at most a tenth of
    their size), and they line up along it (half of the shorter extent shared). Two whole
    people side by side are never joined: neither is cut.

    >>> boxes = np.array([[10, 0, 30, 50], [12, 50, 31, 100], [40, 0, 60, 100]], np.float32)
    >>> cut = np.array([[0, 0, 0, 1], [0, 1, 0, 0], [0, 0, 0, 0]], bool)
    >>> out, alive = _join_fragments(boxes, cut, np.array([0, 1, 1]))
    >>> out[0].tolist(), alive.tolist()
    ([10.0, 0.0, 31.0, 100.0], [True, False, True])
    """
    out = xyxy.copy()
    alive = np.ones(len(out), bool)
    for i in range(len(out)):
        for j in range(i + 1, len(out)):
            if not (alive[i] and alive[j]) or tile[i] == tile[j]:
                continue
            a, b = out[i], out[j]
            for axis, lo, hi in ((1, 1, 3), (0, 0, 2)):  # vertical seam first, then horizontal
                other = 1 - axis
                o_lo, o_hi = other, other + 2
                shared = min(a[o_hi], b[o_hi]) - max(a[o_lo], b[o_lo])
                shorter = min(a[o_hi] - a[o_lo], b[o_hi] - b[o_lo])
                if shorter <= 0 or shared < 0.5 * shorter:
                    continue
                upper, lower = (i, j) if a[lo] <= b[lo] else (j, i)
                gap = out[lower][lo] - out[upper][hi]
                size = min(a[hi] - a[lo], b[hi] - b[lo])
                if gap > 0.1 * size or out[lower][hi] <= out[upper][hi]:
                    continue  # apart, or one inside the other (the dedup's case)
                if not (cut[upper, hi] or cut[lower, lo]):
                    continue
                out[i] = [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])]
                cut[i] = cut[i] & cut[j]
                alive[j] = False
                break
    return out, alive


def _without_group_boxes(xyxy: FloatBoxes, keep: list[int], inside: float = 0.8) -> list[int]:
    """Drop a box that holds two or more smaller kept boxes (each ``inside`` within it).

    A tight region gives the model little context, and on it the model sometimes draws one
    box around two people walking together as well as a box for each (5 of 120 busy vtest
    frames before this; the whole-frame look does not). The counting rules would count
    three. The people are the smaller boxes; the group box goes.

    >>> b = np.array([[0, 0, 40, 100], [30, 0, 70, 100], [0, 0, 70, 100], [90, 0, 120, 90]],
    ...              np.float32)
    >>> _without_group_boxes(b, [0, 1, 2, 3])
    [0, 1, 3]
    """
    area = (xyxy[:, 2] - xyxy[:, 0]) * (xyxy[:, 3] - xyxy[:, 1])
    out = []
    for g in keep:
        held = 0
        for k in keep:
            if k == g or area[k] >= 0.7 * area[g] or area[k] <= 0:
                continue
            iw = min(xyxy[g, 2], xyxy[k, 2]) - max(xyxy[g, 0], xyxy[k, 0])
            ih = min(xyxy[g, 3], xyxy[k, 3]) - max(xyxy[g, 1], xyxy[k, 1])
            if iw > 0 and ih > 0 and iw * ih >= inside * area[k]:
                held += 1
        if held < 2:
            out.append(g)
    return out


def _cross_region_dedup(
    xyxy: FloatBoxes, tile: npt.NDArray[np.int64], iou: float, contained: float
) -> list[int]:
    """Indices kept: largest first, dropping boxes from *other* regions that overlap a kept one
    by ``iou`` or lie ``contained`` inside it (within a region the model's NMS already ran)."""
    area = (xyxy[:, 2] - xyxy[:, 0]) * (xyxy[:, 3] - xyxy[:, 1])
    order = np.argsort(-area, kind="stable")
    kept: list[int] = []
    for i in order:
        b = xyxy[i]
        dup = False
        for k in kept:
            if tile[k] == tile[i]:
                continue
            o = xyxy[k]
            iw = min(b[2], o[2]) - max(b[0], o[0])
            ih = min(b[3], o[3]) - max(b[1], o[1])
            if iw <= 0 or ih <= 0:
                continue
            inter = float(iw * ih)
            small = float(min(area[i], area[k]))
            if inter / (area[i] + area[k] - inter) >= iou or (
                small > 0 and inter / small >= contained
            ):
                dup = True
                break
        if not dup:
            kept.append(int(i))
    return sorted(kept)


def nms_indices(xyxy: FloatBoxes, scores: npt.NDArray[np.float32], iou: float) -> list[int]:
    """Class-agnostic NMS, indices kept in descending score order."""
    if len(xyxy) == 0:
        return []
    rects = [[float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])] for b in xyxy]
    kept = cv2.dnn.NMSBoxes(rects, [float(s) for s in scores], 0.0, iou)
    return [int(i) for i in np.asarray(kept, dtype=np.int64).reshape(-1)]


def propose(
    frame_size: tuple[int, int],
    *,
    previous: FloatBoxes | None,
    motion_boxes: FloatBoxes | None,
    motion_mask: npt.NDArray[np.bool_] | None = None,
    motion_stride: int = 1,
    settings: RegionSettings | None = None,
) -> FloatBoxes:
    """Boxes worth a look in this frame (before margins), in frame pixels.

    Each previous box is widened by ``expand`` × its height (where the person may have gone),
    then shrunk to the previous box ∪ the moving pixels inside that window (where they did
    go). Motion blobs are kept only where they are not already inside such a window.
    """
    s = settings or RegionSettings()
    w, h = frame_size
    out: list[list[float]] = []
    windows: list[tuple[float, float, float, float]] = []
    for b in previous if previous is not None else np.zeros((0, 4), np.float32):
        bh = float(b[3] - b[1])
        ex = s.expand * bh
        win = (
            max(0.0, float(b[0]) - ex),
            max(0.0, float(b[1]) - ex / 2),
            min(float(w), float(b[2]) + ex),
            min(float(h), float(b[3]) + ex / 2),
        )
        windows.append(win)
        box = [float(v) for v in b]
        if motion_mask is not None and motion_mask.size:
            st = motion_stride
            mx0, my0 = int(win[0] // st), int(win[1] // st)
            mx1, my1 = int(-(-win[2] // st)), int(-(-win[3] // st))
            ys, xs = np.nonzero(motion_mask[my0:my1, mx0:mx1])
            if len(xs) >= 3:
                box = [
                    min(box[0], (mx0 + float(xs.min())) * st),
                    min(box[1], (my0 + float(ys.min())) * st),
                    max(box[2], (mx0 + float(xs.max()) + 1) * st),
                    max(box[3], (my0 + float(ys.max()) + 1) * st),
                ]
        else:
            box = list(win)
        out.append(box)
    for m in motion_boxes if motion_boxes is not None else np.zeros((0, 4), np.float32):
        covered = any(
            m[0] >= wx0 and m[1] >= wy0 and m[2] <= wx1 and m[3] <= wy1
            for wx0, wy0, wx1, wy1 in windows
        )
        if not covered:
            out.append([float(v) for v in m])
    if not out:
        return np.zeros((0, 4), np.float32)
    arr = np.array(out, np.float32)
    arr[:, [0, 2]] = np.clip(arr[:, [0, 2]], 0, w)
    arr[:, [1, 3]] = np.clip(arr[:, [1, 3]], 0, h)
    return arr


def _with_margin(box: Sequence[float], frame_size: tuple[int, int], s: RegionSettings) -> list[int]:
    w, h = frame_size
    x0, y0, x1, y1 = (float(v) for v in box)
    m = s.margin_px + s.margin_frac * max(x1 - x0, y1 - y0)
    x0, y0, x1, y1 = x0 - m, y0 - m, x1 + m, y1 + m
    # grow to min_side around the centre
    for lo, hi, idx in ((x0, x1, 0), (y0, y1, 1)):
        if hi - lo < s.min_side:
            c = (lo + hi) / 2
            lo, hi = c - s.min_side / 2, c + s.min_side / 2
        if idx == 0:
            x0, x1 = lo, hi
        else:
            y0, y1 = lo, hi
    return [
        max(0, int(np.floor(x0))),
        max(0, int(np.floor(y0))),
        min(w, int(np.ceil(x1))),
        min(h, int(np.ceil(y1))),
    ]


def plan_regions(
    frame_size: tuple[int, int],
    boxes: FloatBoxes,
    settings: RegionSettings | None = None,
    *,
    imgsz: int = 640,
) -> RegionPlan | None:
    """Pack the regions around ``boxes`` into the smallest mosaic shape of
    :data:`CANVAS_SHAPES` they fit; ``None`` means "run the whole frame" (they fit none, or
    the mosaic would cost ``full_frame_ratio`` of the whole frame).

    An empty ``boxes`` gives a plan with no tiles (nothing to look at).
    """
    s = settings or RegionSettings()
    scale = 1.0 if s.scale == "native" else frame_scale(frame_size, imgsz, s.upscale)
    if len(boxes) == 0:
        return RegionPlan(frame_size, (), (0, 0), scale)
    layout = _layout(frame_size, boxes, s, scale)
    if layout is None:
        return RegionPlan(frame_size, (), (0, 0), scale)
    rects, sizes = layout
    widest = max(w for w, _ in sizes)
    tallest = max(h for _, h in sizes)
    need = sum(w * h for w, h in sizes)
    too_big = s.full_frame_ratio * whole_frame_input_area(frame_size, imgsz, s.upscale)
    for cw, ch in CANVAS_SHAPES:
        if cw * ch >= too_big:
            break
        if cw > s.max_canvas or ch > s.max_canvas:
            continue
        if cw < widest or ch < tallest or cw * ch < need:
            continue
        pos = pack(sizes, (cw, ch), s.gap)
        if pos is None:
            continue
        tiles = tuple(
            Tile((r[0], r[1], r[2], r[3]), p, sz)
            for r, p, sz in zip(rects, pos, sizes, strict=True)
        )
        return RegionPlan(frame_size, tiles, (cw, ch), scale)
    return None


def _layout(
    frame_size: tuple[int, int], boxes: FloatBoxes, s: RegionSettings, scale: float
) -> tuple[list[list[int]], list[tuple[int, int]]] | None:
    """Regions around ``boxes`` (with margins, merged) and their sizes in the mosaic; ``None``
    when none has an area."""
    rects = merge_rects([_with_margin(b, frame_size, s) for b in boxes])
    rects = [r for r in rects if rect_area(r) > 0]
    if not rects:
        return None
    sizes = [
        (max(1, round((r[2] - r[0]) * scale)), max(1, round((r[3] - r[1]) * scale))) for r in rects
    ]
    return rects, sizes

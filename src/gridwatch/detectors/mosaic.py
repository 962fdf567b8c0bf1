"""Where the regions go: the integer geometry of the mosaic a region look feeds the detector.

:mod:`gridwatch.detectors.regions` decides *what* deserves a look (which boxes, which margins)
and maps the boxes found back to the frame; this module only places rectangles. It merges
overlapping ones (:func:`merge_rects`), packs them into a canvas (:func:`pack`, MaxRects),
offers the few canvas shapes a mosaic may take (:data:`CANVAS_SHAPES`) and says at which scale
the whole frame is seen (:func:`frame_scale`), so the two looks can be compared. It knows
nothing of detections or settings, which keeps the packing testable on bare tuples.

>>> pack([(60, 40), (30, 30)], CANVAS_SHAPES[0], gap=4)
[(0, 0), (64, 0)]
"""

from __future__ import annotations

from collections.abc import Sequence

from gridwatch.detectors.yolo_io import STRIDE


def rect_area(r: Sequence[int]) -> int:
    """Area of an xyxy rectangle (negative when it is inside out).

    >>> rect_area([2, 3, 12, 8])
    50
    """
    return (r[2] - r[0]) * (r[3] - r[1])


def merge_rects(rects: list[list[int]]) -> list[list[int]]:
    """Merge two rectangles whenever their union is no larger than the two apart (the mosaic
    then carries fewer, not more, pixels), until no pair qualifies.

    >>> merge_rects([[0, 0, 10, 10], [2, 2, 12, 12], [50, 50, 60, 60]])
    [[0, 0, 12, 12], [50, 50, 60, 60]]
    """
    rects = [list(r) for r in rects]
    merged = True
    while merged:
        merged = False
        for i in range(len(rects)):
            for j in range(i + 1, len(rects)):
                a, b = rects[i], rects[j]
                u = [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])]
                if rect_area(u) <= rect_area(a) + rect_area(b):
                    rects[i] = u
                    del rects[j]
                    merged = True
                    break
            if merged:
                break
    return rects


def pack(
    sizes: Sequence[tuple[int, int]], canvas: tuple[int, int], gap: int = 0
) -> list[tuple[int, int]] | None:
    """Top-left corners placing every ``(w, h)`` of ``sizes`` inside ``canvas`` without
    overlap and at least ``gap`` apart, or ``None`` when they do not fit.

    MaxRects with best-short-side fit, largest tile first: it keeps a list of maximal free
    rectangles and puts each tile where it leaves the least slack. On the busy vtest scene's
    regions it left about a quarter less of the canvas unused than shelf packing did.

    >>> pack([(100, 50), (50, 50), (50, 50)], (160, 104), gap=4)
    [(0, 0), (0, 54), (54, 54)]
    >>> pack([(100, 50), (100, 50)], (160, 96), gap=4) is None
    True
    """
    cw, ch = canvas
    # work in "tile + gap" units on a canvas one gap larger: tiles end up gap apart, and
    # flush with the canvas edges
    free: list[tuple[int, int, int, int]] = [(0, 0, cw + gap, ch + gap)]
    pos: list[tuple[int, int]] = [(0, 0)] * len(sizes)
    order = sorted(range(len(sizes)), key=lambda i: (-sizes[i][0] * sizes[i][1], i))
    for i in order:
        w, h = sizes[i][0] + gap, sizes[i][1] + gap
        best: tuple[int, int, int, int] | None = None
        for fx, fy, fw, fh in free:
            if w <= fw and h <= fh:
                short, long = sorted((fw - w, fh - h))
                if best is None or (short, long) < best[:2]:
                    best = (short, long, fx, fy)
        if best is None:
            return None
        x, y = best[2], best[3]
        pos[i] = (x, y)
        split: list[tuple[int, int, int, int]] = []
        for f in free:
            fx, fy, fw, fh = f
            if x >= fx + fw or x + w <= fx or y >= fy + fh or y + h <= fy:
                split.append(f)
                continue
            if x > fx:
                split.append((fx, fy, x - fx, fh))
            if x + w < fx + fw:
                split.append((x + w, fy, fx + fw - x - w, fh))
            if y > fy:
                split.append((fx, fy, fw, y - fy))
            if y + h < fy + fh:
                split.append((fx, y + h, fw, fy + fh - y - h))
        free = [
            a
            for j, a in enumerate(split)
            if not any(
                k != j and _contains(b, a) and (a != b or k < j) for k, b in enumerate(split)
            )
        ]
    return pos


def _contains(outer: tuple[int, int, int, int], inner: tuple[int, int, int, int]) -> bool:
    ox, oy, ow, oh = outer
    ix, iy, iw, ih = inner
    return ix >= ox and iy >= oy and ix + iw <= ox + ow and iy + ih <= oy + oh


CANVAS_SHAPES: tuple[tuple[int, int], ...] = (
    (128, 128), (128, 192), (192, 160), (160, 224), (224, 192), (192, 256), (256, 224),
    (224, 288), (288, 256), (256, 320), (320, 288), (352, 320), (384, 352), (448, 384),
)  # fmt: skip
"""The mosaic shapes (w, h), smallest first, about 1.1–1.3× apart in area: the only input
shapes a region look uses. Few on purpose: OpenVINO's CPU plugin prepares a plan per input
shape and keeps a bounded number (``CPU_RUNTIME_CACHE_CAPACITY``, 64 entries in our backend).
Cycling through up to 20 shapes cost 19–24 ms a call, through 24–35 shapes 34–38 ms: past
about 20, most calls re-plan (``docs/performance.md``). A fixed set also lets mosaics of
different cameras share one batched model call."""


def _ceil32(v: int) -> int:
    return -(-v // STRIDE) * STRIDE


def frame_scale(frame_size: tuple[int, int], imgsz: int, upscale: bool = False) -> float:
    """The scale a whole frame is detected at: down to fit ``imgsz``, and up to it when
    ``upscale`` (the analysis setting "look closer").

    >>> round(frame_scale((768, 576), 640), 4), frame_scale((320, 240), 640)
    (0.8333, 1.0)
    >>> frame_scale((320, 240), 640, upscale=True)
    2.0
    """
    s = imgsz / max(frame_size)
    return s if upscale else min(1.0, s)


def whole_frame_input_area(frame_size: tuple[int, int], imgsz: int, upscale: bool = False) -> int:
    """Model input area of the whole frame at ``imgsz`` (scaled, padded to 32)."""
    w, h = frame_size
    scale = frame_scale(frame_size, imgsz, upscale)
    return _ceil32(round(w * scale)) * _ceil32(round(h * scale))

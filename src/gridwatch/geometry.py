"""Geometry shared by the stages: one definition of IoU, of a box's anchor and of "in zone".

The analyser (which boxes are the same object from one look to the next) and the crowd counter
(which box is a known place or track) both ask "how much do these boxes overlap"; they must
agree, so they ask here.

>>> import numpy as np
>>> a = np.array([[0, 0, 10, 10]], np.float32)
>>> b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], np.float32)
>>> [round(float(v), 3) for v in iou_matrix(a, b)[0]]
[1.0, 0.333, 0.0]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

Boxes = npt.NDArray[np.float32]


def iou(a: Sequence[float] | Boxes, b: Sequence[float] | Boxes) -> float:
    """Intersection over union of two xyxy boxes (tuples or arrays).

    >>> iou((0, 0, 2, 2), (1, 0, 3, 2))
    0.3333333333333333
    """
    ix = max(0.0, float(min(a[2], b[2]) - max(a[0], b[0])))
    iy = max(0.0, float(min(a[3], b[3]) - max(a[1], b[1])))
    inter = ix * iy
    union = float((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])) - inter
    return inter / union if union > 0 else 0.0


def iou_matrix(a: Boxes, b: Boxes) -> Boxes:
    """IoU of every xyxy box of ``a`` (rows) with every xyxy box of ``b`` (columns)."""
    ix = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    iy = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.clip(ix, 0, None) * np.clip(iy, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-6)
    out: Boxes = (inter / union).astype(np.float32)
    return out


def anchors(xyxy: Boxes) -> Boxes:
    """Bottom-centre of each xyxy box (where a person stands), in the boxes' own units.

    >>> anchors(np.array([[0, 0, 10, 20]], np.float32)).tolist()
    [[5.0, 20.0]]
    """
    b = np.asarray(xyxy, dtype=np.float32).reshape(-1, 4)
    out: Boxes = np.stack([(b[:, 0] + b[:, 2]) / 2.0, b[:, 3]], axis=1).astype(np.float32)
    return out


def points_in_polygon(
    points: npt.NDArray[np.float32], polygon: npt.NDArray[np.float64]
) -> npt.NDArray[np.bool_]:
    """Even-odd ray casting, vectorized over points; points on an edge count as inside."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if len(pts) == 0:
        return np.zeros(0, dtype=bool)
    x, y = pts[:, 0][:, None], pts[:, 1][:, None]
    x1, y1 = polygon[:, 0][None, :], polygon[:, 1][None, :]
    x2, y2 = np.roll(polygon[:, 0], -1)[None, :], np.roll(polygon[:, 1], -1)[None, :]
    # crossing test for a ray going +x
    straddles = (y1 > y) != (y2 > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_cross = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
    inside = np.logical_xor.reduce(straddles & (x < x_cross), axis=1)
    # on-edge: collinear and within the segment's bounding box
    cross = (x2 - x1) * (y - y1) - (y2 - y1) * (x - x1)
    within = (
        (np.minimum(x1, x2) - 1e-9 <= x)
        & (x <= np.maximum(x1, x2) + 1e-9)
        & (np.minimum(y1, y2) - 1e-9 <= y)
        & (y <= np.maximum(y1, y2) + 1e-9)
    )
    on_edge = np.any((np.abs(cross) <= 1e-9) & within, axis=1)
    result: npt.NDArray[np.bool_] = inside | on_edge
    return result

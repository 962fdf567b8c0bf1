"""Zone membership: is a person's ground point inside a polygon.

A person stands where the bottom-centre of their box is; the top of a box can overlap a zone
the person is nowhere near (a tall person behind a gate), so the anchor is the feet.

>>> import numpy as np
>>> z = Zone("apron", [(0.0, 0.5), (1.0, 0.5), (1.0, 1.0), (0.0, 1.0)])
>>> z.contains(np.array([[0.5, 0.75], [0.5, 0.25], [0.0, 0.5]], dtype=np.float32)).tolist()
[True, False, True]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt


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


@dataclass(frozen=True)
class Zone:
    """A named polygon in normalized image coordinates (x right, y down, 0..1)."""

    id: str
    points: Sequence[tuple[float, float]]
    _poly: npt.NDArray[np.float64] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        poly = np.asarray(self.points, dtype=np.float64).reshape(-1, 2)
        if len(poly) < 3:
            raise ValueError(f"zone {self.id!r} needs at least 3 points")
        object.__setattr__(self, "_poly", poly)

    def contains(self, anchors: npt.NDArray[np.float32]) -> npt.NDArray[np.bool_]:
        return points_in_polygon(anchors, self._poly)

    def pixel_polygon(self, width: int, height: int) -> npt.NDArray[np.int32]:
        """The polygon in pixels, for drawing."""
        px: npt.NDArray[np.int32] = np.round(self._poly * np.array([width, height])).astype(
            np.int32
        )
        return px

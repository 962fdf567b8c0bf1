"""Zone membership: is a person's ground point inside a polygon.

The one definition of "in zone" is :func:`gridwatch.geometry.points_in_polygon` (points on an
edge are inside); the analyser's motion gate asks the same test (see
:meth:`gridwatch.ingest.motion.MotionDetector.anchors_in_zone`).

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

from gridwatch.geometry import points_in_polygon

__all__ = ["Zone", "points_in_polygon"]


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

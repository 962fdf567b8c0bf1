"""Privacy masks: black out excluded areas of a frame before anything looks at it.

Principle 8 (DESIGN.md): gridwatch counts and locates people in public space; the inside of a
home seen through its windows is not public space. A masked area is painted black on the
decoded frame itself, as the first thing the pipeline does, so motion, detection, tracking,
snapshots and any later consumer of that frame never see what was there. Painting (rather than
ignoring detections whose anchor falls in the mask) also keeps masked people out of the
pictures, and costs only the masked pixels (``cv2.fillPoly``), well under a millisecond.

The pixel mapping is the one :func:`gridwatch.alerts.snapshots.render_snapshot` uses, so a
mask drawn on a snapshot covers exactly the pixels blacked out for analysis.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import cv2
import numpy as np
import numpy.typing as npt

from gridwatch.model import Frame

PointNorm = tuple[float, float]


def polygon_pixels(points: Sequence[Sequence[float]], w: int, h: int) -> npt.NDArray[np.int32]:
    """Normalized (x, y) points → an OpenCV polygon in pixels of a ``w``×``h`` image."""
    arr = np.clip(np.asarray(points, dtype=np.float64).reshape(-1, 2), 0.0, 1.0)
    px = np.rint(arr * np.array([w - 1, h - 1], dtype=np.float64)).astype(np.int32)
    return px.reshape(-1, 1, 2)


class PrivacyMasker:
    """Fills a camera's privacy-mask polygons with black, in place.

    Pixel polygons are cached per image size (a camera's size only changes when its stream
    does), so the per-frame cost is the fill alone.
    """

    def __init__(self, polygons: Iterable[Sequence[PointNorm]]) -> None:
        self.polygons: list[list[PointNorm]] = [list(p) for p in polygons if len(p) >= 3]
        self._pixels: dict[tuple[int, int], list[npt.NDArray[np.int32]]] = {}

    def __bool__(self) -> bool:
        return bool(self.polygons)

    def _for_size(self, w: int, h: int) -> list[npt.NDArray[np.int32]]:
        px = self._pixels.get((w, h))
        if px is None:
            px = [polygon_pixels(p, w, h) for p in self.polygons]
            self._pixels = {(w, h): px}  # one size at a time: no growth if it ever changes
        return px

    def apply_image(self, image: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        """Black out the masks on ``image`` (H×W×3, modified in place); return it."""
        if self.polygons:
            h, w = image.shape[:2]
            cv2.fillPoly(image, self._for_size(w, h), (0, 0, 0))
        return image

    def apply(self, frame: Frame) -> Frame:
        """:meth:`apply_image` on ``frame.image``; returns the same frame for chaining."""
        self.apply_image(frame.image)
        return frame

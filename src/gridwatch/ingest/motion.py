"""Motion gate: a cheap motion mask on the luma (Y) plane, per camera, zone-aware.

Frigate's lesson, measured again here: the detector is the expensive part, and most of a city
camera's frames show nothing new. So each analysed frame first goes through a motion mask that
costs well under a millisecond, and the detector runs only when something moved inside a
zone, or objects were there at the last look (see :mod:`gridwatch.detectors.analyser`).

How the mask is made, and why:

* **Y plane, strided.** A decoded H.264 frame is YUV; its Y plane *is* a grayscale picture, so
  no colour conversion is paid (converting to BGR costs more than decoding at 360p). Taking
  every ``stride``-th pixel of every ``stride``-th row (a view, then one copy) downsizes it to
  about ``width`` pixels across.
* **Difference with the previous analysed frame**, after a 3×3 box blur (sensor and coding
  noise), thresholded at ``threshold`` grey levels and dilated once so a person's parts join
  into one blob. A running-average background was tried and lost on the busy vtest scene:
  it ghosts where people stood and grows the regions (see ``docs/performance.md``).
* **Zone-aware.** A blob counts only when it touches the union of the camera's zones (the whole
  frame when it has none); privacy masks are cut out before anything else. A blob that
  touches a zone keeps its full extent, so a person whose feet are in the zone is seen whole.
* **Scene change.** When more than ``scene_change`` of the picture changed at once (lights
  switched, camera moved, auto exposure), the result says so and covers the whole frame.

>>> import numpy as np
>>> gate = MotionDetector(MotionSettings(width=64))
>>> still = np.full((120, 160), 90, np.uint8)
>>> gate.update(still).moved, gate.update(still).moved
(False, False)
>>> walker = still.copy(); walker[40:80, 60:80] = 200
>>> r = gate.update(walker)
>>> r.moved, r.boxes.round().tolist()
(True, [[56.0, 36.0, 84.0, 84.0]])
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from gridwatch.geometry import anchors, points_in_polygon

Polygon = Sequence[tuple[float, float]]
Luma = npt.NDArray[np.uint8]
_KERNEL = np.ones((3, 3), np.uint8)


def luma_plane(video_frame: Any) -> Luma:
    """The Y plane of a PyAV ``VideoFrame`` as an H×W uint8 view (no copy, no conversion).

    Works for planar and semi-planar YUV (``yuv420p``, ``yuvj420p``, ``nv12``, …), whose first
    plane is luma. Other formats (RGB, for instance) are converted to ``gray``.
    """
    fmt = video_frame.format
    name = str(fmt.name)
    if name.startswith(("yuv", "yuvj", "nv12", "nv21")) and not name.startswith("yuyv"):
        plane = video_frame.planes[0]
        h, w, stride = int(plane.height), int(plane.width), int(plane.line_size)
        buf = np.frombuffer(memoryview(plane), dtype=np.uint8)
        out: Luma = buf[: h * stride].reshape(h, stride)[:, :w]
        return out
    gray: Luma = video_frame.to_ndarray(format="gray")
    return gray


@dataclass(frozen=True, slots=True)
class MotionSettings:
    """Tuning of the motion gate (the config's ``analysis.motion`` section fills it)."""

    threshold: int = 20
    """Grey levels (0–255) a pixel must change by to count as moving."""
    min_area: float = 0.0004
    """Smallest blob that counts, as a fraction of the picture (0.0004 ≈ 180 px at 768×576)."""
    scene_change: float = 0.5
    """Changed fraction above which the whole picture counts as changed."""
    width: int = 192
    """Approximate width, in pixels, of the downsized luma the mask is computed on."""

    def __post_init__(self) -> None:
        if not 1 <= self.threshold <= 254:
            raise ValueError(f"threshold must be 1..254, got {self.threshold}")
        if not 0 <= self.min_area < 1:
            raise ValueError(f"min_area must be in [0, 1), got {self.min_area}")
        if not 0 < self.scene_change <= 1:
            raise ValueError(f"scene_change must be in (0, 1], got {self.scene_change}")
        if self.width < 16:
            raise ValueError(f"width must be >= 16, got {self.width}")


@dataclass(frozen=True, slots=True)
class MotionResult:
    """What moved in one frame, compared with the previous one the gate saw."""

    boxes: npt.NDArray[np.float32]
    """N×4 xyxy in the frame's pixels: blobs that touch a zone (whole blob extents)."""
    changed: float
    """Fraction of the watched picture that changed (0..1)."""
    scene_change: bool
    """Most of the picture changed at once: treat the whole frame as changed."""
    first: bool = False
    """No previous frame to compare with (the first frame, or after a size change)."""
    mask: npt.NDArray[np.bool_] = field(default_factory=lambda: np.zeros((0, 0), np.bool_))
    """The downsized motion mask (privacy masks cut out), for region refinement."""
    stride: int = 1
    """Frame pixels per mask pixel."""

    @property
    def moved(self) -> bool:
        """Something moved in a zone (or the whole scene changed)."""
        return self.scene_change or len(self.boxes) > 0


def polygon_mask(shape: tuple[int, int], polygons: Iterable[Polygon]) -> npt.NDArray[np.uint8]:
    """A uint8 mask (255 inside) of normalized polygons rasterized at ``shape`` (h, w)."""
    h, w = shape
    mask = np.zeros((h, w), np.uint8)
    for poly in polygons:
        pts = np.array([[x * w, y * h] for x, y in poly], dtype=np.float64)
        cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 255)
    return mask


class MotionDetector:
    """One camera's motion gate. Not thread-safe: one caller, frames in order.

    ``zones`` are normalized polygons (motion elsewhere is ignored; none means the whole
    frame), ``exclude`` normalized polygons cut out first (privacy masks).
    """

    def __init__(
        self,
        settings: MotionSettings | None = None,
        *,
        zones: Iterable[Polygon] = (),
        exclude: Iterable[Polygon] = (),
    ) -> None:
        self.settings = settings or MotionSettings()
        self._zones = [list(z) for z in zones]
        self._exclude = [list(z) for z in exclude]
        self._prev: Luma | None = None
        self._size: tuple[int, int] | None = None
        self._stride = 1
        self._zone_mask: npt.NDArray[np.uint8] | None = None
        self._watch: npt.NDArray[np.uint8] | None = None
        self._watched_px = 1
        self.frames = 0
        self.moving_frames = 0

    def reset(self) -> None:
        """Forget the previous frame (after a reconnect): the next frame is a 'first'."""
        self._prev = None

    def _prepare(self, h: int, w: int) -> None:
        self._size = (h, w)
        self._stride = max(1, round(w / self.settings.width))
        sh, sw = -(-h // self._stride), -(-w // self._stride)
        watch = np.full((sh, sw), 255, np.uint8)
        if self._exclude:
            watch[polygon_mask((sh, sw), self._exclude) > 0] = 0
        self._watch = watch
        self._watched_px = max(1, int(np.count_nonzero(watch)))
        zone = polygon_mask((sh, sw), self._zones) if self._zones else watch.copy()
        self._zone_mask = np.asarray(cv2.bitwise_and(zone, watch), np.uint8)
        self._prev = None

    def anchors_in_zone(self, xyxy: npt.NDArray[np.float32]) -> npt.NDArray[np.bool_]:
        """Which boxes (frame pixels) stand in a zone: their bottom-centre is inside one and in
        no privacy mask.

        The same point-in-polygon test as the rules' :meth:`gridwatch.rules.zones.Zone.contains`
        (:func:`gridwatch.geometry.points_in_polygon`, edges inside), on the normalized anchor:
        not a look-up in the downsized raster, which disagreed with the rules at zone edges.
        Before the first frame (size unknown) every box counts.
        """
        n = len(xyxy)
        if self._size is None or n == 0:
            return np.ones(n, np.bool_)
        h, w = self._size
        pts = np.asarray(anchors(xyxy) / np.array([w, h], np.float32), np.float32)
        inside = np.ones(n, np.bool_)
        if self._zones:
            inside = np.zeros(n, np.bool_)
            for z in self._zones:
                inside |= points_in_polygon(pts, np.asarray(z, np.float64).reshape(-1, 2))
        for z in self._exclude:
            inside &= ~points_in_polygon(pts, np.asarray(z, np.float64).reshape(-1, 2))
        return inside

    def update(self, luma: Luma) -> MotionResult:
        """Compare ``luma`` (H×W uint8, the Y plane) with the previous frame."""
        h, w = int(luma.shape[0]), int(luma.shape[1])
        if self._size != (h, w):
            self._prepare(h, w)
        assert self._watch is not None
        assert self._zone_mask is not None
        s = self._stride
        small = np.asarray(cv2.blur(np.ascontiguousarray(luma[::s, ::s]), (3, 3)), np.uint8)
        prev, self._prev = self._prev, small
        self.frames += 1
        empty = np.zeros((0, 4), np.float32)
        if prev is None:
            return MotionResult(empty, 0.0, False, first=True, stride=s)
        diff = cv2.absdiff(small, prev)
        _, moving = cv2.threshold(diff, self.settings.threshold, 255, cv2.THRESH_BINARY)
        moving = cv2.bitwise_and(moving, self._watch)
        changed = float(np.count_nonzero(moving)) / self._watched_px
        mask = cv2.dilate(moving, _KERNEL, iterations=1)
        if changed >= self.settings.scene_change:
            self.moving_frames += 1
            whole = np.array([[0, 0, w, h]], np.float32)
            return MotionResult(whole, changed, True, mask=mask > 0, stride=s)
        n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        if n <= 1:
            return MotionResult(empty, changed, False, mask=mask > 0, stride=s)
        min_px = self.settings.min_area * mask.size
        in_zone = np.zeros(n, np.bool_)
        in_zone[np.unique(labels[(mask > 0) & (self._zone_mask > 0)])] = True
        keep = [
            i for i in range(1, n) if in_zone[i] and stats[i, cv2.CC_STAT_AREA] >= max(1, min_px)
        ]
        if not keep:
            return MotionResult(empty, changed, False, mask=mask > 0, stride=s)
        st = stats[keep].astype(np.float32)
        boxes = np.stack(
            [
                st[:, cv2.CC_STAT_LEFT] * s,
                st[:, cv2.CC_STAT_TOP] * s,
                (st[:, cv2.CC_STAT_LEFT] + st[:, cv2.CC_STAT_WIDTH]) * s,
                (st[:, cv2.CC_STAT_TOP] + st[:, cv2.CC_STAT_HEIGHT]) * s,
            ],
            axis=1,
        )
        boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, w)
        boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, h)
        self.moving_frames += 1
        return MotionResult(boxes.astype(np.float32), changed, False, mask=mask > 0, stride=s)

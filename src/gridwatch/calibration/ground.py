"""The ground plane of one camera: image points (normalized 0..1, like zones) → metres.

Rules that speak in metres (``running`` in m/s, ``density`` in people per m²) need to know how
far apart two image points are on the ground. People stand on the ground, so their foot point
(the bottom-centre of the box, :func:`foot_point`) maps to the ground through one plane-to-plane
projective map, a 3×3 homography, for a flat ground and a camera without lens distortion.
Two ways to get it:

* **from points** (:meth:`GroundPlane.from_points`): four or more image points whose positions
  on the ground are known in metres (paving joints, the corners of a court, marks paced out).
  The fit is OpenCV's least-squares ``findHomography``; the residual of each point (where the
  fit puts it against where it was said to be, in metres) is the *reprojection error*, reported
  so a mistyped point shows. Points that cannot fix a plane are refused: fewer than four, three
  of four on one line, all on one line.
* **from the camera** (:meth:`GroundPlane.from_camera`): the height of the lens above the ground,
  the tilt below the horizontal and the horizontal field of view (pinhole, principal point at the
  centre, square pixels, no roll). The camera stands at the origin looking along +y.

Distances, speeds and zone areas (a polygon mapped vertex by vertex, then the shoelace formula:
a straight edge in the image is a straight line on the ground, so the mapped polygon is exact)
follow. Points at or above the horizon have no ground position: they map to NaN, and a zone
reaching past the horizon has no area (:class:`CalibrationError`).

>>> g = GroundPlane.from_points([(0, 0), (1, 0), (1, 1), (0, 1)],
...                             [(0, 0), (10, 0), (10, 5), (0, 5)])
>>> round(g.distance((0, 0), (1, 1)), 3), round(g.area([(0, 0), (1, 0), (1, 1), (0, 1)]), 3)
(11.18, 50.0)
>>> round(g.rms_error_m, 6)
0.0
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Point = tuple[float, float]
FloatArray = npt.NDArray[np.float64]

__all__ = [
    "CalibrationError",
    "GroundPlane",
    "foot_point",
    "polygon_area",
    "speed_of",
]

COLLINEAR_TOL = 1e-3
"""Three points are on one line when the triangle they span has less than this fraction of the
area of the square on the longest distance between them (about 0.1° of angle)."""


class CalibrationError(ValueError):
    """Points or camera values that cannot fix a ground plane, or a question it cannot answer
    (a point above the horizon). The message says which point or value."""


def foot_point(box: Sequence[float]) -> Point:
    """Where a person stands: the bottom-centre of an xyxy box (normalized or pixels).

    >>> foot_point((0.2, 0.1, 0.4, 0.7))
    (0.30000000000000004, 0.7)
    """
    x1, _, x2, y2 = (float(v) for v in box[:4])
    return ((x1 + x2) / 2.0, y2)


def polygon_area(points: Sequence[Point] | FloatArray) -> float:
    """Area of a simple polygon (shoelace formula), whatever its orientation.

    >>> polygon_area([(0, 0), (4, 0), (4, 3)])
    6.0
    """
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    x, y = p[:, 0], p[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2.0)


def _collinear(a: FloatArray, b: FloatArray, c: FloatArray) -> bool:
    twice_area = abs((b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]))
    longest = max(np.sum((b - a) ** 2), np.sum((c - a) ** 2), np.sum((c - b) ** 2))
    return bool(longest == 0 or twice_area / 2.0 < COLLINEAR_TOL * longest)


def _check_spread(pts: FloatArray, what: str) -> None:
    """Refuse point sets that cannot fix a homography (see :func:`GroundPlane.from_points`)."""
    n = len(pts)
    for i in range(n):
        for j in range(i + 1, n):
            if np.allclose(pts[i], pts[j]):
                raise CalibrationError(f"{what} points {i} and {j} are the same point")
    if n == 4:
        for i in range(4):
            a, b, c = (pts[k] for k in range(4) if k != i)
            if _collinear(a, b, c):
                others = [k for k in range(4) if k != i]
                raise CalibrationError(
                    f"{what} points {others} lie on one line: four points must span a "
                    "quadrilateral (no three in a row)"
                )
    centred = pts - pts.mean(axis=0)
    s = np.linalg.svd(centred, compute_uv=False)
    if s[0] == 0 or s[1] / s[0] < math.sqrt(COLLINEAR_TOL):
        raise CalibrationError(f"the {what} points all lie on one line: spread them over the area")


@dataclass(frozen=True)
class GroundPlane:
    """A homography from normalized image points to ground metres, and what it answers.

    ``errors_m`` are the fitted points' residuals (empty for a camera-model plane).
    """

    h: FloatArray
    errors_m: tuple[float, ...] = ()
    source: str = "points"

    @classmethod
    def from_points(
        cls, image: Sequence[Sequence[float]], ground: Sequence[Sequence[float]]
    ) -> GroundPlane:
        """Fit image points (normalized) to ground points (metres), ≥ 4 pairs, least squares.

        >>> GroundPlane.from_points([(0, 0), (0.5, 0.5), (1, 1), (0, 1)],
        ...                         [(0, 0), (1, 1), (2, 2), (0, 5)])
        Traceback (most recent call last):
        ...
        gridwatch.calibration.ground.CalibrationError: image points [0, 1, 2] lie on one line: four points must span a quadrilateral (no three in a row)
        """  # noqa: E501
        import cv2

        src = np.asarray(image, dtype=np.float64).reshape(-1, 2)
        dst = np.asarray(ground, dtype=np.float64).reshape(-1, 2)
        if len(src) != len(dst):
            raise CalibrationError(f"{len(src)} image points but {len(dst)} ground points")
        if len(src) < 4:
            raise CalibrationError(f"a ground plane needs at least 4 points, got {len(src)}")
        if not (np.isfinite(src).all() and np.isfinite(dst).all()):
            raise CalibrationError("points must be finite numbers")
        _check_spread(src, "image")
        _check_spread(dst, "ground")
        found, _ = cv2.findHomography(src, dst, 0)
        if found is None:
            raise CalibrationError("these points fix no ground plane (the fit is degenerate)")
        h: FloatArray = np.asarray(found, dtype=np.float64)
        if not np.isfinite(h).all() or abs(np.linalg.det(h)) < 1e-12:
            raise CalibrationError("these points fix no ground plane (the fit is degenerate)")
        w = src @ h[2, :2] + h[2, 2]
        if not ((w > 0).all() or (w < 0).all()):
            raise CalibrationError(
                "the points lie on both sides of the fitted horizon: some image/ground pairs "
                "are swapped or mistyped"
            )
        if (w < 0).all():
            h = -h  # the same map; keep w > 0 below the horizon
        plane = cls(h, (), "points")
        mapped = plane.to_ground(src)
        errors = tuple(float(e) for e in np.linalg.norm(mapped - dst, axis=1))
        return cls(h, errors, "points")

    @classmethod
    def from_camera(
        cls, height_m: float, tilt_deg: float, hfov_deg: float, aspect: float = 16 / 9
    ) -> GroundPlane:
        """A pinhole camera ``height_m`` above flat ground, tilted ``tilt_deg`` below the
        horizontal, ``hfov_deg`` wide, picture ``aspect`` = width / height.

        >>> g = GroundPlane.from_camera(10.0, 45.0, 90.0, aspect=1.0)
        >>> [round(float(v), 3) for v in g.to_ground([(0.5, 0.5)])[0]]  # the centre: 10 m ahead
        [0.0, 10.0]
        >>> bool(np.isnan(g.to_ground([(0.5, 0.0)])[0, 0]))   # 45° up from the axis: the horizon
        True
        """
        checks = (
            ("height_m", height_m, 0.0 < height_m < math.inf, "> 0"),
            ("tilt_deg", tilt_deg, 0.0 < tilt_deg <= 90.0, "in (0, 90]"),
            ("hfov_deg", hfov_deg, 0.0 < hfov_deg < 180.0, "in (0, 180)"),
            ("aspect", aspect, 0.0 < aspect < math.inf, "> 0"),
        )
        for name, v, ok, want in checks:
            if not ok:
                raise CalibrationError(f"{name} must be {want}, got {v}")
        t = math.radians(tilt_deg)
        f = 0.5 / math.tan(math.radians(hfov_deg) / 2.0)  # focal length in picture widths
        s, c, a = math.sin(t), math.cos(t), aspect
        # ray of (u, v): (u - .5, (v - .5)/a, f) in the camera; rotated down by t; meets z = 0
        h = np.array(
            [
                [height_m, 0.0, -0.5 * height_m],
                [0.0, -height_m * s / a, height_m * (f * c + 0.5 * s / a)],
                [0.0, c / a, f * s - 0.5 * c / a],
            ]
        )
        return cls(h, (), "camera")

    # -- what it answers ------------------------------------------------------------------

    @property
    def rms_error_m(self) -> float:
        """Root mean square of the fitted points' residuals, metres (0 for a camera model)."""
        if not self.errors_m:
            return 0.0
        return math.sqrt(sum(e * e for e in self.errors_m) / len(self.errors_m))

    @property
    def max_error_m(self) -> float:
        return max(self.errors_m, default=0.0)

    def to_ground(self, points: Sequence[Sequence[float]] | FloatArray) -> FloatArray:
        """(n, 2) normalized image points → (n, 2) ground metres; NaN at/above the horizon."""
        p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        hom = np.c_[p, np.ones(len(p))] @ self.h.T
        w = hom[:, 2:3]
        with np.errstate(divide="ignore", invalid="ignore"):
            out: FloatArray = hom[:, :2] / w
        out[(w[:, 0] <= 1e-12)] = np.nan
        return out

    def ground_of(self, point: Sequence[float]) -> Point:
        """One image point → ground metres; :class:`CalibrationError` above the horizon."""
        g = self.to_ground([point])[0]
        if not np.isfinite(g).all():
            raise CalibrationError(
                f"image point ({point[0]:g}, {point[1]:g}) is at or above the horizon"
            )
        return (float(g[0]), float(g[1]))

    def distance(self, a: Sequence[float], b: Sequence[float]) -> float:
        """Metres on the ground between two image points."""
        return math.dist(self.ground_of(a), self.ground_of(b))

    def area(self, polygon: Sequence[Sequence[float]]) -> float:
        """Square metres of ground inside an image polygon (a zone's)."""
        g = self.to_ground(polygon)
        if not np.isfinite(g).all():
            raise CalibrationError("the polygon reaches the horizon: its ground area is unbounded")
        return polygon_area(g)


def speed_of(samples: Sequence[tuple[float, float, float]], min_span_s: float) -> float | None:
    """Speed (m/s) of a track from ``(ts, x_m, y_m)`` samples: the least-squares velocity over
    all of them (one jittery box moves it little), ``None`` while they span less than
    ``min_span_s`` (too short to tell a runner from a jump of the box).

    >>> speed_of([(0.0, 0, 0), (0.5, 1.5, 0), (1.0, 3, 0.0)], 0.5)
    3.0
    >>> speed_of([(0.0, 0, 0), (0.2, 1, 0)], 0.5) is None
    True
    """
    if len(samples) < 2:
        return None
    a = np.asarray(samples, dtype=np.float64)
    t = a[:, 0] - a[0, 0]
    if t[-1] - t[0] < min_span_s or t[-1] <= 0:
        return None
    tc = t - t.mean()
    denom = float(np.dot(tc, tc))
    vx = float(np.dot(tc, a[:, 1] - a[:, 1].mean())) / denom
    vy = float(np.dot(tc, a[:, 2] - a[:, 2].mean())) / denom
    return math.hypot(vx, vy)

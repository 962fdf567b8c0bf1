"""A synthetic fall composited from real footage: the ``fall`` recipe op.

No footage of a fall can be had offline, so a positive is built as honestly as we can from
vtest itself: a real pedestrian, at the moment ``at_s``, is cut out of the frame (pixels that
differ from the scene's median background), and from then on

* the real person is erased: their box (``erase`` keyframes [t, x1, y1, x2, y2] from ``at_s``
  on, labelled from the frames, interpolated; without keyframes, ``box``) is painted with the
  median background, which on grass or pavement is the same ground they walked on;
* their own cut-out is rotated about their feet, from standing to lying over ``fall_s``
  seconds, and pasted back with a feathered edge, lying still on the ground for the rest of
  the clip.

Everything else in the frame (other people, light, compression) is the real video. Scenarios
built with it are marked ``synthetic: true`` and reported apart from real ones.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

Image = npt.NDArray[np.uint8]
_BACKGROUND: dict[str, Image] = {}


def median_background() -> Image:
    """Median of every 5th vtest frame: the scene without its (moving) people. Cached."""
    if "vtest" in _BACKGROUND:
        return _BACKGROUND["vtest"]
    import cv2

    from gridwatch.media_cache import resolve_cache_dir, vtest_path

    path = resolve_cache_dir() / "scenarios" / "vtest-median-v1.png"
    if path.is_file():
        read = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if read is not None:
            img = np.asarray(read, dtype=np.uint8)
            _BACKGROUND["vtest"] = img
            return img
    cap = cv2.VideoCapture(str(vtest_path()))
    frames = []
    i = 0
    while True:
        ok, f = cap.read()
        if not ok:
            break
        if i % 5 == 0:
            frames.append(f)
        i += 1
    cap.release()
    bg: Image = np.asarray(np.median(np.stack(frames), axis=0), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), bg)
    _BACKGROUND["vtest"] = bg
    return bg


def _interp_box(keys: Sequence[Sequence[float]], t: float) -> tuple[int, int, int, int] | None:
    """Linear interpolation of [t, x1, y1, x2, y2] keyframes; None after the last one."""
    if not keys:
        return None
    ts = [k[0] for k in keys]
    if t > ts[-1]:
        return None
    arr = np.asarray(keys, dtype=np.float64)
    box = [float(np.interp(t, arr[:, 0], arr[:, j])) for j in range(1, 5)]
    return round(box[0]), round(box[1]), round(box[2]), round(box[3])


def cutout(frame: Image, background: Image, box: Sequence[int]) -> tuple[Image, Image]:
    """The person inside ``box`` and an alpha mask (0..255) of what differs from background."""
    import cv2

    x1, y1, x2, y2 = (int(v) for v in box)
    crop = frame[y1:y2, x1:x2].copy()
    diff = cv2.absdiff(crop, background[y1:y2, x1:x2]).astype(np.int32).sum(axis=2)
    mask = (diff > 45).astype(np.uint8) * 255
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel, iterations=2)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask)
    if n > 1:
        biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        mask = np.where(labels == biggest, 255, 0).astype(np.uint8)
    mask = cv2.GaussianBlur(mask, (5, 5), 0)
    return crop, mask


def fall_op(o: Mapping[str, Any]) -> Any:
    """Build the per-frame function of a ``fall`` op (see the module docstring).

    Parameters: ``at_s`` (clip seconds), ``box`` [x1, y1, x2, y2] pixels of the person at
    ``at_s``, ``erase`` list of [t, x1, y1, x2, y2] of where the real person is afterwards,
    ``direction`` left|right, ``fall_s`` (default 0.8), ``pad`` pixels around erased boxes.
    """
    import cv2

    at_s = float(o["at_s"])
    box = [int(v) for v in o["box"]]
    erase = [list(map(float, k)) for k in o.get("erase", [])]
    direction = str(o.get("direction", "left"))
    fall_s = float(o.get("fall_s", 0.8))
    pad = int(o.get("pad", 8))
    if direction not in ("left", "right"):
        raise ValueError("fall direction must be left or right")
    state: dict[str, Any] = {}

    def paint_background(img: Image, b: Sequence[int], bg: Image) -> None:
        h, w = img.shape[:2]
        x1, y1 = max(0, b[0] - pad), max(0, b[1] - pad)
        x2, y2 = min(w, b[2] + pad), min(h, b[3] + pad)
        img[y1:y2, x1:x2] = bg[y1:y2, x1:x2]

    def apply(i: int, t: float, img: Image) -> Image:
        if t < at_s:
            return img
        bg = median_background()
        out = img.copy()
        if "crop" not in state:
            state["crop"], state["mask"] = cutout(img, bg, box)
        if not erase:
            paint_background(out, box, bg)
        moving = _interp_box(erase, t)
        if moving is not None:
            paint_background(out, moving, bg)
        crop: Image = state["crop"]
        mask: Image = state["mask"]
        angle = 90.0 * min(1.0, (t - at_s) / max(fall_s, 1e-6))
        if direction == "right":
            angle = -angle
        h, w = crop.shape[:2]
        feet = (w / 2.0, float(h))
        m = cv2.getRotationMatrix2D(feet, angle, 1.0)
        # canvas large enough for any rotation about the feet
        size = 2 * max(h, w) + 4
        m[0, 2] += size / 2 - feet[0]
        m[1, 2] += size / 2 - feet[1]
        rc = cv2.warpAffine(crop, m, (size, size), flags=cv2.INTER_LINEAR)
        rm = cv2.warpAffine(mask, m, (size, size), flags=cv2.INTER_LINEAR)
        # the feet stay where they were on the ground
        fx, fy = box[0] + feet[0], box[1] + feet[1]
        ox, oy = round(fx - size / 2), round(fy - size / 2)
        H, W = out.shape[:2]
        x1, y1 = max(0, ox), max(0, oy)
        x2, y2 = min(W, ox + size), min(H, oy + size)
        if x2 <= x1 or y2 <= y1:
            return out
        sub = out[y1:y2, x1:x2].astype(np.float32)
        a = rm[y1 - oy : y2 - oy, x1 - ox : x2 - ox].astype(np.float32)[..., None] / 255.0
        fg = rc[y1 - oy : y2 - oy, x1 - ox : x2 - ox].astype(np.float32)
        out[y1:y2, x1:x2] = (a * fg + (1 - a) * sub).astype(np.uint8)
        return out

    return apply

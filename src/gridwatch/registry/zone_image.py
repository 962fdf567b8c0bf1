"""``camera zone-image``: a picture of the camera with its zones, masks and rules drawn on it.

Until the console's zone editor exists, this is how an engineer checks that a polygon typed as
numbers covers the pavement they meant. Privacy masks are filled black first (the picture is
a snapshot like any other, and masks apply to every picture) and outlined in red so the
engineer can see where they are; zones are outlined in amber with their id and the rules
that use them written next to them.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from gridwatch.config import CameraConfig
from gridwatch.ingest.masks import PrivacyMasker, polygon_pixels

ZONE_COLOR = (0, 215, 255)  # amber (BGR), as in alert snapshots
MASK_OUTLINE = (0, 0, 255)  # red


def _label(
    img: npt.NDArray[np.uint8], text: str, at: tuple[int, int], color: tuple[int, int, int]
) -> None:
    font = cv2.FONT_HERSHEY_SIMPLEX
    scale = max(0.45, min(img.shape[:2]) / 1000)
    (tw, th), base = cv2.getTextSize(text, font, scale, 1)
    x, y = max(0, at[0]), max(th + base + 2, at[1])
    cv2.rectangle(img, (x, y - th - base - 2), (x + tw + 4, y + 2), (0, 0, 0), cv2.FILLED)
    cv2.putText(img, text, (x + 2, y - base), font, scale, color, 1, cv2.LINE_AA)


def draw_zones(image_bgr: npt.NDArray[np.uint8], camera: CameraConfig, quality: int = 90) -> bytes:
    """JPEG of ``image_bgr`` (not modified) with ``camera``'s masks, zones and rules drawn."""
    img = np.ascontiguousarray(image_bgr).copy()
    h, w = img.shape[:2]
    thick = max(2, round(min(w, h) / 300))
    PrivacyMasker(m.polygon for m in camera.privacy_masks).apply_image(img)
    for mask in camera.privacy_masks:
        px = polygon_pixels(mask.polygon, w, h)
        cv2.polylines(img, [px], True, MASK_OUTLINE, thick, cv2.LINE_AA)
        x, y = px.reshape(-1, 2).min(axis=0)
        _label(img, f"mask {mask.id}", (int(x) + 4, int(y) + 20), MASK_OUTLINE)
    for zone in camera.zones:
        px = polygon_pixels(zone.polygon, w, h)
        cv2.polylines(img, [px], True, ZONE_COLOR, thick, cv2.LINE_AA)
        rules = [
            f"{r.type}" + (f" >= {r.min_count}" if hasattr(r, "min_count") else "")
            for r in camera.rules
            if getattr(r, "zone", None) == zone.id
        ]
        x, y = px.reshape(-1, 2).min(axis=0)
        text = zone.id + (f": {', '.join(rules)}" if rules else " (no rules)")
        _label(img, text, (int(x) + 4, int(y) + 20), ZONE_COLOR)
    ok, buf = cv2.imencode(".jpg", img, [int(cv2.IMWRITE_JPEG_QUALITY), quality])
    if not ok:
        raise RuntimeError("OpenCV could not encode the zone image")
    return bytes(buf.tobytes())

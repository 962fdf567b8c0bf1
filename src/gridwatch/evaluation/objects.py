"""A synthetic object left in the scene: the ``object`` recipe op.

No offline footage shows a bag being left behind, so the abandoned-object scenarios paste one
into the real vtest footage: a box-shaped thing (a bag, a crate, a bench) of a given colour,
with a little texture (sensor-like noise, a lighter top face) and a soft shadow on the ground
below it, present from ``from_s`` to ``to_s`` (the recipe's window) and otherwise absent.
Everything around it (people walking past and in front of it, light, compression) is the real
video, except that the object is drawn over people who pass behind it: it has no depth.
Scenarios built with it are marked ``synthetic: true``.

Recipe fields: ``box`` ``[x1, y1, x2, y2]`` (normalized; y2 is where it stands on the
ground), ``color`` ``[b, g, r]`` (default a dark blue bag), ``noise`` (gray levels, default 6),
``seed``.

>>> op = object_op({"op": "object", "box": [0.25, 0.5, 0.5, 0.75], "color": [10, 20, 200]})
>>> out = op(0, 0.0, np.full((40, 40, 3), 128, np.uint8))
>>> out[12:28, 12:18].mean(axis=(0, 1)).round().tolist()[2] > 150, int(out[0, 0, 0])
(True, 128)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

Image = npt.NDArray[np.uint8]


def object_op(o: Mapping[str, Any]) -> Callable[[int, float, Image], Image]:
    """The op's frame function (see the module docstring)."""
    import cv2

    try:
        x1, y1, x2, y2 = (float(v) for v in o["box"])
    except (KeyError, TypeError, ValueError):
        raise ValueError("object: box must be [x1, y1, x2, y2] (normalized)") from None
    if not (0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1):
        raise ValueError(f"object: box {o['box']} must lie inside 0..1 with x1 < x2, y1 < y2")
    color = np.array(o.get("color", [60, 35, 25]), dtype=np.float32).reshape(3)
    noise = float(o.get("noise", 6.0))
    seed = int(o.get("seed", 0))
    cache: dict[tuple[int, int], tuple[Image, npt.NDArray[np.float32], tuple[int, ...]]] = {}

    def sprite(h: int, w: int) -> tuple[Image, npt.NDArray[np.float32], tuple[int, ...]]:
        """The object's pixels, its alpha (feathered edge, shadow) and where it goes."""
        if (h, w) in cache:
            return cache[(h, w)]
        a, b = round(x1 * w), round(y1 * h)
        c, d = max(a + 2, round(x2 * w)), max(b + 2, round(y2 * h))
        bw, bh = c - a, d - b
        rng = np.random.default_rng(seed)
        body = np.tile(color, (bh, bw, 1))
        body[: max(1, bh // 4)] += 25  # the top face catches the light
        body += rng.normal(0, noise, body.shape).astype(np.float32)
        pad = max(2, bh // 3)  # room for the shadow below and the feathering
        top, left = max(0, b - 2), max(0, a - 2)
        bottom, right = min(h, d + pad), min(w, c + 2)
        canvas = np.zeros((bottom - top, right - left, 3), np.float32)
        alpha = np.zeros(canvas.shape[:2], np.float32)
        shade = np.zeros(canvas.shape[:2], np.float32)
        oy, ox = b - top, a - left
        canvas[oy : oy + bh, ox : ox + bw] = body[: canvas.shape[0] - oy, : canvas.shape[1] - ox]
        alpha[oy : oy + bh, ox : ox + bw] = 1.0
        sy = min(canvas.shape[0], oy + bh + pad // 2)
        shade[oy + bh - 1 : sy, ox : ox + bw] = 0.45  # a shadow just below, on the ground
        alpha = cv2.GaussianBlur(alpha, (3, 3), 0.8)
        shade = cv2.GaussianBlur(shade, (5, 5), 1.5)
        weights = np.stack([alpha, shade], -1).astype(np.float32)
        cache[(h, w)] = (
            np.clip(canvas, 0, 255).astype(np.uint8),
            weights,
            (top, bottom, left, right),
        )
        return cache[(h, w)]

    def f(i: int, t: float, img: Image) -> Image:
        h, w = img.shape[:2]
        pix, weights, (top, bottom, left, right) = sprite(h, w)
        out = img.copy()
        region = out[top:bottom, left:right].astype(np.float32)
        alpha, shade = weights[..., :1], weights[..., 1:]
        region = region * (1 - shade * (1 - alpha))  # darken the ground under it
        region = alpha * pix.astype(np.float32) + (1 - alpha) * region
        out[top:bottom, left:right] = np.clip(region, 0, 255).astype(np.uint8)
        return out

    return f

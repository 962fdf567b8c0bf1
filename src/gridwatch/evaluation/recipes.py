"""Clips derived from real video by recipes: cut, crop, blur, black-out, cover, freeze, shift,
brightness, a composited fall and a pasted object (:mod:`gridwatch.evaluation.objects`).

Only one real street scene is available offline (OpenCV's ``vtest.avi`` from Debian's
``opencv-doc``), so evaluation scenarios are built from it: the incidents a recipe *creates*
(a lens blacked out, a frozen picture, a person lying down) are synthetic and the scenarios that
use them say so; cuts and crops of the unaltered footage stay real.

A recipe is a mapping (``recipe.yaml`` in a scenario)::

    source: vtest            # the only source: /usr/share/doc/opencv-doc/examples/data/vtest.avi
    start_s: 10              # cut
    duration_s: 20
    ops:                     # applied in order to every frame in [from_s, to_s) of the cut
      - {op: blur, sigma: 4, from_s: 8}
    stream:                  # faults injected while replaying, not written into the clip
      - {kind: stall, from_s: 5, to_s: 20}

The clip is encoded as the demo video is (H.264, a key frame every 2 s, no B-frames), so it
goes through the same decoder as a camera's stream, and cached under the recipe's hash.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import subprocess
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from gridwatch.evaluation.replay import StreamFault

log = logging.getLogger(__name__)

RECIPE_VERSION = "r2"
"""Bump when an op's output changes, so cached clips are rebuilt."""
SOURCE_FPS = 10.0
Image = npt.NDArray[np.uint8]


class RecipeError(ValueError):
    """A recipe that cannot be built; the message names the op and the field."""


@dataclass(frozen=True)
class Recipe:
    source: str
    start_s: float
    duration_s: float | None
    ops: tuple[Mapping[str, Any], ...]
    stream: tuple[StreamFault, ...]

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Recipe:
        unknown = set(data) - {"source", "start_s", "duration_s", "ops", "stream", "notes"}
        if unknown:
            raise RecipeError(f"unknown recipe keys {sorted(unknown)}")
        source = str(data.get("source", "vtest"))
        if source != "vtest":
            raise RecipeError(f"unknown source {source!r}; the only source is 'vtest'")
        ops = tuple(dict(o) for o in data.get("ops") or ())
        for i, o in enumerate(ops):
            if o.get("op") not in OPS:
                raise RecipeError(f"ops[{i}]: unknown op {o.get('op')!r}; known: {sorted(OPS)}")
        stream = []
        for i, f in enumerate(data.get("stream") or ()):
            if f.get("kind") not in ("silence", "stall"):
                raise RecipeError(f"stream[{i}]: kind must be silence or stall")
            stream.append(StreamFault(f["kind"], float(f["from_s"]), float(f["to_s"])))
        dur = data.get("duration_s")
        return cls(
            source,
            float(data.get("start_s", 0.0)),
            None if dur is None else float(dur),
            ops,
            tuple(stream),
        )

    def key(self) -> str:
        """Hash of what determines the clip's pixels (not the stream faults)."""
        blob = json.dumps(
            {"v": RECIPE_VERSION, "src": self.source, "ss": self.start_s, "t": self.duration_s,
             "ops": list(self.ops)},
            sort_keys=True,
        )  # fmt: skip
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def source_frames(recipe: Recipe) -> Iterator[Image]:
    """Frames of the cut from the original AVI (decoded once, never re-encoded twice)."""
    import cv2

    from gridwatch.media_cache import vtest_path

    cap = cv2.VideoCapture(str(vtest_path()))
    try:
        first = round(recipe.start_s * SOURCE_FPS)
        last = None if recipe.duration_s is None else first + round(recipe.duration_s * SOURCE_FPS)
        i = 0
        while True:
            ok, frame = cap.read()
            if not ok or (last is not None and i >= last):
                return
            if i >= first:
                yield np.asarray(frame, dtype=np.uint8)
            i += 1
    finally:
        cap.release()


# -- ops --------------------------------------------------------------------------------------

Op = Callable[[int, float, Image], Image]


def _window(o: Mapping[str, Any]) -> tuple[float, float]:
    return float(o.get("from_s", 0.0)), float(o.get("to_s", float("inf")))


def _ramp(o: Mapping[str, Any], t: float) -> float:
    """0 → 1 over ``ramp_s`` from ``from_s`` (a lens fogging up, a hand arriving)."""
    start, _ = _window(o)
    ramp = float(o.get("ramp_s", 0.0))
    return 1.0 if ramp <= 0 else float(np.clip((t - start) / ramp, 0.0, 1.0))


def _op_blur(o: Mapping[str, Any]) -> Op:
    import cv2

    sigma = float(o["sigma"])

    def f(i: int, t: float, img: Image) -> Image:
        s = sigma * _ramp(o, t)
        return img if s <= 0.05 else np.asarray(cv2.GaussianBlur(img, (0, 0), s), np.uint8)

    return f


def _op_blackout(o: Mapping[str, Any]) -> Op:
    level = int(o.get("level", 0))
    box = o.get("box")
    noise = float(o.get("noise", 0.0))
    rng = np.random.default_rng(int(o.get("seed", 0)))

    def f(i: int, t: float, img: Image) -> Image:
        out = img.copy()
        h, w = out.shape[:2]
        x1, y1, x2, y2 = (0.0, 0.0, 1.0, 1.0) if box is None else box
        region = out[round(y1 * h) : round(y2 * h), round(x1 * w) : round(x2 * w)]
        a = _ramp(o, t)
        fill = np.full_like(region, level)
        if noise > 0:
            fill = np.clip(fill + rng.normal(0, noise, region.shape), 0, 255).astype(np.uint8)
        region[:] = (a * fill + (1 - a) * region).astype(np.uint8)
        return out

    return f


def _op_freeze(o: Mapping[str, Any]) -> Op:
    held: list[Image] = []

    def f(i: int, t: float, img: Image) -> Image:
        if not held:
            held.append(img.copy())
        return held[0]

    return f


def _op_shift(o: Mapping[str, Any]) -> Op:
    import cv2

    dx, dy = float(o.get("dx", 0.0)), float(o.get("dy", 0.0))
    angle = float(o.get("rotate_deg", 0.0))
    scale = float(o.get("zoom", 1.0))

    def f(i: int, t: float, img: Image) -> Image:
        h, w = img.shape[:2]
        a = _ramp(o, t)
        m = cv2.getRotationMatrix2D((w / 2, h / 2), angle * a, 1 + (scale - 1) * a)
        m[0, 2] += dx * w * a
        m[1, 2] += dy * h * a
        out = cv2.warpAffine(img, m, (w, h), borderMode=cv2.BORDER_REFLECT)
        return np.asarray(out, dtype=np.uint8)

    return f


def _op_brightness(o: Mapping[str, Any]) -> Op:
    gain, bias = float(o.get("gain", 1.0)), float(o.get("bias", 0.0))

    def f(i: int, t: float, img: Image) -> Image:
        a = _ramp(o, t)
        g, b = 1 + (gain - 1) * a, bias * a
        return np.asarray(np.clip(img.astype(np.float32) * g + b, 0, 255), dtype=np.uint8)

    return f


def _op_crop(o: Mapping[str, Any]) -> Op:
    x1, y1, x2, y2 = (float(v) for v in o["box"])

    def f(i: int, t: float, img: Image) -> Image:
        h, w = img.shape[:2]
        # even sizes: H.264 in yuv420p needs them
        a, b = round(x1 * w), round(y1 * h)
        c = a + (round((x2 - x1) * w) // 2) * 2
        d = b + (round((y2 - y1) * h) // 2) * 2
        return np.ascontiguousarray(img[b:d, a:c])

    return f


def _op_fall(o: Mapping[str, Any]) -> Op:
    from gridwatch.evaluation.composite import fall_op

    op: Op = fall_op(o)
    return op


def _op_object(o: Mapping[str, Any]) -> Op:
    from gridwatch.evaluation.objects import object_op

    try:
        return object_op(o)
    except ValueError as exc:
        raise RecipeError(str(exc)) from None


OPS: dict[str, Callable[[Mapping[str, Any]], Op]] = {
    "blur": _op_blur,
    "blackout": _op_blackout,
    "freeze": _op_freeze,
    "shift": _op_shift,
    "brightness": _op_brightness,
    "crop": _op_crop,
    "fall": _op_fall,
    "object": _op_object,
}


def render(recipe: Recipe) -> Iterator[Image]:
    """The recipe's frames, in order, before encoding."""
    ops = [(o, OPS[str(o["op"])](o)) for o in recipe.ops]
    for i, frame in enumerate(source_frames(recipe)):
        t = i / SOURCE_FPS
        img = frame
        for o, fn in ops:
            start, end = _window(o)
            if o["op"] == "crop" or start <= t < end:
                img = fn(i, t, img)
        yield img


def build_clip(recipe: Recipe, cache_dir: Path | None = None) -> Path:
    """Encode the recipe's frames to H.264 MP4 (cached by the recipe's hash)."""
    from gridwatch.media_cache import resolve_cache_dir

    target = resolve_cache_dir(cache_dir) / "scenarios" / f"clip-{recipe.key()}.mp4"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise RecipeError("ffmpeg not found: it encodes scenario clips (apt-get install ffmpeg)")
    frames = render(recipe)
    first = next(frames, None)
    if first is None:
        raise RecipeError("the cut has no frames (start past the end of the source?)")
    h, w = first.shape[:2]
    tmp = target.with_name(f".{target.stem}.{id(recipe)}.tmp.mp4")
    cmd = [
        ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
        "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{w}x{h}", "-r", f"{SOURCE_FPS:g}",
        "-i", "-", "-an", "-c:v", "libx264", "-preset", "veryfast", "-crf", "20",
        "-g", "20", "-keyint_min", "20", "-sc_threshold", "0", "-bf", "0",
        "-pix_fmt", "yuv420p", "-movflags", "+faststart", "-f", "mp4", str(tmp),
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdin is not None
    try:
        proc.stdin.write(np.ascontiguousarray(first).tobytes())
        for img in frames:
            if img.shape[:2] != (h, w):
                raise RecipeError(f"frame size changed mid-clip: {img.shape[:2]} vs {(h, w)}")
            proc.stdin.write(np.ascontiguousarray(img).tobytes())
        proc.stdin.close()
        assert proc.stderr is not None
        err = proc.stderr.read()  # -loglevel error: a few lines at most
        proc.wait(timeout=300)
        if proc.returncode != 0:
            raise RecipeError(f"ffmpeg failed: {err.decode(errors='replace')[-1500:]}")
        tmp.replace(target)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        tmp.unlink(missing_ok=True)
    log.info("built %s", target)
    return target


def ops_summary(ops: Sequence[Mapping[str, Any]]) -> str:
    """``blur(sigma=4) 8–∞ s`` style one-liner for reports."""
    parts = []
    for o in ops:
        args = ", ".join(f"{k}={v}" for k, v in o.items() if k not in ("op", "from_s", "to_s"))
        start, end = _window(o)
        span = "" if (start, end) == (0.0, float("inf")) else f" {start:g}–{end:g} s"
        parts.append(f"{o['op']}({args}){span}")
    return "; ".join(parts)

"""Camera scenes for many-camera benchmarks and tests, made offline from the real demo video.

* :func:`busy_video` — the real pedestrian video (vtest) at a camera resolution: 768×576 as
  it is, or scaled to fill 640×360 / 1280×720 (16:9, cropped top and bottom). 10 fps, H.264,
  a keyframe every 2 s, no B-frames, like the demo video.
* :func:`idle_video` — the same street **with nobody in it**: the per-pixel median of vtest
  frames (people walk through, the median keeps the background), with temporal grain as a
  real sensor adds (``noise=alls=…:allf=t``) so the motion gate faces noise, not a frozen
  picture. An empty square at night or a quiet school gate at noon looks like this. It is 2
  minutes long: the RTSP server announces a looping file's duration, OpenCV turns it into a
  frame count, and ultralytics' stream loader stops reading after that many frames (a real
  camera announces none), so a short loop would starve the naive baseline of the benchmark.

Files are cached next to the demo video (``$GRIDWATCH_CACHE`` or ``~/.cache/gridwatch``),
named by their parameters, written under a temporary name and renamed.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import numpy.typing as npt

from gridwatch.media_cache import VTEST_FPS, MediaError, resolve_cache_dir
from gridwatch_devtools.media import demo_video

log = logging.getLogger(__name__)

_VERSION = "v1"
_X264 = [
    "-c:v", "libx264", "-preset", "veryfast", "-crf", "23",
    "-g", str(2 * VTEST_FPS), "-keyint_min", str(2 * VTEST_FPS), "-sc_threshold", "0",
    "-bf", "0", "-pix_fmt", "yuv420p", "-r", str(VTEST_FPS), "-movflags", "+faststart",
]  # fmt: skip


def _ffmpeg() -> str:
    path = shutil.which("ffmpeg")
    if path is None:
        raise MediaError("ffmpeg not found: it makes the benchmark scenes (apt-get install ffmpeg)")
    return path


def _fit(size: tuple[int, int]) -> str:
    w, h = size
    return f"scale={w}:-2,crop={w}:{h},setsar=1" if (w, h) != (768, 576) else "setsar=1"


def _run(cmd: list[str], target: Path) -> Path:
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem}.", suffix=".mp4")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        done = subprocess.run(
            [*cmd, str(tmp)], capture_output=True, text=True, timeout=600, check=False
        )
        if done.returncode != 0:
            raise MediaError(f"ffmpeg failed making {target.name}:\n{done.stderr[-2000:]}")
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    log.info("made %s", target)
    return target


def busy_video(size: tuple[int, int] = (768, 576), cache_dir: Path | None = None) -> Path:
    """The real pedestrian scene at ``size`` (see the module docs)."""
    src = demo_video(cache_dir)
    if size == (768, 576):
        return src
    w, h = size
    target = resolve_cache_dir(cache_dir) / f"scene-busy-{_VERSION}-{w}x{h}.mp4"
    if target.is_file():
        return target
    cmd = [_ffmpeg(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i", str(src)]
    return _run([*cmd, "-vf", _fit(size), "-an", *_X264, "-f", "mp4"], target)


def empty_background(cache_dir: Path | None = None, samples: int = 80) -> npt.NDArray[np.uint8]:
    """The vtest street without people: the per-pixel median of ``samples`` frames (BGR)."""
    import av

    frames: list[npt.NDArray[np.uint8]] = []
    with av.open(str(demo_video(cache_dir))) as c:
        stream = c.streams.video[0]
        total = stream.frames or 795
        step = max(1, total // samples)
        for i, f in enumerate(c.decode(stream)):
            if i % step == 0:
                frames.append(np.asarray(f.to_ndarray(format="bgr24"), np.uint8))
    stack = np.stack(frames).astype(np.float32)
    return np.asarray(np.median(stack, axis=0), dtype=np.float32).astype(np.uint8)


def idle_video(
    size: tuple[int, int] = (768, 576),
    *,
    seconds: float = 120.0,
    grain: int = 3,
    cache_dir: Path | None = None,
) -> Path:
    """The empty street at ``size`` with sensor-like grain (see the module docs)."""
    import cv2

    w, h = size
    target = (
        resolve_cache_dir(cache_dir)
        / f"scene-idle-{_VERSION}-{w}x{h}-{seconds:g}s-grain{grain}.mp4"
    )
    if target.is_file():
        return target
    still = target.with_suffix(".png")
    cv2.imwrite(str(still), empty_background(cache_dir))
    try:
        vf = f"{_fit(size)},noise=alls={grain}:allf=t" if grain else _fit(size)
        cmd = [
            _ffmpeg(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
            "-loop", "1", "-framerate", str(VTEST_FPS), "-i", str(still), "-t", f"{seconds:g}",
            "-vf", vf, "-an", *_X264, "-f", "mp4",
        ]  # fmt: skip
        return _run(cmd, target)
    finally:
        still.unlink(missing_ok=True)

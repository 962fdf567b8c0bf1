"""Real demo video, available offline: OpenCV's ``vtest.avi`` converted once to H.264 MP4.

``vtest.avi`` (Debian ``opencv-doc``) is real footage from an elevated fixed camera with
pedestrians, 768×576 at 10 fps, 795 frames: the kind of scene gridwatch watches. It is MS-MPEG4
in AVI, which RTSP cannot carry, so it is converted once to H.264 in MP4 and cached:

* ``-g 20`` (a keyframe every 2 s) bounds how long a client joining a live stream waits for
  its first frame, and keeps keyframe-only decoding cheap;
* ``-bf 0``: no B-frames, like most IP cameras' streams (decode order = display order);
* ``yuv420p``, the size and the frame rate of the source are kept, ``+faststart`` puts the
  index first so the file streams and demuxes without seeking to its end.

Cuts (``start_s``/``duration_s``) are cached separately, named by their parameters, so a
test can use a few seconds of video and still hit the cache on the next run.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path

from gridwatch.media_cache import (
    VTEST_FPS,
    VTEST_SIZE,
    MediaError,
    _atomic_target,
    _locked,
    resolve_cache_dir,
    vtest_path,
)

__all__ = ["VTEST_FPS", "VTEST_SIZE", "demo_video", "resolve_cache_dir", "vtest_path"]

log = logging.getLogger(__name__)

# Bump when the encoding parameters change, so stale cached files are not reused.
_ENCODING_VERSION = "v1"
_FFMPEG_TIMEOUT_S = 300.0


def _cut_name(start_s: float, duration_s: float | None) -> str:
    dur = "all" if duration_s is None else f"{duration_s:g}"
    return f"vtest-h264-{_ENCODING_VERSION}-ss{start_s:g}-t{dur}.mp4"


def demo_video(
    cache_dir: Path | None = None, *, start_s: float = 0, duration_s: float | None = None
) -> Path:
    """The demo video (or a cut of it) as H.264 MP4, converted on first use and cached.

    ``start_s``/``duration_s`` select a cut, in seconds of the 79.5 s source. The file is
    written to a temporary name and renamed, so a crash or a parallel run never leaves a
    half-written MP4 under the final name.
    """
    if start_s < 0:
        raise ValueError(f"start_s must be >= 0, got {start_s}")
    if duration_s is not None and duration_s <= 0:
        raise ValueError(f"duration_s must be > 0, got {duration_s}")
    target = resolve_cache_dir(cache_dir) / _cut_name(start_s, duration_s)
    if target.is_file():
        return target
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise MediaError("ffmpeg not found: it converts the demo video (apt-get install ffmpeg)")
    source = vtest_path(cache_dir)
    with _locked(target):
        if target.is_file():  # another process made it while we waited for the lock
            return target
        tmp = _atomic_target(target)
        try:
            _convert(ffmpeg, source, tmp, start_s, duration_s)
            _check(tmp, source, start_s)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
    log.info("converted %s to %s", source, target)
    return target


def _convert(
    ffmpeg: str, source: Path, out: Path, start_s: float, duration_s: float | None
) -> None:
    cmd = [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
    if start_s:
        cmd += ["-ss", f"{start_s:g}"]  # input seek: accurate when transcoding
    cmd += ["-i", str(source)]
    if duration_s is not None:
        cmd += ["-t", f"{duration_s:g}"]
    cmd += [
        "-map", "0:v:0", "-an", "-sn",
        "-c:v", "libx264", "-preset", "veryfast", "-crf", "20",
        "-g", str(2 * VTEST_FPS), "-keyint_min", str(2 * VTEST_FPS), "-sc_threshold", "0",
        "-bf", "0", "-pix_fmt", "yuv420p", "-r", str(VTEST_FPS),
        "-movflags", "+faststart", "-f", "mp4", str(out),
    ]  # fmt: skip
    log.debug("running %s", " ".join(cmd))
    try:
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=_FFMPEG_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        raise MediaError(
            f"ffmpeg took over {_FFMPEG_TIMEOUT_S:.0f} s to convert {source}"
        ) from None
    if done.returncode != 0:
        raise MediaError(
            f"ffmpeg failed (rc {done.returncode}) converting {source}:\n{done.stderr[-2000:]}"
        )


def _check(path: Path, source: Path, start_s: float) -> None:
    """Refuse to cache an empty or wrong file (e.g. a cut starting past the end)."""
    import av  # a project dependency; imported here to keep module import cheap

    with av.open(str(path)) as container:
        video = container.streams.video
        frames = video[0].frames if video else 0
        size = (video[0].codec_context.width, video[0].codec_context.height) if video else None
    if frames <= 0:
        raise MediaError(
            f"ffmpeg made no frames for the cut starting at {start_s:g} s of {source} "
            "(is the start past the end of the video?)"
        )
    if size != VTEST_SIZE:
        raise MediaError(f"converted video is {size}, expected {VTEST_SIZE}")

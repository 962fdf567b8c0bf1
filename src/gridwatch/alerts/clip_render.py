"""An evidence clip made fit for a viewer: privacy masks painted, people blurred, re-encoded.

The stored clip is the camera's own H.264 (:mod:`gridwatch.alerts.clips`), so nothing in it is
masked or blurred. :func:`render_clip` decodes it (PyAV), paints the camera's privacy masks
black on every picture (:class:`~gridwatch.ingest.masks.PrivacyMasker`, as analysis and the
live view do), optionally blurs people with the live view's blur on the video's own clock
(:class:`~gridwatch.alerts.people_blur.VideoTimeBlur`: a look every half second of video, boxes
grown by the look's age, fine mosaic, changed-blocks guard, the whole picture when the detector
fails) and encodes the result with libx264 (``veryfast``, yuv420p, the clip's frame rate, a
keyframe every two seconds) into a fragmented MP4 like the stored one. Each picture keeps its
timestamp, so the onset stays at the same offset (``Gw-Pre-Roll``); no B-frames, as a
fragmented MP4 has no edit list to hide their delay (the first picture would be at 0.2 s).

It is CPU work (decode, a detector look twice a second, encode): the clip service runs it on a
worker thread, one clip at a time, and caches the result. :attr:`RenderResult.cpu_s` is the
process's CPU time over the render (x264 and the detector use threads of their own).
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np
from av import VideoFrame

from gridwatch.alerts.clips import CLIP_TIME_BASE
from gridwatch.alerts.people_blur import BlurSettings, FindPeople, VideoTimeBlur
from gridwatch.ingest.masks import PrivacyMasker

MOVFLAGS = "frag_keyframe+empty_moov+default_base_moof"
"""The stored clips' MP4 flavour: fragmented, playable while written, seekable by fragment."""
_TIME_BASE = Fraction(1, CLIP_TIME_BASE)
DEFAULT_FPS = 10.0


class RenderCancelled(RuntimeError):
    """The render was asked to stop (the service is stopping)."""


@dataclass(frozen=True)
class RenderResult:
    mp4: bytes
    frames: int
    duration_s: float
    """Seconds of video (first to last picture, plus one frame)."""
    wall_s: float
    cpu_s: float
    """Process CPU seconds over the render (every thread: decoder, detector, x264)."""
    looks: int = 0
    look_failures: int = 0
    frames_whole: int = 0
    """Pictures pixelated whole (no usable look: fail closed)."""

    @property
    def cpu_per_video_s(self) -> float:
        return self.cpu_s / self.duration_s if self.duration_s > 0 else 0.0


def _frame_rate(stream: av.video.stream.VideoStream) -> float:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate:
            fps = float(rate)
            if 0.5 <= fps <= 240:
                return fps
    return DEFAULT_FPS


def _rate_fraction(fps: float) -> Fraction:
    return Fraction(round(fps * 1000), 1000)


def render_clip(
    mp4: bytes,
    *,
    masks: Sequence[Sequence[Sequence[float]]] = (),
    find_people: FindPeople | None = None,
    settings: BlurSettings | None = None,
    cancel: threading.Event | None = None,
    preset: str = "veryfast",
    crf: int = 23,
    threads: int = 0,
) -> RenderResult:
    """``mp4`` (a stored clip) with ``masks`` painted and, with ``find_people``, people
    blurred; re-encoded (see the module docstring). Raises :class:`RenderCancelled` when
    ``cancel`` is set, and PyAV's errors for a clip that does not decode."""
    t0, c0 = time.perf_counter(), time.process_time()
    masker = PrivacyMasker([[(float(x), float(y)) for x, y in m] for m in masks])
    blur = VideoTimeBlur(find_people, settings) if find_people is not None else None
    out_buf = io.BytesIO()
    frames = 0
    first_t: float | None = None
    last_t = 0.0
    with av.open(io.BytesIO(mp4), "r") as src:
        vin = src.streams.video[0]
        vin.thread_type = "AUTO"
        fps = _frame_rate(vin)
        with av.open(out_buf, "w", format="mp4", options={"movflags": MOVFLAGS}) as out:
            vout: av.video.stream.VideoStream | None = None
            last_tick = -1
            for frame in src.decode(vin):
                if cancel is not None and cancel.is_set():
                    raise RenderCancelled("the clip render was cancelled")
                t = float(frame.time) if frame.time is not None else frames / fps
                if first_t is None:
                    first_t = t
                t -= first_t
                image = np.array(frame.to_ndarray(format="bgr24"), dtype=np.uint8)
                h, w = image.shape[:2]
                if h % 2 or w % 2:  # yuv420p needs even sides
                    image = np.ascontiguousarray(image[: h - h % 2, : w - w % 2])
                masker.apply_image(image)
                if blur is not None:
                    blur(image, t)
                if vout is None:
                    vout = out.add_stream(
                        "libx264",
                        rate=_rate_fraction(fps),
                        options={"preset": preset, "crf": str(crf), "bf": "0"},
                    )
                    vout.width, vout.height = image.shape[1], image.shape[0]
                    vout.pix_fmt = "yuv420p"
                    vout.time_base = _TIME_BASE
                    vout.codec_context.time_base = _TIME_BASE
                    vout.codec_context.gop_size = max(1, round(2 * fps))
                    vout.codec_context.thread_count = threads
                tick = max(last_tick + 1, round(t * CLIP_TIME_BASE))
                last_tick = tick
                picture = VideoFrame.from_ndarray(image, format="bgr24")
                picture.pts, picture.time_base = tick, _TIME_BASE
                for packet in vout.encode(picture):
                    out.mux(packet)
                frames += 1
                last_t = t
            if vout is None:
                raise ValueError("the clip has no pictures")
            for packet in vout.encode(None):
                out.mux(packet)
    return RenderResult(
        mp4=out_buf.getvalue(),
        frames=frames,
        duration_s=last_t + 1.0 / fps,
        wall_s=time.perf_counter() - t0,
        cpu_s=time.process_time() - c0,
        looks=blur.looks if blur else 0,
        look_failures=blur.look_failures if blur else 0,
        frames_whole=blur.frames["whole"] if blur else 0,
    )

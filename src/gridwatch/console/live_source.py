"""One camera's decoded video as an aiortc track: the source that the live view relays.

Why not aiortc's ``MediaPlayer`` on the RTSP URL: measured here (tests' RTSP server, 768×576),
it opens the stream in its constructor and so blocks the event loop for the whole RTSP
handshake and probe (about 610 ms: every other viewer's video and every request of the
console stall meanwhile), joins its decode thread on the event loop when stopped (about
100 ms), and queues decoded frames without bound (a busy loop builds latency instead of
dropping frames). Both reach their first frame equally fast (about 615 ms). The ingest reader
already does what a live source needs, so this track wraps a
:class:`~gridwatch.ingest.reader.CameraReader` (worst loop stall measured: 4 ms):

* its decoder thread opens over RTSP/TCP with open and read timeouts, reconnects with backoff
  and never raises (principle 2: never block, never build latency);
* its one-slot buffer keeps only the newest picture; here the slot also wakes the event loop,
  so :meth:`LiveVideoSource.recv` awaits a frame without a thread blocked on it;
* frames are re-stamped with the capture clock (90 kHz since the first frame), so RTP
  timestamps follow real time whatever the camera's own timestamps do after a reconnect.

The hub opens one source per camera and shares it through ``MediaRelay``; :meth:`stop` ends
the decoder thread (within the read timeout) and ends every relayed track.

**Privacy** (DESIGN.md principle 8). The source paints the camera's privacy masks on every
frame it hands out (:class:`~gridwatch.ingest.masks.PrivacyMasker`, as analysis does), so no
viewer ever sees a masked area. Roles that get blurred snapshots watch a
:class:`BlurredVideoTrack` of it instead: a person detector (:class:`PeopleFinder`, the offline
default model through OpenVINO at the worker's input size) looks at the newest frame twice a
second on one background thread, and every frame is sent with the people of the latest look
pixelated, their boxes grown with the look's age (people walk), and whatever changed since the
look (a person who walked in, or out of a box) pixelated coarsely. It fails closed: until the
first look, when the latest look is older than ``max_age_s``, or when the detector fails, the
whole picture is pixelated.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import time
from collections.abc import Sequence
from concurrent.futures import Executor
from typing import Any

import numpy as np
import numpy.typing as npt
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import VideoFrame

from gridwatch.alerts.people_blur import (
    BlurSettings,
    FindPeople,
    Look,
    Outcome,
    PeopleFinder,
    blur_frame,
    look_at,
)
from gridwatch.ingest.latest import LatestSlot
from gridwatch.ingest.masks import PointNorm, PrivacyMasker
from gridwatch.ingest.reader import Backoff, CameraReader, RawFrame, StreamState
from gridwatch.registry.probe import ProbeError, classify_error

__all__ = [
    "BlurredVideoTrack",
    "CameraUnavailable",
    "FindPeople",
    "LiveVideoSource",
    "PeopleFinder",
]

BoxNorm = tuple[float, float, float, float]

log = logging.getLogger(__name__)

VIDEO_CLOCK_HZ = 90_000
_TIME_BASE = fractions.Fraction(1, VIDEO_CLOCK_HZ)
_OPEN_POLL_S = 0.02


class CameraUnavailable(RuntimeError):
    """The camera's stream could not be opened; the message is for people (no password)."""


class _LiveReader(CameraReader):
    """The ingest reader, keeping why its first open failed, classified as ``camera probe``
    does it (refused, unreachable, timeout, auth, not found...), with the fix to try."""

    first_error: ProbeError | None = None

    def _open(self) -> Any:
        started = time.monotonic()
        try:
            return super()._open()
        except Exception as exc:
            if self.stats.opens == 0 and self.first_error is None:
                elapsed = time.monotonic() - started
                self.first_error = classify_error(exc, self.url, elapsed, self.open_timeout_s)
            raise


class LiveVideoSource(MediaStreamTrack):
    """The decoded video of one camera, newest frame first, for ``MediaRelay`` to share.

    Create it inside the event loop, then ``await opened(timeout_s)``: it returns once the
    stream is open (RTSP handshake and probe done; the first picture follows at the next
    keyframe) and raises :class:`CameraUnavailable` when the first open fails or times out.
    """

    kind = "video"

    def __init__(
        self,
        camera_id: str,
        url: str,
        *,
        open_timeout_s: float = 5.0,
        read_timeout_s: float = 5.0,
        reconnect_max_s: float = 5.0,
        masks: Sequence[Sequence[PointNorm]] = (),
    ) -> None:
        super().__init__()
        self.camera_id = camera_id
        self.masker = PrivacyMasker(masks)
        """The camera's privacy masks, painted on every frame before it leaves."""
        self._slot: LatestSlot[RawFrame] = LatestSlot()
        self.reader = _LiveReader(
            camera_id,
            url,
            loop=True,  # a file standing in for a camera plays forever, like a camera
            open_timeout_s=open_timeout_s,
            read_timeout_s=read_timeout_s,
            backoff=Backoff(initial_s=0.5, max_s=reconnect_max_s),
            slot=self._slot,
        )
        self._open_timeout_s = open_timeout_s
        self._first_mono: float | None = None
        self.frames_sent = 0
        self.reader.start()

    @property
    def frames_dropped(self) -> int:
        """Decoded pictures replaced before the relay took them (the relay fell behind)."""
        return self._slot.dropped

    async def opened(self, timeout_s: float | None = None) -> None:
        """Wait until the stream is open; :class:`CameraUnavailable` if it cannot be.

        The reader reports through its stats and ``first_error`` (it never raises), so they
        are polled: a few dozen cheap reads during the RTSP handshake.
        """
        stats = self.reader.stats
        deadline = time.monotonic() + (self._open_timeout_s + 1 if timeout_s is None else timeout_s)
        while stats.opens == 0:
            error = self.reader.first_error
            if error is not None:
                raise CameraUnavailable(f"camera {self.camera_id} cannot be opened: {error}")
            if not self.reader.alive or stats.state is StreamState.STOPPED:
                raise CameraUnavailable(f"camera {self.camera_id}: the stream was stopped")
            if time.monotonic() >= deadline:
                raise CameraUnavailable(
                    f"camera {self.camera_id} did not answer within {self._open_timeout_s:g} s"
                )
            await asyncio.sleep(_OPEN_POLL_S)

    async def recv(self) -> VideoFrame:
        """The newest decoded picture, stamped with the capture clock."""
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            raw = self._slot.take()
            if raw is not None:
                return self._stamp(raw)
            await self._slot.wait(1.0)  # woken by the next frame, or by stop()

    def _stamp(self, raw: RawFrame) -> VideoFrame:
        if self._first_mono is None:
            self._first_mono = raw.mono_ts
        frame = raw.video_frame
        if self.masker:
            image = _bgr(frame)
            frame = VideoFrame.from_ndarray(self.masker.apply_image(image), format="bgr24")
        frame.pts = round((raw.mono_ts - self._first_mono) * VIDEO_CLOCK_HZ)
        frame.time_base = _TIME_BASE
        self.frames_sent += 1
        return frame

    def stop(self) -> None:
        """End the track (and so every relayed copy) and ask the decoder thread to stop.

        Does not wait: the thread ends within the read timeout (see :meth:`join`)."""
        if self.readyState == "live":
            log.info(
                "live source %s stopped: %d frames decoded, %d sent, %d dropped",
                self.camera_id,
                self.reader.stats.frames_decoded,
                self.frames_sent,
                self.frames_dropped,
            )
        super().stop()
        self.reader.stop()
        self._slot.interrupt()

    async def join(self, timeout_s: float) -> bool:
        """Wait (off the event loop) until the decoder thread has ended; False on timeout."""
        self.stop()
        await asyncio.to_thread(self.reader.stop, timeout_s)
        return not self.reader.alive


def _bgr(frame: VideoFrame) -> npt.NDArray[np.uint8]:
    """A BGR copy of ``frame``: a bgr24 frame's ``to_ndarray`` is a view of its buffer, and
    relayed frames are shared by every viewer (painting on a view would blur them all)."""
    image: npt.NDArray[np.uint8] = np.array(frame.to_ndarray(format="bgr24"), dtype=np.uint8)
    return image


class BlurredVideoTrack(MediaStreamTrack):
    """``source``'s frames with every person pixelated; the whole picture when unsure.

    ``find_people`` runs on ``executor`` on the newest frame at most every ``interval_s``
    (one look at a time); each frame goes out blurred by
    :func:`~gridwatch.alerts.people_blur.blur_frame` from the latest look (the same blur as
    the clip service's): the look's boxes, grown by ``margin`` plus ``walk_per_s`` of their
    width (and a sixth of that of their height) per second of the look's age, over a fine
    mosaic of the whole frame (blocks of 1/96 of its short side: a far person the detector
    missed is a few blocks). Blocks (1/``moved_divisor`` of the short side) whose mean
    brightness moved more than ``moved_threshold`` since the look's frame are pixelated as
    coarsely as a person: someone who entered the picture after the look, walked faster than
    the boxes grew or was missed is not shown in clear (on a close camera, people are large
    enough to keep a face through the fine mosaic: on the demo video zoomed ×3, four scenes,
    the worker's detector still found 2 of 12 people a blind look missed, none with this
    guard). No look yet, a look older than ``max_age_s`` or a failed look: the whole frame is
    pixelated (fail closed). Shared per camera through a ``MediaRelay``, so the detector's cost
    is per camera, not per viewer.
    """

    kind = "video"

    def __init__(
        self,
        source: MediaStreamTrack,
        find_people: FindPeople,
        executor: Executor,
        *,
        interval_s: float = 0.5,
        max_age_s: float = 1.2,
        margin: float = 0.2,
        walk_per_s: float = 3.0,
        retry_after_s: float = 5.0,
        base_divisor: int = 96,
        moved_divisor: int = 24,
        moved_threshold: float = 8.0,
    ) -> None:
        super().__init__()
        self._source = source
        self._find = find_people
        self._executor = executor
        self.settings = BlurSettings(
            interval_s=interval_s,
            max_age_s=max_age_s,
            margin=margin,
            walk_per_s=walk_per_s,
            retry_after_s=retry_after_s,
            base_divisor=base_divisor,
            moved_divisor=moved_divisor,
            moved_threshold=moved_threshold,
        )
        self._look: tuple[float, Look] | None = None
        self._pending: asyncio.Future[Look] | None = None
        self._next_look = 0.0
        self.looks = 0
        self.look_failures = 0
        self.look_ms = 0.0
        """Total detector time of the looks (their mean: ``look_ms / looks``)."""
        self.frames_people = 0
        self.frames_whole = 0
        self.frames_moved = 0
        """Frames that had blocks changed since their look (pixelated coarsely)."""

    def _start_look(self, image: npt.NDArray[np.uint8], now: float) -> None:
        def run() -> Look:
            t0 = time.perf_counter()
            look = look_at(image, self._find, self.settings)
            self.look_ms += 1000 * (time.perf_counter() - t0)
            return look

        self._next_look = now + self.settings.interval_s
        future = asyncio.get_running_loop().run_in_executor(self._executor, run)
        self._pending = future

        def done(f: asyncio.Future[Look]) -> None:
            self._pending = None
            if f.cancelled():
                return
            exc = f.exception()
            if exc is not None:
                self.look_failures += 1
                self._look = None
                self._next_look = time.monotonic() + self.settings.retry_after_s
                log.warning("live blur: the person detector failed (%s); blurring whole", exc)
                return
            self.looks += 1
            self._look = (now, f.result())

        future.add_done_callback(done)

    def _blur(self, image: npt.NDArray[np.uint8], now: float) -> Outcome:
        look = self._look
        outcome = blur_frame(
            image,
            None if look is None else look[1],
            0.0 if look is None else now - look[0],
            self.settings,
        )
        if outcome == "whole":
            self.frames_whole += 1
        else:
            self.frames_people += 1
            if outcome == "moved":
                self.frames_moved += 1
        return outcome

    async def recv(self) -> VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        frame = await self._source.recv()
        if not isinstance(frame, VideoFrame):  # pragma: no cover - video tracks only
            raise MediaStreamError
        image = _bgr(frame)
        now = time.monotonic()
        if self._pending is None and now >= self._next_look:
            self._start_look(image.copy(), now)
        self._blur(image, now)
        out = VideoFrame.from_ndarray(image, format="bgr24")
        out.pts, out.time_base = frame.pts, frame.time_base
        return out

    def stop(self) -> None:
        super().stop()
        self._source.stop()

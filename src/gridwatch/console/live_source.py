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
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import logging
import time
from typing import Any

from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import VideoFrame

from gridwatch.ingest.latest import LatestSlot
from gridwatch.ingest.reader import Backoff, CameraReader, RawFrame, StreamState
from gridwatch.registry.probe import ProbeError, classify_error

__all__ = ["CameraUnavailable", "LiveVideoSource"]

log = logging.getLogger(__name__)

VIDEO_CLOCK_HZ = 90_000
_TIME_BASE = fractions.Fraction(1, VIDEO_CLOCK_HZ)
_OPEN_POLL_S = 0.02


class CameraUnavailable(RuntimeError):
    """The camera's stream could not be opened; the message is for people (no password)."""


class _WakingSlot(LatestSlot[RawFrame]):
    """The reader's one-slot buffer, which also wakes the event loop on each new frame."""

    def __init__(self, loop: asyncio.AbstractEventLoop, event: asyncio.Event) -> None:
        super().__init__()
        self._loop = loop
        self._event = event

    def put(self, item: RawFrame) -> None:
        super().put(item)
        # the loop is closed when the process shuts down with a reader still draining
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._event.set)


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
    ) -> None:
        super().__init__()
        self.camera_id = camera_id
        self._wake = asyncio.Event()
        self._slot = _WakingSlot(asyncio.get_running_loop(), self._wake)
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
            self._wake.clear()
            raw = self._slot.take()
            if raw is not None:
                return self._stamp(raw)
            await self._wake.wait()

    def _stamp(self, raw: RawFrame) -> VideoFrame:
        if self._first_mono is None:
            self._first_mono = raw.mono_ts
        frame = raw.video_frame
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
        self._wake.set()

    async def join(self, timeout_s: float) -> bool:
        """Wait (off the event loop) until the decoder thread has ended; False on timeout."""
        self.stop()
        await asyncio.to_thread(self.reader.stop, timeout_s)
        return not self.reader.alive

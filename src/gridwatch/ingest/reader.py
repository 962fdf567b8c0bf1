"""One decoder thread per camera: PyAV (FFmpeg) over RTSP/TCP or from a local file.

Why a thread and not asyncio: FFmpeg's demux and decode block and release the GIL, so a thread
per camera uses the cores while the event loop stays free. Each decoded picture goes into a
one-slot :class:`~gridwatch.ingest.latest.LatestSlot` as a :class:`RawFrame`; converting it to
a BGR array costs more than decoding it at 360p, so that is left to the consumer and paid only
for frames that are analysed.

Failures are expected on city networks: opening and reading have timeouts, a lost stream is
reopened with capped exponential backoff, and a corrupt packet is skipped and counted. The
reader never raises out of its thread; its :class:`ReaderStats` say what happened.
"""

from __future__ import annotations

import enum
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import av
import numpy as np
import numpy.typing as npt
from av.bitstream import BitStreamFilterContext
from av.video.reformatter import VideoReformatter

from gridwatch.ingest.latest import LatestSlot
from gridwatch.ingest.packet_ring import PacketRing, StreamParams
from gridwatch.ingest.urls import redact_text
from gridwatch.model import Frame

log = logging.getLogger(__name__)


class StreamState(enum.StrEnum):
    CONNECTING = "connecting"
    ONLINE = "online"
    OFFLINE = "offline"
    ENDED = "ended"
    STOPPED = "stopped"


@dataclass
class ReaderStats:
    """Counters a reader updates from its thread; plain ints, read without a lock."""

    state: StreamState = StreamState.CONNECTING
    frames_decoded: int = 0
    packets: int = 0
    corrupt: int = 0
    opens: int = 0
    failures: int = 0
    last_frame_mono: float | None = None
    last_packet_mono: float | None = None
    last_error: str = ""
    width: int = 0
    height: int = 0
    codec: str = ""
    stream_fps: float = 0.0
    keyframes_only: bool = False
    """Decoding keyframes only (an idle camera, see :meth:`CameraReader.set_keyframes_only`)."""
    keyframe_interval_s: float = 0.0
    """Smoothed time between keyframes (the GOP), 0 until two were seen."""
    keyframe_packets: int = 0
    """Keyframe packets received (decoded or not): what a keyframes-only camera can see."""


@dataclass(frozen=True)
class Backoff:
    """Capped exponential backoff: 1, 2, 4 … ``max_s`` seconds.

    >>> [Backoff(1, 8).delay(n) for n in range(6)]
    [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    """

    initial_s: float = 1.0
    max_s: float = 30.0

    def delay(self, failures: int) -> float:
        return float(min(self.max_s, self.initial_s * (2 ** min(failures, 30))))


@dataclass
class RawFrame:
    """A decoded picture not yet converted to BGR."""

    camera_id: str
    video_frame: av.VideoFrame
    wall_ts: float
    mono_ts: float
    seq: int
    pts_s: float | None
    reformatter: VideoReformatter | None = field(default=None, repr=False)
    """The reader's converter, reused: ``to_ndarray`` builds one per call (1.6 vs 0.5 ms)."""
    _bgr: npt.NDArray[np.uint8] | None = field(default=None, repr=False)

    def to_frame(self) -> Frame:
        if self._bgr is None:
            vf = self.video_frame
            if self.reformatter is not None:
                vf = self.reformatter.reformat(vf, format="bgr24", threads=1)
            self._bgr = cast(npt.NDArray[np.uint8], vf.to_ndarray(format="bgr24"))
        return Frame(
            camera_id=self.camera_id,
            image=self._bgr,
            wall_ts=self.wall_ts,
            mono_ts=self.mono_ts,
            seq=self.seq,
            pts_s=self.pts_s,
        )


RTSP_OPTIONS: dict[str, str] = {
    "rtsp_transport": "tcp",
    "rtsp_flags": "prefer_tcp",
    # FFmpeg probes a new stream for ~5 s by default (measured: first frame 2.8 s on the local
    # RTSP server); 0.5 s still finds H.264 parameters (0.6 s).
    "analyzeduration": "500000",
    "probesize": "500000",
}
"""How a reader opens a network stream (``camera probe`` opens it the same way)."""


def rtsp_options(read_timeout_s: float) -> dict[str, str]:
    """:data:`RTSP_OPTIONS` with FFmpeg's own socket I/O timeout: a stream that stops sending
    without closing fails its read after ``read_timeout_s`` and is reopened.

    Why not PyAV's ``timeout`` for reads: PyAV checks it in an interrupt callback that takes
    the interpreter lock every time FFmpeg calls it, which is several times per RTP packet.
    At 80 cameras that was 22,000-28,000 context switches a second in the decoder threads
    (about 6,500 without it) and ~10 points of a core more decoder CPU (``docs/performance.md``).

    >>> rtsp_options(2.5)["timeout"]
    '2500000'
    """
    return {**RTSP_OPTIONS, "timeout": str(round(read_timeout_s * 1_000_000))}


def yield_to_analysis() -> bool:
    """Run the calling (decoder) thread under Linux's ``SCHED_BATCH`` policy: its wake-ups no
    longer preempt the thread that is running. True where that took effect.

    Why: a decoder thread wakes for every few network reads (about 100 times a second per
    camera) for a few hundred microseconds of work, and under the default policy each wake-up
    preempts whatever runs, usually the detector. At 80 cameras on 2 vCPUs the detector's
    threads were preempted 700-1,065 times a second each before this and the socket-timeout
    change (``rtsp_options``), 375-540 after; the busy cameras' analysis rate moved within its
    trial-to-trial spread (``docs/performance.md``). Decoding loses nothing that matters: how far
    decoded frames trail the stream did not change (p99 ~0.2 s either way); it still gets its CPU
    share, a few milliseconds later, and frames wait in the one-slot buffer anyway. Any user
    may select this policy (no privilege); elsewhere (not Linux) nothing changes.
    """
    policy = getattr(os, "SCHED_BATCH", None)
    if policy is None:
        return False
    try:
        os.sched_setscheduler(0, policy, os.sched_param(0))  # 0: the calling thread
    except OSError as exc:  # a seccomp profile may refuse it: run as before
        log.debug("SCHED_BATCH not available for decoder threads: %s", exc)
        return False
    return True


def is_network_url(url: str) -> bool:
    return url.startswith(("rtsp://", "rtsps://"))


class CameraReader:
    """Decodes one camera into a :class:`LatestSlot` on a daemon thread.

    Local files play at their native rate (a file stands in for a live camera), and loop
    forever when ``loop`` is set; otherwise a file's end is the stream's end. A network stream
    that ends or fails is reopened with backoff until :meth:`stop`.
    """

    def __init__(
        self,
        camera_id: str,
        url: str,
        *,
        loop: bool = False,
        open_timeout_s: float = 10.0,
        read_timeout_s: float = 10.0,
        backoff: Backoff | None = None,
        slot: LatestSlot[RawFrame] | None = None,
        ring: PacketRing | None = None,
    ) -> None:
        self.camera_id = camera_id
        self.url = url
        self.loop = loop
        self.open_timeout_s = open_timeout_s
        self.read_timeout_s = read_timeout_s
        self.backoff = backoff or Backoff()
        self.slot: LatestSlot[RawFrame] = slot or LatestSlot()
        self.ring = ring
        """Every packet received is kept here too (evidence clips), when set."""
        self.stats = ReaderStats()
        self._stop = threading.Event()
        self._want_keyframes = False
        self._reformatter = VideoReformatter()
        self._thread = threading.Thread(target=self._run, name=f"ingest-{camera_id}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Ask the thread to stop; it exits within about the read timeout."""
        self._stop.set()
        if timeout is not None and self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def take(self) -> RawFrame | None:
        """The newest decoded frame not taken yet (None: none new); older ones were dropped."""
        return self.slot.take()

    async def wait_frame(self, timeout_s: float) -> None:
        """Return once a frame is there to take, or after ``timeout_s`` (the decoder thread
        wakes the waiting loop; no polling)."""
        await self.slot.wait(timeout_s)

    @property
    def finished(self) -> bool:
        """Never for a camera: a live loop outlives a stream's end (the offline rule reports
        it, and a reopened stream resumes)."""
        return False

    def set_keyframes_only(self, keyframes_only: bool) -> None:
        """Decode only keyframes (an idle camera: about one frame per GOP, a fraction of the
        CPU) or every frame again. Takes effect in the decoder thread: at once towards
        keyframes, at the next keyframe back to every frame. ``stats.keyframes_only`` says
        which mode is in effect."""
        self._want_keyframes = keyframes_only

    # -- thread body -------------------------------------------------------------------------

    def _open(self) -> Any:
        if is_network_url(self.url):
            return av.open(
                self.url,
                options=rtsp_options(self.read_timeout_s),
                # the open is bounded by PyAV's interrupt callback; reads are bounded by
                # FFmpeg's socket timeout instead (see rtsp_options): PyAV's callback takes
                # the GIL each time FFmpeg polls it, several times per RTP packet
                timeout=(self.open_timeout_s, None),
            )
        path = self.url.removeprefix("file://")
        if not Path(path).exists():
            raise FileNotFoundError(f"video file not found: {path}")
        return av.open(path)

    def _run(self) -> None:
        yield_to_analysis()
        consecutive_failures = 0
        while not self._stop.is_set():
            self.stats.state = StreamState.CONNECTING
            decoded_before = self.stats.frames_decoded
            try:
                ended = self._read_once()
                if ended and not is_network_url(self.url) and not self.loop:
                    self.stats.state = StreamState.ENDED
                    log.info("camera %s: file ended", self.camera_id)
                    return
                if ended:
                    log.warning("camera %s: stream ended, reopening", self.camera_id)
            except Exception as exc:  # keep the thread alive whatever FFmpeg throws
                self.stats.failures += 1
                # FFmpeg quotes the URL, password included: never let it reach logs or health
                self.stats.last_error = redact_text(f"{type(exc).__name__}: {exc}")
                log.warning("camera %s: %s", self.camera_id, self.stats.last_error)
            if self._stop.is_set():
                break
            if self.stats.frames_decoded > decoded_before:
                consecutive_failures = 0  # it worked for a while: start backing off afresh
            self.stats.state = StreamState.OFFLINE
            delay = self.backoff.delay(consecutive_failures)
            consecutive_failures += 1
            log.info("camera %s: reconnecting in %.1fs", self.camera_id, delay)
            self._stop.wait(delay)
        self.stats.state = StreamState.STOPPED

    def _read_once(self) -> bool:
        """Open, decode until the end or an error. True when the stream ended normally."""
        container = self._open()
        self.stats.opens += 1
        try:
            stream = container.streams.video[0]
            # one thread per camera: frame threading costs 16-20% more CPU per frame (measured,
            # docs/performance.md) and delays output by a frame per thread; cameras are the
            # parallelism of a worker. Slice threading with FFmpeg's automatic thread count
            # still runs a pool per camera and costs 2-3% more per frame than one thread
            stream.thread_type = "SLICE"
            stream.codec_context.thread_count = 1
            keyframes_only = False
            last_key: float | None = None
            ctx = stream.codec_context
            self.stats.codec = str(ctx.name)
            self.stats.width, self.stats.height = int(ctx.width or 0), int(ctx.height or 0)
            rate = stream.average_rate or stream.guessed_rate
            self.stats.stream_fps = float(rate) if rate else 0.0
            time_base = float(stream.time_base) if stream.time_base else None
            pace = not is_network_url(self.url)
            keep = self._ring_keeper(stream)
            while not self._stop.is_set():
                started = time.monotonic()
                first_pts: float | None = None
                for packet in container.demux(stream):
                    if self._stop.is_set():
                        return False
                    if packet.size == 0:  # flush packet at the end
                        continue
                    self.stats.packets += 1
                    if keep is not None:
                        keep(packet, time_base)
                    if packet.is_keyframe:
                        self.stats.keyframe_packets += 1
                        now = time.monotonic()
                        if last_key is not None:
                            gap, ki = now - last_key, self.stats.keyframe_interval_s
                            ki = gap if ki == 0 else ki + 0.2 * (gap - ki)
                            self.stats.keyframe_interval_s = ki
                        last_key = now
                    # to keyframes at once; back to every frame only at a keyframe (the frames
                    # in between reference ones that were never decoded)
                    if self._want_keyframes != keyframes_only and (
                        self._want_keyframes or packet.is_keyframe
                    ):
                        keyframes_only = self._want_keyframes
                        ctx.skip_frame = "NONKEY" if keyframes_only else "DEFAULT"
                        self.stats.keyframes_only = keyframes_only
                    if keyframes_only and not packet.is_keyframe:
                        continue
                    self.stats.last_packet_mono = time.monotonic()
                    try:
                        frames = packet.decode()
                    except av.error.InvalidDataError as exc:
                        self.stats.corrupt += 1
                        log.debug("camera %s: corrupt packet skipped: %s", self.camera_id, exc)
                        continue
                    for vf in frames:
                        pts_s = (
                            float(vf.pts * time_base) if vf.pts is not None and time_base else None
                        )
                        if pace and pts_s is not None:
                            if first_pts is None:
                                first_pts = pts_s
                            wait = started + (pts_s - first_pts) - time.monotonic()
                            if wait > 0 and self._stop.wait(wait):
                                return False
                        self._emit(vf, pts_s)
                if pace and self.loop and not self._stop.is_set():
                    container.seek(0)
                    continue
                return True
            return False
        finally:
            container.close()

    def _ring_keeper(self, stream: Any) -> Callable[[Any, float | None], None] | None:
        """How this stream's packets go into the ring (None: no ring).

        Cameras send H.264/H.265 in Annex B (parameter sets in band); an MP4 file (a file
        standing in for a camera) holds them length-prefixed with the parameter sets in the
        file's header, so its packets go through FFmpeg's ``*_mp4toannexb`` filter first, into
        the same form (a copy of the packet: the decoder still gets the original)."""
        ring = self.ring
        if ring is None:
            return None
        ctx = stream.codec_context
        extradata = bytes(ctx.extradata or b"")
        rate = stream.average_rate or stream.guessed_rate
        convert = None
        if extradata[:1] == b"\x01" and ctx.name in ("h264", "hevc"):
            convert = BitStreamFilterContext(f"{ctx.name}_mp4toannexb", in_stream=stream)
            extradata = b""  # in band after the filter
        ring.set_stream(
            StreamParams(
                codec=str(ctx.name),
                width=int(ctx.width or 0),
                height=int(ctx.height or 0),
                extradata=extradata,
                fps=float(rate) if rate else 0.0,
            )
        )

        def keep(packet: Any, time_base: float | None) -> None:
            media = float(packet.pts * time_base) if packet.pts is not None and time_base else None
            key, now = bool(packet.is_keyframe), time.time()
            if convert is None:
                ring.add(bytes(packet), media_s=media, wall_ts=now, keyframe=key)
                return
            copy = av.Packet(bytes(packet))
            copy.pts, copy.dts, copy.time_base = packet.pts, packet.dts, packet.time_base
            for out in convert.filter(copy):
                ring.add(bytes(out), media_s=media, wall_ts=now, keyframe=key)

        return keep

    def _emit(self, vf: av.VideoFrame, pts_s: float | None) -> None:
        now_mono = time.monotonic()
        seq = self.stats.frames_decoded
        self.stats.frames_decoded += 1
        self.stats.last_frame_mono = now_mono
        self.stats.width, self.stats.height = vf.width, vf.height
        self.stats.state = StreamState.ONLINE
        self.slot.put(
            RawFrame(
                camera_id=self.camera_id,
                video_frame=vf,
                wall_ts=time.time(),
                mono_ts=now_mono,
                seq=seq,
                pts_s=pts_s,
                reformatter=self._reformatter,
            )
        )

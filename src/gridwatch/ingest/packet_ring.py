"""The last seconds of a camera's compressed packets, kept so an alert can come with a clip.

Why packets and not pictures: a clip cut from the camera's own H.264/H.265 packets costs a
copy of bytes the decoder thread already has (no encoder on the worker, DESIGN principle 1),
and a minute of 1080p at 4 Mbit/s is 30 MB compressed against 11 GB decoded. The decoder thread
:meth:`PacketRing.add` s every packet it receives (also those of an idle camera that decodes
keyframes only); :meth:`PacketRing.window` hands the event loop a copy of the packets from the
last keyframe at or before a moment up to another, which :mod:`gridwatch.alerts.clips` remuxes
to MP4 without decoding.

Bounded twice: packets older than ``max_s`` go, and so do the oldest while the ring holds more
than ``max_bytes`` (a camera whose stream is too big for the bound keeps a shorter past; the
clip then says how much pre-roll it got). Eviction drops whole groups of pictures, so the
ring always starts at a keyframe and any window can be decoded from its first packet.

Timestamps: the packet's own presentation time where the stream gives one (RTSP gives none
for the first packet, and none but the keyframes' dts), else the previous one plus a frame
at the stream's rate, made strictly increasing; the wall-clock time each packet arrived
(what alerts' onsets are measured in) is kept beside it.

>>> ring = PacketRing(max_s=10.0, max_bytes=1000)
>>> ring.set_stream(StreamParams("h264", 64, 48, b"", 10.0))
>>> for i in range(30):  # 3 s at 10 fps, a keyframe every second
...     ring.add(b"x" * 10, media_s=i / 10, wall_ts=100 + i / 10, keyframe=i % 10 == 0)
>>> [round(p.wall_ts, 1) for p in ring.window(101.45, 101.6)][:3]  # from the keyframe before
[101.0, 101.1, 101.2]
>>> len(ring), ring.size_bytes
(30, 300)
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class StreamParams:
    """What a muxer needs to know of the stream the packets belong to."""

    codec: str
    """FFmpeg's codec name: h264, hevc."""
    width: int
    height: int
    extradata: bytes
    """Parameter sets in Annex B form (may be empty: the keyframes carry them in band)."""
    fps: float
    """The stream's nominal frame rate (0: unknown), for packets without a timestamp."""


@dataclass(frozen=True)
class RingPacket:
    data: bytes
    media_s: float
    """Presentation time in seconds on the stream's clock, strictly increasing in the ring."""
    wall_ts: float
    """When the packet arrived (epoch seconds)."""
    keyframe: bool


class PacketRing:
    """A bounded, thread-safe ring of one camera's packets (written by its decoder thread).

    ``max_s``: the longest past kept (a clip's pre-roll plus its post-roll plus a group of
    pictures); ``max_bytes``: the memory bound. A new stream whose parameters differ (the
    camera was reconfigured, a reconnect to another profile) empties the ring: packets of two
    streams cannot share one clip.
    """

    def __init__(self, max_s: float, max_bytes: int) -> None:
        if max_s <= 0 or max_bytes <= 0:
            raise ValueError("max_s and max_bytes must be > 0")
        self.max_s = max_s
        self.max_bytes = max_bytes
        self._packets: deque[RingPacket] = deque()
        self._lock = threading.Lock()
        self._bytes = 0
        self._params: StreamParams | None = None
        self._last_media: float | None = None
        self.evicted_for_bytes = 0
        """Packets dropped because of ``max_bytes`` (not age): the stream is too big for it."""

    def __len__(self) -> int:
        return len(self._packets)

    @property
    def size_bytes(self) -> int:
        """Bytes of packet data held now (the ring's memory, less ~100 bytes per packet)."""
        return self._bytes

    @property
    def params(self) -> StreamParams | None:
        return self._params

    def set_stream(self, params: StreamParams) -> None:
        """The stream (re)opened with these parameters; a different stream starts afresh."""
        with self._lock:
            if params != self._params:
                self._packets.clear()
                self._bytes = 0
                self._last_media = None
            self._params = params

    def add(self, data: bytes, *, media_s: float | None, wall_ts: float, keyframe: bool) -> None:
        """Keep one packet (from the decoder thread). Nothing is kept until the first keyframe."""
        with self._lock:
            if not self._packets and not keyframe:
                return
            step = 1.0 / self._params.fps if self._params and self._params.fps > 0 else 0.04
            last = self._last_media
            if media_s is None:
                media_s = step if last is None else last + step
            elif last is not None and media_s <= last:
                media_s = last + 1e-3  # a stream clock that jumped back (reconnect, wrap)
            self._last_media = media_s
            self._packets.append(RingPacket(data, media_s, wall_ts, keyframe))
            self._bytes += len(data)
            self._evict(wall_ts)

    def _evict(self, now: float) -> None:
        def too_old() -> bool:
            return now - self._packets[0].wall_ts > self.max_s

        while len(self._packets) > 1 and (too_old() or self._bytes > self.max_bytes):
            by_bytes = not too_old()
            # drop the oldest group of pictures, so the ring starts at a keyframe again
            first = True
            while self._packets and (first or not self._packets[0].keyframe):
                gone = self._packets.popleft()
                self._bytes -= len(gone.data)
                self.evicted_for_bytes += by_bytes
                first = False

    def window(self, start_ts: float, end_ts: float) -> list[RingPacket]:
        """The packets from the last keyframe at or before ``start_ts`` (or the oldest kept,
        when the ring does not reach back that far) up to ``end_ts``, both wall-clock."""
        with self._lock:
            packets = list(self._packets)
        first = 0
        for i, p in enumerate(packets):
            if p.wall_ts > start_ts:
                break
            if p.keyframe:
                first = i
        return [p for p in packets[first:] if p.wall_ts <= end_ts]

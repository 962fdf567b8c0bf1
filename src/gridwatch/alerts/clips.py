"""An alert's evidence clip: the camera's own packets around the onset, remuxed to MP4.

Why remux and not encode: the packets are already H.264/H.265; writing them into a fragmented
MP4 (``frag_keyframe+empty_moov``: playable while it is being written, seekable by fragment in
a browser's ``<video>``) costs about a millisecond of CPU per second of video, where encoding
would cost a core per camera. Privacy (masks, blurred people) needs the pictures changed, so
it is applied later, off the worker, to a copy (issue 14, item 2); the clip stored here is
the evidence as the camera sent it.

The clip starts at the last keyframe at or before ``onset - pre_s`` (a clip must start with a
picture that decodes on its own), so its pre-roll is up to one group of pictures longer than
asked; when the camera's ring did not reach back that far (a stream too big for the ring's
memory bound, or a camera opened moments before), :attr:`Clip.pre_roll_s` says what it got.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import av

from gridwatch.ingest.packet_ring import RingPacket, StreamParams

log = logging.getLogger(__name__)

CLIP_TIME_BASE = 90_000
"""Ticks per second of the clip's timestamps (the RTP video clock)."""
_TIME_BASE = Fraction(1, CLIP_TIME_BASE)


class ClipError(RuntimeError):
    """No clip can be made (no packets in the window, no stream parameters)."""


@dataclass(frozen=True)
class Clip:
    mp4: bytes
    start_ts: float
    """Wall-clock time of the first picture."""
    end_ts: float
    """Wall-clock time of the last picture."""
    onset_ts: float
    packets: int
    codec: str

    @property
    def duration_s(self) -> float:
        return self.end_ts - self.start_ts

    @property
    def pre_roll_s(self) -> float:
        """Seconds of video before the onset (the onset is at this offset in the clip)."""
        return max(0.0, self.onset_ts - self.start_ts)


def _annex_b(data: bytes) -> bool:
    return data.startswith((b"\x00\x00\x00\x01", b"\x00\x00\x01"))


def remux_mp4(packets: Sequence[RingPacket], params: StreamParams) -> bytes:
    """Fragmented MP4 of ``packets`` (the first a keyframe), without decoding them.

    The muxer takes the parameter sets from the first keyframe's in-band SPS/PPS; where the
    camera sends them out of band only (in the SDP), they are put in front of it."""
    if not packets:
        raise ClipError("no packets to remux")
    if not packets[0].keyframe:
        raise ClipError("a clip must start at a keyframe")
    buf = io.BytesIO()
    with av.open(
        buf,
        "w",
        format="mp4",
        options={"movflags": "frag_keyframe+empty_moov+default_base_moof"},
    ) as out:
        stream = out.add_mux_stream(params.codec, width=params.width, height=params.height)
        stream.time_base = _TIME_BASE
        first = packets[0].media_s
        last_tick = -1
        for i, p in enumerate(packets):
            data = p.data
            if i == 0 and params.extradata and _annex_b(params.extradata) and _annex_b(data):
                data = params.extradata + data
            tick = max(last_tick + 1, round((p.media_s - first) * CLIP_TIME_BASE))
            last_tick = tick
            packet = av.Packet(data)
            packet.pts = packet.dts = tick
            packet.time_base = _TIME_BASE
            packet.is_keyframe = p.keyframe
            packet.stream = stream
            out.mux(packet)
    return buf.getvalue()


def cut_clip(packets: Sequence[RingPacket], params: StreamParams | None, onset_ts: float) -> Clip:
    """The clip of ``packets`` (a :meth:`~gridwatch.ingest.packet_ring.PacketRing.window`)."""
    if params is None:
        raise ClipError("the camera's stream has not opened")
    if not packets:
        raise ClipError("no packets in the clip's window")
    return Clip(
        mp4=remux_mp4(packets, params),
        start_ts=packets[0].wall_ts,
        end_ts=packets[-1].wall_ts,
        onset_ts=onset_ts,
        packets=len(packets),
        codec=params.codec,
    )

"""A recorded clip as a camera: the frame source ``gridwatch replay`` and ``eval`` run.

:class:`ClipSource` stands where a live :class:`~gridwatch.ingest.reader.CameraReader` stands
in the camera loop: it has the same one-slot buffer (a newer frame replaces one not taken yet,
and the drop is counted), the same :class:`~gridwatch.ingest.reader.ReaderStats` (when the last
frame and packet came, keyframe-only decoding) and the same :class:`RawFrame` output. The
difference is time: a frame *arrives* when the loop's clock (a
:class:`~gridwatch.clock.VirtualClock`) passes its presentation time, so the loop sees the clip
exactly as it would have seen the camera, at any replay speed.

Stream faults can be injected to exercise the offline rule: ``silence`` drops frames and
packets in an interval (the camera went quiet), ``stall`` drops frames but keeps packets
arriving (a pipeline that receives data but decodes nothing). A gap in the clip's timestamps is
a silence too.
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import av

from gridwatch.clock import VirtualClock
from gridwatch.ingest.latest import LatestSlot
from gridwatch.ingest.reader import RawFrame, ReaderStats, StreamState

log = logging.getLogger(__name__)

FaultKind = Literal["silence", "stall"]


@dataclass(frozen=True, slots=True)
class StreamFault:
    """Between ``from_s`` and ``to_s`` of the clip: no frames (``stall``), or no frames and no
    packets (``silence``).

    >>> StreamFault("silence", 2.0, 5.0).covers(4.9), StreamFault("stall", 2.0, 5.0).covers(5.0)
    (True, False)
    """

    kind: FaultKind
    from_s: float
    to_s: float

    def covers(self, video_s: float) -> bool:
        return self.from_s <= video_s < self.to_s


@dataclass(frozen=True, slots=True)
class _Decoded:
    pts_s: float
    frame: av.VideoFrame
    key: bool


def _decode(path: Path) -> Generator[_Decoded, None, None]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else 10.0
        first: float | None = None
        for i, vf in enumerate(container.decode(stream)):
            pts = float(vf.time) if vf.time is not None else i / fps
            if first is None:
                first = pts
            yield _Decoded(pts - first, vf, bool(vf.key_frame))


class ClipSource:
    """Frames of ``path`` delivered as the ``clock`` passes their times (see module docs)."""

    def __init__(
        self,
        camera_id: str,
        path: Path,
        clock: VirtualClock,
        *,
        faults: Sequence[StreamFault] = (),
    ) -> None:
        if not path.is_file():
            raise FileNotFoundError(f"video file not found: {path}")
        self.camera_id = camera_id
        self.path = path
        self.clock = clock
        self.faults = tuple(faults)
        self.slot: LatestSlot[RawFrame] = LatestSlot()
        self.stats = ReaderStats(state=StreamState.ONLINE, opens=1)
        self._frames = _decode(path)
        self._upcoming: _Decoded | None = next(self._frames, None)
        self._want_keyframes = False
        self._last_key_s: float | None = None

    # the parts of CameraReader the loop and the analyser use ----------------------------------

    def set_keyframes_only(self, keyframes_only: bool) -> None:
        """As the live reader: to keyframes at once, back to every frame at the next key."""
        self._want_keyframes = keyframes_only

    def take(self) -> RawFrame | None:
        """The newest frame that has arrived by the clock's time (None: none new)."""
        self._arrive_until(self.clock.mono())
        return self.slot.take()

    async def wait_frame(self, timeout_s: float) -> None:
        """Let the clock move on by up to 20 ms (virtual time: at once): frames arrive as the
        clock passes their times, so a clip is looked at in the same 20 ms steps whatever the
        replay speed."""
        await self.clock.sleep(min(0.02, timeout_s))

    @property
    def finished(self) -> bool:
        """The clip has ended and its last frame was taken."""
        return self._upcoming is None and not self.slot.pending

    def close(self) -> None:
        self._frames.close()
        self._upcoming = None

    # -- delivery ------------------------------------------------------------------------------

    def _arrive_until(self, limit_s: float) -> None:
        s = self.stats
        while self._upcoming is not None and self._upcoming.pts_s <= limit_s + 1e-9:
            d = self._upcoming
            self._upcoming = next(self._frames, None)
            if self._upcoming is None:
                s.state = StreamState.ENDED
            fault = next((x for x in self.faults if x.covers(d.pts_s)), None)
            if fault is not None and fault.kind == "silence":
                continue
            if d.key:
                if self._last_key_s is not None:
                    gap, ki = d.pts_s - self._last_key_s, s.keyframe_interval_s
                    s.keyframe_interval_s = gap if ki == 0 else ki + 0.2 * (gap - ki)
                self._last_key_s = d.pts_s
            if self._want_keyframes != s.keyframes_only and (self._want_keyframes or d.key):
                s.keyframes_only = self._want_keyframes
            if s.keyframes_only and not d.key:
                continue
            s.packets += 1
            s.last_packet_mono = d.pts_s
            if fault is not None:  # stall: the packet came, no frame decoded
                continue
            s.frames_decoded += 1
            s.last_frame_mono = d.pts_s
            s.width, s.height = d.frame.width, d.frame.height
            self.slot.put(
                RawFrame(
                    camera_id=self.camera_id,
                    video_frame=d.frame,
                    wall_ts=self.clock.start_wall + d.pts_s,
                    mono_ts=d.pts_s,
                    seq=s.frames_decoded - 1,
                    pts_s=d.pts_s,
                )
            )

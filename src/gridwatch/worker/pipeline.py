"""One camera's analysis loop: latest frame → detector → tracker → rules → incident events.

This is the only camera loop: a worker runs it on a live :class:`~gridwatch.ingest.reader.
CameraReader` and the system clock; ``gridwatch replay`` and ``gridwatch eval`` run it on a
:class:`~gridwatch.ingest.clip.ClipSource` and a :class:`~gridwatch.clock.VirtualClock`, with
the same motion gate, regions, batching service, backend, tracker and rules. A figure the
evaluation prints therefore describes what production runs.

The loop is paced by the camera's ``analysis_fps`` and never queues frames: at each tick it
takes whatever frame is newest (older ones were already replaced in the slot and counted as
dropped). A late analysis (a long wait for the shared inference threads or the event loop)
is made up by shorter sleeps afterwards, at most one period's worth: jitter does not lower
the rate a camera is analysed at, and a worker that is really short of CPU runs each camera
back to back instead of piling up debt (measured at 80 INT8 cameras: busy cameras 1.67 →
1.78 fps on the same CPU; ``docs/performance.md``). Detection runs on the worker's shared
inference executor, so cameras wait their turn for the CPU instead of oversubscribing it.
When no frame arrives for a while the rules get a ``None`` observation, which lets a raised
incident clear once a camera goes away.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Protocol

from gridwatch.clock import Clock, SystemClock
from gridwatch.config import CameraConfig
from gridwatch.detectors.analyser import CameraAnalyser
from gridwatch.detectors.base import Detector
from gridwatch.ingest.masks import PrivacyMasker
from gridwatch.ingest.motion import luma_plane
from gridwatch.ingest.reader import RawFrame, ReaderStats
from gridwatch.model import Detections, Frame, IncidentEvent
from gridwatch.rules.base import FrameSample, thumbnail
from gridwatch.rules.engine import CameraRules
from gridwatch.stats.aggregate import CameraStats
from gridwatch.tracking import CameraTracker

log = logging.getLogger(__name__)


def owed_tick(next_tick: float, now: float, period_s: float) -> float:
    """Where the loop's schedule stands after an analysis that ended late (``now`` past
    ``next_tick``): it keeps at most one period of debt, made up by the next sleeps.

    >>> owed_tick(10.0, 10.3, 0.5)  # 0.3 s late: the next sleep is 0.3 s shorter
    10.0
    >>> owed_tick(10.0, 11.2, 0.5)  # 1.2 s late: one period owed, the rest forgiven
    10.7
    """
    return max(next_tick, now - period_s)


EventSink = Callable[[CameraConfig, IncidentEvent, Frame | None, CameraRules], Awaitable[None]]


class FrameSource(Protocol):
    """Where a camera loop takes its frames: a live reader or a recorded clip."""

    camera_id: str
    stats: ReaderStats

    def take(self) -> RawFrame | None:
        """The newest frame not taken yet, or None."""
        ...

    async def wait_frame(self, timeout_s: float) -> None:
        """Return when a frame may be there to take, or after ``timeout_s`` on the loop's
        clock."""
        ...

    def set_keyframes_only(self, keyframes_only: bool) -> None: ...

    @property
    def finished(self) -> bool:
        """No frame will ever come again (a clip's end; never for a live camera)."""
        ...


@dataclass
class PipelineStats:
    analysed: int = 0
    no_data_ticks: int = 0
    detector_ms: deque[float] = field(default_factory=lambda: deque(maxlen=200))
    frame_age_ms: deque[float] = field(default_factory=lambda: deque(maxlen=200))
    last_count: int = 0
    analysed_mono: deque[float] = field(default_factory=lambda: deque(maxlen=50))
    """When recent frames were analysed (the measured analysis rate)."""
    events: int = 0
    errors: int = 0


class CameraPipeline:
    def __init__(
        self,
        camera: CameraConfig,
        reader: FrameSource,
        detector: Detector,
        inference: Executor,
        rules: CameraRules,
        tracker: CameraTracker | None,
        sink: EventSink,
        *,
        stale_after_s: float | None = None,
        analyser: CameraAnalyser | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.camera = camera
        self.clock: Clock = clock or SystemClock()
        """Live: the system clock; replay: a virtual one (see gridwatch.clock)."""
        self.analyser = analyser
        """Motion gate, regions and batched detection (gridwatch.detectors.analyser); None: every
        frame whole on the ``inference`` executor."""
        self._raw: RawFrame | None = None
        self.reader = reader
        self.detector = detector
        self.inference = inference
        self.rules = rules
        self.tracker = tracker
        self.sink = sink
        self.period_s = 1.0 / camera.analysis_fps
        self.stale_after_s = stale_after_s or max(2.0, 3 * self.period_s)
        # frame rules (offline) need ticks while no frame comes: wait at most 1 s for one then
        self.idle_wait_s = min(self.stale_after_s, 1.0) if rules.frame_rules else self.stale_after_s
        self.stats = PipelineStats()
        self.last_frame: Frame | None = None
        self.last_detections: Detections | None = None
        """What the detector (and tracker) found on ``last_frame``: every person on it goes
        into the snapshot's privacy record (the snapshot service blurs them all)."""
        self.on_analysed: Callable[[Frame, Detections], None] | None = None
        """Called after each analysed frame with what the rules saw (replay's tools draw and
        score with it)."""
        self.people_stats: CameraStats | None = None
        """Per-minute people-flow statistics (gridwatch.stats; the worker attaches them)."""
        # privacy masks are painted on each frame as it is taken, before anything looks at it
        self.masker = PrivacyMasker(m.polygon for m in camera.privacy_masks)

    async def _next_frame(self, wait_s: float) -> Frame | None:
        clock = self.clock
        deadline = clock.mono() + wait_s
        while True:
            raw = self.reader.take()
            if raw is not None:
                self._raw = raw  # the analyser reads its Y plane: no colour conversion
                return self.masker.apply(raw.to_frame())
            remaining = deadline - clock.mono()
            if remaining <= 0 or self.reader.finished:
                return None
            await self.reader.wait_frame(remaining)

    def _detect(self, frame: Frame) -> tuple[Detections, float, float]:
        """Runs on the inference thread. Frame age is taken here, when the detector starts:
        it includes any wait for the shared inference thread behind other cameras."""
        age_ms = (self.clock.mono() - frame.mono_ts) * 1000.0
        t0 = time.perf_counter()
        if not self.rules.needs_detections:  # only frame rules (tamper, offline): no detector
            return Detections.empty((frame.width, frame.height)), 0.0, age_ms
        detections = self.detector.detect(frame.image)
        tracked = self.tracker.update(detections) if self.tracker is not None else detections
        return tracked, (time.perf_counter() - t0) * 1000.0, age_ms

    async def _run_detector(self, frame: Frame) -> tuple[Detections, float | None, float | None]:
        """Detections (tracked), detector ms and frame age ms (both None when the analyser
        decided the detector need not run)."""
        if self.analyser is None or not self.rules.needs_detections:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self.inference, self._detect, frame)
        raw = self._raw
        luma = luma_plane(raw.video_frame) if raw is not None else None
        result = await self.analyser.analyse(frame, luma)
        found = result.detections
        tracked = self.tracker.update(found) if self.tracker is not None else found
        return tracked, result.detector_ms, result.frame_age_ms

    def _stale_after(self) -> float:
        """How long without frames means no data: longer while an idle camera decodes only
        keyframes (one per GOP)."""
        s = self.reader.stats
        if s.keyframes_only and s.keyframe_interval_s > 0:
            return max(self.stale_after_s, 2.5 * s.keyframe_interval_s)
        return self.stale_after_s

    def _frame_sample(self, frame: Frame | None) -> FrameSample:
        """What the frame rules see now: the reader's monotonic times turned into wall time."""
        now_wall, now_mono = self.clock.wall(), self.clock.mono()
        s = self.reader.stats

        def wall(mono: float | None) -> float | None:
            return None if mono is None else now_wall - (now_mono - mono)

        return FrameSample(
            ts=frame.wall_ts if frame is not None else now_wall,
            gray=thumbnail(frame.image) if frame is not None else None,
            last_frame_ts=wall(s.last_frame_mono),
            last_packet_ts=wall(s.last_packet_mono),
            detections=self.last_detections if frame is not None else None,
        )

    async def run(self) -> None:
        """Analyse until cancelled (live) or until the source has finished (a clip)."""
        clock = self.clock
        next_tick = clock.mono()
        last_seen = clock.mono()
        while not self.reader.finished:
            next_tick += self.period_s
            frame = await self._next_frame(max(0.0, next_tick - clock.mono()) + self.idle_wait_s)
            if frame is None and self.reader.finished:
                break  # a clip's end is not a camera going quiet
            try:
                if frame is None:
                    events = self.rules.update_frame(self._frame_sample(None))
                    if clock.mono() - last_seen >= self._stale_after():
                        self.stats.no_data_ticks += 1
                        events += self.rules.update(None, clock.wall())
                    await self._handle(events, None)
                    if self.people_stats is not None:  # a quiet camera's minute ends too
                        self.people_stats.tick(clock.wall())
                    next_tick = clock.mono()
                    continue
                last_seen = clock.mono()
                detections, ms, age_ms = await self._run_detector(frame)
                self.stats.analysed += 1
                self.stats.analysed_mono.append(clock.mono())
                if ms is not None and age_ms is not None:  # None: gated, no detector run
                    self.stats.detector_ms.append(ms)
                    self.stats.frame_age_ms.append(age_ms)
                self.last_frame = frame
                self.last_detections = detections
                events = self.rules.update(detections, frame.wall_ts)
                if self.rules.frame_rules:
                    events += self.rules.update_frame(self._frame_sample(frame))
                self.stats.last_count = self._zone_count(detections)
                await self._handle(events, frame)
                if self.people_stats is not None:  # after the rules: it reads what they saw
                    self.people_stats.observe(detections, frame.wall_ts)
                if self.on_analysed is not None:
                    self.on_analysed(frame, detections)
            except asyncio.CancelledError:
                raise
            except Exception:
                self.stats.errors += 1
                log.exception("camera %s: analysis failed; continuing", self.camera.id)
            delay = next_tick - clock.mono()
            if delay > 0:
                await clock.sleep(delay)
            else:
                next_tick = owed_tick(next_tick, clock.mono(), self.period_s)

    def _zone_count(self, detections: Detections) -> int:
        """The count health reports: what the first counting rule saw (the crowd counter's
        people, windowed), else the first rule's zone count of this frame."""
        for rule in self.rules.rules:
            seen = getattr(rule, "last_count", None)
            if seen is not None:
                return int(seen)
        if self.rules.rules:
            return self.rules.rules[0].count_in_zone(detections)[0]
        return 0

    async def _handle(self, events: list[IncidentEvent], frame: Frame | None) -> None:
        for event in events:
            self.stats.events += 1
            log.info(
                "camera %s: %s %s zone=%s count=%d peak=%d",
                self.camera.id,
                event.type,
                event.state.value,
                event.zone_id,
                event.count,
                event.peak_count,
            )
            await self.sink(self.camera, event, frame or self.last_frame, self.rules)

"""Per camera: motion gate → regions → batched detection, and adaptive decode.

:class:`CameraAnalyser` decides, for each frame the pipeline takes, how much detector work the
frame deserves:

``gated``
    nothing moved in a zone and nothing (but stationary objects) was in a zone at the last
    looks: the detector does not run; the rules see what the last look found (stationary
    objects — a parked car — are carried forward until motion touches them or the next
    whole-frame look).
``regions``
    the detector runs on a mosaic of regions (at the whole frame's scale) around what moved
    and what was there (:mod:`gridwatch.detectors.regions`).
``full``
    the whole frame: the first frame, a scene change, regions that would cost nearly as much,
    and at least every ``refresh_s`` seconds as a safety net (someone who stood still since
    before the camera started, or whom the detector missed while they moved).

Detection goes through the worker's :class:`~gridwatch.detectors.batching.BatchingService`.

**Adaptive decode.** A camera whose analysis rate is at most ``keyframes_max_fps`` and which
showed no motion and no objects for ``idle_s`` asks its reader to decode keyframes only;
the first keyframe that moves switches full decoding back on.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from gridwatch.detectors.batching import BatchingService, Dropped, InferenceResult
from gridwatch.detectors.regions import (
    RegionSettings,
    frame_scale,
    plan_regions,
    propose,
    whole_frame_input_area,
)
from gridwatch.geometry import iou, iou_matrix
from gridwatch.ingest.motion import MotionDetector, MotionResult, MotionSettings, Polygon
from gridwatch.model import Detections, Frame

log = logging.getLogger(__name__)

SAME_OBJECT_IOU = 0.1
"""An older look's box overlapping a newer look's box by this much is the same object, seen
again since: only objects missed by the newer looks are remembered."""

Mode = Literal["gated", "regions", "full", "dropped"]
MODES: tuple[Mode, ...] = ("gated", "regions", "full", "dropped")


@dataclass(frozen=True, slots=True)
class AnalysisSettings:
    motion: MotionSettings = field(default_factory=MotionSettings)
    regions: RegionSettings = field(default_factory=RegionSettings)
    motion_enabled: bool = True
    regions_enabled: bool = True
    refresh_s: float = 30.0
    """Whole-frame look at least this often (0: never)."""
    memory_s: float = 1.0
    """Boxes found in this many past seconds seed regions (not only the last look's)."""
    stationary_looks: int = 4
    """A box found in the same place, with no motion inside, this many looks in a row is
    stationary (a parked car, a bench): carried forward unlooked-at until motion touches it
    or the next whole-frame look (0: never)."""
    adaptive_decode: bool = True
    keyframes_max_fps: float = 1.0
    idle_s: float = 10.0
    upscale: bool = False
    """Frames smaller than ``imgsz`` are scaled up to it for detection (small people)."""


@dataclass(frozen=True, slots=True)
class Analysis:
    """What the analyser did with one frame."""

    detections: Detections
    mode: Mode
    detector_ms: float | None = None
    """Wall time of the detector call (``None`` when it did not run)."""
    frame_age_ms: float | None = None
    """Frame age when the detector started (``None`` when it did not run)."""
    motion: MotionResult | None = None
    batch_size: int = 0
    input_area: int = 0
    """Pixels the detector was given (mosaic or whole-frame input)."""
    input_shape: tuple[int, int] = (0, 0)
    """(w, h) of the mosaic, or of the frame for a whole-frame look."""


@dataclass
class AnalyserStats:
    modes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(MODES, 0))
    input_px: int = 0
    keyframe_switches: int = 0


class CameraAnalyser:
    """One camera's analysis policy. Used from one task, frames in order."""

    def __init__(
        self,
        camera_id: str,
        service: BatchingService,
        settings: AnalysisSettings | None = None,
        *,
        zones: Iterable[Polygon] = (),
        exclude: Iterable[Polygon] = (),
        imgsz: int = 640,
        native_resolution: bool = True,
        analysis_fps: float = 2.0,
        set_keyframes_only: Callable[[bool], None] | None = None,
        observer: Callable[[str, str, float, float], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.camera_id = camera_id
        self.service = service
        self.settings = settings or AnalysisSettings()
        self.imgsz = imgsz
        zone_list = [list(z) for z in zones]
        self.motion = MotionDetector(self.settings.motion, zones=zone_list, exclude=exclude)
        self.upscale = self.settings.upscale and native_resolution
        """Whole frames and regions of a small frame scaled up to ``imgsz`` (exported
        backends only: ultralytics' predict letterboxes every input to ``imgsz`` anyway)."""
        self.use_regions = (
            self.settings.regions_enabled and self.settings.motion_enabled and native_resolution
        )
        if self.settings.regions_enabled and not native_resolution:
            log.info(
                "camera %s: region detection off: the detector backend up-scales every input "
                "to imgsz, so regions would save nothing (use backend openvino or onnx)",
                camera_id,
            )
        self.adaptive = (
            self.settings.adaptive_decode
            and self.settings.motion_enabled
            and set_keyframes_only is not None
            and analysis_fps <= self.settings.keyframes_max_fps
        )
        self._set_keyframes = set_keyframes_only
        self._observer = observer
        """Called with (camera, mode, frame age ms, detector ms) per detector run (metrics)."""
        self.keyframes_only = False
        self._clock = clock
        self._last: Detections | None = None
        self._still: npt.NDArray[np.int64] = np.zeros(0, np.int64)
        """Per box of ``_last``: looks in a row it stood still."""
        self._recent: collections.deque[tuple[float, npt.NDArray[np.float32]]] = collections.deque()
        """(when, in-zone boxes) of recent detector runs: region seeds for ``memory_s``."""
        self._last_full: float | None = None
        self._last_activity = clock()
        self.stats = AnalyserStats()

    # -- the decision ----------------------------------------------------------------------------

    def _update(self, now: float, det: Detections, motion: MotionResult | None) -> None:
        """A look's result: count how many looks each box has stood still (same place, no
        motion inside), remember the moving ones as region seeds."""
        still = np.zeros(len(det), np.int64)
        last = self._last
        if last is not None and len(last) and len(det):
            ious = iou_matrix(det.xyxy, last.xyxy)
            best = ious.argmax(axis=1)
            for i in range(len(det)):
                j = int(best[i])
                if ious[i, j] >= 0.8 and not _moved_inside(det.xyxy[i], motion):
                    still[i] = self._still[j] + 1
        self._last, self._still = det, still
        moving = det.select(~self._stationary_mask())
        self._recent.append((now, self._in_zone(moving)))

    def _stationary_mask(self) -> npt.NDArray[np.bool_]:
        n = self.settings.stationary_looks
        if n <= 0:
            return np.zeros(len(self._still), np.bool_)
        out: npt.NDArray[np.bool_] = self._still >= n
        return out

    def _held(self) -> Detections | None:
        """Objects that stood still for ``stationary_looks`` looks: carried forward without
        looking again until motion touches them or the next whole-frame look."""
        if self._last is None or len(self._last) == 0:
            return None
        return self._last.select(self._stationary_mask())

    def _gated(self, held: Detections | None, motion: MotionResult) -> Analysis:
        assert self._last is not None
        self.stats.modes["gated"] += 1
        if held is None:
            held = Detections.empty(self._last.image_size, self._last.class_names)
        return Analysis(held, "gated", motion=motion)

    def _remembered(self, now: float) -> npt.NDArray[np.float32]:
        """Moving in-zone boxes of the last look and of the looks in the last ``memory_s``
        (newest first, near-duplicates of a newer box dropped): an object the detector missed
        once (a borderline score, a region edge) is looked for again, not forgotten until the
        next whole-frame look."""
        while len(self._recent) > 1 and now - self._recent[0][0] > self.settings.memory_s:
            self._recent.popleft()
        kept: list[npt.NDArray[np.float32]] = []
        for age, (_, boxes) in enumerate(reversed(self._recent)):
            # within one look, near-duplicates; against newer looks, any real overlap: the
            # same walker found again (a walker at 2 fps moves half a box width or more, so
            # IoU ≥ 0.5 kept both positions and doubled the region: 0.23 → 0.26 of the pixels)
            same = 0.5 if age == 0 else SAME_OBJECT_IOU
            for b in boxes:
                if not any(iou(b, k) >= same for k in kept):
                    kept.append(b)
        return np.array(kept, np.float32).reshape(-1, 4)

    def _in_zone(self, det: Detections) -> npt.NDArray[np.float32]:
        """Boxes of ``det`` whose ground point lies in a zone (all of them without zones)."""
        if len(det) == 0:
            return np.zeros((0, 4), np.float32)
        inside = self.motion.anchors_in_zone(det.xyxy)
        return det.xyxy[inside].astype(np.float32)

    async def analyse(self, frame: Frame, luma: npt.NDArray[np.uint8] | None = None) -> Analysis:
        """Decide and, when needed, detect. ``luma`` is the frame's Y plane when the caller has
        it (a decoded frame does: no conversion); otherwise it is computed from the image."""
        now = self._clock()
        w, h = frame.width, frame.height
        if not self.settings.motion_enabled:
            return await self._detect_full(frame, None, now)
        y = luma if luma is not None else _gray(frame.image)
        motion = self.motion.update(y)
        previous = self._remembered(now)
        held = self._held()
        active = motion.moved or len(previous) > 0
        if active:
            self._last_activity = now
        self._adapt_decode(now, motion)
        refresh_due = self.settings.refresh_s > 0 and (
            self._last_full is None or now - self._last_full >= self.settings.refresh_s
        )
        if motion.first or motion.scene_change or refresh_due or self._last is None:
            return await self._detect_full(frame, motion, now)
        if not active:
            return self._gated(held, motion)
        if not self.use_regions:
            return await self._detect_full(frame, motion, now)
        boxes = propose(
            (w, h),
            previous=previous,
            motion_boxes=motion.boxes,
            motion_mask=motion.mask,
            motion_stride=motion.stride,
            settings=self.settings.regions,
        )
        plan = plan_regions((w, h), boxes, self.settings.regions, imgsz=self.imgsz)
        if plan is None:
            return await self._detect_full(frame, motion, now)
        if not plan.tiles:
            return self._gated(held, motion)
        result = await self._submit(plan.compose(frame.image), frame)
        if result is None:
            return self._dropped(frame, motion)
        detections = _with_held(plan.map_back(result.detections), held)
        self._update(now, detections, motion)
        self.stats.modes["regions"] += 1
        self.stats.input_px += plan.area
        self._observe("regions", result)
        return Analysis(
            detections,
            "regions",
            detector_ms=result.detector_ms,
            frame_age_ms=result.frame_age_ms,
            motion=motion,
            batch_size=result.batch_size,
            input_area=plan.area,
            input_shape=plan.canvas_size,
        )

    async def _detect_full(self, frame: Frame, motion: MotionResult | None, now: float) -> Analysis:
        size = (frame.width, frame.height)
        scale = frame_scale(size, self.imgsz, self.upscale)
        image = frame.image
        if scale > 1.0:  # look closer: the detector scales only down
            import cv2

            up = (round(frame.width * scale), round(frame.height * scale))
            image = np.asarray(cv2.resize(image, up, interpolation=cv2.INTER_LINEAR), np.uint8)
        result = await self._submit(image, frame)
        if result is None:
            return self._dropped(frame, motion)
        if scale > 1.0:
            result = dataclasses.replace(result, detections=_rescaled(result.detections, size))
        self._last_full = now
        self._update(now, result.detections, motion)
        area = whole_frame_input_area(size, self.imgsz, self.upscale)
        self.stats.modes["full"] += 1
        self.stats.input_px += area
        self._observe("full", result)
        return Analysis(
            result.detections,
            "full",
            detector_ms=result.detector_ms,
            frame_age_ms=result.frame_age_ms,
            motion=motion,
            batch_size=result.batch_size,
            input_area=area,
            input_shape=(frame.width, frame.height),
        )

    def _observe(self, mode: Mode, result: InferenceResult) -> None:
        if self._observer is not None:
            self._observer(self.camera_id, mode, result.frame_age_ms, result.detector_ms)

    def _dropped(self, frame: Frame, motion: MotionResult | None) -> Analysis:
        """The service refused or replaced the request: hold the last detections."""
        self.stats.modes["dropped"] += 1
        held = (
            self._last if self._last is not None else Detections.empty((frame.width, frame.height))
        )
        return Analysis(held, "dropped", motion=motion)

    async def _submit(self, image: npt.NDArray[np.uint8], frame: Frame) -> InferenceResult | None:
        future = self.service.submit(self.camera_id, image, frame.mono_ts)
        try:
            return await asyncio.wrap_future(future)
        except Dropped:
            return None

    # -- adaptive decode ---------------------------------------------------------------------

    def _adapt_decode(self, now: float, motion: MotionResult) -> None:
        if not self.adaptive or self._set_keyframes is None:
            return
        if self.keyframes_only and motion.moved:
            self._switch(False)
        elif not self.keyframes_only and now - self._last_activity >= self.settings.idle_s:
            self._switch(True)

    def _switch(self, keyframes_only: bool) -> None:
        assert self._set_keyframes is not None
        self.keyframes_only = keyframes_only
        self.stats.keyframe_switches += 1
        self._set_keyframes(keyframes_only)
        log.info(
            "camera %s: %s",
            self.camera_id,
            "idle: decoding keyframes only" if keyframes_only else "motion: decoding every frame",
        )

    def health(self) -> dict[str, Any]:
        return {
            "modes": dict(self.stats.modes),
            "keyframes_only": self.keyframes_only,
            "keyframe_switches": self.stats.keyframe_switches,
        }


def _rescaled(det: Detections, size: tuple[int, int]) -> Detections:
    """Boxes found on a scaled copy of a frame, in the frame's own pixels."""
    if len(det) == 0:
        return Detections.empty(size, det.class_names)
    sx, sy = size[0] / det.image_size[0], size[1] / det.image_size[1]
    xyxy = det.xyxy * np.array([sx, sy, sx, sy], np.float32)
    return Detections.from_arrays(
        xyxy=xyxy,
        confidence=det.confidence,
        class_id=det.class_id,
        image_size=size,
        class_names=det.class_names,
    )


def _with_held(found: Detections, held: Detections | None) -> Detections:
    """``found`` plus the held (stationary) boxes it does not overlap."""
    if held is None or len(held) == 0:
        return found
    if len(found):
        keep = iou_matrix(held.xyxy, found.xyxy).max(axis=1) < 0.5
        held = held.select(keep)
        if len(held) == 0:
            return found
    return Detections.from_arrays(
        xyxy=np.concatenate([found.xyxy, held.xyxy]),
        confidence=np.concatenate([found.confidence, held.confidence]),
        class_id=np.concatenate([found.class_id, held.class_id]),
        image_size=found.image_size,
        class_names=found.class_names or held.class_names,
    )


def _moved_inside(box: npt.NDArray[np.float32], motion: MotionResult | None) -> bool:
    if motion is None or motion.mask.size == 0:
        return False
    s = motion.stride
    x0, y0 = max(0, int(box[0] // s)), max(0, int(box[1] // s))
    x1, y1 = int(-(-box[2] // s)), int(-(-box[3] // s))
    return bool(motion.mask[y0:y1, x0:x1].any())


def _gray(image: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    import cv2

    return np.asarray(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), np.uint8)


def settings_from_config(cfg: Any) -> AnalysisSettings:
    """:class:`AnalysisSettings` from the config's ``analysis`` section
    (:class:`gridwatch.config.analysis.AnalysisConfig`)."""
    m, r, a = cfg.motion, cfg.regions, cfg.adaptive_decode
    return AnalysisSettings(
        motion=MotionSettings(
            threshold=m.threshold, min_area=m.min_area, scene_change=m.scene_change, width=m.width
        ),
        regions=RegionSettings(
            margin_px=r.margin_px,
            margin_frac=r.margin_frac,
            expand=r.expand,
            full_frame_ratio=r.full_frame_ratio,
            max_canvas=r.max_canvas,
            scale=r.scale,
            upscale=cfg.upscale,
        ),
        motion_enabled=m.enabled,
        regions_enabled=r.enabled,
        refresh_s=cfg.refresh_s,
        memory_s=cfg.memory_s,
        stationary_looks=cfg.stationary_looks,
        adaptive_decode=a.enabled,
        keyframes_max_fps=a.max_fps,
        idle_s=a.idle_s,
        upscale=cfg.upscale,
    )

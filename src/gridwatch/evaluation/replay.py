"""Shadow mode: run a config's rules over a recorded clip and say what would have fired.

:func:`replay` runs the worker's own camera loop
(:class:`~gridwatch.worker.pipeline.CameraPipeline`: privacy masks, motion gate, regions, the
batching inference service, the configured backend, one ``CameraTracker``, the crowd counter
and :class:`~gridwatch.rules.engine.CameraRules`) over
a :class:`~gridwatch.ingest.clip.ClipSource` on a :class:`~gridwatch.clock.VirtualClock`:

* the loop ticks every ``1 / analysis_fps`` seconds of *video* and takes the newest frame that
  has arrived (older ones are dropped, as the live one-slot buffer drops them);
* when no frame has come for the loop's wait, the frame rules tick without a picture and, after
  the stale time, the detection rules get a ``None`` observation;
* timestamps are the clip's presentation times plus ``start_ts`` (the wall-clock time the clip
  is replayed as, which is what schedules see).

It publishes nothing. Without ``realtime`` it runs as fast as the CPU allows and gives the same
events every time; with it, the clock waits for real, as a live camera would deliver frames.

Stream faults (:class:`~gridwatch.ingest.clip.StreamFault`) can be injected to test the
offline rule. Detections can be memoised per (clip, detector settings) in a
:class:`DetectionCache`, keyed by the exact pixels the detector was given (a whole frame or a
region mosaic), so re-running an evaluation after changing a rule's thresholds costs the
motion gate, the tracker and the rules, not the detector.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from gridwatch.config import CameraConfig, GridwatchConfig
from gridwatch.detectors.base import Detector, DetectorInfo, ImageBGR
from gridwatch.ingest.clip import FaultKind, StreamFault
from gridwatch.model import Detections, Frame, IncidentEvent
from gridwatch.rules.engine import CameraRules

__all__ = [
    "DetectionCache",
    "FaultKind",
    "ReplayEvent",
    "StreamFault",
    "detector_key",
    "parse_start",
    "pick_camera",
    "replay",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ReplayEvent:
    """An incident event as it would have been published, placed on the clip's timeline."""

    video_s: float
    camera_id: str
    severity: str
    event: IncidentEvent
    start_ts: float

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` line: type, state, camera_id, zone_id, video_s, and the rest."""
        e = self.event
        return {
            "type": e.type,
            "state": e.state.value,
            "camera_id": self.camera_id,
            "zone_id": e.zone_id,
            "video_s": round(self.video_s, 3),
            "started_video_s": round(e.started_at - self.start_ts, 3),
            "incident_id": e.incident_id(self.camera_id),
            "sequence": e.sequence,
            "severity": self.severity,
            "count": e.count,
            "peak_count": e.peak_count,
            "reason": e.reason,
            "observed_at": dt.datetime.fromtimestamp(e.observed_at, tz=dt.UTC).isoformat(),
            "details": dict(e.details),
            "boxes": [[round(v, 4) for v in b] for b in e.boxes],
        }

    def line(self) -> str:
        """One human-readable line."""
        e = self.event
        zone = f" zone={e.zone_id}" if e.zone_id else ""
        kind = e.details.get("kind")
        extra = f" kind={kind}" if kind else ""
        reason = f" reason={e.reason}" if e.reason else ""
        return (
            f"{self.video_s:8.2f}s {e.state.value:<8} {e.type:<13} camera={self.camera_id}"
            f"{zone}{extra} count={e.count} peak={e.peak_count} severity={self.severity}{reason}"
        )


class DetectionCache:
    """Detector outputs, kept in one ``.npz`` per (clip, detector settings).

    The file name hashes the clip's bytes, so a re-made clip with different content never
    reuses stale boxes. Entries are keyed by a 64-bit hash of the exact image the detector was
    given (:func:`image_key`): a whole frame or a region mosaic, so a cached run takes exactly
    the path an uncached one takes.
    """

    def __init__(self, directory: Path, clip: Path, detector_key: str) -> None:
        digest = hashlib.sha256()
        with clip.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        digest.update(detector_key.encode())
        self.path = directory / f"{digest.hexdigest()[:20]}.npz"
        self._rows: dict[int, tuple[npt.NDArray[np.float32], ...]] = {}
        self._dirty = False
        if self.path.is_file():
            try:
                with np.load(self.path) as z:
                    keys, offsets = z["keys"], z["offsets"]
                    xyxy, conf, cls = z["xyxy"], z["conf"], z["cls"]
                for k, a, b in zip(keys, offsets[:-1], offsets[1:], strict=True):
                    self._rows[int(k)] = (xyxy[a:b], conf[a:b], cls[a:b])
            except (OSError, KeyError, ValueError) as exc:
                log.warning("ignoring unreadable detection cache %s: %s", self.path, exc)

    def get(self, key: int) -> tuple[npt.NDArray[np.float32], ...] | None:
        return self._rows.get(key)

    def put(self, key: int, d: Detections) -> None:
        self._rows[key] = (d.xyxy, d.confidence, d.class_id.astype(np.float32))
        self._dirty = True

    def save(self) -> None:
        if not self._dirty:
            return
        keys = sorted(self._rows)
        sizes = [len(self._rows[k][0]) for k in keys]
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)

        def cat(i: int, shape: tuple[int, ...]) -> npt.NDArray[np.float32]:
            parts = [self._rows[k][i] for k in keys]
            return (
                np.concatenate(parts).astype(np.float32) if parts else np.zeros(shape, np.float32)
            )

        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".{time.monotonic_ns()}.tmp.npz")
        np.savez_compressed(
            tmp,
            keys=np.array(keys, np.int64),
            offsets=offsets,
            xyxy=cat(0, (0, 4)).reshape(-1, 4),
            conf=cat(1, (0,)),
            cls=cat(2, (0,)),
        )
        tmp.replace(self.path)
        self._dirty = False


def detector_key(detector: Detector, extra: str = "") -> str:
    """What identifies a detector's output for caching: its name, classes and settings."""
    settings = {
        k: getattr(detector, k, None)
        for k in ("confidence", "iou", "imgsz", "agnostic_nms", "precision")
    }
    return f"{detector.name}|{sorted(detector.class_names.items())}|{settings}|{extra}"


def image_key(image: ImageBGR) -> int:
    """A 64-bit key of an image's shape and pixels (the detection cache's key).

    >>> a = np.zeros((4, 6, 3), np.uint8)
    >>> image_key(a) == image_key(a.copy()), image_key(a) == image_key(a[:, :5])
    (True, False)
    """
    h = hashlib.blake2b(digest_size=8)
    h.update(repr(image.shape).encode())
    h.update(np.ascontiguousarray(image).data)
    return int.from_bytes(h.digest(), "little", signed=True)


class CachedDetector(DetectorInfo):
    """A detector whose outputs are memoised in a :class:`DetectionCache` (see there).

    It presents the wrapped detector's settings (``native_resolution``, ``imgsz``, ``streams``)
    so the analyser plans regions exactly as it would with the detector itself.
    """

    def __init__(self, inner: Detector, cache: DetectionCache) -> None:
        self.inner = inner
        self.cache = cache
        self._name = inner.name
        self._class_names = dict(inner.class_names)
        self._person_class_ids = inner.person_class_ids
        self._last_ms = 0.0
        self.native_resolution = inner.native_resolution
        self.imgsz = inner.imgsz
        self.hits = 0

    def detect_batch(self, images: Sequence[ImageBGR]) -> list[Detections]:
        keys = [image_key(im) for im in images]
        out: list[Detections | None] = []
        missing: list[int] = []
        for i, (im, k) in enumerate(zip(images, keys, strict=True)):
            row = self.cache.get(k)
            if row is None:
                out.append(None)
                missing.append(i)
                continue
            self.hits += 1
            out.append(
                Detections.from_arrays(
                    xyxy=row[0],
                    confidence=row[1],
                    class_id=row[2].astype(np.int64),
                    image_size=(im.shape[1], im.shape[0]),
                    class_names=self._class_names,
                )
            )
        if missing:
            found = self.inner.detect_batch([images[i] for i in missing])
            self._last_ms = self.inner.last_ms
            for i, d in zip(missing, found, strict=True):
                self.cache.put(keys[i], d)
                out[i] = d
        return [d for d in out if d is not None]


def pick_camera(config: GridwatchConfig, camera_id: str | None) -> CameraConfig:
    if camera_id is None:
        if not config.cameras:
            raise ValueError("the config has no cameras")
        return config.cameras[0]
    for cam in config.cameras:
        if cam.id == camera_id:
            return cam
    raise ValueError(
        f"no camera {camera_id!r} in the config (it has {', '.join(c.id for c in config.cameras)})"
    )


FrameHook = Callable[[float, npt.NDArray[np.uint8], Detections | None], None]
CountHook = Callable[[float, Mapping[str, int]], None]
"""``on_count(video_s, {zone id: count})``: per analysed frame, the count each crowding rule
saw in its zone (what the evaluation compares with the ground truth)."""


def crowding_counts(rules: CameraRules) -> dict[str, int]:
    """Zone id → the count the zone's crowding rule saw at its last observation."""
    out: dict[str, int] = {}
    for rule in rules.rules:
        count = getattr(rule, "last_count", None)
        zone = getattr(rule, "zone", None)
        if rule.type == "crowding" and count is not None and zone is not None:
            out[zone.id] = int(count)
    return out


_DONE = object()


def replay(
    config: GridwatchConfig,
    video: Path,
    *,
    camera_id: str | None = None,
    detector: Detector | None = None,
    start_ts: float | None = None,
    realtime: bool = False,
    faults: Sequence[StreamFault] = (),
    cache: DetectionCache | None = None,
    on_frame: FrameHook | None = None,
    on_count: CountHook | None = None,
    observer: Callable[[str, str, float, float], None] | None = None,
) -> Iterator[ReplayEvent]:
    """Yield every incident event the camera's rules would emit over ``video``.

    ``detector`` is needed when the camera has detection rules. ``start_ts`` (Unix seconds) is
    the wall-clock time of the clip's first frame; default: now. ``on_frame(video_s, image,
    detections)`` is called for each analysed frame (tools draw with it); ``on_count`` with the
    crowding rules' counts (see :data:`CountHook`); ``observer(camera, mode, frame age ms,
    detector ms)`` for each detector run, as the worker's metrics get it (``mode``: ``full`` or
    ``regions``; a gated frame runs no detector). All run on the replay's loop thread.

    The loop runs on its own thread (it is the worker's asyncio loop); events come through a
    bounded queue, so a slow consumer slows the replay rather than piling events up.
    """
    cam = pick_camera(config, camera_id)
    rules = CameraRules(
        cam,
        config,
        person_classes=detector.person_class_ids if detector is not None else None,
        class_names=detector.class_names if detector is not None else None,
    )
    if rules.needs_detections and detector is None:
        raise ValueError(f"camera {cam.id} has detection rules: replay needs a detector")
    if not video.is_file():
        raise ValueError(f"{video}: no such file")
    t0 = time.time() if start_ts is None else start_ts
    out: queue.Queue[object] = queue.Queue(maxsize=256)
    stop = threading.Event()

    def put(item: object) -> None:
        while not stop.is_set():
            try:
                out.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    async def sink(
        camera: CameraConfig, event: IncidentEvent, frame: Frame | None, r: CameraRules
    ) -> None:
        put(ReplayEvent(event.observed_at - t0, camera.id, event.severity, event, t0))

    def run() -> None:
        try:
            asyncio.run(
                _run_loop(
                    config, cam, video, rules, detector, t0, realtime, faults, cache, sink,
                    on_frame, on_count, observer, stop,
                )
            )  # fmt: skip
            put(_DONE)
        except BaseException as exc:  # handed to the consumer, raised there
            put(exc)

    thread = threading.Thread(target=run, name=f"replay-{cam.id}", daemon=True)
    thread.start()
    try:
        while True:
            item = out.get()
            if item is _DONE:
                break
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, ReplayEvent)
            yield item
    finally:
        stop.set()
        thread.join()
        if cache is not None:
            cache.save()


async def _run_loop(
    config: GridwatchConfig,
    cam: CameraConfig,
    video: Path,
    rules: CameraRules,
    detector: Detector | None,
    t0: float,
    realtime: bool,
    faults: Sequence[StreamFault],
    cache: DetectionCache | None,
    sink: Any,
    on_frame: FrameHook | None,
    on_count: CountHook | None,
    observer: Callable[[str, str, float, float], None] | None,
    stop: threading.Event,
) -> None:
    """The worker's camera loop over a clip: see :func:`replay`."""
    from gridwatch.clock import PacedClock, VirtualClock
    from gridwatch.detectors.analyser import CameraAnalyser
    from gridwatch.detectors.analyser import settings_from_config as analysis_settings
    from gridwatch.detectors.batching import BatchingService
    from gridwatch.ingest.clip import ClipSource
    from gridwatch.tracking import CameraTracker
    from gridwatch.worker.pipeline import CameraPipeline

    clock = PacedClock(t0) if realtime else VirtualClock(t0)
    source = ClipSource(cam.id, video, clock, faults=faults)
    used: Detector | None = detector
    if detector is not None and cache is not None:
        used = CachedDetector(detector, cache)
    service: BatchingService | None = None
    analyser: CameraAnalyser | None = None
    if used is not None and rules.needs_detections:
        # the worker's inference service, one camera: no batching wait, nothing dropped
        service = BatchingService(used, max_batch=1, max_wait_ms=0.0, max_pending=4).start()
        analyser = CameraAnalyser(
            cam.id,
            service,
            analysis_settings(config.analysis),
            zones=[z.polygon for z in cam.zones],
            exclude=[m.polygon for m in cam.privacy_masks],
            imgsz=used.imgsz,
            native_resolution=used.native_resolution,
            analysis_fps=cam.analysis_fps,
            set_keyframes_only=source.set_keyframes_only,
            observer=observer,
            clock=clock.mono,
        )
    tracker = (
        CameraTracker(frame_rate=cam.analysis_fps, camera_id=cam.id, keep_unmatched=True)
        if rules.needs_detections
        else None
    )
    inference = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"replay-{cam.id}")
    pipeline = CameraPipeline(
        cam,
        source,
        used if used is not None else _NO_DETECTOR,
        inference,
        rules,
        tracker,
        sink,
        analyser=analyser,
        clock=clock,
    )

    def analysed(frame: Frame, detections: Detections) -> None:
        if stop.is_set():
            raise asyncio.CancelledError  # the consumer went away
        video_s = frame.pts_s if frame.pts_s is not None else clock.mono()
        if on_frame is not None:
            on_frame(video_s, frame.image, detections if rules.needs_detections else None)
        if on_count is not None and rules.needs_detections:
            on_count(video_s, crowding_counts(rules))

    pipeline.on_analysed = analysed
    try:
        await pipeline.run()
    finally:
        source.close()
        inference.shutdown(wait=True)
        if service is not None:
            service.close()
        if analyser is not None:
            log.debug("replay %s: analyser modes %s", cam.id, analyser.stats.modes)


class _NoDetector(DetectorInfo):
    """Stands in when a camera has frame rules only (tamper, offline): never called."""

    def __init__(self) -> None:
        self._name, self._class_names = "none", {}
        self._person_class_ids, self._last_ms = frozenset(), 0.0

    def detect_batch(self, images: Sequence[ImageBGR]) -> list[Detections]:
        raise RuntimeError("a camera without detection rules runs no detector")


_NO_DETECTOR = _NoDetector()


def parse_start(text: str | None, tz: dt.tzinfo) -> float | None:
    """``2026-11-24T23:00`` (local to ``tz`` unless it has an offset) → Unix seconds.

    >>> import zoneinfo
    >>> parse_start("2026-11-24T23:00:00+08:00", zoneinfo.ZoneInfo("UTC"))
    1795532400.0
    >>> parse_start("2026-11-24T15:00:00", zoneinfo.ZoneInfo("UTC"))
    1795532400.0
    """
    if text is None:
        return None
    when = dt.datetime.fromisoformat(text)
    if when.tzinfo is None:
        when = when.replace(tzinfo=tz)
    ts = when.timestamp()
    if not math.isfinite(ts):
        raise ValueError(f"bad time {text!r}")
    return ts

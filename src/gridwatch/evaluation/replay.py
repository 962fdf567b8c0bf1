"""Shadow mode: run a config's rules over a recorded clip and say what would have fired.

:func:`replay` drives the same parts a worker does (the detector, one ``CameraTracker`` per
camera built as the worker builds it, :class:`~gridwatch.rules.engine.CameraRules`, the privacy
masks) on a virtual clock that imitates the camera loop of :mod:`gridwatch.pipeline`:

* a tick every ``1 / analysis_fps`` seconds of video takes the newest decoded frame (older ones
  are dropped, as the live one-slot buffer drops them);
* when no frame has come for the loop's wait, the frame rules tick without a picture and, after
  ``stale_after_s``, the detection rules get a ``None`` observation;
* timestamps are the clip's presentation times plus ``start_ts`` (the wall-clock time the clip
  is replayed as, which is what schedules see).

It publishes nothing. Without ``realtime`` it runs as fast as the CPU allows; with it, it
waits for each tick's wall time, as a live camera would deliver it.

Stream faults can be injected to test the offline rule: ``silence`` drops frames and packets in
an interval (the camera went quiet), ``stall`` drops frames but keeps packets arriving (a
pipeline that receives data but decodes nothing). A clip with a gap in its timestamps is a
silence too.

Detections can be memoised per (clip content, detector settings, frame) in a
:class:`DetectionCache`, so re-running an evaluation after changing a rule's thresholds costs
the tracker and the rules, not the detector.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from gridwatch.config import CameraConfig, GridwatchConfig
from gridwatch.detectors.base import Detector
from gridwatch.model import Detections, IncidentEvent
from gridwatch.rules.base import FrameSample, thumbnail
from gridwatch.rules.engine import CameraRules

log = logging.getLogger(__name__)

FaultKind = Literal["silence", "stall"]


@dataclass(frozen=True, slots=True)
class StreamFault:
    """Between ``from_s`` and ``to_s`` of the clip: no frames (``stall``), or no frames and no
    packets (``silence``)."""

    kind: FaultKind
    from_s: float
    to_s: float

    def covers(self, video_s: float) -> bool:
        return self.from_s <= video_s < self.to_s


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
    """Detections per analysed frame, kept in one ``.npz`` per (clip, detector settings).

    The key hashes the clip's bytes, so a re-made clip with different content never reuses
    stale boxes. Frames are keyed by their presentation time in milliseconds.
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

    def get(self, pts_ms: int) -> tuple[npt.NDArray[np.float32], ...] | None:
        return self._rows.get(pts_ms)

    def put(self, pts_ms: int, d: Detections) -> None:
        self._rows[pts_ms] = (d.xyxy, d.confidence, d.class_id.astype(np.float32))
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
        k: getattr(detector, k, None) for k in ("confidence", "iou", "imgsz", "agnostic_nms")
    }
    return f"{detector.name}|{sorted(detector.class_names.items())}|{settings}|{extra}"


@dataclass(frozen=True, slots=True)
class _Decoded:
    pts_s: float
    image: npt.NDArray[np.uint8]


def decode_clip(path: Path) -> Iterator[_Decoded]:
    """Frames of a clip in presentation order with their times in seconds from its start."""
    import av

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
            yield _Decoded(pts - first, np.asarray(vf.to_ndarray(format="bgr24"), np.uint8))


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
) -> Iterator[ReplayEvent]:
    """Yield every incident event the camera's rules would emit over ``video``.

    ``detector`` is needed when the camera has detection rules. ``start_ts`` (Unix seconds) is
    the wall-clock time of the clip's first frame; default: now. ``on_frame(video_s, image,
    detections)`` is called for each analysed frame (tools draw with it).
    """
    from gridwatch.ingest.masks import PrivacyMasker
    from gridwatch.tracking import CameraTracker

    cam = pick_camera(config, camera_id)
    rules = CameraRules(
        cam,
        config,
        person_classes=detector.person_class_ids if detector is not None else None,
        class_names=detector.class_names if detector is not None else None,
    )
    if rules.needs_detections and detector is None:
        raise ValueError(f"camera {cam.id} has detection rules: replay needs a detector")
    tracker = (
        CameraTracker(frame_rate=cam.analysis_fps, camera_id=cam.id, keep_unmatched=True)
        if rules.needs_detections
        else None
    )
    masker = PrivacyMasker(m.polygon for m in cam.privacy_masks)
    t0 = time.time() if start_ts is None else start_ts
    period = 1.0 / cam.analysis_fps
    stale = max(2.0, 3 * period)
    idle_wait = min(stale, 1.0) if rules.frame_rules else stale
    wall0 = time.monotonic()

    def emit(events: list[IncidentEvent], now_s: float) -> Iterator[ReplayEvent]:
        for e in events:
            yield ReplayEvent(now_s, cam.id, rules.severity_of(e), e, t0)

    def sample(now_s: float, gray: npt.NDArray[np.uint8] | None) -> FrameSample:
        return FrameSample(
            ts=t0 + now_s,
            gray=gray,
            last_frame_ts=None if last_frame_s is None else t0 + last_frame_s,
            last_packet_ts=None if last_packet_s is None else t0 + last_packet_s,
        )

    def wait_until(now_s: float) -> None:
        if realtime:
            delay = wall0 + now_s - time.monotonic()
            if delay > 0:
                time.sleep(delay)

    frames = decode_clip(video)
    upcoming: _Decoded | None = next(frames, None)
    newest: _Decoded | None = None  # the one-slot buffer
    last_frame_s: float | None = None
    last_packet_s: float | None = None
    last_seen = 0.0
    now = 0.0
    next_tick = 0.0

    def arrive_until(limit_s: float) -> None:
        """Deliver the frames (and packets) that arrived by ``limit_s`` into the slot."""
        nonlocal upcoming, newest, last_frame_s, last_packet_s
        while upcoming is not None and upcoming.pts_s <= limit_s + 1e-9:
            f = upcoming
            upcoming = next(frames, None)
            fault = next((x for x in faults if x.covers(f.pts_s)), None)
            if fault is not None and fault.kind == "silence":
                continue
            last_packet_s = f.pts_s
            if fault is not None:  # stall: the packet came, no frame decoded
                continue
            last_frame_s = f.pts_s
            newest = f

    try:
        while True:
            next_tick += period
            arrive_until(now)
            if newest is None:
                # wait for a frame up to the next tick plus the idle wait
                deadline = max(now, next_tick) + idle_wait
                if upcoming is None:
                    break  # the clip ended
                # the live loop takes the first frame that arrives before its deadline
                while newest is None and upcoming is not None and upcoming.pts_s <= deadline:
                    arrive_until(upcoming.pts_s)
                if newest is None:
                    now = deadline
                    wait_until(now)
                    events = rules.update_frame(sample(now, None))
                    if now - last_seen >= stale:
                        events += rules.update(None, t0 + now)
                    yield from emit(events, now)
                    next_tick = now
                    continue
                now = max(now, newest.pts_s)
            frame, newest = newest, None
            wait_until(now)
            last_seen = now
            image = masker.apply_image(frame.image.copy()) if masker else frame.image
            detections: Detections | None = None
            if tracker is not None and detector is not None:
                key = round(frame.pts_s * 1000)
                cached = cache.get(key) if cache is not None else None
                h, w = image.shape[:2]
                if cached is not None:
                    raw = Detections.from_arrays(
                        xyxy=cached[0],
                        confidence=cached[1],
                        class_id=cached[2].astype(np.int64),
                        image_size=(w, h),
                        class_names=detector.class_names,
                    )
                else:
                    raw = detector.detect(image)
                    if cache is not None:
                        cache.put(key, raw)
                detections = tracker.update(raw)
            ts = t0 + frame.pts_s
            events = rules.update(detections, ts) if detections is not None else []
            if rules.frame_rules:
                events += rules.update_frame(sample(frame.pts_s, thumbnail(image)))
            if on_frame is not None:
                on_frame(frame.pts_s, image, detections)
            if on_count is not None and detections is not None:
                on_count(frame.pts_s, crowding_counts(rules))
            yield from emit(events, frame.pts_s)
            if next_tick > now:
                now = next_tick
            else:
                next_tick = now
    finally:
        if cache is not None:
            cache.save()


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

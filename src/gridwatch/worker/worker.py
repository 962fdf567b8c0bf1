"""The worker's composition root: wires ingest, detector, tracker, rules and alert output.

Nothing here holds logic of its own; each part lives in its module and is built here once per
worker. Concurrency: one decoder thread per camera, one inference thread shared by all cameras
(the model uses every core itself; two concurrent inferences would only fight over them), and
the asyncio loop for pacing, NATS and snapshots. Between stages there are only bounded
buffers: the one-slot latest frame per camera and the bounded alert outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import statistics
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext

from gridwatch.alerts.snapshots import (
    SnapshotPrivacy,
    SnapshotStore,
    alert_label,
    render_snapshot,
    snapshot_name,
)
from gridwatch.alerts.spool import AlertSpool, SpoolingPublisher
from gridwatch.alerts.streams import ensure_alert_infra
from gridwatch.alerts.subjects import health_subject
from gridwatch.bus.connect import connect
from gridwatch.bus.infra import ensure_clip_store
from gridwatch.bus.messages import CameraHealth
from gridwatch.config import CameraConfig, GridwatchConfig
from gridwatch.detectors.analyser import CameraAnalyser
from gridwatch.detectors.analyser import settings_from_config as analysis_settings
from gridwatch.detectors.base import Detector
from gridwatch.detectors.batching import BatchingService
from gridwatch.ingest.reader import CameraReader
from gridwatch.ingest.urls import redact_url
from gridwatch.leases.manager import LeaseManager
from gridwatch.model import Alert, Frame, IncidentEvent, IncidentState
from gridwatch.rules.base import CAMERA_STOPPED, WORKER_STOPPED
from gridwatch.rules.engine import CameraRules, RuleBuildError
from gridwatch.stats.publisher import StatsPublisher, start_stats
from gridwatch.tracking import CameraTracker
from gridwatch.worker.clips import ClipRecorder
from gridwatch.worker.metrics import CameraFigures, WorkerFigures, WorkerMetrics
from gridwatch.worker.pipeline import CameraPipeline

log = logging.getLogger(__name__)

HEALTH_EVENT_TYPES = frozenset({"offline", "tamper"})
"""Incident types that change a camera's health: published on gw.v1.health at once."""


def _rate(stamps: Iterable[float], now: float, window_s: float = 10.0) -> float | None:
    """Events per second over the last ``window_s`` of monotonic ``stamps``.

    >>> _rate([1.0, 1.5, 2.0, 2.5, 3.0], now=3.0)
    2.0
    """
    recent = [t for t in stamps if now - t <= window_s]
    if len(recent) < 2:
        return None
    span = recent[-1] - recent[0]
    return round((len(recent) - 1) / span, 2) if span > 0 else None


@dataclass
class _Outgoing:
    camera: CameraConfig
    event: IncidentEvent
    frame: Frame | None
    zone_polygon: list[tuple[float, float]]
    severity: str = "warning"
    privacy: SnapshotPrivacy = field(default_factory=lambda: SnapshotPrivacy(whole=True))
    """What the snapshot service blurs for blurred roles (default: the whole picture)."""


class Worker:
    """Runs every enabled camera of a config until ``stop`` is set."""

    def __init__(
        self,
        config: GridwatchConfig,
        *,
        nats_url: str | None = None,
        detector: Detector | None = None,
        health_interval_s: float = 10.0,
        outbox_size: int = 256,
        registry: bool | None = None,
    ) -> None:
        self.config = config
        self.nats_url = nats_url or config.nats.url
        self._detector = detector
        self.health_interval_s = health_interval_s
        self.outbox: asyncio.Queue[_Outgoing] = asyncio.Queue(maxsize=outbox_size)
        self.outbox_dropped = 0
        self.pipelines: dict[str, CameraPipeline] = {}
        self.readers: dict[str, CameraReader] = {}
        self.cameras: dict[str, CameraConfig] = {}
        self._camera_tasks: dict[str, asyncio.Task[None]] = {}
        self._inference = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")
        self.inference_service: BatchingService | None = None
        """Detector work of every camera, batched and bounded (started by :meth:`run`)."""
        self.analysers: dict[str, CameraAnalyser] = {}
        self.metrics = WorkerMetrics()
        self.metrics.bind(self.figures)
        self.nc: NatsClient | None = None
        self.published = 0
        self.spool: AlertSpool | None = None
        self.on_published: list[Callable[[Alert], None]] = []
        """Called with each alert once JetStream has stored it (the demo prints them)."""
        self.ready = asyncio.Event()
        self.use_registry = config.registry.enabled if registry is None else registry
        """Cameras from the gw_cameras KV bucket, followed live, instead of config.cameras."""
        self.leases: LeaseManager[CameraConfig] | None = None
        """With ``leases.enabled``: runs only the cameras this worker holds leases on."""
        self.clips: ClipRecorder | None = None
        """With ``alerts.clips.enabled``: packet rings and a clip per raised alert."""
        self.stats: StatsPublisher | None = None  # people-flow statistics (gridwatch.stats)

    async def _load_detector(self) -> Detector:
        if self._detector is not None:
            return self._detector
        d = self.config.detector
        t0 = time.perf_counter()
        detector = await asyncio.to_thread(d.build)
        log.info("detector %s (%s) loaded in %.1fs", d.model, d.backend, time.perf_counter() - t0)
        return detector

    async def run(self, stop: asyncio.Event) -> None:
        nc = await connect(
            self.nats_url,
            name="gridwatch-worker",
            connect_timeout=self.config.nats.connect_timeout_s,
            user=self.config.nats.user,
            password=self.config.nats.password,
            tls_ca_file=self.config.nats.tls_ca_file,
        )
        self.nc = nc
        js = nc.jetstream()
        tasks: list[asyncio.Task[None]] = []
        publisher: SpoolingPublisher | None = None
        try:
            infra = await ensure_alert_infra(
                # generous: workers started together on a fresh cluster create the same
                # replicated streams at once, and a replicated create can take seconds
                nc.jetstream(timeout=30.0),
                max_age_s=self.config.alerts.retention_days * 86400,
                duplicate_window_s=self.config.alerts.duplicate_window_s,
                replicas=self.config.nats.replicas,
                snapshot_ttl_s=None
                if self.config.alerts.snapshot_retention_days is None
                else self.config.alerts.snapshot_retention_days * 86400,
            )
            # alerts go to a local spool while NATS is unreachable, replayed in order after
            spool_cfg = self.config.alerts.spool
            self.spool = AlertSpool(
                spool_cfg.dir,
                max_items=spool_cfg.max_items,
                max_bytes=spool_cfg.max_bytes,
                max_age_s=spool_cfg.max_age_s,
            )
            publisher = SpoolingPublisher(
                nc,
                self.spool,
                snapshots=SnapshotStore(infra.snapshots),
                direct_attempts=spool_cfg.direct_attempts,
                duplicate_window_s=self.config.alerts.duplicate_window_s,
                on_stored=lambda alert, _result: self._stored(alert),
            )
            tasks.append(asyncio.create_task(publisher.run_replay()))
            clips = self.config.alerts.clips
            if clips.enabled:
                self.clips = await self._start_clips(nc)
            self._detector = await self._load_detector()
            self._start_inference()
            self.stats = await start_stats(nc, self.config, self)  # None: off
            tasks += self.stats.tasks if self.stats is not None else []
            if self.config.leases.enabled:
                self.leases = await self._start_leases(js)
            if self.use_registry:
                tasks.append(await self._follow_registry(js))
            elif self.leases is not None:
                await self.leases.set_cameras(list(self.config.cameras))
            else:
                for cam in self.config.cameras:
                    self.start_camera(cam)
            tasks.append(asyncio.create_task(self._drain_outbox(publisher)))
            tasks.append(asyncio.create_task(self._publish_health(nc)))
            self.ready.set()
            await stop.wait()
        finally:
            log.info("worker stopping")
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            if self.leases is not None:  # stops its cameras, then hands the leases back
                await self.leases.close()
            await asyncio.gather(
                *(self.stop_camera(cid, reason=WORKER_STOPPED) for cid in list(self.pipelines))
            )
            if publisher is not None:  # the cameras' last `cleared` alerts (spooled if need be)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._send_pending(publisher), 10)
            if self.clips is not None:  # pending clips, cut short with what the rings hold
                with contextlib.suppress(Exception):
                    await self.clips.close()
            self._inference.shutdown(wait=False, cancel_futures=True)
            await asyncio.to_thread(self._stop_inference)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(nc.drain(), 5)
            if self.spool is not None:
                self.spool.close()

    async def _start_clips(self, nc: NatsClient) -> ClipRecorder | None:
        """The clip recorder, or None (logged) when gw_clips cannot be made or bound: clips
        are evidence beside the alerts, never a reason for cameras not to run."""
        clips = self.config.alerts.clips
        try:
            store = await ensure_clip_store(
                nc.jetstream(timeout=30.0),
                ttl_s=clips.retention_days * 86400,
                max_bytes=clips.max_bytes,
                replicas=self.config.nats.replicas,
            )
        except Exception as e:
            log.error("evidence clips are off: object store gw_clips unavailable (%s)", e)
            return None
        return ClipRecorder(store, clips)

    def _start_inference(self) -> None:
        """The batching inference service (one thread per detector stream) and /metrics."""
        b = self.config.analysis.batching
        detector = self.detector
        self.inference_service = BatchingService(
            detector,
            max_batch=b.max_batch,
            max_wait_ms=b.max_wait_ms,
            max_pending=b.max_pending,
            workers=max(1, detector.streams),
        ).start()
        m = self.config.metrics
        if m.enabled:
            self.metrics.serve(m.host, m.port)

    def _stop_inference(self) -> None:
        if self.inference_service is not None:
            self.inference_service.close()
            self.inference_service = None
        self.metrics.close()

    def _make_analyser(self, cam: CameraConfig, reader: CameraReader) -> CameraAnalyser | None:
        """Motion gate + regions + batching for ``cam`` (None before the service runs)."""
        if self.inference_service is None:
            return None
        detector = self.detector
        return CameraAnalyser(
            cam.id,
            self.inference_service,
            analysis_settings(self.config.analysis),
            zones=[z.polygon for z in cam.zones],
            exclude=[m.polygon for m in cam.privacy_masks],
            imgsz=self.config.detector.imgsz,
            native_resolution=detector.native_resolution,
            analysis_fps=cam.analysis_fps,
            set_keyframes_only=reader.set_keyframes_only,
            observer=self.metrics.observe,
        )

    @property
    def detector(self) -> Detector:
        if self._detector is None:
            raise RuntimeError("the detector is loaded when the worker runs")
        return self._detector

    def start_camera(self, cam: CameraConfig) -> bool:
        """Start analysing ``cam`` (no-op for a disabled camera). Must run in the loop."""
        if not cam.enabled:
            log.info("camera %s is disabled", cam.id)
            return False
        if cam.id in self.pipelines:
            raise ValueError(f"camera {cam.id} is already running")
        detector = self.detector
        try:
            rules = CameraRules(
                cam,
                self.config,
                person_classes=detector.person_class_ids,
                class_names=detector.class_names,
            )
        except RuleBuildError as exc:  # e.g. vehicle_stop with a model that has no vehicles
            log.error("camera %s not started: %s", cam.id, exc)
            return False
        reader = CameraReader(
            cam.id,
            cam.sub_url or cam.url,
            loop=cam.loop,
            ring=None
            if self.clips is None
            else self.clips.ring_for(cam.id, cam.clips.pre_s, cam.clips.post_s),
        )
        # crowding counts every person found; tracks carry ids for the rules that need them
        # (ByteTrack confirms only about 40% of walkers at 2 fps: see docs/performance.md)
        tracker = CameraTracker(frame_rate=cam.analysis_fps, camera_id=cam.id, keep_unmatched=True)
        analyser = self._make_analyser(cam, reader)
        pipeline = CameraPipeline(
            cam, reader, detector, self._inference, rules, tracker, self._enqueue, analyser=analyser
        )
        if self.stats is not None:
            self.stats.attach(pipeline, detector.person_class_ids)
        if analyser is not None:
            self.analysers[cam.id] = analyser
        self.readers[cam.id] = reader
        self.pipelines[cam.id] = pipeline
        self.cameras[cam.id] = cam
        reader.start()
        self._camera_tasks[cam.id] = asyncio.create_task(pipeline.run(), name=f"camera-{cam.id}")
        log.info("camera %s (%s) started: %s", cam.id, cam.name, redact_url(reader.url))
        return True

    async def _follow_registry(self, js: JetStreamContext) -> asyncio.Task[None]:
        """Run the registry's cameras and follow its changes (see gridwatch.registry.watcher)."""
        from gridwatch.registry.store import CameraRegistry
        from gridwatch.registry.watcher import RegistryWatcher

        registry = await CameraRegistry.open(
            js, history=self.config.registry.history, replicas=self.config.nats.replicas
        )
        apply = self.leases.set_cameras if self.leases is not None else self.apply_cameras
        _, task = await RegistryWatcher.start(registry, self.config, apply)
        return task

    async def _start_leases(self, js: JetStreamContext) -> LeaseManager[CameraConfig]:
        """Share cameras with other workers: run the ones this worker holds leases on."""
        manager = LeaseManager(
            js,
            self.config.leases,
            self.apply_cameras,
            key=lambda c: c.id,
            eligible=lambda c: c.enabled,
            replicas=self.config.nats.replicas,
            running_now=lambda: list(self.pipelines),
        )
        return await manager.start()

    async def stop_camera(self, camera_id: str, *, reason: str | None = CAMERA_STOPPED) -> None:
        """Stop one camera; the others are untouched.

        Its open incidents are cleared with ``reason`` (published like any alert): its rules
        never run again, so nothing else would ever clear them. ``None`` leaves them open.
        """
        task = self._camera_tasks.pop(camera_id, None)
        reader = self.readers.pop(camera_id, None)
        pipeline = self.pipelines.pop(camera_id, None)
        self.cameras.pop(camera_id, None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if pipeline is not None and reason is not None:  # after the task: no rule runs now
            rules = pipeline.rules
            for event in rules.close_all(time.time(), reason):
                await self._enqueue(pipeline.camera, event, pipeline.last_frame, rules)
        if self.analysers.pop(camera_id, None) is not None:
            self.metrics.forget_camera(camera_id)
        if self.clips is not None:
            self.clips.forget(camera_id)
        if reader is not None:
            await asyncio.to_thread(reader.stop, 10.0)
            log.info("camera %s stopped", camera_id)

    async def apply_cameras(self, cameras: list[CameraConfig]) -> dict[str, list[str]]:
        """Converge the running cameras on ``cameras``: start new ones, stop removed or disabled
        ones, restart changed ones. Unchanged cameras keep running undisturbed."""
        wanted = {c.id: c for c in cameras if c.enabled}
        changes: dict[str, list[str]] = {"started": [], "stopped": [], "restarted": []}
        for cid in list(self.pipelines):
            if cid not in wanted:
                await self.stop_camera(cid)
                changes["stopped"].append(cid)
        for cid, cam in wanted.items():
            current = self.cameras.get(cid)
            if current is None:
                self.start_camera(cam)
                changes["started"].append(cid)
            elif current != cam:
                await self.stop_camera(cid)
                self.start_camera(cam)
                changes["restarted"].append(cid)
        return changes

    async def _enqueue(
        self,
        camera: CameraConfig,
        event: IncidentEvent,
        frame: Frame | None,
        rules: CameraRules,
    ) -> None:
        # A camera whose lease lapsed may run on another worker by now: its new owner raises
        # what it sees. Only the `cleared` of our own incidents still goes out (nobody else
        # can clear them, and it cannot double anything: the incident ids are ours).
        fenced = event.state is not IncidentState.CLEARED
        if fenced and self.leases is not None and not self.leases.may_publish(camera.id):
            self.leases.stats.fenced_alerts += 1
            log.warning("camera %s: %s %s not sent: lease lost", camera.id, event.type,
                        event.state.value)  # fmt: skip
            return
        zone = next((z for z in camera.zones if z.id == event.zone_id), None)
        polygon = list(zone.polygon) if zone else []
        item = _Outgoing(
            camera,
            event,
            frame,
            polygon,
            event.severity,
            self._snapshot_privacy(camera, event, frame, rules),
        )
        if event.type in HEALTH_EVENT_TYPES:  # health changed: say so now, not at the next beat
            await self._publish_health_of(camera.id)
        try:
            self.outbox.put_nowait(item)
        except asyncio.QueueFull:
            self.outbox_dropped += 1
            log.error("alert outbox full: dropped %s %s", event.type, event.state.value)

    def _snapshot_privacy(
        self, camera: CameraConfig, event: IncidentEvent, frame: Frame | None, rules: CameraRules
    ) -> SnapshotPrivacy:
        """Every person the detector found on ``frame`` (not only the rule's boxes: people
        outside the zone, bystanders of a vehicle stop), for the snapshot service to blur.
        The whole picture instead for tamper and offline alerts (a covered or frozen camera
        says nothing reliable about who is in view) and whenever this frame's detections are
        not known (only frame rules run, or the frame is not the last analysed one)."""
        whole = SnapshotPrivacy(people=None, whole=True)
        if frame is None or event.type in HEALTH_EVENT_TYPES or not rules.needs_detections:
            return whole
        pipeline = self.pipelines.get(camera.id)
        if pipeline is None or pipeline.last_frame is not frame:
            return whole
        detections = pipeline.last_detections
        if detections is None:
            return whole
        persons = np.isin(detections.class_id, list(self.detector.person_class_ids))
        people = detections.select(persons).xyxyn().tolist()
        return SnapshotPrivacy(people=tuple((b[0], b[1], b[2], b[3]) for b in people))

    async def _drain_outbox(self, publisher: SpoolingPublisher) -> None:
        """Snapshot first, then the alert that names it; one at a time keeps the order."""
        while True:
            item = await self.outbox.get()
            try:
                await self._send(item, publisher)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("could not publish %s alert", item.event.type)

    async def _send_pending(self, publisher: SpoolingPublisher) -> None:
        """Send what is left in the outbox (at shutdown, once its drain task has stopped)."""
        while not self.outbox.empty():
            item = self.outbox.get_nowait()
            try:
                await self._send(item, publisher)
            except Exception:
                log.exception("could not publish %s alert", item.event.type)

    async def _send(self, item: _Outgoing, publisher: SpoolingPublisher) -> None:
        cam, event = item.camera, item.event
        grid_id = cam.grid
        severity = item.severity
        alert_id = event.incident_id(cam.id)
        snap_name = (
            None
            if item.frame is None
            else snapshot_name(cam.id, alert_id, event.state.value, event.sequence)
        )
        raised = event.state is IncidentState.RAISED
        alert = Alert.from_event(
            event,
            camera_id=cam.id,
            camera_name=cam.name,
            grid_id=grid_id,
            snapshot=snap_name,
            severity=severity,
            clip=self.clips.clip_for(cam.id, alert_id) if raised and self.clips else None,
        )
        if alert.clip is not None and self.clips is not None:
            # the clip's onset: the moment the alert was raised (observed_at); the condition
            # began min_duration_s before (started_at), inside the pre-roll for short rules
            self.clips.schedule(alert, event.observed_at, [m.polygon for m in cam.privacy_masks])
        if item.frame is None:
            result = await publisher.publish(alert)
        else:
            jpeg = await asyncio.to_thread(
                render_snapshot,
                item.frame.image,
                zone_polygon_norm=item.zone_polygon,
                boxes_norm=list(event.boxes),
                label=alert_label(alert),
                # painted on the analysed frame already; again here, whatever frame comes
                mask_polygons_norm=[m.polygon for m in cam.privacy_masks],
                privacy=item.privacy,
            )
            result = await publisher.publish_with_snapshot(alert, jpeg)
        if result is not None:  # None: spooled, counted when the replay has stored it
            self._stored(alert)

    def _stored(self, alert: Alert) -> None:
        self.published += 1
        for callback in self.on_published:
            callback(alert)

    def figures(self) -> WorkerFigures:
        """The counters /metrics exports, read now (see :mod:`gridwatch.worker.metrics`)."""
        cams = []
        for cam_id, reader in list(self.readers.items()):
            s = reader.stats
            pipe = self.pipelines.get(cam_id)
            analyser = self.analysers.get(cam_id)
            cams.append(
                CameraFigures(
                    camera_id=cam_id,
                    frames_decoded=s.frames_decoded,
                    frames_dropped=reader.slot.dropped,
                    reconnects=max(0, s.opens - 1),
                    online=s.state.value == "online",
                    keyframes_only=s.keyframes_only,
                    frames_analysed=pipe.stats.analysed if pipe is not None else None,
                    detector_runs=dict(analyser.stats.modes) if analyser is not None else None,
                )
            )
        service = self.inference_service
        return WorkerFigures(
            cameras=cams,
            inference=service.stats if service is not None else None,
            inference_pending=service.pending if service is not None else 0,
        )

    def health(self, camera_id: str) -> CameraHealth:  # the one producer of gw.v1.health
        reader = self.readers[camera_id]
        pipe = self.pipelines[camera_id]
        s = reader.stats
        now = time.monotonic()
        det = list(pipe.stats.detector_ms)
        age = list(pipe.stats.frame_age_ms)
        since = None if s.last_frame_mono is None else round(now - s.last_frame_mono, 2)
        return CameraHealth.model_validate({
            "camera_id": camera_id,
            "state": s.state.value,
            "ts": time.time(),
            "frames_decoded": s.frames_decoded,
            "frames_dropped": reader.slot.dropped,
            "frames_analysed": pipe.stats.analysed,
            "corrupt_packets": s.corrupt,
            "reconnects": max(0, s.opens - 1),
            "failures": s.failures,
            "last_error": s.last_error,
            "seconds_since_frame": since,
            "resolution": [s.width, s.height],
            "detector_ms_p50": round(statistics.median(det), 1) if det else None,
            "frame_age_ms_p50": round(statistics.median(age), 1) if age else None,
            "count": pipe.stats.last_count,
            "online": s.state.value == "online",
            "analysis_fps": _rate(pipe.stats.analysed_mono, now),
            # the offline and tamper rules' view: online/offline (silent|stuck), tamper kinds
            **pipe.rules.health(),
            # motion gate / regions: detector runs by mode, keyframe-only decoding
            **({"analysis": a.health()} if (a := self.analysers.get(camera_id)) else {}),
        })  # fmt: skip

    async def _publish_health_of(self, camera_id: str) -> None:
        nc = self.nc
        if nc is None or camera_id not in self.pipelines:
            return
        report = self.health(camera_id)
        with contextlib.suppress(Exception):
            await nc.publish(health_subject(camera_id), report.to_json())

    async def _publish_health(self, nc: NatsClient) -> None:
        while True:
            await asyncio.sleep(self.health_interval_s)
            for cam_id in list(self.pipelines):
                report = self.health(cam_id)
                log.info("health %s", json.dumps(report.to_dict(), ensure_ascii=False))
                with contextlib.suppress(Exception):
                    await nc.publish(health_subject(cam_id), report.to_json())

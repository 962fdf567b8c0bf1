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
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import nats
from nats.aio.client import Client as NatsClient

from gridwatch.alerts.publisher import AlertPublisher
from gridwatch.alerts.snapshots import SnapshotStore, alert_label, render_snapshot, snapshot_name
from gridwatch.alerts.streams import ensure_alert_infra
from gridwatch.alerts.subjects import health_subject
from gridwatch.config import CameraConfig, GridwatchConfig
from gridwatch.detectors import build_detector
from gridwatch.detectors.base import Detector
from gridwatch.ingest.reader import CameraReader
from gridwatch.model import Alert, Frame, IncidentEvent
from gridwatch.pipeline import CameraPipeline
from gridwatch.rules.engine import CameraRules
from gridwatch.tracking import CameraTracker

log = logging.getLogger(__name__)


@dataclass
class _Outgoing:
    camera: CameraConfig
    event: IncidentEvent
    frame: Frame | None
    zone_polygon: list[tuple[float, float]]


async def connect_nats(url: str, *, name: str, connect_timeout_s: float = 5.0) -> NatsClient:
    """Connect with endless reconnects: a worker outlives NATS restarts."""

    async def on_error(exc: Exception) -> None:
        log.warning("nats: %s", exc)

    async def on_disconnect() -> None:
        log.warning("nats: disconnected")

    async def on_reconnect() -> None:
        log.info("nats: reconnected")

    return await nats.connect(
        servers=[u.strip() for u in url.split(",")],
        name=name,
        connect_timeout=connect_timeout_s,
        max_reconnect_attempts=-1,
        reconnect_time_wait=1.0,
        allow_reconnect=True,
        error_cb=on_error,
        disconnected_cb=on_disconnect,
        reconnected_cb=on_reconnect,
    )


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
        self.nc: NatsClient | None = None
        self.published = 0
        self.on_published: list[Callable[[Alert], None]] = []
        """Called with each alert once JetStream has stored it (the demo prints them)."""
        self.ready = asyncio.Event()

    async def _load_detector(self) -> Detector:
        if self._detector is not None:
            return self._detector
        d = self.config.detector
        t0 = time.perf_counter()
        detector = await asyncio.to_thread(
            build_detector,
            d.model,
            d.confidence,
            iou=d.iou,
            imgsz=d.imgsz,
            threads=d.threads,
        )
        log.info("detector %s loaded in %.1fs", d.model, time.perf_counter() - t0)
        return detector

    async def run(self, stop: asyncio.Event) -> None:
        nc = await connect_nats(
            self.nats_url,
            name="gridwatch-worker",
            connect_timeout_s=self.config.nats.connect_timeout_s,
        )
        self.nc = nc
        js = nc.jetstream()
        tasks: list[asyncio.Task[None]] = []
        try:
            infra = await ensure_alert_infra(
                js,
                max_age_s=self.config.alerts.retention_days * 86400,
                duplicate_window_s=self.config.alerts.duplicate_window_s,
            )
            publisher = AlertPublisher(nc, snapshots=SnapshotStore(infra.snapshots))
            self._detector = await self._load_detector()
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
            await asyncio.gather(*(self.stop_camera(cid) for cid in list(self.pipelines)))
            self._inference.shutdown(wait=False, cancel_futures=True)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(nc.drain(), 5)

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
        reader = CameraReader(cam.id, cam.url, loop=cam.loop)
        rules = CameraRules(cam, self.config, person_classes=detector.person_class_ids)
        # crowding counts every person found; tracks carry ids for the rules that need them
        # (ByteTrack confirms only about 40% of walkers at 2 fps: see docs/performance.md)
        tracker = CameraTracker(frame_rate=cam.analysis_fps, camera_id=cam.id, keep_unmatched=True)
        pipeline = CameraPipeline(
            cam, reader, detector, self._inference, rules, tracker, self._enqueue
        )
        self.readers[cam.id] = reader
        self.pipelines[cam.id] = pipeline
        self.cameras[cam.id] = cam
        reader.start()
        self._camera_tasks[cam.id] = asyncio.create_task(pipeline.run(), name=f"camera-{cam.id}")
        log.info("camera %s (%s) started: %s", cam.id, cam.name, cam.url)
        return True

    async def stop_camera(self, camera_id: str) -> None:
        """Stop one camera; the others are untouched."""
        task = self._camera_tasks.pop(camera_id, None)
        reader = self.readers.pop(camera_id, None)
        self.pipelines.pop(camera_id, None)
        self.cameras.pop(camera_id, None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
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
        zone = next((z for z in camera.zones if z.id == event.zone_id), None)
        item = _Outgoing(camera, event, frame, list(zone.polygon) if zone else [])
        try:
            self.outbox.put_nowait(item)
        except asyncio.QueueFull:
            self.outbox_dropped += 1
            log.error("alert outbox full: dropped %s %s", event.type, event.state.value)

    async def _drain_outbox(self, publisher: AlertPublisher) -> None:
        """Snapshot first, then the alert that names it; one at a time keeps the order."""
        while True:
            item = await self.outbox.get()
            try:
                await self._send(item, publisher)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("could not publish %s alert", item.event.type)

    async def _send(self, item: _Outgoing, publisher: AlertPublisher) -> None:
        cam, event = item.camera, item.event
        grid_id = cam.grid
        severity = "warning"
        for rc in cam.rules:
            if f"{rc.type}/{rc.zone}" == event.rule_key:
                severity = rc.severity
        alert_id = event.incident_id(cam.id)
        snap_name = (
            None
            if item.frame is None
            else snapshot_name(cam.id, alert_id, event.state.value, event.sequence)
        )
        alert = Alert.from_event(
            event,
            camera_id=cam.id,
            camera_name=cam.name,
            grid_id=grid_id,
            snapshot=snap_name,
            severity=severity,
        )
        if item.frame is None:
            await publisher.publish(alert)
        else:
            jpeg = await asyncio.to_thread(
                render_snapshot,
                item.frame.image,
                zone_polygon_norm=item.zone_polygon,
                boxes_norm=list(event.boxes),
                label=alert_label(alert),
            )
            await publisher.publish_with_snapshot(alert, jpeg)
        self.published += 1
        for callback in self.on_published:
            callback(alert)

    def health(self, camera_id: str) -> dict[str, object]:
        reader = self.readers[camera_id]
        pipe = self.pipelines[camera_id]
        s = reader.stats
        now = time.monotonic()
        det = list(pipe.stats.detector_ms)
        age = list(pipe.stats.frame_age_ms)
        return {
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
            "seconds_since_frame": None
            if s.last_frame_mono is None
            else round(now - s.last_frame_mono, 2),
            "resolution": [s.width, s.height],
            "detector_ms_p50": round(statistics.median(det), 1) if det else None,
            "frame_age_ms_p50": round(statistics.median(age), 1) if age else None,
            "count": pipe.stats.last_count,
        }

    async def _publish_health(self, nc: NatsClient) -> None:
        while True:
            await asyncio.sleep(self.health_interval_s)
            for cam_id in list(self.pipelines):
                report = self.health(cam_id)
                log.info("health %s", json.dumps(report, ensure_ascii=False))
                with contextlib.suppress(Exception):
                    await nc.publish(health_subject(cam_id), json.dumps(report).encode())

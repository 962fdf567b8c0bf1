"""Camera health through a real worker: a real file camera that ends goes offline (silent),
the offline incident is published like any alert, and gw.v1.health.<camera> says so at once;
a camera whose rules the model cannot serve is refused without stopping the others."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt
import pytest
from nats.aio.msg import Msg

from gridwatch.alerts.tail import iter_alerts
from gridwatch.config import parse_config
from gridwatch.model import Alert, Detections, IncidentState
from gridwatch.worker import Worker
from tests.plugins.nats_fixtures import connect_flushed

pytestmark = pytest.mark.timeout(120)


class UnusedDetector:
    """The camera has only frame rules, so the worker must never call a detector; this one
    counts calls to prove it (and spares the test loading a model it would not use)."""

    name = "unused"
    imgsz = 640
    native_resolution = False
    streams = 1
    class_names: Mapping[int, str] = {0: "person"}
    person_class_ids = frozenset({0})
    last_ms = 0.0
    calls = 0

    def detect(self, image: npt.NDArray[np.uint8]) -> Detections:
        self.calls += 1
        return Detections.empty((image.shape[1], image.shape[0]))

    def detect_batch(self, images: Sequence[npt.NDArray[np.uint8]]) -> list[Detections]:
        return [self.detect(i) for i in images]


async def test_file_camera_that_ends_goes_offline_and_health_says_so(
    nats_server, demo_clip
) -> None:  # type: ignore[no-untyped-def]
    clip = demo_clip(4.0)
    cfg = parse_config(
        f"""
grids: [{{id: grid-a}}]
cameras:
  - id: gate
    grid: grid-a
    url: {clip}
    analysis_fps: 4
    rules:
      - {{type: offline, offline_after_s: 2, severity: critical}}
      - {{type: tamper, min_duration_s: 30}}
  - id: lane
    grid: grid-a
    url: {clip}
    zones: [{{id: bay, polygon: [[0, 0], [1, 0], [1, 1]]}}]
    rules: [{{type: vehicle_stop, zone: bay}}]
""",
        "test.yaml",
    )
    nc = await connect_flushed(nats_server.url)
    reports: list[dict[str, object]] = []

    async def on_health(msg: Msg) -> None:
        reports.append(json.loads(msg.data))

    await nc.subscribe("gw.v1.health.gate", cb=on_health)
    detector = UnusedDetector()
    stop = asyncio.Event()
    worker = Worker(cfg, nats_url=nats_server.url, detector=detector, health_interval_s=1.0)
    task = asyncio.create_task(worker.run(stop))
    alerts: list[Alert] = []
    try:
        await asyncio.wait_for(worker.ready.wait(), 30)
        # a model without vehicle classes cannot serve vehicle_stop: that camera is refused,
        # the other runs
        assert set(worker.pipelines) == {"gate"}

        async def first_offline() -> None:
            async for alert in iter_alerts(nc, since=None):
                alerts.append(alert)
                return

        await asyncio.wait_for(first_offline(), 40)
        for _ in range(20):  # the report sent with the alert may still be in flight
            if any(r.get("offline") == "silent" for r in reports):
                break
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 30)
        await nc.drain()

    (alert,) = alerts
    assert alert.type == "offline"
    assert alert.state is IncidentState.RAISED
    assert alert.severity == "critical"
    assert alert.zone_id is None
    assert alert.details["kind"] == "silent"  # the file ended: no packets either
    assert alert.subject() == "gw.v1.alerts.grid-a.gate.offline"
    online = [r for r in reports if r.get("online") is True]
    assert online, reports
    assert online[0]["tamper"] == []
    assert online[0]["offline"] is None
    assert isinstance(online[-1]["analysis_fps"], float)
    assert online[-1]["analysis_fps"] > 1
    offline = [r for r in reports if r.get("offline") == "silent"]
    assert offline
    assert offline[0]["online"] is False
    assert detector.calls == 0

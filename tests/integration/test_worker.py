"""A worker keeps every other camera running when one is unreachable, and reports health."""

from __future__ import annotations

import asyncio
import contextlib
import json

import pytest
from nats.aio.msg import Msg

from gridwatch.alerts.tail import iter_alerts
from gridwatch.config import parse_config
from gridwatch.model import IncidentState
from gridwatch.worker import Worker
from tests.plugins.nats_fixtures import connect_flushed

pytestmark = pytest.mark.timeout(180)


async def test_bad_camera_does_not_stop_the_good_one(nats_server, demo_clip) -> None:  # type: ignore[no-untyped-def]
    clip = demo_clip(12.0)
    cfg = parse_config(
        f"""
grids: [{{id: grid-a}}, {{id: grid-b}}]
cameras:
  - id: good
    grid: grid-a
    url: {clip}
    loop: true
    analysis_fps: 2
    zones: [{{id: apron, polygon: [[0.05, 0.40], [0.95, 0.40], [0.95, 0.98], [0.05, 0.98]]}}]
    rules: [{{type: crowding, zone: apron, min_count: 4, min_duration_s: 1, clear_after_s: 3}}]
  - id: broken
    grid: grid-b
    url: rtsp://127.0.0.1:9/nothing-here
    analysis_fps: 2
    zones: [{{id: apron, polygon: [[0, 0], [1, 0], [1, 1]]}}]
    rules: [{{type: crowding, zone: apron, min_count: 1, min_duration_s: 0}}]
""",
        "test.yaml",
    )
    nc = await connect_flushed(nats_server.url)
    health: dict[str, dict[str, object]] = {}

    async def on_health(msg: Msg) -> None:
        report = json.loads(msg.data)
        health[str(report["camera_id"])] = report

    await nc.subscribe("gw.v1.health.*", cb=on_health)
    stop = asyncio.Event()
    worker = Worker(cfg, nats_url=nats_server.url, health_interval_s=1.0)
    task = asyncio.create_task(worker.run(stop))
    try:
        await asyncio.wait_for(worker.ready.wait(), 60)
        first = None
        async for alert in iter_alerts(nc, since=None):
            first = alert
            break
        assert first is not None
        assert first.camera_id == "good"
        assert first.state is IncidentState.RAISED
        assert first.grid_id == "grid-a"
        for _ in range(50):
            if {"good", "broken"} <= set(health) and health["broken"]["failures"]:
                break
            await asyncio.sleep(0.2)
        assert health["good"]["state"] == "online"
        assert int(health["good"]["frames_analysed"]) > 0  # type: ignore[call-overload]
        assert health["broken"]["state"] in ("offline", "connecting")
        assert "refused" in str(health["broken"]["last_error"]).lower()
        assert health["broken"]["frames_analysed"] == 0
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 30)
        await nc.drain()
    assert task.done()
    assert all(not r.alive for r in worker.readers.values())


async def test_cameras_are_started_stopped_and_reconfigured_live(nats_server, demo_clip) -> None:  # type: ignore[no-untyped-def]
    clip = demo_clip(12.0)
    text = f"""
grids: [{{id: g}}]
cameras:
  - {{id: a, grid: g, url: {clip}, loop: true, analysis_fps: 1}}
  - {{id: b, grid: g, url: {clip}, loop: true, analysis_fps: 1}}
"""
    cfg = parse_config(text)
    stop = asyncio.Event()
    worker = Worker(cfg, nats_url=nats_server.url)
    task = asyncio.create_task(worker.run(stop))
    try:
        await asyncio.wait_for(worker.ready.wait(), 60)
        assert set(worker.pipelines) == {"a", "b"}
        reader_a = worker.readers["a"]
        a, b = cfg.cameras
        changes = await worker.apply_cameras([a, b.model_copy(update={"id": "c"})])
        assert changes == {"started": ["c"], "stopped": ["b"], "restarted": []}
        assert worker.readers["a"] is reader_a
        assert reader_a.alive
        await asyncio.sleep(2)
        assert worker.readers["c"].stats.frames_decoded > 0
        # a changed camera is restarted, a disabled one stopped
        a2 = worker.cameras["a"].model_copy(update={"analysis_fps": 3})
        c_off = worker.cameras["c"].model_copy(update={"enabled": False})
        changes = await worker.apply_cameras([a2, c_off])
        assert changes == {"started": [], "stopped": ["c"], "restarted": ["a"]}
        assert worker.pipelines["a"].period_s == pytest.approx(1 / 3)
        assert not reader_a.alive
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)

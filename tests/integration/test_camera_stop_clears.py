"""A camera that stops (removed, disabled, reconfigured, its worker shutting down) leaves no
orphaned incident: each incident it raised gets its ``cleared``, with the reason, through the
worker's normal alert path into JetStream.

Real parts: nats-server with JetStream, the demo video decoded by PyAV, the offline model.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from gridwatch.alerts.tail import iter_alerts
from gridwatch.config import parse_config
from gridwatch.model import Alert, IncidentState
from gridwatch.worker import Worker
from gridwatch_devtools.nats_server import NatsServer
from tests.plugins.nats_fixtures import close_quietly, connect_flushed
from tests.plugins.rtsp_fixtures import DemoClipFactory

pytestmark = pytest.mark.timeout(180)
RAISED, CLEARED = IncidentState.RAISED, IncidentState.CLEARED


async def until(what: str, predicate: Callable[[], bool], within: float) -> None:
    t0 = time.monotonic()
    while not predicate():
        if time.monotonic() - t0 > within:
            pytest.fail(f"{what}: not within {within:g}s")
        await asyncio.sleep(0.05)


def camera(cid: str, clip: Path) -> str:
    return (
        f"  - id: {cid}\n    grid: g\n    url: {clip}\n    loop: true\n    analysis_fps: 2\n"
        "    zones: [{id: apron, polygon: [[0.05, 0.40], [0.95, 0.40], [0.95, 0.98], "
        "[0.05, 0.98]]}]\n"
        # clear_after_s: an hour, so only a stop can clear what is raised during the test
        "    rules: [{type: crowding, zone: apron, min_count: 3, min_duration_s: 1, "
        "clear_after_s: 3600}]\n"
    )


async def test_stopping_a_camera_publishes_cleared_for_its_open_incidents(
    nats_server: NatsServer, demo_clip: DemoClipFactory, tmp_path: Path
) -> None:
    clip = demo_clip(12.0)
    cfg = parse_config(
        f"grids: [{{id: g}}]\nalerts: {{spool: {{dir: '{tmp_path / 'spool'}'}}}}\ncameras:\n"
        + camera("a", clip)
        + camera("b", clip),
        "test.yaml",
    )
    nc = await connect_flushed(nats_server.url)
    alerts: list[Alert] = []
    done = asyncio.Event()

    async def collect() -> None:
        async for alert in iter_alerts(nc, since=dt.timedelta(hours=1), stop=done):
            alerts.append(alert)

    def of(cid: str, state: IncidentState) -> list[Alert]:
        return [x for x in alerts if x.camera_id == cid and x.state is state]

    stop = asyncio.Event()
    worker = Worker(cfg, nats_url=nats_server.url, health_interval_s=5.0)
    task = asyncio.create_task(worker.run(stop))
    collector = asyncio.create_task(collect())
    try:
        await asyncio.wait_for(worker.ready.wait(), 90)
        await until("both cameras raise", lambda: bool(of("a", RAISED) and of("b", RAISED)), 90)
        (raised_a,) = of("a", RAISED)

        # -- a camera reconfigured (as a registry hot reload does): its incident is cleared ---
        a, b = cfg.cameras
        changes = await worker.apply_cameras([a.model_copy(update={"analysis_fps": 3}), b])
        assert changes["restarted"] == ["a"]
        await until("a's incident cleared", lambda: bool(of("a", CLEARED)), 30)
        cleared_a = of("a", CLEARED)[0]
        assert cleared_a.id == raised_a.id
        assert cleared_a.reason == "camera_stopped"
        assert cleared_a.sequence > raised_a.sequence
        assert not of("b", CLEARED)  # the other camera's incident stays open

        # -- a camera removed -----------------------------------------------------------------
        await worker.stop_camera("b")
        await until("b's incident cleared", lambda: bool(of("b", CLEARED)), 30)
        (cleared_b,) = of("b", CLEARED)
        assert cleared_b.reason == "camera_stopped"
        assert cleared_b.id == of("b", RAISED)[0].id

        # -- the worker shuts down: whatever the restarted camera raised is cleared too -------
        await until("a raises again", lambda: len(of("a", RAISED)) == 2, 60)
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 60)
    try:
        await until("a's second incident cleared", lambda: len(of("a", CLEARED)) == 2, 30)
        assert of("a", CLEARED)[1].reason == "worker_stopped"
        # nothing left open: every raised incident has its cleared, and only one
        raised = sorted(x.id for x in alerts if x.state is RAISED)
        cleared = sorted(x.id for x in alerts if x.state is CLEARED)
        assert raised == cleared
    finally:
        done.set()
        collector.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await collector
        await close_quietly(nc)

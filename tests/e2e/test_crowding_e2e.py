"""End to end on real parts: GStreamer RTSP serving real video → `gridwatch worker` (a real
process, the real default model) → JetStream → alert and snapshot read back.

The clip is the first 9 s of vtest (Debian opencv-doc), served once (not looping) so the
stream really ends. Counted by eye on frames 40, 60 and 80 (saved with the zone drawn and
looked at): 6 people stand with their feet in the gate apron (y ≥ 0.40), walking up and out
of it from about frame 90. The detector at conf 0.25 finds 5–6 of them, and it also labels a
jacket lying on the grass as class "Fall", which the crowding rule counts as a person (the
issue's contract: Normal and Fall both count), so the expected count is 6 ± 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from nats.aio.msg import Msg

from gridwatch.alerts.streams import ensure_alert_infra
from gridwatch.alerts.tail import fetch_snapshot, iter_alerts
from gridwatch.model import Alert, IncidentState
from tests.plugins.nats_fixtures import connect_flushed

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

PEOPLE_IN_APRON_BY_EYE = 6
APRON = [[0.05, 0.40], [0.95, 0.40], [0.95, 0.98], [0.05, 0.98]]


def write_config(path: Path, rtsp_url: str, nats_url: str) -> Path:
    cfg = {
        "timezone": "Asia/Shanghai",
        "nats": {"url": nats_url},
        "detector": {"model": "default", "confidence": 0.25},
        "grids": [{"id": "kdl-shaoxian-01", "name": "第1网格"}, {"id": "other-grid"}],
        "cameras": [
            {
                "id": "school-09-south-gate",
                "name": "第九中学南门",
                "grid": "kdl-shaoxian-01",
                "url": rtsp_url,
                "analysis_fps": 2,
                "zones": [{"id": "gate-apron", "polygon": APRON}],
                "rules": [
                    {
                        "type": "crowding",
                        "zone": "gate-apron",
                        "min_count": 5,
                        "min_duration_s": 2,
                        "clear_after_s": 4,
                    }
                ],
            }
        ],
    }
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True))
    return path


@contextlib.contextmanager
def worker_process(config: Path, log: Path):  # type: ignore[no-untyped-def]
    exe = Path(sys.executable).with_name("gridwatch")
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(exe), "worker", "--config", str(config), "--log-level", "info"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "YOLO_OFFLINE": "1"},
            start_new_session=True,
        )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(5)


async def test_crowding_alert_end_to_end(
    nats_server, rtsp_server, demo_clip, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    clip = demo_clip(9.0)
    server = rtsp_server({"gate": clip}, loop=False)
    config = write_config(tmp_path / "cfg.yaml", server.url("gate"), nats_server.url)
    nc = await connect_flushed(nats_server.url)
    await ensure_alert_infra(nc.jetstream())  # as a deployment's first worker would
    grid_b_messages: list[bytes] = []

    async def on_grid_b(msg: Msg) -> None:
        grid_b_messages.append(msg.data)

    sub_b = await nc.subscribe("gw.v1.alerts.other-grid.>", cb=on_grid_b)
    received: list[tuple[float, Alert]] = []
    t0 = time.monotonic()

    async def collect() -> None:
        async for alert in iter_alerts(nc, grid="kdl-shaoxian-01", since=None):
            received.append((time.monotonic() - t0, alert))
            if alert.state is IncidentState.CLEARED:
                return

    try:
        with worker_process(config, tmp_path / "worker.log") as proc:
            try:
                await asyncio.wait_for(collect(), 150)
            except TimeoutError:
                pytest.fail(
                    f"no raised+cleared within 150 s; got {[(t, a.state) for t, a in received]}; "
                    f"worker exit={proc.poll()}; log tail:\n"
                    f"{(tmp_path / 'worker.log').read_text()[-3000:]}"
                )
            # let anything stray arrive before checking there was exactly one incident
            await asyncio.sleep(3)
        states = [a.state for _, a in received]
        assert states[0] is IncidentState.RAISED, states
        assert states[-1] is IncidentState.CLEARED, states
        assert states.count(IncidentState.RAISED) == 1

        t_raised, raised = received[0]
        _, cleared = received[-1]
        assert t_raised < 60, f"first alert after {t_raised:.1f} s"
        assert raised.type == "crowding"
        assert raised.grid_id == "kdl-shaoxian-01"
        assert raised.camera_id == "school-09-south-gate"
        assert raised.camera_name == "第九中学南门"
        assert raised.zone_id == "gate-apron"
        assert raised.schema_version == 1
        assert raised.started_at < raised.observed_at
        assert raised.observed_at.utcoffset() is not None
        # the counts match the people visible (6 by eye, ± 1)
        assert abs(raised.count - PEOPLE_IN_APRON_BY_EYE) <= 1, raised.count
        assert abs(cleared.peak_count - PEOPLE_IN_APRON_BY_EYE) <= 1, cleared.peak_count
        # boxes are the frame's people in the zone; count is their 1 s median (docs/alerts.md)
        assert abs(len(raised.boxes) - raised.count) <= 1, (len(raised.boxes), raised.count)
        for x1, y1, x2, y2 in raised.boxes:
            assert 0 <= x1 < x2 <= 1
            assert 0 <= y1 < y2 <= 1
            assert 0.05 <= (x1 + x2) / 2 <= 0.95
            assert 0.40 <= y2 <= 0.98

        # one incident: the same id on raised and cleared; cleared because the stream ended
        assert cleared.id == raised.id
        assert cleared.reason == "no_data", cleared.reason
        assert cleared.observed_at > raised.observed_at
        assert server.ended("gate")

        # the snapshot named by the alert is stored and is a JPEG of the camera's frame
        assert raised.snapshot
        jpeg = await asyncio.wait_for(fetch_snapshot(nc, raised.snapshot), 10)
        image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert image is not None
        assert image.shape == (576, 768, 3)

        # stored once each in JetStream, on the grid's subject
        js = nc.jetstream()
        msg = await js.get_last_msg(
            "GW_ALERTS", "gw.v1.alerts.kdl-shaoxian-01.school-09-south-gate.crowding"
        )
        assert Alert.model_validate_json(msg.data).state is IncidentState.CLEARED
        assert grid_b_messages == []
    finally:
        await sub_b.unsubscribe()
        await nc.drain()

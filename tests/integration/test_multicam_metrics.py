"""One worker, several cameras: a busy one gets region/whole-frame looks, an idle one is gated
and drops to keyframes, and /metrics reports it per camera."""

from __future__ import annotations

import asyncio
import re
import urllib.request

import pytest

from gridwatch.config import parse_config
from gridwatch.worker import Worker
from gridwatch_devtools.scenes import idle_video

pytestmark = pytest.mark.timeout(240)


def metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and line.split(" ")[0] != name:
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def test_busy_and_idle_cameras_in_one_worker(nats_server, rtsp_server, demo_mp4) -> None:  # type: ignore[no-untyped-def]
    server = rtsp_server({"busy": demo_mp4, "idle": idle_video((768, 576))})
    zone = "[[0.05, 0.40], [0.95, 0.40], [0.95, 0.98], [0.05, 0.98]]"
    cfg = parse_config(
        f"""
grids: [{{id: g}}]
metrics: {{enabled: true, port: 0}}
analysis: {{adaptive_decode: {{idle_s: 3}}, stationary_looks: 2}}
cameras:
  - id: busy
    grid: g
    url: {server.url("busy")}
    analysis_fps: 2
    zones: [{{id: apron, polygon: {zone}}}]
    rules: [{{type: crowding, zone: apron, min_count: 50}}]
  - id: idle
    grid: g
    url: {server.url("idle")}
    analysis_fps: 1
    zones: [{{id: apron, polygon: {zone}}}]
    rules: [{{type: crowding, zone: apron, min_count: 50}}]
""",
        "multicam.yaml",
    )
    stop = asyncio.Event()
    worker = Worker(cfg, nats_url=nats_server.url, health_interval_s=1.0)
    task = asyncio.create_task(worker.run(stop))
    try:
        await asyncio.wait_for(worker.ready.wait(), 120)
        await asyncio.sleep(20)
        port = worker.metrics.port
        assert port
        body = await asyncio.to_thread(
            lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
        )
        text = body.decode()
        health = worker.health("idle").to_dict()
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)

    for cam in ("busy", "idle"):
        assert metric(text, "gridwatch_frames_decoded_total", camera=cam) > 0
        assert metric(text, "gridwatch_frames_analysed_total", camera=cam) > 0
    busy_looks = metric(text, "gridwatch_detector_runs_total", camera="busy", mode="regions")
    busy_looks += metric(text, "gridwatch_detector_runs_total", camera="busy", mode="full")
    assert busy_looks >= 10
    assert metric(text, "gridwatch_frame_age_seconds_count", camera="busy") == busy_looks
    # the empty street: nothing moves; the one object there (a jacket on the lawn, which the
    # model calls a fallen person) is looked at a few times, then carried as stationary
    idle = {
        m: metric(text, "gridwatch_detector_runs_total", camera="idle", mode=m)
        for m in ("gated", "regions", "full")
    }
    assert idle["gated"] > idle["regions"] + idle["full"], idle
    assert metric(text, "gridwatch_camera_keyframes_only", camera="idle") == 1
    assert metric(text, "gridwatch_camera_keyframes_only", camera="busy") == 0
    assert metric(text, "gridwatch_inference_batches_total") > 0
    assert re.search(r'gridwatch_inference_dropped_total\{reason="refused"\} 0', text)
    analysis = health["analysis"]
    assert isinstance(analysis, dict)
    assert analysis["keyframes_only"] is True

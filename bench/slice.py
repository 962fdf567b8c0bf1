"""The vertical slice, measured: real RTSP camera → worker (real model) → JetStream.

Starts an embedded nats-server and the GStreamer RTSP server looping the real pedestrian
video, runs a worker in this process on the demo config for ``--seconds``, and reports:
time from start to the model being loaded and to the first alert read back from JetStream,
detector milliseconds per analysed frame, frame age when the detector starts, worker CPU (this
process: decode + inference + rules + publishing), and the RTSP server's CPU.

    ./run bench slice --seconds 60 [--json out.json] [--fps 2]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import psutil

from gridwatch.alerts.tail import iter_alerts
from gridwatch.config import load_config
from gridwatch.worker import Worker
from gridwatch_devtools.media import demo_video
from gridwatch_devtools.nats_server import NatsServer
from gridwatch_devtools.rtsp_server import RtspServer

REPO = Path(__file__).resolve().parents[1]


def machine() -> str:
    """CPU model, core count and the widest vector extension: timings depend on all three."""
    model, flags = platform.processor(), ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and not model:
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = line
    simd = "avx512" if "avx512f" in flags else ("avx2" if "avx2" in flags else "")
    return f"{model}, {os.cpu_count()} cpus, {simd}".strip(", ")


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


async def run(seconds: float, fps: float) -> dict[str, Any]:
    cfg = load_config(REPO / "configs" / "demo.yaml")
    video = demo_video()
    me = psutil.Process()
    with NatsServer() as nats_server, RtspServer({"gate": video}, loop=True) as rtsp:
        cam = cfg.cameras[0].model_copy(update={"url": rtsp.url("gate"), "analysis_fps": fps})
        cfg = cfg.model_copy(update={"cameras": [cam]})
        rtsp_proc = psutil.Process(rtsp.pid) if rtsp.pid else None
        stop = asyncio.Event()
        worker = Worker(cfg, nats_url=nats_server.url)
        t0 = time.monotonic()
        task = asyncio.create_task(worker.run(stop))
        await asyncio.wait_for(worker.ready.wait(), 120)
        t_ready = time.monotonic() - t0
        first_alert: float | None = None
        alerts = 0

        async def follow() -> None:
            nonlocal first_alert, alerts
            async for _ in iter_alerts(nats_server.url, stop=stop):
                alerts += 1
                if first_alert is None:
                    first_alert = time.monotonic() - t0

        follower = asyncio.create_task(follow())
        # measure the steady state: from the moment the camera runs
        cpu0 = me.cpu_times()
        rcpu0 = rtsp_proc.cpu_times() if rtsp_proc else None
        w0 = time.monotonic()
        await asyncio.sleep(seconds)
        wall = time.monotonic() - w0
        cpu1 = me.cpu_times()
        rcpu1 = rtsp_proc.cpu_times() if rtsp_proc else None
        pipe = worker.pipelines[cam.id]
        reader = worker.readers[cam.id]
        det = list(pipe.stats.detector_ms)
        age = list(pipe.stats.frame_age_ms)
        stop.set()
        await asyncio.wait_for(task, 30)
        follower.cancel()
    worker_cpu = (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / wall * 100
    rtsp_cpu = (
        (rcpu1.user + rcpu1.system - rcpu0.user - rcpu0.system) / wall * 100
        if rcpu0 and rcpu1
        else float("nan")
    )
    return {
        "machine": machine(),
        "seconds": round(wall, 1),
        "analysis_fps_target": fps,
        "analysis_fps_achieved": round(pipe.stats.analysed / wall, 2),
        "model_loaded_s": round(t_ready, 2),
        "first_alert_s": round(first_alert, 2) if first_alert is not None else None,
        "alerts": alerts,
        "detector_ms_p50": round(statistics.median(det), 1) if det else None,
        "detector_ms_p95": round(pct(det, 0.95), 1),
        "frame_age_ms_p50": round(statistics.median(age), 1) if age else None,
        "frame_age_ms_p99": round(pct(age, 0.99), 1),
        "worker_cpu_pct_of_one_core": round(worker_cpu, 1),
        "rtsp_server_cpu_pct": round(rtsp_cpu, 2),
        "frames_decoded": reader.stats.frames_decoded,
        "frames_dropped_unanalysed": reader.slot.dropped,
    }


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="bench slice", description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="steady-state seconds measured")
    ap.add_argument("--fps", type=float, default=2.0, help="analysis fps of the camera")
    ap.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = ap.parse_args(argv)
    result = asyncio.run(run(args.seconds, args.fps))
    width = max(len(k) for k in result)
    print(f"{'metric':<{width}}  value")
    print(f"{'-' * width}  -----")
    for k, v in result.items():
        print(f"{k:<{width}}  {v}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0

"""``./run bench multiproc``: cameras per machine when the machine runs several worker processes.

One worker process shares one interpreter between all its cameras' readers and pipelines; at
80 INT8 cameras on 2 vCPUs that, not inference, is what runs out (``docs/performance.md``). The
product's answer is more worker processes sharing the cameras through leases (DESIGN principle
12): this benchmark runs ``--processes`` real ``gridwatch worker`` processes with
``leases.enabled`` on one machine, all with the same config, against the same RTSP streams and
pass rule as ``bench multicam``'s INT8 idle-keyframes search, and reads every figure from the
workers' own ``/metrics``: frames analysed per camera (fps), the frame-age histogram (p99, to
its bucket), whether a camera decodes keyframes only, and the processes' CPU.

Pass rule (as ``multicam``): every busy camera ≥ 90 % of the target fps; an idle camera that
decoded keyframes only through the window analyses ≥ 90 % of the keyframes its stream carries
(the scenes' GOP is 2 s: 0.45/s at the 2 s GOP); the p99 frame age (bucket upper bound) ≤ 1 s.

Example: ``./run bench multiproc --cameras 70,80 --processes 2`` (about 2 minutes a trial).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil
from prometheus_client.parser import text_string_to_metric_families

from bench.multicam import INT8_SETTINGS, camera_mix, load_snapshot, parse_sizes, scene_files
from bench.slice import machine

INT8_MODEL = Path("../shared/models/yolov8n_int8_openvino_model")
GOP_S = 2.0
"""Keyframe interval of the benchmark's scenes (``gridwatch_devtools.scenes``)."""
AGE_BUCKET_OK = 1.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def config_text(args: argparse.Namespace, rtsp: Any, k: int, port: int, spool: Path) -> str:
    zone = "[[0.02, 0.30], [0.98, 0.30], [0.98, 0.99], [0.02, 0.99]]"
    cams = "\n".join(
        f"""  - id: {c.id}
    grid: g
    url: {rtsp.url(c.mount)}
    analysis_fps: {args.fps}
    zones: [{{id: z, polygon: {zone}}}]
    rules: [{{type: crowding, zone: z, min_count: 5, min_duration_s: 5, clear_after_s: 5}}]"""
        for c in camera_mix(k, args.busy_share, args.sizes)
    )
    det = {"backend": "openvino", "model": args.model, **INT8_SETTINGS}
    det["streams"], det["threads"] = args.streams, 1
    det_text = ", ".join(f"{key}: {json.dumps(v)}" for key, v in det.items())
    capacity = math.ceil(k / args.processes) + 1
    adaptive = f"{{max_fps: {args.fps}, idle_s: {args.idle_s}}}"
    return f"""
grids: [{{id: g}}]
alerts: {{spool: {{dir: "{spool}"}}}}
detector: {{{det_text}}}
analysis: {{counting: {{enabled: true}}, adaptive_decode: {adaptive}}}
leases: {{enabled: true, capacity: {capacity}}}
metrics: {{enabled: true, host: 127.0.0.1, port: {port}}}
cameras:
{cams}
"""


def scrape(port: int) -> dict[str, Any]:
    """Per camera: analysed frames, keyframes-only flag, frame-age bucket counts."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out: dict[str, Any] = {"analysed": {}, "keyframes_only": {}, "age": {}}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            cam = s.labels.get("camera")
            if cam is None:
                continue
            if s.name == "gridwatch_frames_analysed_total" or s.name == "gridwatch_frames_analysed":
                out["analysed"][cam] = s.value
            elif s.name == "gridwatch_camera_keyframes_only":
                out["keyframes_only"][cam] = s.value > 0
            elif s.name == "gridwatch_frame_age_seconds_bucket":
                out["age"].setdefault(cam, {})[float(s.labels["le"])] = s.value
    return out


def merged(scrapes: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"analysed": {}, "keyframes_only": {}, "age": {}}
    for sc in scrapes:
        for key in out:
            out[key].update(sc[key])
    return out


def p99_bucket(before: dict[str, Any], after: dict[str, Any]) -> float:
    """The upper bound of the bucket holding the 99th percentile of the window's frame ages."""
    totals: dict[float, float] = {}
    for cam, buckets in after["age"].items():
        b0 = before["age"].get(cam, {})
        for le, n in buckets.items():
            totals[le] = totals.get(le, 0.0) + n - b0.get(le, 0.0)
    if not totals or totals.get(math.inf, 0.0) <= 0:
        return math.nan
    count = totals[math.inf]
    for le in sorted(totals):
        if totals[le] >= 0.99 * count:
            return le
    return math.inf


def trial(args: argparse.Namespace, rtsp: Any, nats_url: str, k: int) -> dict[str, Any]:
    spool = Path(tempfile.mkdtemp(prefix="gw-mp-spool-"))
    ports = [free_port() for _ in range(args.processes)]
    procs = []
    env = dict(os.environ, YOLO_OFFLINE="1")
    with tempfile.TemporaryDirectory() as d:
        for i, port in enumerate(ports):
            cfg = Path(d) / f"worker{i}.yaml"
            cfg.write_text(config_text(args, rtsp, k, port, spool / f"worker{i}"))  # one each
            exe = str(Path(sys.executable).with_name("gridwatch"))
            cmd = [exe, "worker", "-c", str(cfg), "--nats", nats_url]
            log = (Path(d) / f"worker{i}.log").open("w")
            procs.append(subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT))
        try:
            deadline = time.monotonic() + args.start_timeout
            running: dict[str, Any] = {}
            while time.monotonic() < deadline:
                time.sleep(2)
                try:
                    running = merged([scrape(p) for p in ports])
                except OSError:
                    continue
                if len(running["analysed"]) >= k:
                    break
            started = len(running.get("analysed", {}))
            dead = [i for i, p in enumerate(procs) if p.poll() is not None]
            if dead or not running:
                tails = "\n".join(
                    f"worker{i}: " + (Path(d) / f"worker{i}.log").read_text()[-1500:]
                    for i in range(len(procs))
                )
                raise RuntimeError(f"workers {dead} exited or served no /metrics:\n{tails}")
            time.sleep(args.warmup)
            ps = [psutil.Process(p.pid) for p in procs]
            cpu0 = sum(sum(p.cpu_times()[:2]) for p in ps)
            before, t0 = merged([scrape(p) for p in ports]), time.monotonic()
            time.sleep(args.seconds)
            after, t1 = merged([scrape(p) for p in ports]), time.monotonic()
            cpu1 = sum(sum(p.cpu_times()[:2]) for p in ps)
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
    dt = t1 - t0
    busy = {c.id for c in camera_mix(k, args.busy_share, args.sizes) if c.kind == "busy"}
    fps = {
        cam: (after["analysed"][cam] - before["analysed"].get(cam, 0.0)) / dt
        for cam in after["analysed"]
    }
    kf_only = [
        cam
        for cam in fps
        if cam not in busy
        and before["keyframes_only"].get(cam)
        and after["keyframes_only"].get(cam)
    ]
    busy_fps = [fps[c] for c in busy if c in fps]
    kf_fps = [fps[c] for c in kf_only]
    other_idle = [fps[c] for c in fps if c not in busy and c not in kf_only]
    p99 = p99_bucket(before, after)
    ok_busy = bool(busy_fps) and min(busy_fps) >= 0.9 * args.fps
    ok_kf = all(f >= 0.9 / GOP_S for f in kf_fps)
    ok_other = all(f >= 0.9 * args.fps for f in other_idle)
    return {
        "cameras": k,
        "processes": args.processes,
        "started": started,
        "pass": started >= k and ok_busy and ok_kf and ok_other and p99 <= AGE_BUCKET_OK,
        "busy": len(busy),
        "fps_min_busy": round(min(busy_fps), 2) if busy_fps else None,
        "fps_mean_busy": round(sum(busy_fps) / len(busy_fps), 2) if busy_fps else None,
        "keyframes_only": len(kf_fps),
        "fps_min_keyframes_only": round(min(kf_fps), 2) if kf_fps else None,
        "fps_min_other_idle": round(min(other_idle), 2) if other_idle else None,
        "frame_age_p99_bucket_s": p99,
        "cpu_pct_of_one_core": round((cpu1 - cpu0) / dt * 100, 1),
    }


def main(argv: list[str]) -> int:
    from gridwatch_devtools.nats_server import NatsServer
    from gridwatch_devtools.rtsp_server import RtspServer

    ap = argparse.ArgumentParser(prog="bench multiproc", description=__doc__.split("\n\n")[0])
    ap.add_argument("--cameras", default="70,80", help="camera counts tried, comma-separated")
    ap.add_argument("--processes", type=int, default=2, help="worker processes")
    ap.add_argument("--streams", type=int, default=1, help="OpenVINO streams per process")
    ap.add_argument("--model", default=str(INT8_MODEL.resolve()), help="detector model path")
    ap.add_argument("--fps", type=float, default=2.0)
    ap.add_argument("--busy-share", type=float, default=0.25)
    ap.add_argument("--sizes", type=parse_sizes, default=parse_sizes("640x360"))
    ap.add_argument("--idle-s", type=float, default=5.0)
    ap.add_argument("--warmup", type=float, default=20.0, help="seconds after all cameras run")
    ap.add_argument("--seconds", type=float, default=25.0, help="measured seconds")
    ap.add_argument("--start-timeout", type=float, default=120.0)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    if not Path(args.model).exists():
        print(f"model {args.model} is not here (see docs/models.md)", file=sys.stderr)
        return 2
    result: dict[str, Any] = {
        "machine": machine(),
        "load_before": load_snapshot(),
        "settings": {k: str(v) for k, v in vars(args).items() if k != "json"},
        "trials": [],
    }
    with (
        tempfile.TemporaryDirectory() as store,
        NatsServer(store_dir=Path(store)) as nats_server,
        RtspServer(scene_files(args.sizes), loop=True) as rtsp,
    ):
        for k in [int(x) for x in args.cameras.split(",")]:
            row = trial(args, rtsp, nats_server.url, k)
            print(json.dumps(row), flush=True)
            result["trials"].append(row)
    result["load_after"] = load_snapshot()
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

"""``./run bench clips``: what evidence clips cost a worker (issue 14, item 6).

Per camera, clips add one thing to the live path: the reader copies every packet it receives
into the camera's :class:`~gridwatch.ingest.packet_ring.PacketRing`. This benchmark measures
that on real streams (the busy vtest scene served over RTSP by GStreamer, H.264, 2 s GOP, at
640×360 and 1920×1080): CPU of the decoder threads with the ring off and on (the process
runs only the readers, so its CPU time is theirs; off and on alternate, ``--rounds`` times),
the ring's memory per camera once full (``pre_s + post_s + 4`` s of packets: packet bytes
and the Python objects around them), and a clip's cost after the alert: the remux of a
20 s window and its put into a local JetStream object store (the time from onset + post_s to
the clip in the store, less the worker's scheduling).

    ./run bench clips [--cameras 4] [--window 20] [--rounds 2] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from gridwatch.alerts.clips import cut_clip
from gridwatch.config.models import ClipsConfig
from gridwatch.ingest.packet_ring import PacketRing, RingPacket
from gridwatch.ingest.reader import CameraReader
from gridwatch.worker.clips import GOP_MARGIN_S

SIZES = ((640, 360), (1920, 1080))


def ring_memory(ring: PacketRing) -> int:
    """Bytes the ring holds, Python objects included (what ``max_bytes_per_camera`` bounds is
    the packet data alone)."""
    packets = ring.window(0.0, float("inf"))
    return sum(sys.getsizeof(p.data) + sys.getsizeof(p) + 8 for p in packets)


def readers_cpu(
    url: str, cameras: int, window_s: float, warm_s: float, ring: bool
) -> dict[str, Any]:
    """Process CPU per camera while ``cameras`` readers decode ``url`` (ring on or off)."""
    settings = ClipsConfig()
    rings = [
        PacketRing(settings.pre_s + settings.post_s + GOP_MARGIN_S, settings.max_bytes_per_camera)
        if ring
        else None
        for _ in range(cameras)
    ]
    readers = [CameraReader(f"cam{i}", url, ring=r) for i, r in enumerate(rings)]
    for r in readers:
        r.start()
    try:
        time.sleep(warm_s)
        frames0 = sum(r.stats.frames_decoded for r in readers)
        cpu0, t0 = time.process_time(), time.monotonic()
        time.sleep(window_s)
        cpu = time.process_time() - cpu0
        wall = time.monotonic() - t0
        frames = sum(r.stats.frames_decoded for r in readers) - frames0
    finally:
        for r in readers:
            r.stop()
        for r in readers:
            r.stop(5.0)
    out: dict[str, Any] = {
        "cpu_pct_per_camera": round(100 * cpu / wall / cameras, 2),
        "fps_per_camera": round(frames / wall / cameras, 2),
    }
    full = [r for r in rings if r is not None]
    if full:
        out["ring_packet_bytes"] = max(r.size_bytes for r in full)
        out["ring_memory_bytes"] = max(ring_memory(r) for r in full)
        out["ring_seconds"] = round(
            max(
                r.window(0, float("inf"))[-1].wall_ts - r.window(0, float("inf"))[0].wall_ts
                for r in full
                if len(r)
            ),
            1,
        )
        out["ring_ref"] = full[0]
    return out


async def clip_cost(ring: PacketRing, nats_url: str, repeats: int = 5) -> dict[str, float]:
    """Remux of the ring's newest 20 s and its put into a JetStream object store (ms, median)."""
    import nats
    from nats.js import api as js_api

    packets: list[RingPacket] = ring.window(0.0, float("inf"))
    end = packets[-1].wall_ts
    window = ring.window(end - 20.0, end)
    remux, put, sizes = [], [], []
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream(timeout=30)
        store = await js.create_object_store(
            "bench_clips", config=js_api.ObjectStoreConfig(storage=js_api.StorageType.FILE)
        )
        for i in range(repeats):
            t0 = time.perf_counter()
            clip = await asyncio.to_thread(cut_clip, window, ring.params, end - 10.0)
            t1 = time.perf_counter()
            await store.put(f"cam/clip-{i}.mp4", clip.mp4)
            t2 = time.perf_counter()
            remux.append(1000 * (t1 - t0))
            put.append(1000 * (t2 - t1))
            sizes.append(len(clip.mp4))
    finally:
        await nc.close()
    return {
        "remux_ms": round(sorted(remux)[len(remux) // 2], 1),
        "put_ms": round(sorted(put)[len(put) // 2], 1),
        "clip_bytes": sizes[0],
        "clip_s": round(window[-1].wall_ts - window[0].wall_ts, 1),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    from gridwatch_devtools.nats_server import NatsServer
    from gridwatch_devtools.rtsp_server import RtspServer
    from gridwatch_devtools.scenes import busy_video

    result: dict[str, Any] = {
        "machine": os.uname().machine,
        "cpus": os.cpu_count(),
        "load_before": os.getloadavg()[0],
        "cameras": args.cameras,
        "window_s": args.window,
        "sizes": {},
    }
    files = {f"{w}x{h}": busy_video((w, h)) for w, h in SIZES}
    with RtspServer(files, loop=True) as rtsp, NatsServer() as nats_server:
        for name in files:
            url = rtsp.url(name)
            rows: dict[str, list[dict[str, Any]]] = {"off": [], "on": []}
            for _ in range(args.rounds):
                for mode in ("off", "on"):
                    rows[mode].append(
                        readers_cpu(url, args.cameras, args.window, args.warm, mode == "on")
                    )
            on_last = rows["on"][-1]
            ring = on_last.pop("ring_ref")
            for r in rows["on"]:
                r.pop("ring_ref", None)
            off_cpu = sum(r["cpu_pct_per_camera"] for r in rows["off"]) / len(rows["off"])
            on_cpu = sum(r["cpu_pct_per_camera"] for r in rows["on"]) / len(rows["on"])
            result["sizes"][name] = {
                "cpu_pct_per_camera_off": round(off_cpu, 2),
                "cpu_pct_per_camera_on": round(on_cpu, 2),
                "extra_cpu_pct_per_camera": round(on_cpu - off_cpu, 2),
                "fps_per_camera": on_last["fps_per_camera"],
                "ring_seconds": on_last["ring_seconds"],
                "ring_packet_bytes": on_last["ring_packet_bytes"],
                "ring_memory_bytes": on_last["ring_memory_bytes"],
                "rounds": rows,
                **asyncio.run(clip_cost(ring, nats_server.url)),
            }
    result["load_after"] = os.getloadavg()[0]
    return result


def print_table(r: dict[str, Any]) -> None:
    print(
        f"clips: {r['cameras']} cameras per size, {r['window_s']:g} s windows, "
        f"load {r['load_before']:.2f} -> {r['load_after']:.2f}"
    )
    print(
        "| stream | CPU/camera off | on | extra | ring s | ring MB (packets / memory) "
        "| remux ms | put ms | clip MB |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, s in r["sizes"].items():
        print(
            f"| {name} | {s['cpu_pct_per_camera_off']:.2f}% | {s['cpu_pct_per_camera_on']:.2f}% "
            f"| {s['extra_cpu_pct_per_camera']:+.2f} pt | {s['ring_seconds']:g} "
            f"| {s['ring_packet_bytes'] / 1e6:.1f} / {s['ring_memory_bytes'] / 1e6:.1f} "
            f"| {s['remux_ms']:.1f} | {s['put_ms']:.1f} | {s['clip_bytes'] / 1e6:.1f} |"
        )


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="./run bench clips", description=__doc__.splitlines()[0])
    ap.add_argument("--cameras", type=int, default=4, help="readers per stream size")
    ap.add_argument("--window", type=float, default=20.0, help="measured seconds per trial")
    ap.add_argument(
        "--warm", type=float, default=26.0, help="seconds before measuring (fills the ring)"
    )
    ap.add_argument("--rounds", type=int, default=2, help="off/on pairs per size")
    ap.add_argument("--json", type=Path, default=None, help="write the result here")
    args = ap.parse_args(argv)
    result = run(args)
    print_table(result)
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2), encoding="utf-8")
    return 0

"""Time from `gridwatch camera add` to the first analysed frame, stage by stage.

Starts an embedded nats-server, the GStreamer RTSP server with one cold mount per repetition
(the real demo video), and a worker in this process following the camera registry with the
real model (plus ``--background`` cameras already running, for load). Each repetition runs the
real `gridwatch camera add` executable and records, from the moment it is launched:

* ``cli``: the command has exited (interpreter start, validation, probe unless --no-probe,
  KV write);
* ``started``: the worker's pipeline for the camera exists (KV watch → apply_cameras);
* ``decoded``: its reader has decoded a frame (RTSP connect, DESCRIBE/SETUP/PLAY, FFmpeg's
  stream probing, first keyframe);
* ``analysed``: the pipeline has processed a frame (the number the issue asks for). A camera
  with no rules needs no detections, so its first frame skips the model: the ``import+rule``
  mode adds a camera with a crowding rule in one write, and its first frame goes through the
  model (``detector_ms``, contending with the background cameras for the inference thread);

then removes the camera with `gridwatch camera remove` and records ``stopped``. Modes: ``add``
(validates and probes the stream, as an engineer runs it), ``add --no-probe``, ``import+rule``.

    ./run bench camera-add [--reps 3] [--background 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gridwatch.config import parse_config
from gridwatch.worker import Worker
from gridwatch_devtools.media import demo_video
from gridwatch_devtools.nats_server import NatsServer
from gridwatch_devtools.rtsp_server import RtspServer

EXE = str(Path(sys.executable).with_name("gridwatch"))
MODES = ("add", "add --no-probe", "import+rule")


async def gw(*args: str) -> float:
    """Run the CLI; return its wall time (it must succeed)."""
    t0 = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        EXE, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    _out, err = await asyncio.wait_for(proc.communicate(), 120)
    if proc.returncode != 0:
        raise RuntimeError(f"gridwatch {' '.join(args)} failed: {err.decode()}")
    return time.monotonic() - t0


async def when(predicate: Callable[[], bool], t0: float, within: float = 60) -> float:
    while not predicate():
        if time.monotonic() - t0 > within:
            raise TimeoutError("stage not reached")
        await asyncio.sleep(0.005)
    return time.monotonic() - t0


async def run(reps: int, background: int) -> dict[str, Any]:
    video = demo_video()
    results: dict[str, list[dict[str, float]]] = {m: [] for m in MODES}
    mounts = {f"m{i}": video for i in range(len(MODES) * reps + background)}
    with (
        tempfile.TemporaryDirectory() as tmp,
        NatsServer(store_dir=Path(tmp) / "nats") as nats_server,
        RtspServer(mounts, loop=True) as rtsp,
    ):
        cfg_file = Path(tmp) / "deploy.yaml"
        cfg_file.write_text(
            f"nats: {{url: '{nats_server.url}'}}\ngrids: [{{id: g}}]\nregistry: {{enabled: true}}\n"
        )
        cfg = parse_config(cfg_file.read_text())
        common = ("--config", str(cfg_file))
        rule = "zones: [{id: all, polygon: [[0, 0], [1, 0], [1, 1], [0, 1]]}], " \
            "rules: [{type: crowding, zone: all, min_count: 50}]"  # fmt: skip
        for b in range(background):  # busy cameras: their frames go through the model
            m = f"m{3 * reps + b}"
            seed = Path(tmp) / f"bg{b}.yaml"
            seed.write_text(
                f"cameras: [{{id: bg{b}, grid: g, url: '{rtsp.url(m)}', analysis_fps: 1, {rule}}}]"
            )
            await gw("camera", "import", str(seed), *common)
        stop = asyncio.Event()
        worker = Worker(cfg)
        task = asyncio.create_task(worker.run(stop))
        await asyncio.wait_for(worker.ready.wait(), 120)
        await asyncio.sleep(3)  # let the background cameras settle
        rep = 0
        for mode in MODES:
            for _ in range(reps):
                cid = f"cam{rep}"
                url = rtsp.url(f"m{rep}")
                rep += 1
                t0 = time.monotonic()
                if mode == "import+rule":
                    one = Path(tmp) / f"{cid}.yaml"
                    one.write_text(f"cameras: [{{id: {cid}, grid: g, url: '{url}', {rule}}}]")
                    cli = await gw("camera", "import", str(one), *common)
                else:
                    extra = ("--no-probe",) if mode == "add --no-probe" else ()
                    cli = await gw(
                        "camera", "add", cid, "--url", url, "--grid", "g", *extra, *common
                    )
                started = await when(lambda c=cid: c in worker.pipelines, t0)  # type: ignore[misc]
                reader = worker.readers[cid]
                pipe = worker.pipelines[cid]
                decoded = await when(lambda r=reader: r.stats.frames_decoded > 0, t0)  # type: ignore[misc]
                analysed = await when(lambda p=pipe: p.stats.analysed > 0, t0)  # type: ignore[misc]
                t1 = time.monotonic()
                await gw("camera", "remove", cid, *common)
                stopped = await when(lambda c=cid: c not in worker.pipelines, t1)  # type: ignore[misc]
                results[mode].append(
                    {"cli": cli, "started": started, "decoded": decoded, "analysed": analysed,
                     "detector_ms": pipe.stats.detector_ms[0], "stopped": stopped}
                )  # fmt: skip
                await asyncio.sleep(1)
        # CLI start-up alone, for reference
        list_s = statistics.median(
            [await gw("camera", "list", "--json", *common) for _ in range(3)]
        )
        stop.set()
        await asyncio.wait_for(task, 60)
    return {"runs": results, "cli_list_s": list_s, "background": background, "reps": reps}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="bench camera-add", description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=3, help="repetitions per mode")
    ap.add_argument("--background", type=int, default=1, help="cameras already running")
    ap.add_argument("--json", type=Path, help="also write the raw numbers here")
    args = ap.parse_args(argv)
    result = asyncio.run(run(args.reps, args.background))
    stages = ("cli", "started", "decoded", "analysed", "detector_ms", "stopped")
    print(f"camera add → first analysed frame ({args.reps} reps per mode, "
          f"{args.background} camera(s) already running; seconds, median [min–max])")  # fmt: skip
    print(f"{'mode':<16}" + "".join(f"{s:>22}" for s in stages))
    for mode, runs in result["runs"].items():
        cells = []
        for s in stages:
            values = [r[s] for r in runs]
            fmt = ".0f" if s == "detector_ms" else ".2f"
            med, lo, hi = statistics.median(values), min(values), max(values)
            cells.append(f"{med:{fmt}} [{lo:{fmt}}–{hi:{fmt}}]")
        print(f"{mode:<16}" + "".join(f"{c:>22}" for c in cells))
    print(f"(`gridwatch camera list` alone: {result['cli_list_s']:.2f} s — interpreter start-up;"
          " 'stopped' is from `camera remove` launch)")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

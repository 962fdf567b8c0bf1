"""``./run bench shapes``: what the OpenVINO CPU plugin costs per image on the worker's own mix
of input shapes, fed as the worker first did (batches of any size 1–8), as it did next (batches
of 1, 2, 4 and 8 only) and as it does now (one image a call,
:meth:`gridwatch.detectors.openvino_backend.OpenVinoDetector._infer`).

This replay runs one caller on one stream, on a recorded mix in which a batch's chunks follow
each other (4, 2, 1 of one shape); it reads power-of-two batches and one image a call about
equal. Inside a worker at 80 INT8 cameras (two streams, calls from many cameras interleaved)
one image a call halved the OpenVINO threads' CPU (``docs/performance.md``): the replay is a
floor for the batch-size effect, the multi-camera bench is the measurement.

Why this exists: at 80 cameras (20 busy, 60 idle) the worker's OpenVINO threads used 113% of a
core for 27 images/s with the COCO YOLOv8n INT8 — 42 ms of CPU an image, where one 640×384 image
alone costs 19 ms. The inputs were region mosaics and whole frames in 59 (batch, height, width)
combinations a trial. The mix below is the one recorded in that trial (the 25 most frequent
shapes, 211 of its calls), replayed here in a fixed shuffled order on a fresh compiled model per
variant, twice (the first pass includes the plugin preparing a plan per new shape).

Output: a table (and ``--json FILE``) of CPU ms per image and per 640×384-equivalent of pixels
(process CPU time, so another process on the machine changes it less than wall time would).

Example: ``./run bench shapes`` (~3 minutes; ``--models int8`` for the shared INT8 model only).
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import sys
from pathlib import Path
from typing import Any

import numpy as np

from bench.slice import machine

RECORDED_MIX: list[tuple[int, int, int, int]] = [
    # (batch, height, width, calls) in the 80-camera INT8 trial, 640×360 sub-streams
    (1, 288, 224, 22), (1, 224, 256, 19), (1, 256, 192, 17), (8, 384, 640, 13),
    (2, 256, 192, 13), (2, 288, 224, 12), (3, 288, 224, 11), (6, 288, 224, 9),
    (2, 224, 256, 9), (3, 256, 192, 8), (6, 256, 192, 7), (4, 288, 224, 7),
    (4, 256, 192, 6), (5, 256, 192, 6), (1, 224, 160, 6), (5, 256, 288, 6),
    (3, 224, 256, 5), (8, 256, 192, 5), (1, 256, 288, 5), (6, 224, 256, 5),
    (4, 384, 640, 4), (5, 288, 224, 4), (4, 224, 256, 4), (1, 192, 224, 4),
    (7, 288, 224, 4),
]  # fmt: skip
EQ_PIXELS = 640 * 384
INT8_MODEL = Path("../shared/models/yolov8n_int8_openvino_model")


def sequence(fraction: float, seed: int = 1) -> list[tuple[int, int, int]]:
    """The recorded calls, each shape ``fraction`` as often (at least once), shuffled.

    >>> len(sequence(1.0)), sequence(1.0)[0][1:] in {(h, w) for _, h, w, _ in RECORDED_MIX}
    (211, True)
    """
    out = [(b, h, w) for b, h, w, n in RECORDED_MIX for _ in range(max(1, round(n * fraction)))]
    random.Random(seed).shuffle(out)
    return out


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def measure(det: Any, mode: str, seq: list[tuple[int, int, int]]) -> dict[str, Any]:
    """Two passes of ``seq`` through ``det`` fed per ``mode``; CPU per image and per pixel."""
    passes = []
    for _ in range(2):
        images = pixels = calls = 0
        c0 = cpu_s()
        for b, h, w in seq:
            batch = np.zeros((b, 3, h, w), np.float32)
            if mode == "any":
                det._infer_one(batch)
                calls += 1
            elif mode == "pow2":
                for a, z in pow2_bounds(b):
                    det._infer_one(batch[a:z])
                    calls += 1
            else:
                for i in range(b):
                    det._infer_one(batch[i : i + 1])
                calls += b
            images += b
            pixels += b * h * w
        cpu = cpu_s() - c0
        passes.append(
            {
                "calls": calls,
                "images": images,
                "cpu_ms_per_image": round(cpu / images * 1000, 2),
                "cpu_ms_per_640x384": round(cpu / pixels * EQ_PIXELS * 1000, 2),
            }
        )
    return {"mode": mode, "first_pass": passes[0], "steady": passes[1]}


def pow2_bounds(n: int) -> list[tuple[int, int]]:
    """The slices a batch of ``n`` was cut into before: powers of two, largest first.

    >>> pow2_bounds(7)
    [(0, 4), (4, 6), (6, 7)]
    """
    out, start = [], 0
    for size in (8, 4, 2, 1):
        while n - start >= size:
            out.append((start, start + size))
            start += size
    return out


MODES = {
    "any": "batches of 1-8 (before)",
    "pow2": "batches of 1, 2, 4, 8 (before)",
    "one": "one image a call (now)",
}


def main(argv: list[str]) -> int:
    from gridwatch.detectors.openvino_backend import OpenVinoDetector

    ap = argparse.ArgumentParser(prog="bench shapes", description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="default,int8", help="default, int8 or both")
    ap.add_argument("--fraction", type=float, help="share of the recorded calls replayed")
    ap.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = ap.parse_args(argv)
    result: dict[str, Any] = {"machine": machine(), "mix": RECORDED_MIX, "models": {}}
    for name in args.models.split(","):
        if name == "int8" and not INT8_MODEL.exists():
            result["models"][name] = {"skipped": f"{INT8_MODEL} is not here"}
            continue
        model = str(INT8_MODEL) if name == "int8" else "default"
        fraction = args.fraction or (1.0 if name == "int8" else 0.34)
        seq = sequence(fraction)
        rows = []
        for mode in MODES:  # a fresh compiled model each: plans of one variant do not help another
            det = OpenVinoDetector(model, streams=1, threads=1, warmup=False)
            rows.append(measure(det, mode, seq))
            del det
        result["models"][name] = {"model": model, "fraction": fraction, "rows": rows}
    print(f"machine: {result['machine']}")
    print("| model | fed as | calls | CPU ms / image | CPU ms / 640×384 (steady) | first pass |")
    print("|---|---|---|---|---|---|")
    for name, m in result["models"].items():
        if "skipped" in m:
            print(f"| {name} | skipped: {m['skipped']} | | | | |")
            continue
        for r in m["rows"]:
            s, f = r["steady"], r["first_pass"]
            print(
                f"| {name} | {MODES[r['mode']]} | {s['calls']} | {s['cpu_ms_per_image']} | "
                f"**{s['cpu_ms_per_640x384']}** | {f['cpu_ms_per_640x384']} |"
            )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

"""What the people-flow statistics cost per analysed frame (``gridwatch.stats``).

    ./run bench stats [--reps R] [--json FILE]

On real people positions (the ground-truth boxes and ids of PETS09-S2L1, 5.6 people per
frame, and of the dense TownCentre clip, 17–22 per frame, from ``../shared/data``; ids as
tracker ids, so the line rules see real walks), a camera with four quadrant zones, a crowding
rule on the whole frame and two line-crossing rules runs ``CameraRules.update`` on every frame;
the accumulator (:class:`gridwatch.stats.aggregate.CameraStats`: zone counts, crossings,
32×18 heat grid, closing a record every 60 s of video) is timed on its own after it, with
``time.thread_time`` (this thread's CPU), median of ``reps`` passes over the sequence.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench.slice import machine

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
SOURCES = {
    "pets09": (DATA / "pets09-s2l1" / "gt.txt", (768, 576), 7.0),
    "towncentre": (
        DATA / "towncentre-690x388" / "TownCentre_clip_41f_690x388_10fps.gt.txt",
        (690, 388),
        10.0,
    ),
}
CAMERA = """
grids: [{id: g}]
cameras:
  - id: c
    grid: g
    url: rtsp://127.0.0.1/none
    analysis_fps: FPS
    zones:
      - {id: all, polygon: [[0, 0], [1, 0], [1, 1], [0, 1]]}
      - {id: nw, polygon: [[0, 0], [0.5, 0], [0.5, 0.5], [0, 0.5]]}
      - {id: ne, polygon: [[0.5, 0], [1, 0], [1, 0.5], [0.5, 0.5]]}
      - {id: sw, polygon: [[0, 0.5], [0.5, 0.5], [0.5, 1], [0, 1]]}
      - {id: se, polygon: [[0.5, 0.5], [1, 0.5], [1, 1], [0.5, 1]]}
    rules:
      - {type: crowding, zone: all, min_count: 50}
      - {type: line_crossing, id: h, line: [[0, 0.5], [1, 0.5]], max_count: 1000}
      - {type: line_crossing, id: v, line: [[0.5, 0], [0.5, 1]], max_count: 1000}
"""


def frames_of(name: str) -> tuple[list[Any], float]:
    """Detections per frame from a MOT ground truth (person class 0, ids as tracker ids)."""
    from gridwatch.model import Detections

    path, size, fps = SOURCES[name]
    boxes: dict[int, list[tuple[int, float, float, float, float]]] = defaultdict(list)
    for line in path.read_text().splitlines():
        f, i, left, top, w, h = (float(v) for v in line.split(",")[:6])
        boxes[int(f)].append((int(i), left, top, left + w, top + h))
    out = []
    for f in range(min(boxes), max(boxes) + 1):
        rows = boxes.get(f, [])
        if not rows:
            out.append(Detections.empty(size))
            continue
        out.append(
            Detections.from_arrays(
                xyxy=[r[1:] for r in rows],
                confidence=[0.9] * len(rows),
                class_id=[0] * len(rows),
                tracker_id=[r[0] for r in rows],
                image_size=size,
            )
        )
    return out, fps


def cost(name: str, reps: int) -> dict[str, Any]:
    from gridwatch.config import parse_config
    from gridwatch.rules.engine import CameraRules
    from gridwatch.stats.aggregate import CameraStats

    dets, fps = frames_of(name)
    cfg = parse_config(CAMERA.replace("FPS", f"{fps:g}"), "bench-stats.yaml")
    cam = cfg.cameras[0]
    rules_us, stats_us, records = [], [], 0
    for _ in range(reps):
        rules = CameraRules(cam, cfg, person_classes={0}, class_names={0: "person"})
        out: list[Any] = []
        stats = CameraStats(cam, rules, out.append, person_classes={0})
        r_ns = s_ns = 0
        for i, d in enumerate(dets):
            ts = 1_800_000_000.0 + i / fps
            t0 = time.thread_time_ns()
            rules.update(d, ts)
            t1 = time.thread_time_ns()
            stats.observe(d, ts)
            s_ns += time.thread_time_ns() - t1
            r_ns += t1 - t0
        rules_us.append(r_ns / 1000 / len(dets))
        stats_us.append(s_ns / 1000 / len(dets))
        records = len(out)
    return {
        "source": f"{name}: {len(dets)} frames at {fps:g} fps, "
        f"{statistics.mean(len(d) for d in dets):.1f} people per frame (ground truth)",
        "rules_us_cpu_per_frame": round(statistics.median(rules_us), 1),
        "stats_us_cpu_per_frame": round(statistics.median(stats_us), 1),
        "records_closed": records,
        "reps": reps,
    }


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="bench stats", description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    result = {"machine": machine(), "sources": [cost(n, args.reps) for n in SOURCES]}
    print(f"machine: {result['machine']}")
    print(f"{'source':<72} {'rules µs':>9} {'stats µs':>9}")
    for s in result["sources"]:
        rules_us, stats_us = s["rules_us_cpu_per_frame"], s["stats_us_cpu_per_frame"]
        print(f"{s['source']:<72} {rules_us:>9} {stats_us:>9}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))

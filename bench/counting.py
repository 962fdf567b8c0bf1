"""What counting over tracks costs per analysed frame, next to the detector.

    ./run bench counting [--clip towncentre|vtest|both] [--model default|PATH] [--frames N]
                         [--reps R] [--json FILE]

On real detections (the detector's whole-frame boxes, then the worker's ByteTrack with
``keep_unmatched`` as ``Worker.start_camera`` builds it), the per-frame CPU of the camera's
rules (``CameraRules.update``: one crowding rule on a zone covering the frame,
``count_window_s`` 1 s as the rule's default) with ``analysis.counting`` on (the
``CrowdCounter`` over tracks, then the rule) and off (the rule counts the raw boxes), and of
``CrowdCounter.update`` alone, against the detector's ms per frame on the same frames.

Clips: **towncentre** (``../shared/data/towncentre-690x388``, 41 frames of 690×388 at 10 fps,
17–22 people per frame: the dense case, every frame) and **vtest** (PETS09, 768×576, every 5th
frame = 2 fps, the bench's busy camera). The detections are computed once; the rules are then
timed ``reps`` times over the whole sequence (fresh state each time) and the median taken, with
``time.thread_time`` (this thread's CPU) and ``perf_counter`` (wall).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import time
from pathlib import Path
from typing import Any

from bench.slice import machine

REPO = Path(__file__).resolve().parents[1]
TOWNCENTRE = REPO.parent / "shared" / "data" / "towncentre-690x388"
VTEST = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
log = logging.getLogger("bench.counting")


def clip_frames(name: str, limit: int) -> tuple[list[Any], float, str]:
    """Frames (BGR arrays) of a clip, the analysis fps they stand for, and a description."""
    import av

    if name == "towncentre":
        files = sorted(TOWNCENTRE.glob("*.mp4"))
        if not files:
            raise FileNotFoundError(f"no TownCentre clip under {TOWNCENTRE}")
        path, stride, fps = files[0], 1, 10.0
    elif name == "vtest":
        path, stride, fps = VTEST, 5, 2.0
        if not path.exists():
            from gridwatch_devtools.media import demo_video

            path = demo_video()
    else:
        raise ValueError(f"unknown clip {name!r}")
    frames = []
    with av.open(str(path)) as c:
        for i, vf in enumerate(c.decode(video=0)):
            if i % stride == 0:
                frames.append(vf.to_ndarray(format="bgr24"))
            if len(frames) >= limit:
                break
    h, w = frames[0].shape[:2]
    return frames, fps, f"{path.name} {w}x{h}, {len(frames)} frames at {fps:g} fps"


def _rules(enabled: bool, fps: float, person_classes: Any, class_names: Any) -> Any:
    from gridwatch.config import parse_config
    from gridwatch.rules.engine import CameraRules

    text = f"""
grids: [{{id: g}}]
analysis: {{counting: {{enabled: {"true" if enabled else "false"}}}}}
cameras:
  - id: c
    grid: g
    url: rtsp://127.0.0.1/none
    analysis_fps: {fps:g}
    zones: [{{id: z, polygon: [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]}}]
    rules: [{{type: crowding, zone: z, min_count: 5, min_duration_s: 5, clear_after_s: 5}}]
"""
    cfg = parse_config(text, "bench-counting.yaml")
    rules = CameraRules(cfg.cameras[0], cfg, person_classes=person_classes, class_names=class_names)
    assert (rules.counter is not None) == enabled, "counting config not applied"
    return rules


def _time_loop(make: Any, step: Any, items: list[Any], reps: int) -> tuple[float, float]:
    """Median µs per item over ``reps`` passes (thread CPU, wall); ``make()`` gives fresh state."""
    cpu, wall = [], []
    for _ in range(reps):
        state = make()
        c0, w0 = time.thread_time_ns(), time.perf_counter_ns()
        for i, item in enumerate(items):
            step(state, item, i)
        cpu.append((time.thread_time_ns() - c0) / 1000 / len(items))
        wall.append((time.perf_counter_ns() - w0) / 1000 / len(items))
    return statistics.median(cpu), statistics.median(wall)


def counting_cost(detector: Any, clip: str, frames: int = 60, reps: int = 20) -> dict[str, Any]:
    """The cost of counting per analysed frame on ``clip`` with ``detector``'s boxes."""
    from gridwatch.tracking.bytetrack import CameraTracker
    from gridwatch.tracking.counting import CountSettings, CrowdCounter

    images, fps, what = clip_frames(clip, frames)
    dets, det_ms, det_cpu_ms = [], [], []
    for img in images:
        c0, w0 = time.process_time(), time.perf_counter()
        dets.append(detector.detect(img))
        det_ms.append((time.perf_counter() - w0) * 1000)
        det_cpu_ms.append((time.process_time() - c0) * 1000)
    tracker = CameraTracker(frame_rate=fps, camera_id="c", keep_unmatched=True)
    t0 = time.thread_time_ns()
    tracked = [tracker.update(d) for d in dets]
    track_us = (time.thread_time_ns() - t0) / 1000 / len(dets)
    pc, names = detector.person_class_ids, detector.class_names

    def rules_step(rules: Any, d: Any, i: int) -> None:
        rules.update(d, i / fps)

    def counter_step(counter: Any, d: Any, i: int) -> None:
        counter.update(d, i / fps)

    on_cpu, on_wall = _time_loop(lambda: _rules(True, fps, pc, names), rules_step, tracked, reps)
    off_cpu, off_wall = _time_loop(lambda: _rules(False, fps, pc, names), rules_step, tracked, reps)
    cnt_cpu, _ = _time_loop(
        lambda: CrowdCounter(CountSettings(), person_classes=pc), counter_step, tracked, reps
    )
    # what the rule saw, on and off (a sanity check, not an accuracy figure: no ground truth)
    seen = {}
    for enabled in (True, False):
        rules = _rules(enabled, fps, pc, names)
        counts = []
        for i, d in enumerate(tracked):
            rules.update(d, i / fps)
            counts.append(rules.rules[0].last_count)
        seen[enabled] = counts
    boxes = [len(d) for d in dets]
    det_med = statistics.median(det_ms)
    return {
        "clip": what,
        "detector": detector.name,
        "boxes_per_frame": round(statistics.mean(boxes), 1),
        "detector_ms_per_frame_wall_p50": round(det_med, 1),
        "detector_ms_cpu_per_frame_p50": round(statistics.median(det_cpu_ms), 1),
        "bytetrack_us_cpu_per_frame": round(track_us, 1),
        "rules_with_counting_us_cpu_per_frame": round(on_cpu, 1),
        "rules_without_counting_us_cpu_per_frame": round(off_cpu, 1),
        "counting_cost_us_cpu_per_frame": round(on_cpu - off_cpu, 1),
        "crowd_counter_update_us_cpu_per_frame": round(cnt_cpu, 1),
        "rules_with_counting_us_wall_per_frame": round(on_wall, 1),
        "counting_share_of_detector_wall": round((on_wall - off_wall) / 1000 / det_med, 4),
        "rule_count_mean_with_without": [
            round(statistics.mean(seen[True]), 2),
            round(statistics.mean(seen[False]), 2),
        ],
        "reps": reps,
        "method": "detections once (whole frame), ByteTrack keep_unmatched as the worker; "
        "CameraRules.update with analysis.counting on vs off (one crowding rule, whole-frame "
        f"zone, count_window_s 1 s), {reps} passes over the clip, median, thread CPU time",
    }


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="bench counting", description=__doc__.split("\n\n")[0])
    ap.add_argument("--clip", default="both", choices=["towncentre", "vtest", "both"])
    ap.add_argument("--model", default="default", help="'default' or a model path")
    ap.add_argument("--confidence", type=float, help="default 0.25 (default model), else 0.4")
    ap.add_argument("--imgsz", type=int, default=640)
    ap.add_argument("--frames", type=int, default=60, help="at most this many frames a clip")
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("gridwatch").setLevel(logging.WARNING)
    from gridwatch.detectors import build_detector

    conf = args.confidence or (0.25 if args.model == "default" else 0.4)
    detector = build_detector(
        args.model, conf, backend="openvino", imgsz=args.imgsz, streams=1, threads=1
    )
    clips = ["towncentre", "vtest"] if args.clip == "both" else [args.clip]
    result: dict[str, Any] = {
        "machine": machine(),
        "loadavg_before": round(os.getloadavg()[0], 2),
        "detector": {
            "model": args.model,
            "confidence": conf,
            "imgsz": args.imgsz,
            "streams": 1,
            "threads": 1,
        },
        "clips": [counting_cost(detector, c, args.frames, args.reps) for c in clips],
        "loadavg_after": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0

"""Many cameras on a small CPU: gridwatch's worker against the naive loops, on the same streams.

    ./run bench [multicam] [--quick] [--json FILE] [--seconds D] [--busy-share 0.25]
                [--sizes 640x360,1280x720] [--fps 2] [--max-cameras 64] [--model default]
                [--int8-model PATH|none] [--max-cameras-int8 128] [--int8-sizes 640x360]

Starts an embedded nats-server and the GStreamer RTSP server serving real video (the vtest
pedestrians, "busy", and the same street with nobody in it plus sensor grain, "idle"; at the
sizes asked, 10 fps, 2 s GOP), then in one run:

1. **region detection vs whole frame** (offline, vtest 768×576 at 2 fps): the share of the
   whole-frame detections (640, conf 0.25) that the analyser's looks also find (IoU ≥ 0.5),
   and the detector CPU per analysed frame of each (process CPU time, one inference thread);
2. **ours**: one worker process (this one), every camera with a crowding rule counting over
   tracks (``analysis.counting`` on, checked per trial), with K cameras — a mix of busy and
   idle — for D seconds after a warm-up, K grown until a camera falls below 90% of its target
   analysis rate or the p99 frame age passes 1 s, then bisected: the capacity. Then the same
   search again with the COCO YOLOv8n INT8 OpenVINO export
   (``../shared/models/yolov8n_int8_openvino_model``, conf 0.4, imgsz 640, 2 streams × 1
   thread; skipped, and said so in the JSON, where it is missing), on ``--int8-sizes``
   streams (``--quick``: every camera on its 640×360 sub-stream, DESIGN principle 3);
3. **naive ultralytics** (a subprocess): what a user writes with ultralytics alone, one
   thread and one model per camera running ``model.predict(source=url, stream=True,
   vid_stride=5)`` (ultralytics reads the stream in a background thread and keeps the latest
   frame; stride 5 of 10 fps = the 2 fps target), same K search and the same pass rule;
   searched again on the INT8 runs' streams where those differ, so that every ratio divides
   by the naive loop on the same streams (``ratio_basis`` in the JSON);
4. **naive OpenCV** (a subprocess, reference): ``cap.read()`` then ``predict`` on one busy
   camera, reporting how far behind the live stream its frames fall over the run;
5. **decode CPU**: CPU per decoded frame of our reader (PyAV, one thread per camera; its
   thread's CPU clock) against ``ffmpeg -threads 1 -f null`` (its process CPU clock), both on
   the same RTSP stream over the same window, repeated, median.

Also: what counting over tracks costs per frame next to the detector (``bench.counting``,
TownCentre, with each model).

Caveat on the streams: the GStreamer server announces each looping file's duration; OpenCV
reports it as a frame count and ultralytics' ``LoadStreams`` stops after that many frames (a
real camera announces none). The idle scene is therefore 2 minutes long and the busy one 79.5
s: keep naive trials (warm-up + measure) shorter than that.

Every table says which CPU ran it and the load average before and after: the figures are only
comparable on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from bench.slice import machine, pct

REPO = Path(__file__).resolve().parents[1]
SHARED_INT8 = REPO.parent / "shared" / "models" / "yolov8n_int8_openvino_model"
INT8_SETTINGS: dict[str, Any] = {"confidence": 0.4, "imgsz": 640, "streams": 2, "threads": 1}
"""The INT8 run's detector (docs/models.md's suggested settings; 2 streams of 1 thread on 2
cores)."""
TARGET_SHARE = 0.9
MAX_P99_AGE_MS = 1000.0
log = logging.getLogger("bench.multicam")


# -- scenes and streams ----------------------------------------------------------------------


@dataclass(frozen=True)
class CameraSpec:
    id: str
    kind: str  # busy | idle
    size: tuple[int, int]
    mount: str


def camera_mix(n: int, busy_share: float, sizes: list[tuple[int, int]]) -> list[CameraSpec]:
    """``n`` cameras: every ``1/busy_share``-th is busy (the first one always), sizes cycle.

    >>> [(c.kind, c.size[0]) for c in camera_mix(4, 0.25, [(640, 360), (1280, 720)])]
    [('busy', 640), ('idle', 1280), ('idle', 640), ('idle', 1280)]
    """
    period = max(1, round(1 / busy_share)) if busy_share > 0 else n + 1
    out = []
    for i in range(n):
        kind = "busy" if i % period == 0 else "idle"
        size = sizes[(i // period) % len(sizes)] if kind == "busy" else sizes[i % len(sizes)]
        out.append(CameraSpec(f"cam{i:03d}", kind, size, f"{kind}-{size[0]}x{size[1]}"))
    return out


def scene_files(sizes: list[tuple[int, int]]) -> dict[str, Path]:
    from gridwatch_devtools.scenes import busy_video, idle_video

    files: dict[str, Path] = {}
    for w, h in sizes:
        files[f"busy-{w}x{h}"] = busy_video((w, h))
        files[f"idle-{w}x{h}"] = idle_video((w, h))
    return files


# -- machine load ----------------------------------------------------------------------------


def load_snapshot() -> dict[str, Any]:
    la = os.getloadavg()
    me = os.getpid()
    others = []
    for p in psutil.process_iter(["pid", "name", "cpu_percent", "cmdline"]):
        with contextlib.suppress(psutil.Error):
            p.cpu_percent(None)
    time.sleep(0.5)
    for p in psutil.process_iter(["pid", "name", "cmdline"]):
        with contextlib.suppress(psutil.Error):
            if p.pid == me or p.ppid() == me:
                continue
            c = p.cpu_percent(None)
            if c >= 5:
                others.append(f"{p.info['name']}:{c:.0f}%")
    return {"loadavg_1m": round(la[0], 2), "others_over_5pct": others[:6]}


# -- 1. region detection vs whole frame ------------------------------------------------------


async def region_eval(
    whole_detector: Any, detector: Any, frames: int, scale: str
) -> dict[str, Any]:
    """The analyser's looks vs whole-frame detection on consecutive vtest frames at 2 fps.

    The region side is what the worker runs, built the way the worker builds it: the default
    config's ``analysis`` section (``settings_from_config``, as ``Worker._make_analyser``),
    the same batching service settings, ``imgsz`` and ``native_resolution`` of the detector.
    The two sides use two instances of one detector (same backend, model and settings, one
    stream of one thread each), so each keeps the input shapes it sees prepared, as a worker's
    detector does, instead of one instance switching between the whole frame's shape and the
    mosaics' (about 2 ms a switch). Both are measured as process CPU time
    (``time.process_time``: every thread of this process, so the inference thread's work is
    counted), taking turns frame by frame so that both see the same machine load: the whole
    frame around ``whole_detector.detect``, the regions around the whole ``analyse`` call
    (motion gate, planning, mosaic, the service's hand-over, inference, mapping back; the first
    frame and refreshes, which are whole-frame looks, included).
    """
    import av
    import numpy as np

    from gridwatch.config import GridwatchConfig
    from gridwatch.detectors.analyser import CameraAnalyser, settings_from_config
    from gridwatch.detectors.batching import BatchingService
    from gridwatch.detectors.regions import whole_frame_input_area
    from gridwatch.ingest.motion import luma_plane
    from gridwatch.model import Frame
    from gridwatch_devtools.media import demo_video

    config = GridwatchConfig()
    analysis = config.analysis.model_copy(
        update={"regions": config.analysis.regions.model_copy(update={"scale": scale})}
    )
    samples: list[tuple[Any, Any]] = []
    with av.open(str(demo_video())) as c:
        for i, vf in enumerate(c.decode(video=0)):
            if i % 5 == 0:
                samples.append((vf.to_ndarray(format="bgr24"), np.array(luma_plane(vf))))
            if len(samples) >= frames:
                break
    size = (samples[0][0].shape[1], samples[0][0].shape[0])
    full_cpu = 0.0
    now = [0.0]
    region_cpu = 0.0
    found = total = extra = over_count = 0
    modes: dict[str, int] = {}
    area = 0
    shapes: set[tuple[int, int]] = set()
    b = analysis.batching
    with BatchingService(
        detector, max_batch=b.max_batch, max_wait_ms=b.max_wait_ms, max_pending=b.max_pending
    ) as service:
        analyser = CameraAnalyser(
            "vtest",
            service,
            settings_from_config(analysis),
            imgsz=config.detector.imgsz,
            native_resolution=bool(getattr(detector, "native_resolution", False)),
            analysis_fps=2.0,
            clock=lambda: now[0],
        )
        for k, (img, y) in enumerate(samples):
            # the two sides take turns frame by frame, so both run under the same load
            t0 = time.process_time()
            whole = whole_detector.detect(img)
            full_cpu += time.process_time() - t0
            t0 = time.process_time()
            r = await analyser.analyse(Frame("vtest", img, 0.0, time.monotonic(), k), y)
            region_cpu += time.process_time() - t0
            now[0] += 0.5
            modes[r.mode] = modes.get(r.mode, 0) + 1
            area += r.input_area
            if r.mode == "regions":
                shapes.add(r.input_shape)
            f, g = whole.xyxy, r.detections.xyxy
            total += len(f)
            over_count += int(len(g) > len(f) + 1)  # what a crowding count would see
            if len(f) and len(g):
                m = _iou(f, g)
                found += int((m.max(axis=1) >= 0.5).sum())
                extra += int((m.max(axis=0) < 0.5).sum())
            else:
                extra += len(g)
    full_area = whole_frame_input_area(size, config.detector.imgsz) * len(samples)
    return {
        "scale": scale,
        "frames": len(samples),
        "recall_vs_full": round(found / max(1, total), 3),
        "cpu_vs_full": round(region_cpu / max(1e-9, full_cpu), 3),
        "input_px_vs_full": round(area / full_area, 3),
        "full_ms_cpu_per_frame": round(full_cpu / len(samples) * 1000, 1),
        "regions_ms_cpu_per_frame": round(region_cpu / len(samples) * 1000, 1),
        "boxes_per_frame_full": round(total / len(samples), 2),
        "extra_boxes_per_frame": round(extra / len(samples), 2),
        "frames_counting_2_more": over_count,
        "mosaic_shapes": len(shapes),
        "modes": modes,
    }


def _iou(a: Any, b: Any) -> Any:
    import numpy as np

    ix = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    iy = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.clip(ix, 0, None) * np.clip(iy, 0, None)
    aa = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    bb = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / (aa[:, None] + bb[None] - inter)


# -- 2. ours -------------------------------------------------------------------------------


@dataclass
class Trial:
    cameras: int
    seconds: float
    fps_target: float
    per_camera_fps: dict[str, float]
    ages_ms: list[float]
    cpu_pct: float
    detector_calls_per_s: float
    images_per_s: float
    drops: int
    extra: dict[str, Any] = field(default_factory=dict)
    keyframe_share: dict[str, float] = field(default_factory=dict)
    """Per camera that decoded keyframes only through the whole window (an idle camera with
    idle keyframes on): the share of the keyframes that arrived that were not missed (replaced
    in the camera's slot by the next one before the loop took them). Such a camera is judged
    on this share instead of the target fps (it is offered one frame per GOP)."""

    @property
    def min_share(self) -> float:
        """The lowest analysis rate / target of the cameras decoding every frame."""
        full = [v for c, v in self.per_camera_fps.items() if c not in self.keyframe_share]
        if not full:
            return 0.0 if not self.keyframe_share else 1.0
        return min(full) / self.fps_target

    @property
    def min_keyframe_share(self) -> float:
        return min(self.keyframe_share.values(), default=1.0)

    @property
    def p99_ms(self) -> float:
        return pct(self.ages_ms, 0.99) if self.ages_ms else float("nan")

    @property
    def passed(self) -> bool:
        return (
            len(self.per_camera_fps) == self.cameras
            and self.min_share >= TARGET_SHARE
            and self.min_keyframe_share >= TARGET_SHARE
            and (not self.ages_ms or self.p99_ms <= MAX_P99_AGE_MS)
        )

    def row(self) -> dict[str, Any]:
        # fps of the cameras decoding every frame; keyframes-only ones are judged apart
        fps = [v for c, v in self.per_camera_fps.items() if c not in self.keyframe_share]
        kf = self.keyframe_share
        kf_keys = (
            {
                "keyframe_share_min": round(self.min_keyframe_share, 3),
                "fps_mean_keyframes_only": round(
                    statistics.mean(self.per_camera_fps[c] for c in kf), 3
                ),
            }
            if kf
            else {}
        )
        return {
            "cameras": self.cameras,
            "pass": self.passed,
            "fps_target": self.fps_target,
            "fps_min": round(min(fps), 2) if fps else None,
            "fps_mean": round(statistics.mean(fps), 2) if fps else None,
            "frame_age_p50_ms": round(pct(self.ages_ms, 0.5), 1) if self.ages_ms else None,
            "frame_age_p99_ms": round(self.p99_ms, 1) if self.ages_ms else None,
            "detector_calls_per_s": round(self.detector_calls_per_s, 2),
            "images_per_s": round(self.images_per_s, 2),
            "cpu_pct_of_one_core": round(self.cpu_pct, 1),
            "drops": self.drops,
            **kf_keys,
            **self.extra,
        }


def search_capacity(
    run_trial: Any, max_cameras: int, budget_s: float, start: int = 1
) -> list[Trial]:
    """Grow K (``start``, ×2, …) until a trial fails, then bisect; stop when ``budget_s`` runs
    out. A failing ``start`` steps down to 1 first."""
    trials: list[Trial] = []
    t0 = time.monotonic()
    good, bad = 0, None
    k = min(start, max_cameras)
    while k <= max_cameras and time.monotonic() - t0 < budget_s:
        t = run_trial(k)
        trials.append(t)
        log.info("K=%d %s", k, t.row())
        if t.passed:
            good = k
            k = min(max_cameras, k * 2) if k < max_cameras else max_cameras + 1
        else:
            bad = k  # (a failing first guess bisects down towards 0)
            break
    while bad is not None and bad - good > 1 and time.monotonic() - t0 < budget_s:
        k = (good + bad) // 2
        t = run_trial(k)
        trials.append(t)
        log.info("K=%d %s", k, t.row())
        if t.passed:
            good = k
        else:
            bad = k
    return trials


def capacity(trials: list[Trial]) -> int:
    passed = [t.cameras for t in trials if t.passed]
    return max(passed) if passed else 0


class OursRunner:
    """Our worker in this process; cameras are added with ``apply_cameras`` between trials."""

    def __init__(
        self,
        args: argparse.Namespace,
        rtsp: Any,
        nats_url: str,
        detector: Any,
        detector_config: dict[str, Any] | None = None,
        idle_keyframes: bool = False,
        sizes: list[tuple[int, int]] | None = None,
    ) -> None:
        self.args = args
        self.sizes = sizes or args.sizes
        """The streams' sizes the cameras cycle through (``--sizes``; the INT8 searches use
        ``--int8-sizes``: the cameras' 640×360 sub-streams in ``--quick``)."""
        self.idle_keyframes = idle_keyframes
        """Idle cameras decode keyframes only at the target fps: the config's
        ``analysis.adaptive_decode`` gets ``max_fps`` = ``--fps`` and ``idle_s`` =
        ``--idle-s`` (the product default ``max_fps`` 1.0 never engages at 2 fps), and each
        trial warms up for ``--idle-warmup`` (> idle_s) so that idle cameras have switched."""
        self.warmup = args.warmup
        if idle_keyframes:
            self.warmup = max(args.warmup, args.idle_warmup)
        self.detector_config = detector_config or {}
        """The config's ``detector:`` section (the analyser takes ``imgsz`` from it; the
        detector itself is ``detector``, built once by the bench)."""
        self.rtsp = rtsp
        self.nats_url = nats_url
        self.detector = detector
        self.loop = asyncio.new_event_loop()
        self.worker: Any = None
        self.stop_event: asyncio.Event | None = None
        self.task: Any = None
        self.ages: dict[str, list[float]] = {}

    def config(self, specs: list[CameraSpec]) -> Any:
        from gridwatch.config import parse_config

        zone = "[[0.02, 0.30], [0.98, 0.30], [0.98, 0.99], [0.02, 0.99]]"
        cams = "\n".join(
            f"""  - id: {c.id}
    grid: g
    url: {self.rtsp.url(c.mount)}
    analysis_fps: {self.args.fps}
    zones: [{{id: z, polygon: {zone}}}]
    rules: [{{type: crowding, zone: z, min_count: 5, min_duration_s: 5, clear_after_s: 5}}]"""
            for c in specs
        )
        spool = Path(tempfile.gettempdir()) / f"gw-bench-spool-{os.getpid()}"
        det = ", ".join(f"{k}: {json.dumps(v)}" for k, v in self.detector_config.items())
        adaptive = (
            f", adaptive_decode: {{max_fps: {self.args.fps}, idle_s: {self.args.idle_s}}}"
            if self.idle_keyframes
            else ""
        )
        text = f"""
grids: [{{id: g}}]
alerts: {{spool: {{dir: "{spool}"}}}}
detector: {{{det}}}
analysis: {{counting: {{enabled: true}}{adaptive}}}
cameras:{"" if specs else " []"}
{cams}
"""
        return parse_config(text, "bench.yaml")

    async def _start(self) -> None:
        from gridwatch.worker import Worker

        cfg = self.config([])
        self.stop_event = asyncio.Event()
        self.worker = Worker(cfg, nats_url=self.nats_url, detector=self.detector)
        observe = self.worker.metrics.observe

        def record(camera: str, mode: str, age_ms: float, det_ms: float) -> None:
            self.ages.setdefault(camera, []).append(age_ms)
            observe(camera, mode, age_ms, det_ms)

        self.worker.metrics.observe = record
        self.task = asyncio.create_task(self.worker.run(self.stop_event))
        await asyncio.wait_for(self.worker.ready.wait(), 120)

    def start(self) -> None:
        self.loop.run_until_complete(self._start())

    def trial(self, k: int) -> Trial:
        return self.loop.run_until_complete(self._trial(k))

    async def _trial(self, k: int) -> Trial:
        w = self.worker
        specs = camera_mix(k, self.args.busy_share, self.sizes)
        await w.apply_cameras(self.config(specs).cameras)
        await asyncio.sleep(self.warmup)
        me = psutil.Process()
        svc = w.inference_service
        a0 = {c: w.pipelines[c].stats.analysed for c in w.pipelines}
        d0 = {c: w.readers[c].slot.dropped for c in w.readers}
        b0, i0, s0 = svc.stats.batches, svc.stats.images, svc.stats.replaced + svc.stats.refused
        m0 = svc.stats.multi_camera_batches
        for v in self.ages.values():
            v.clear()
        modes0 = {c: dict(a.stats.modes) for c, a in w.analysers.items()}
        kf0 = {c: r.stats.keyframes_only for c, r in w.readers.items()}
        sw0 = {c: a.stats.keyframe_switches for c, a in w.analysers.items()}
        kp0 = {c: r.stats.keyframe_packets for c, r in w.readers.items()}
        c0 = me.cpu_times()
        t0 = time.monotonic()
        await asyncio.sleep(self.args.seconds)
        dt = time.monotonic() - t0
        c1 = me.cpu_times()
        # keyframes only through the whole window: at its start, at its end, no switch between
        sw = {c: a.stats.keyframe_switches - sw0.get(c, 0) for c, a in w.analysers.items()}
        kf_ids = sorted(
            c
            for c, r in w.readers.items()
            if kf0.get(c) and r.stats.keyframes_only and sw.get(c, 0) == 0
        )
        keyframes = {c: w.readers[c].stats.keyframe_packets - kp0.get(c, 0) for c in kf_ids}
        analysed = {c: w.pipelines[c].stats.analysed - a0.get(c, 0) for c in kf_ids}
        # a keyframe missed is one that the next replaced in the camera's slot before the loop
        # took it; one that arrived in the window's last moments and was analysed just after
        # it is not (with ~4 keyframes in an 8 s window, counting it as missed read 0.75)
        missed = {c: w.readers[c].slot.dropped - d0.get(c, 0) for c in kf_ids}
        kf_share = {c: 1 - missed[c] / keyframes[c] if keyframes[c] else 0.0 for c in kf_ids}
        per_cam = {c: (w.pipelines[c].stats.analysed - a0.get(c, 0)) / dt for c in w.pipelines}
        ages = [a for v in self.ages.values() for a in v]
        modes: dict[str, int] = {}
        for c, a in w.analysers.items():
            for m, n in a.stats.modes.items():
                modes[m] = modes.get(m, 0) + n - modes0.get(c, {}).get(m, 0)
        busy = [c.id for c in specs if c.kind == "busy"]
        idle = [c.id for c in specs if c.kind == "idle"]
        # "with the new counting on": every camera's crowding rule counts through the counter
        counting = sum(1 for p in w.pipelines.values() if p.rules.counter is not None)
        return Trial(
            cameras=k,
            seconds=dt,
            fps_target=self.args.fps,
            per_camera_fps=per_cam,
            ages_ms=ages,
            cpu_pct=(c1.user + c1.system - c0.user - c0.system) / dt * 100,
            detector_calls_per_s=(svc.stats.batches - b0) / dt,
            images_per_s=(svc.stats.images - i0) / dt,
            drops=svc.stats.replaced + svc.stats.refused - s0,
            keyframe_share=kf_share,
            extra={
                "busy": len(busy),
                "idle": len(idle),
                "fps_min_busy": round(min((per_cam[c] for c in busy), default=0), 2),
                "fps_min_idle": round(min((per_cam[c] for c in idle), default=0), 2),
                "looks": modes,
                "unanalysed_decoded_frames_replaced": sum(
                    w.readers[c].slot.dropped - d0.get(c, 0) for c in w.readers
                ),
                "keyframes_only_cameras": sum(1 for v in kf0.values() if v),
                "keyframes_only_ids": kf_ids,
                "keyframes_only_busy": [c for c in kf_ids if c in busy],
                "keyframes_arrived_per_s": round(sum(keyframes.values()) / dt, 2),
                "keyframes_only_analysed_per_s": round(sum(analysed.values()) / dt, 2),
                "keyframes_missed": sum(missed.values()),
                "keyframe_analysed_ratio_min": round(
                    min((analysed[c] / keyframes[c] for c in kf_ids if keyframes[c]), default=1.0),
                    3,
                ),
                "keyframe_switches_in_window": sum(sw.values()),
                "keyframe_switches_total": {
                    "busy": sum(w.analysers[c].stats.keyframe_switches for c in busy),
                    "idle": sum(w.analysers[c].stats.keyframe_switches for c in idle),
                },
                "idle_keyframes": self.idle_keyframes,
                "sizes": sorted({f"{c.size[0]}x{c.size[1]}" for c in specs}),
                "multi_camera_batches": svc.stats.multi_camera_batches - m0,
                "counting_cameras": counting,
            },
        )

    def close(self) -> None:
        async def stop() -> None:
            if self.stop_event is not None:
                self.stop_event.set()
            if self.task is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.task, 60)

        self.loop.run_until_complete(stop())
        self.loop.close()


# -- 3./4. naive baselines (subprocesses) ---------------------------------------------------

NAIVE_ULTRALYTICS = r"""
import json, os, sys, threading, time
os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp")
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_VERBOSE", "False")
import cv2
import ultralytics.data.loaders as loaders
from ultralytics import YOLO

urls, weights, stride, warmup, seconds = json.loads(sys.argv[1])
# instrumentation only: when did the reader thread retrieve each image (to measure frame age)
retrieved = {}
class Cap(cv2.VideoCapture):
    def retrieve(self, *a, **k):
        ok, im = super().retrieve(*a, **k)
        if ok and im is not None:
            retrieved[id(im)] = time.monotonic()
        return ok, im
loaders.cv2.VideoCapture = Cap

counts = [0] * len(urls)
ages = [[] for _ in urls]
window = {"start": None, "end": None}
errors = []

def camera(i, url):
    try:
        model = YOLO(weights)  # one model per camera thread: what users write
        for r in model.predict(source=url, stream=True, vid_stride=stride, imgsz=640,
                               conf=0.25, verbose=False):
            now = time.monotonic()
            if window["start"] is not None and now >= window["start"]:
                if now > window["end"]:
                    return
                counts[i] += 1
                t = retrieved.pop(id(r.orig_img), None)
                if t is not None:
                    spent = sum(r.speed.values()) / 1000.0
                    ages[i].append((now - spent - t) * 1000.0)
    except Exception as e:  # report, do not hang
        errors.append(f"{type(e).__name__}: {e}")

threads = [threading.Thread(target=camera, args=(i, u), daemon=True) for i, u in enumerate(urls)]
for t in threads:
    t.start()
time.sleep(warmup)
import resource
r0 = resource.getrusage(resource.RUSAGE_SELF)
window["start"] = time.monotonic()
window["end"] = window["start"] + seconds
time.sleep(seconds)
r1 = resource.getrusage(resource.RUSAGE_SELF)
cpu = (r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime) / seconds * 100
print(json.dumps({"counts": counts, "ages": ages, "cpu_pct": cpu, "errors": errors}))
sys.stdout.flush()
os._exit(0)
"""

NAIVE_OPENCV = r"""
import json, os, sys, time
os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp")
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_VERBOSE", "False")
import cv2
from ultralytics import YOLO

url, weights, seconds = json.loads(sys.argv[1])
model = YOLO(weights)
cap = cv2.VideoCapture(url)
ok, frame = cap.read()
model.predict(frame, imgsz=640, conf=0.25, verbose=False)
t0 = time.monotonic()
pos0 = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
lag = []
n = 0
while time.monotonic() - t0 < seconds:
    ok, frame = cap.read()  # the next frame in the buffer, not the newest one
    if not ok:
        break
    behind = (time.monotonic() - t0) - (cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0 - pos0)
    lag.append((time.monotonic() - t0, behind * 1000.0))
    model.predict(frame, imgsz=640, conf=0.25, verbose=False)
    n += 1
print(json.dumps({"analysed": n, "seconds": time.monotonic() - t0, "lag": lag}))
sys.stdout.flush()
os._exit(0)
"""


def run_script(script: str, payload: Any, timeout: float) -> dict[str, Any]:
    env = dict(os.environ)
    env.setdefault("YOLO_CONFIG_DIR", str(REPO / ".cache" / "ultralytics"))
    proc = subprocess.run(
        [sys.executable, "-c", script, json.dumps(payload)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    line = next((ln for ln in reversed(proc.stdout.splitlines()) if ln.startswith("{")), None)
    if line is None:
        raise RuntimeError(f"baseline failed (rc {proc.returncode}): {proc.stderr[-2000:]}")
    out: dict[str, Any] = json.loads(line)
    return out


def naive_trial(
    args: argparse.Namespace,
    rtsp: Any,
    weights: str,
    k: int,
    sizes: list[tuple[int, int]] | None = None,
) -> Trial:
    specs = camera_mix(k, args.busy_share, sizes or args.sizes)
    urls = [rtsp.url(c.mount) for c in specs]
    stride = max(1, round(10 / args.fps))
    warmup = args.warmup + 2.0 + 1.5 * k  # one model and one stream open per camera
    out = run_script(
        NAIVE_ULTRALYTICS,
        [urls, weights, stride, warmup, args.seconds],
        timeout=warmup + args.seconds + 120,
    )
    per_cam = {c.id: n / args.seconds for c, n in zip(specs, out["counts"], strict=True)}
    ages = [a for v in out["ages"] for a in v]
    return Trial(
        cameras=k,
        seconds=args.seconds,
        fps_target=args.fps,
        per_camera_fps=per_cam,
        ages_ms=ages,
        cpu_pct=float(out["cpu_pct"]),
        detector_calls_per_s=sum(out["counts"]) / args.seconds,
        images_per_s=sum(out["counts"]) / args.seconds,
        drops=0,
        extra={
            "vid_stride": stride,
            "sizes": sorted({f"{c.size[0]}x{c.size[1]}" for c in specs}),
            "errors": out["errors"][:3],
        },
    )


def opencv_naive(args: argparse.Namespace, rtsp: Any, weights: str) -> dict[str, Any]:
    spec = camera_mix(1, 1.0, args.sizes)[0]
    out = run_script(
        NAIVE_OPENCV,
        [rtsp.url(spec.mount), weights, args.seconds],
        timeout=args.seconds + 120,
    )
    lag = out["lag"]
    first = [v for t, v in lag if t < min(3.0, args.seconds / 4)]
    last = [v for t, v in lag if t > args.seconds - min(3.0, args.seconds / 4)]
    growth = (
        (statistics.mean(last) - statistics.mean(first)) / max(1e-9, lag[-1][0] - lag[0][0])
        if first and last
        else float("nan")
    )
    return {
        "camera": f"busy {spec.size[0]}x{spec.size[1]} 10 fps",
        "analysed_fps": round(out["analysed"] / out["seconds"], 2),
        "behind_live_at_start_ms": round(statistics.mean(first), 0) if first else None,
        "behind_live_at_end_ms": round(statistics.mean(last), 0) if last else None,
        "frame_age_growth_ms_per_s": round(growth, 1),
    }


# -- 5. decode CPU -------------------------------------------------------------------------


def _process_cpu_clock(pid: int) -> int | None:
    """The CPU-time clock of process ``pid`` (``clock_getcpuclockid``): read with
    ``time.clock_gettime`` it is exact to the nanosecond, where ``/proc`` times (psutil) come
    in 10 ms ticks — ±30% on a few seconds of 1 ms frames. ``None`` where unavailable."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        clk = ctypes.c_int()
        if libc.clock_getcpuclockid(pid, ctypes.byref(clk)) != 0:
            return None
        time.clock_gettime(clk.value)
    except (OSError, AttributeError):
        return None
    return int(clk.value)


def decode_once(url: str, warm_s: float, window_s: float) -> dict[str, float]:
    """One reader and one ``ffmpeg -threads 1 -f null`` on the same live stream at the same
    time, measured over the same window: CPU per frame of our decoder thread (its thread CPU
    clock: only the decoding, not the consumer) and of the whole ffmpeg process."""
    import threading

    from gridwatch.ingest.reader import CameraReader

    records: list[tuple[float, int]] = []  # (ffmpeg CPU s, frames) at each progress report
    cmd = [
        "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-threads", "1",
        "-rtsp_transport", "tcp", "-i", url, "-stats_period", "0.1", "-progress", "pipe:1",
        "-f", "null", "-",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    clock = _process_cpu_clock(proc.pid)
    ps = psutil.Process(proc.pid)

    def cpu() -> float:
        if clock is not None:
            return time.clock_gettime(clock)
        t = ps.cpu_times()
        return float(t.user + t.system)

    def follow() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith(b"frame="):
                with contextlib.suppress(OSError, psutil.Error, ValueError):
                    records.append((cpu(), int(line.split(b"=", 1)[1])))

    threading.Thread(target=follow, daemon=True).start()
    reader = CameraReader("decode-check", url)
    reader.start()
    try:
        deadline = time.monotonic() + 30
        while not (reader.stats.frames_decoded > 3 and records and records[-1][1] > 3):
            if time.monotonic() > deadline:
                raise RuntimeError("decode check: no frames from the reader or ffmpeg in 30 s")
            time.sleep(0.05)
        time.sleep(warm_s)
        ident = reader._thread.ident
        assert ident is not None
        thread_clock = time.pthread_getcpuclockid(ident)
        o0, n0, f0 = time.clock_gettime(thread_clock), reader.stats.frames_decoded, records[-1]
        time.sleep(window_s)
        o1, n1, f1 = time.clock_gettime(thread_clock), reader.stats.frames_decoded, records[-1]
    finally:
        reader.stop(10)
        proc.kill()
        proc.wait()
    ours_ms = (o1 - o0) / max(1, n1 - n0) * 1000
    ff_ms = (f1[0] - f0[0]) / max(1, f1[1] - f0[1]) * 1000
    return {
        "ours_ms": ours_ms,
        "ffmpeg_ms": ff_ms,
        "ours_frames": n1 - n0,
        "ffmpeg_frames": f1[1] - f0[1],
        "ratio": ours_ms / ff_ms if ff_ms else float("nan"),
    }


def decode_check(args: argparse.Namespace, rtsp: Any, size: tuple[int, int]) -> dict[str, Any]:
    """Our reader vs ``ffmpeg -threads 1 -f null``: ``args.decode_reps`` repetitions of
    :func:`decode_once` on the busy stream of ``size``, the median ratio reported."""
    url = rtsp.url(f"busy-{size[0]}x{size[1]}")
    reps = [decode_once(url, 1.5, args.decode_seconds) for _ in range(args.decode_reps)]
    med = statistics.median
    return {
        "stream": f"{size[0]}x{size[1]} H.264 10 fps over RTSP, both at once on one stream",
        "ours_ms_cpu_per_frame": round(med(r["ours_ms"] for r in reps), 3),
        "ffmpeg_threads1_ms_cpu_per_frame": round(med(r["ffmpeg_ms"] for r in reps), 3),
        "ratio": round(med(r["ratio"] for r in reps), 3),
        "ratios": [round(r["ratio"], 3) for r in reps],
        "frames_per_rep": [(int(r["ours_frames"]), int(r["ffmpeg_frames"])) for r in reps],
        "method": "decoder thread CPU clock vs ffmpeg process CPU clock, same window, "
        f"{args.decode_reps} repetitions, median",
    }


def _children_cpu() -> float:
    import resource

    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return float(ru.ru_utime + ru.ru_stime)


# -- the run ---------------------------------------------------------------------------------


def parse_sizes(text: str) -> list[tuple[int, int]]:
    out = []
    for part in text.split(","):
        w, _, h = part.strip().partition("x")
        out.append((int(w), int(h)))
    return out


def detector_info(detector: Any) -> dict[str, Any]:
    return {
        "name": detector.name,
        "streams": getattr(detector, "streams", 1),
        "threads": getattr(detector, "threads", None),
        "precision": getattr(detector, "precision", None),
    }


def int8_model(args: argparse.Namespace) -> dict[str, Any]:
    """The COCO YOLOv8n INT8 model of the second run: its path and the sha256 of its weights,
    or why the run is skipped (``skipped``)."""
    import hashlib

    if args.int8_model in ("", "none"):
        return {"path": None, "skipped": "--int8-model none"}
    path = Path(args.int8_model)
    bins = sorted(path.glob("*.bin")) if path.is_dir() else [path.with_suffix(".bin")]
    if not path.exists() or not bins or not bins[0].exists():
        return {
            "path": None,
            "skipped": f"{path} not found (the shared COCO YOLOv8n INT8 OpenVINO export; "
            "see docs/models.md to make one): the INT8 run was skipped",
        }
    digest = hashlib.sha256(bins[0].read_bytes()).hexdigest()
    return {"path": str(path), "bin": bins[0].name, "sha256": digest, **INT8_SETTINGS}


def run(args: argparse.Namespace) -> dict[str, Any]:
    from gridwatch.detectors import build_detector
    from gridwatch.detectors.weights import default_weights_path
    from gridwatch_devtools.nats_server import NatsServer
    from gridwatch_devtools.rtsp_server import RtspServer

    started = time.monotonic()
    result: dict[str, Any] = {
        "machine": machine(),
        "load_before": load_snapshot(),
        "settings": {
            "seconds_per_trial": args.seconds,
            "warmup_s": args.warmup,
            "analysis_fps_target": args.fps,
            "busy_share": args.busy_share,
            "sizes": [f"{w}x{h}" for w, h in args.sizes],
            "int8_sizes": [f"{w}x{h}" for w, h in args.int8_sizes],
            "backend": args.backend,
            "model": args.model,
            "confidence": args.confidence,
            "precision": args.precision if args.backend == "openvino" else None,
            "counting": "analysis.counting.enabled: true; one crowding rule per camera "
            "(min_count 5, count_window_s 1 s default)",
            "pass_rule": f"every camera >= {TARGET_SHARE:.0%} of target fps and p99 frame age "
            f"<= {MAX_P99_AGE_MS:.0f} ms; with idle keyframes, a camera decoding keyframes only "
            f"through the whole window instead misses < {1 - TARGET_SHARE:.0%} of the keyframes "
            "that arrived (a keyframe missed: replaced in the camera's slot by the next before "
            "it was analysed; busy cameras are always judged on the fps)",
            "idle_keyframes": {
                "adaptive_decode": {"max_fps": args.fps, "idle_s": args.idle_s},
                "warmup_s": max(args.warmup, args.idle_warmup),
                "default_model_run": args.idle_keyframes,
                "int8_runs": args.int8_keyframes,
            },
        },
    }

    def make(**kw: Any) -> Any:
        if args.backend == "openvino":
            kw["precision"] = args.precision
        else:
            kw.pop("streams", None)
        return build_detector(args.model, args.confidence, backend=args.backend, **kw)

    detector = make()
    result["detector"] = detector_info(detector)
    int8 = int8_model(args)
    result["int8_model"] = int8
    # 1. regions (one inference thread, so CPU per frame is comparable)
    whole, single = make(threads=1, streams=1), make(threads=1, streams=1)
    region = asyncio.run(region_eval(whole, single, args.region_frames, "frame"))
    result["regions"] = region
    if not args.quick:
        result["regions_native"] = asyncio.run(
            region_eval(whole, make(threads=1, streams=1), args.region_frames, "native")
        )
    # counting over tracks: its CPU per frame next to the detector's (TownCentre, dense)
    from bench.counting import counting_cost

    try:
        result["counting_cost"] = [counting_cost(whole, "towncentre", 41, args.counting_reps)]
        if int8.get("path"):
            d1 = build_detector(
                int8["path"], INT8_SETTINGS["confidence"], backend="openvino",
                imgsz=INT8_SETTINGS["imgsz"], streams=1, threads=1,
            )  # fmt: skip
            result["counting_cost"].append(counting_cost(d1, "towncentre", 41, args.counting_reps))
            del d1
    except FileNotFoundError as e:
        result["counting_cost"] = [{"skipped": str(e)}]
    del whole, single
    # the INT8 searches may run on other streams (--int8-sizes: the cameras' sub-streams)
    int8_own_streams = bool(int8.get("path")) and args.int8_sizes != args.sizes
    files = scene_files(list(dict.fromkeys([*args.sizes, *args.int8_sizes])))
    naive8_trials: list[Trial] = []
    with (
        tempfile.TemporaryDirectory() as store,
        NatsServer(store_dir=Path(store)) as nats_server,
        RtspServer(files, loop=True) as rtsp,
    ):
        # 2. ours
        det_cfg = {"backend": args.backend, "model": args.model, "confidence": args.confidence}
        ours = OursRunner(
            args, rtsp, nats_server.url, detector, det_cfg, idle_keyframes=args.idle_keyframes
        )
        ours.start()
        try:
            budget = args.ours_budget_s
            ours_trials = search_capacity(
                ours.trial, args.max_cameras, budget, start=args.ours_start
            )
        finally:
            ours.close()
        del ours, detector
        result["ours_trials"] = [t.row() for t in ours_trials]
        # 2b. ours with the COCO YOLOv8n INT8 (where the shared model is here)
        int8_trials: list[Trial] = []
        int8k_trials: list[Trial] = []
        if int8.get("path"):
            int8_cfg = {"backend": "openvino", "model": int8["path"], **INT8_SETTINGS}
            kw = {k: v for k, v in INT8_SETTINGS.items() if k != "confidence"}
            d8 = build_detector(int8["path"], INT8_SETTINGS["confidence"], backend="openvino", **kw)
            result["int8_detector"] = detector_info(d8)
            if args.int8_keyframes in ("both", "plain"):
                ours8 = OursRunner(args, rtsp, nats_server.url, d8, int8_cfg, sizes=args.int8_sizes)
                ours8.start()
                try:
                    int8_trials = search_capacity(
                        ours8.trial,
                        args.max_cameras_int8,
                        args.int8_budget_s,
                        start=args.int8_start,
                    )
                finally:
                    ours8.close()
                del ours8
                result["ours_int8_trials"] = [t.row() for t in int8_trials]
            # 2c. the same with idle cameras decoding keyframes only at the target fps
            if args.int8_keyframes in ("both", "keyframes"):
                ours8k = OursRunner(
                    args,
                    rtsp,
                    nats_server.url,
                    d8,
                    int8_cfg,
                    idle_keyframes=True,
                    sizes=args.int8_sizes,
                )
                ours8k.start()
                try:
                    int8k_trials = search_capacity(
                        ours8k.trial,
                        args.max_cameras_int8,
                        args.int8_budget_s,
                        start=args.int8_keyframes_start,
                    )
                finally:
                    ours8k.close()
                del ours8k
                result["ours_int8_keyframes_trials"] = [t.row() for t in int8k_trials]
            del d8
        weights = str(default_weights_path())
        # 3. naive ultralytics
        naive_trials = search_capacity(
            lambda k: naive_trial(args, rtsp, weights, k),
            args.max_cameras,
            args.naive_budget_s,
            start=args.naive_start,
        )
        result["naive_trials"] = [t.row() for t in naive_trials]
        # 3b. the naive loop again on the INT8 searches' streams, so that their ratio compares
        # the same streams (only where those differ from --sizes)
        if int8_own_streams:
            naive8_trials = search_capacity(
                lambda k: naive_trial(args, rtsp, weights, k, sizes=args.int8_sizes),
                args.max_cameras,
                args.naive_budget_s,
                start=args.naive_start,
            )
            result["naive_trials_int8_streams"] = [t.row() for t in naive8_trials]
        # 4. naive OpenCV loop
        result["opencv_naive"] = opencv_naive(args, rtsp, weights)
        # 5. decode
        decode_s = len(args.sizes) * args.decode_reps * (args.decode_seconds + 3)
        if time.monotonic() - started < args.deadline_s - decode_s:
            result["decode"] = [decode_check(args, rtsp, size) for size in args.sizes]
    ours_cap = capacity(ours_trials)
    naive_cap = capacity(naive_trials)
    # the naive figure the INT8 ratios divide by: the naive loop on the INT8 runs' streams
    naive8_cap = capacity(naive8_trials) if int8_own_streams else naive_cap
    int8_streams = "+".join(f"{w}x{h}" for w, h in args.int8_sizes)
    mixed_streams = "+".join(f"{w}x{h}" for w, h in args.sizes)
    at_cap = next((t for t in ours_trials if t.cameras == ours_cap and t.passed), None)
    int8_cap = capacity(int8_trials) if int8.get("path") else None
    at_cap8 = next((t for t in int8_trials if t.cameras == int8_cap and t.passed), None)
    int8k_cap = capacity(int8k_trials) if int8k_trials else None
    at_cap8k = next((t for t in int8k_trials if t.cameras == int8k_cap and t.passed), None)
    every = [*ours_trials, *int8_trials, *int8k_trials]
    result.update(
        {
            "counting": bool(every)
            and all(t.extra.get("counting_cameras") == t.cameras for t in every),
            "ours_max_cameras": ours_cap,
            "naive_max_cameras": naive_cap,
            "ratio": round(ours_cap / naive_cap, 2) if naive_cap else None,
            "ours_int8_max_cameras": int8_cap,
            "int8_sizes": [f"{w}x{h}" for w, h in args.int8_sizes],
            "naive_max_cameras_int8_streams": naive8_cap,
            "ratio_int8": round(int8_cap / naive8_cap, 2) if naive8_cap and int8_cap else None,
            "p99_frame_age_ms_int8": round(at_cap8.p99_ms, 1)
            if at_cap8 and at_cap8.ages_ms
            else None,
            "ours_int8_keyframes_max_cameras": int8k_cap,
            "ratio_int8_keyframes": round(int8k_cap / naive8_cap, 2)
            if naive8_cap and int8k_cap
            else None,
            "ratio_basis": {
                "ratio": f"ours_max_cameras / naive_max_cameras (both on {mixed_streams})",
                "ratio_int8": f"ours_int8_max_cameras / naive_max_cameras_int8_streams "
                f"(both on {int8_streams})",
                "ratio_int8_keyframes": "ours_int8_keyframes_max_cameras / "
                f"naive_max_cameras_int8_streams (both on {int8_streams})",
            },
            "p99_frame_age_ms_int8_keyframes": round(at_cap8k.p99_ms, 1)
            if at_cap8k and at_cap8k.ages_ms
            else None,
            "keyframes_only_at_int8_keyframes_max": at_cap8k.extra.get("keyframes_only_ids")
            if at_cap8k
            else None,
            "ratio_note": None
            if naive_cap
            else "the naive loop cannot keep even one camera at 90% of 2 fps here",
            "p99_frame_age_ms": round(at_cap.p99_ms, 1) if at_cap and at_cap.ages_ms else None,
            "region_recall_vs_full": region["recall_vs_full"],
            "region_cpu_vs_full": region["cpu_vs_full"],
            "load_after": load_snapshot(),
            "wall_s": round(time.monotonic() - started, 1),
        }
    )
    return result


def soak(args: argparse.Namespace) -> dict[str, Any]:
    """Ours with ``args.cameras`` cameras for ``args.soak`` minutes: per minute the analysis
    rate, frame age and the process's memory (does anything grow?)."""
    from gridwatch.detectors import build_detector
    from gridwatch_devtools.nats_server import NatsServer
    from gridwatch_devtools.rtsp_server import RtspServer

    kw: dict[str, Any] = {"precision": args.precision} if args.backend == "openvino" else {}
    detector = build_detector("default", 0.25, backend=args.backend, **kw)
    files = scene_files(args.sizes)
    rows = []
    before = load_snapshot()
    with (
        tempfile.TemporaryDirectory() as store,
        NatsServer(store_dir=Path(store)) as nats_server,
        RtspServer(files, loop=True) as rtsp,
    ):
        ours = OursRunner(args, rtsp, nats_server.url, detector)
        ours.start()
        try:
            minutes = max(1, round(args.soak))
            args.seconds = 60.0
            for m in range(minutes):
                args.warmup = args.warmup if m == 0 else 0.0
                t = ours.trial(args.cameras)
                rss = psutil.Process().memory_info().rss / 2**20
                rows.append({"minute": m + 1, **t.row(), "rss_mib": round(rss, 1)})
                log.info("minute %d: %s", m + 1, rows[-1])
        finally:
            ours.close()
    rss = [r["rss_mib"] for r in rows]
    p99 = [r["frame_age_p99_ms"] or 0.0 for r in rows]
    return {
        "machine": machine(),
        "load_before": before,
        "cameras": args.cameras,
        "minutes": rows,
        "rss_growth_first_to_last_pct": round((rss[-1] - rss[0]) / rss[0] * 100, 1),
        "p99_frame_age_first_last_ms": [p99[0], p99[-1]],
        "load_after": load_snapshot(),
    }


def print_table(r: dict[str, Any]) -> None:
    print(f"machine: {r['machine']}")
    print(f"load before: {r['load_before']}  after: {r.get('load_after')}")
    print(f"detector: {r['detector']}  settings: {r['settings']}")
    print(f"int8 model: {r.get('int8_model')}")
    print(f"counting on (every camera's crowding rule counts over tracks): {r.get('counting')}")
    print()
    cols = [
        "cameras", "pass", "busy", "idle", "fps_min", "fps_mean", "frame_age_p50_ms",
        "frame_age_p99_ms", "detector_calls_per_s", "cpu_pct_of_one_core", "drops",
        "counting_cameras", "keyframes_only_cameras", "keyframe_share_min",
    ]  # fmt: skip
    names = (
        "ours_trials",
        "ours_int8_trials",
        "ours_int8_keyframes_trials",
        "naive_trials",
        "naive_trials_int8_streams",
    )
    for name in names:
        if name not in r:
            continue
        print(name.replace("_", " "))
        print("  " + "  ".join(f"{c:>10}" for c in cols))
        for row in r.get(name, []):
            print("  " + "  ".join(f"{row.get(c, '')!s:>10}" for c in cols))
        print()
    for key in ("regions", "regions_native", "opencv_naive"):
        if key in r:
            print(f"{key}: {r[key]}")
    for d in r.get("decode", []):
        print(f"decode: {d}")
    for c in r.get("counting_cost", []):
        print(f"counting cost: {c}")
    print()
    for key in (
        "ours_max_cameras",
        "naive_max_cameras",
        "ratio",
        "p99_frame_age_ms",
        "ours_int8_max_cameras",
        "int8_sizes",
        "naive_max_cameras_int8_streams",
        "ratio_int8",
        "p99_frame_age_ms_int8",
        "ours_int8_keyframes_max_cameras",
        "ratio_int8_keyframes",
        "p99_frame_age_ms_int8_keyframes",
        "counting",
        "region_recall_vs_full",
        "region_cpu_vs_full",
        "wall_s",
    ):
        print(f"{key:<24} {r.get(key)}")


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="bench multicam", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="short trials: finishes in ~10 minutes")
    ap.add_argument("--json", type=Path, help="also write the figures as JSON")
    ap.add_argument("--seconds", type=float, help="measured seconds per trial")
    ap.add_argument("--warmup", type=float, help="seconds before measuring a trial")
    ap.add_argument("--fps", type=float, default=2.0, help="target analysis fps per camera")
    ap.add_argument("--busy-share", type=float, default=0.25, help="share of busy cameras")
    ap.add_argument("--sizes", type=parse_sizes, default=parse_sizes("640x360,1280x720"))
    ap.add_argument(
        "--int8-sizes",
        type=parse_sizes,
        help="the INT8 searches' streams (quick: 640x360, every camera on its sub-stream; "
        "else --sizes); where they differ from --sizes the naive loop is searched again on "
        "them and the INT8 ratios divide by that",
    )
    ap.add_argument("--max-cameras", type=int, default=64, help="most cameras tried (default)")
    ap.add_argument(
        "--max-cameras-int8", type=int, default=128, help="most cameras tried with the INT8 model"
    )
    ap.add_argument("--model", default="default", help="our detector's model: default or a path")
    ap.add_argument("--confidence", type=float, help="ours: 0.25 (default model) else 0.4")
    ap.add_argument(
        "--int8-model",
        default=str(SHARED_INT8),
        help="second run of ours with this COCO YOLOv8n INT8 model (conf 0.4, imgsz 640, "
        "2 streams × 1 thread) where it exists; 'none' skips it",
    )
    ap.add_argument("--int8-start", type=int, help="first K tried with the INT8 model")
    ap.add_argument(
        "--int8-keyframes",
        choices=("both", "plain", "keyframes"),
        default="both",
        help="INT8 capacity searches: plain, with idle cameras on keyframes only, or both",
    )
    ap.add_argument(
        "--int8-keyframes-start", type=int, help="first K of the INT8 idle-keyframes search"
    )
    ap.add_argument(
        "--idle-keyframes",
        action="store_true",
        help="the default-model run also lets idle cameras decode keyframes only",
    )
    ap.add_argument(
        "--idle-s",
        type=float,
        help="analysis.adaptive_decode.idle_s of the idle-keyframes runs (quick: 5, else 10)",
    )
    ap.add_argument(
        "--idle-warmup", type=float, help="warm-up of the idle-keyframes runs (idle_s + 6)"
    )
    ap.add_argument("--ours-start", type=int, help="first K tried for ours (quick: 10)")
    ap.add_argument(
        "--soak", type=float, help="instead: run ours with --cameras K for this many minutes"
    )
    ap.add_argument("--cameras", type=int, default=32, help="cameras of the --soak run")
    ap.add_argument("--naive-start", type=int, help="first K tried for the naive loop")
    ap.add_argument("--backend", default="openvino", help="our detector backend")
    ap.add_argument(
        "--precision", default="f32", help="openvino precision: f32 (default), bf16, auto"
    )
    args = ap.parse_args(argv)
    q = args.quick
    if args.confidence is None:
        args.confidence = 0.25 if args.model == "default" else 0.4
    args.int8_sizes = args.int8_sizes or (parse_sizes("640x360") if q else args.sizes)
    args.seconds = args.seconds or (8.0 if q else 30.0)
    args.warmup = args.warmup or (6.0 if q else 10.0)
    args.region_frames = 60 if q else 159
    # quick: 10, 20, 40, 80, then bisect; from 4 the 90 s budget (about 6 trials) went on 4, 8
    # and 16, and in three runs it ran out after 64 ✗ and 48 ✗, before 40 was tried
    args.ours_start = args.ours_start or (10 if q else 1)
    args.naive_start = args.naive_start or (2 if q else 1)
    args.int8_start = args.int8_start or (20 if q else 10)
    args.int8_keyframes_start = args.int8_keyframes_start or (40 if q else 10)
    args.idle_s = args.idle_s or (5.0 if q else 10.0)
    args.idle_warmup = args.idle_warmup or args.idle_s + 6.0
    args.ours_budget_s = 90 if q else 1200
    args.int8_budget_s = 120 if q else 1200
    args.counting_reps = 10 if q else 30
    args.naive_budget_s = 95 if q else 900
    args.decode_seconds = 3.0 if q else 10.0
    args.decode_reps = 3 if q else 5
    args.deadline_s = (
        (520 if args.int8_sizes != args.sizes else 420) if q else 7200
    )  # the decode check starts only if it ends by then
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for noisy in ("gridwatch", "ultralytics"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if args.soak:
        result = soak(args)
        print(json.dumps(result, indent=1))
    else:
        result = run(args)
        print_table(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str))
    return 0

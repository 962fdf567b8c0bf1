"""Prometheus metrics of a worker, served at ``http://<host>:<port>/metrics``.

Two kinds of figures, chosen so that a frame costs (almost) nothing to count:

* **counters and gauges read at scrape time** from the stats the readers, pipelines, analysers
  and the inference service keep anyway (plain integers): frames decoded, dropped and
  analysed, detector runs by mode (gated, regions, full, dropped), reconnects, keyframe-only
  state, inference batches and their drops;
* **histograms observed per detector run** (a couple of microseconds): frame age when the
  detector started, and detector wall time, per camera.

Every metric is labelled ``camera`` where it is per camera. Each worker has its own registry,
so tests and benchmarks can run several workers in one process.

The collector is fed a :class:`WorkerFigures` snapshot by a callable the worker gives it
(:meth:`WorkerMetrics.bind`): it never reads the worker's internals, and this module does not
import the worker.

>>> m = WorkerMetrics()
>>> m.bind(lambda: WorkerFigures(cameras=[CameraFigures("gate", frames_decoded=7)]))
>>> [line for line in m.render().decode().splitlines() if line.endswith(" 7.0")]
['gridwatch_frames_decoded_total{camera="gate"} 7.0']
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from gridwatch.detectors.batching import BatchingStats
from gridwatch.metrics_endpoint import MetricsEndpoint

log = logging.getLogger(__name__)

AGE_BUCKETS = (0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0)
DETECTOR_BUCKETS = (0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5)


@dataclass(frozen=True, slots=True)
class CameraFigures:
    """One camera's counters at scrape time (plain numbers the stages keep anyway)."""

    camera_id: str
    frames_decoded: int = 0
    frames_dropped: int = 0
    reconnects: int = 0
    online: bool = False
    keyframes_only: bool = False
    frames_analysed: int | None = None
    detector_runs: Mapping[str, int] | None = None
    """Analyser modes (gated, regions, full, dropped) → count; None without an analyser."""


@dataclass(frozen=True, slots=True)
class WorkerFigures:
    """What a worker exports at one scrape."""

    cameras: list[CameraFigures] = field(default_factory=list)
    inference: BatchingStats | None = None
    inference_pending: int = 0


class _WorkerCollector(Collector):
    def __init__(self, figures: Callable[[], WorkerFigures]) -> None:
        self.figures = figures

    def collect(self) -> Iterator[Any]:
        w = self.figures()
        decoded = CounterMetricFamily(
            "gridwatch_frames_decoded", "Frames decoded from the camera.", labels=["camera"]
        )
        dropped = CounterMetricFamily(
            "gridwatch_frames_dropped",
            "Decoded frames replaced in the one-slot buffer before analysis took them.",
            labels=["camera"],
        )
        analysed = CounterMetricFamily(
            "gridwatch_frames_analysed",
            "Frames the analysis loop took (gated or detected).",
            labels=["camera"],
        )
        runs = CounterMetricFamily(
            "gridwatch_detector_runs",
            "What the analyser did per frame: gated (no detector), regions, full, dropped.",
            labels=["camera", "mode"],
        )
        reconnects = CounterMetricFamily(
            "gridwatch_camera_reconnects", "Times the stream was reopened.", labels=["camera"]
        )
        online = GaugeMetricFamily(
            "gridwatch_camera_online", "1 while frames are arriving.", labels=["camera"]
        )
        keyframes = GaugeMetricFamily(
            "gridwatch_camera_keyframes_only",
            "1 while the camera decodes keyframes only (idle).",
            labels=["camera"],
        )
        for cam in w.cameras:
            cam_id = cam.camera_id
            decoded.add_metric([cam_id], cam.frames_decoded)
            dropped.add_metric([cam_id], cam.frames_dropped)
            reconnects.add_metric([cam_id], cam.reconnects)
            online.add_metric([cam_id], 1.0 if cam.online else 0.0)
            keyframes.add_metric([cam_id], 1.0 if cam.keyframes_only else 0.0)
            if cam.frames_analysed is not None:
                analysed.add_metric([cam_id], cam.frames_analysed)
            for mode, n in (cam.detector_runs or {}).items():
                runs.add_metric([cam_id, mode], n)
        yield from (decoded, dropped, analysed, runs, reconnects, online, keyframes)
        st = w.inference
        if st is None:
            return
        yield CounterMetricFamily(
            "gridwatch_inference_batches", "Detector calls made by the service.", value=st.batches
        )
        yield CounterMetricFamily(
            "gridwatch_inference_images", "Images run by the service.", value=st.images
        )
        yield CounterMetricFamily(
            "gridwatch_inference_multi_camera_batches",
            "Detector calls that carried images of more than one camera.",
            value=st.multi_camera_batches,
        )
        drops = CounterMetricFamily(
            "gridwatch_inference_dropped",
            "Requests not run: replaced by a newer frame, or refused (service full).",
            labels=["reason"],
        )
        drops.add_metric(["replaced"], st.replaced)
        drops.add_metric(["refused"], st.refused)
        drops.add_metric(["failed"], st.failed)
        yield drops
        yield CounterMetricFamily(
            "gridwatch_inference_busy_seconds",
            "Seconds spent in detector calls, summed over inference threads.",
            value=st.busy_s,
        )
        yield GaugeMetricFamily(
            "gridwatch_inference_pending", "Requests waiting now.", value=w.inference_pending
        )


class WorkerMetrics(MetricsEndpoint):
    """The metrics of one worker: its registry, histograms, and the HTTP endpoint."""

    def __init__(self) -> None:
        super().__init__(CollectorRegistry(auto_describe=True), "metrics")
        self.frame_age = Histogram(
            "gridwatch_frame_age_seconds",
            "Age of the frame when the detector started on it (includes waiting for the "
            "inference service behind other cameras).",
            ["camera"],
            buckets=AGE_BUCKETS,
            registry=self.registry,
        )
        self.detector_time = Histogram(
            "gridwatch_detector_seconds",
            "Wall time of the detector call that carried the frame (a batch may carry several).",
            ["camera", "mode"],
            buckets=DETECTOR_BUCKETS,
            registry=self.registry,
        )
        self._collector: _WorkerCollector | None = None

    def bind(self, figures: Callable[[], WorkerFigures]) -> None:
        """Export what ``figures()`` returns, called at each scrape."""
        if self._collector is not None:
            self.registry.unregister(self._collector)
        self._collector = _WorkerCollector(figures)
        self.registry.register(self._collector)

    def observe(self, camera_id: str, mode: str, frame_age_ms: float, detector_ms: float) -> None:
        self.frame_age.labels(camera_id).observe(frame_age_ms / 1000.0)
        self.detector_time.labels(camera_id, mode).observe(detector_ms / 1000.0)

    def forget_camera(self, camera_id: str) -> None:
        """Drop a stopped camera's histogram series."""
        for hist, extra in ((self.frame_age, ()), (self.detector_time, ("regions", "full"))):
            labels = [(camera_id,)] if not extra else [(camera_id, m) for m in extra]
            for lv in labels:
                with contextlib.suppress(KeyError):
                    hist.remove(*lv)

    def render(self) -> bytes:
        """The exposition text, as ``/metrics`` serves it."""
        return generate_latest(self.registry)

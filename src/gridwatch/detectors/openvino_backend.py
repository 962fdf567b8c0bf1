"""Detector backend: the ultralytics model exported to OpenVINO IR, run by OpenVINO's CPU plugin.

The fastest backend measured on the reference box (AMD EPYC, 2 vCPUs with AVX-512 and
AVX512-BF16; see ``docs/performance.md``): YOLOv8s on a 640×480 frame costs about 50 ms of CPU
with one thread, against about 100 ms for ONNX Runtime (FP32) and about 140 ms for ultralytics'
own ``predict`` with one thread — in bf16, which the CPU plugin picks by itself where the CPU
has it (``precision="auto"`` or ``"bf16"``). The default is ``"f32"`` (about 97 ms there, still
ahead of ONNX Runtime's ~98 and torch's ~140): it finds exactly what the ``.pt`` finds, and the
rule evaluation suite was validated on that; bf16 found 263 of the 264 boxes FP32 found on 20
vtest frames (IoU ≥ 0.5) but lost one half-hidden walker of the line-crossing scenarios.

Concurrency: one compiled model with ``streams`` CPU streams of ``threads`` threads each, and
one infer request per concurrent caller (a small pool), so ``streams`` inference threads run
in parallel without fighting over cores. On a 2-core box, 2 streams × 1 thread gives more
frames per CPU-second than 1 stream × 2 threads (bf16 scales poorly across 2 threads).

The compiled model keeps the export's dynamic height and width: one model serves whole frames
and region mosaics of any size (measured 5–10% slower than a model compiled per shape, with
no compile pauses). The CPU plugin keeps a prepared plan per input shape it has seen, about
4.7 MB each, up to 5000 by default: with mosaics of many shapes a worker grew past 4 GB. The
cache is bounded (``shape_cache``, 64 plans) and mosaics come in a few widths.

``model`` may also be any COCO-style YOLO model by path: an OpenVINO IR directory or ``.xml``
(FP32 or INT8, static or dynamic) or an ``.onnx``; a static one is cut at its Detect head and
decoded in numpy (:mod:`gridwatch.detectors.ir_models`).
"""

from __future__ import annotations

import logging
import os
import queue
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import Field

from gridwatch.detectors.base import DetectorError
from gridwatch.detectors.ir_models import dfl_decode, model_source, prepare_openvino_model
from gridwatch.detectors.settings import ExportedDetectorSettings, backend_field
from gridwatch.detectors.yolo_io import ExportedDetectorBase

log = logging.getLogger(__name__)

Precision = Literal["f32", "bf16", "f16", "auto"]


class OpenVinoDetectorConfig(ExportedDetectorSettings):
    """``detector: {backend: openvino}`` (the default backend): the OpenVINO export (or an IR
    or ``.onnx`` by path) on OpenVINO's CPU plugin; the only backend with ``precision`` and
    ``streams``.

    >>> c = OpenVinoDetectorConfig()
    >>> c.backend, c.precision, c.streams, c.person_classes
    ('openvino', 'f32', None, None)
    """

    backend: Literal["openvino"] = backend_field("openvino")
    precision: Precision = Field(
        default="f32",
        title="Precision",
        description="openvino: inference precision. bf16 (or auto on CPUs with AVX512-BF16/AMX) "
        "halves the CPU per frame; f32 matches the .pt's boxes exactly.",
    )
    streams: int | None = Field(
        default=None,
        ge=1,
        title="Streams",
        description="openvino: inferences run in parallel (one per core is the most frames per "
        "CPU-second); default 1 per core.",
    )

    def build(self, **runtime: Any) -> OpenVinoDetector:
        return OpenVinoDetector(
            self.model,
            confidence=self.confidence,
            iou=self.iou,
            imgsz=self.imgsz,
            threads=self.threads,
            streams=self.streams,
            precision=self.precision,
            person_classes=self.person_classes,
            **runtime,
        )


class OpenVinoDetector(ExportedDetectorBase):
    """A :class:`~gridwatch.detectors.base.Detector` running the OpenVINO export on the CPU."""

    def __init__(
        self,
        model: str = "default",
        *,
        confidence: float = 0.25,
        iou: float = 0.5,
        imgsz: int = 640,
        threads: int | None = None,
        streams: int | None = None,
        precision: Precision = "f32",
        classes: Sequence[int] | None = None,
        agnostic_nms: bool | None = None,
        warmup: bool = True,
        cache_dir: Path | None = None,
        device: str = "CPU",
        shape_cache: int = 64,
        person_classes: Sequence[str] | None = None,
    ) -> None:
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        if streams is not None and streams < 1:
            raise ValueError(f"streams must be >= 1, got {streams}")
        t0 = time.perf_counter()
        exported = model_source(model, "openvino", cache_dir=cache_dir)
        super().__init__(
            name=f"openvino:{exported.label}:{precision}",
            class_names=exported.class_names,
            confidence=confidence,
            iou=iou,
            imgsz=imgsz,
            agnostic_nms=agnostic_nms,
            classes=classes,
            person_classes=person_classes,
        )
        try:
            import openvino as ov
        except ImportError as e:  # pragma: no cover - a declared dependency
            raise DetectorError(f"the openvino backend needs the openvino package: {e}") from e
        cores = os.cpu_count() or 1
        if streams is None:  # one stream per core unless threads says otherwise
            streams = max(1, cores // threads) if threads is not None else cores
        self.streams = streams
        self.threads = threads or max(1, cores // self.streams)
        self.weights_sha256 = exported.sha256
        self.model_path = exported.path
        config: dict[str, Any] = {
            # plans kept for input shapes seen: ~4.7 MB each; the default (5000) grew a worker
            # by GBs as region mosaics came in many shapes (measured, docs/performance.md)
            "CPU_RUNTIME_CACHE_CAPACITY": str(shape_cache),
            "NUM_STREAMS": self.streams,
            "INFERENCE_NUM_THREADS": self.streams * self.threads,
            "PERFORMANCE_HINT": "LATENCY" if self.streams == 1 else "THROUGHPUT",
        }
        if precision != "auto":
            config["INFERENCE_PRECISION_HINT"] = precision
        try:
            core = ov.Core()
            prepared = prepare_openvino_model(
                core.read_model(str(exported.path)), exported.class_names
            )
            self._compiled: Any = core.compile_model(prepared.model, device, config)
        except DetectorError:
            raise
        except Exception as e:
            raise DetectorError(
                f"OpenVINO could not load {exported.path} on {device}: {type(e).__name__}: {e}"
            ) from e
        self.cut_head = prepared.cut
        """True for a static export run through its cut Detect head (decoded in numpy)."""
        self._n_outputs = len(self._compiled.outputs)
        hint: Any = self._compiled.get_property("INFERENCE_PRECISION_HINT")
        self.precision = str(getattr(hint, "get_type_name", lambda: hint)())
        self._requests: queue.SimpleQueue[Any] = queue.SimpleQueue()
        for _ in range(self.streams):
            self._requests.put(self._compiled.create_infer_request())
        self.warmup_ms = 0.0
        if warmup:
            t1 = time.perf_counter()
            self.detect(np.zeros((imgsz * 3 // 4, imgsz, 3), np.uint8))
            self.warmup_ms = (time.perf_counter() - t1) * 1000.0
        self.load_ms = (time.perf_counter() - t0) * 1000.0
        log.info(
            "loaded %s (%s, sha256 %s%s) in %.0f ms: %d stream(s) × %d thread(s), precision %s",
            self.name,
            exported.path,
            exported.sha256,
            ", exported now" if exported.made else "",
            self.load_ms,
            self.streams,
            self.threads,
            self.precision,
        )

    def _infer(self, batch: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """One model call per image of the batch.

        Why: the CPU plugin pays for every change of input shape between calls, and most of
        all for a change of batch size, with a dynamic-shape model. A worker's calls change
        shape nearly every time (region mosaics of a dozen canvas sizes from many cameras, whole
        frames), so batches of 1, 2, 4 and 8 (the split used before) left the OpenVINO threads
        at 85% of a core for 40 images/s at 80 INT8 cameras, against 46% for 42 images/s with
        one image a call (process 155% → 117%; ``docs/performance.md``). Stacking only pays
        where every call has the same shape (15% less CPU an image at batch 8), which a worker's
        mix never has.
        """
        if len(batch) == 1:
            return self._infer_one(batch)
        return np.concatenate([self._infer_one(batch[i : i + 1]) for i in range(len(batch))])

    def _infer_one(self, batch: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        try:
            request = self._requests.get_nowait()
        except queue.Empty:  # more concurrent callers than streams: one more request
            request = self._compiled.create_infer_request()
        try:
            request.infer({0: batch})
            if self.cut_head:  # decoding reads the request's tensors before it is reused
                maps = [request.get_output_tensor(i).data for i in range(self._n_outputs)]
                return dfl_decode(maps, (batch.shape[2], batch.shape[3]), min_score=self.confidence)
            # copy: the tensor's memory belongs to the request, reused by its next call
            return np.array(request.get_output_tensor(0).data, dtype=np.float32)
        finally:
            self._requests.put(request)

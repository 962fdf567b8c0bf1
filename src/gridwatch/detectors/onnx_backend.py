"""Detector backend: the ultralytics model exported to ONNX, run by ONNX Runtime on the CPU.

Portable (no OpenVINO needed) and FP32; on the reference box it costs about twice the CPU of
the OpenVINO backend (which runs bf16 there), see ``docs/performance.md``. The session is
built with explicit thread counts (``threads`` intra-op, 1 inter-op) and full graph
optimisation; ``InferenceSession.run`` is thread-safe, so several inference threads may share
one detector. The export has dynamic height and width (see :mod:`gridwatch.detectors.yolo_io`);
a user's static ``.onnx`` is cut at its Detect head to run at any size
(:mod:`gridwatch.detectors.ir_models`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from gridwatch.detectors.base import DetectorError
from gridwatch.detectors.ir_models import dfl_decode, model_source, prepare_onnx_model
from gridwatch.detectors.settings import ExportedDetectorSettings, backend_field
from gridwatch.detectors.yolo_io import ExportedDetectorBase

log = logging.getLogger(__name__)


class OnnxDetectorConfig(ExportedDetectorSettings):
    """``detector: {backend: onnx}``: the ONNX export (or a ``.onnx`` by path) in ONNX Runtime."""

    backend: Literal["onnx"] = backend_field("onnx")

    def build(self, **runtime: Any) -> OnnxDetector:
        return OnnxDetector(
            self.model,
            confidence=self.confidence,
            iou=self.iou,
            imgsz=self.imgsz,
            threads=self.threads,
            person_classes=self.person_classes,
            **runtime,
        )


class OnnxDetector(ExportedDetectorBase):
    """A :class:`~gridwatch.detectors.base.Detector` running the ONNX export in ONNX Runtime."""

    def __init__(
        self,
        model: str = "default",
        *,
        confidence: float = 0.25,
        iou: float = 0.5,
        imgsz: int = 640,
        threads: int | None = None,
        classes: Sequence[int] | None = None,
        agnostic_nms: bool | None = None,
        warmup: bool = True,
        cache_dir: Path | None = None,
        person_classes: Sequence[str] | None = None,
    ) -> None:
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        t0 = time.perf_counter()
        exported = model_source(model, "onnx", cache_dir=cache_dir)
        super().__init__(
            name=f"onnx:{exported.label}",
            class_names=exported.class_names,
            confidence=confidence,
            iou=iou,
            imgsz=imgsz,
            agnostic_nms=agnostic_nms,
            classes=classes,
            person_classes=person_classes,
        )
        try:
            import onnxruntime as ort
        except ImportError as e:  # pragma: no cover - a declared dependency
            raise DetectorError(f"the onnx backend needs onnxruntime: {e}") from e
        self.threads = threads or os.cpu_count() or 1
        self.weights_sha256 = exported.sha256
        self.model_path = exported.path
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        try:
            prepared = prepare_onnx_model(exported.path, exported.class_names)
            self._session: Any = ort.InferenceSession(
                prepared.model, options, providers=["CPUExecutionProvider"]
            )
        except DetectorError:
            raise
        except Exception as e:
            raise DetectorError(
                f"ONNX Runtime could not load {exported.path}: {type(e).__name__}: {e}"
            ) from e
        self._input = self._session.get_inputs()[0].name
        self.cut_head = prepared.cut
        """True for a static export run through its cut Detect head (decoded in numpy)."""
        self.warmup_ms = 0.0
        if warmup:
            t1 = time.perf_counter()
            self.detect(np.zeros((imgsz * 3 // 4, imgsz, 3), np.uint8))
            self.warmup_ms = (time.perf_counter() - t1) * 1000.0
        self.load_ms = (time.perf_counter() - t0) * 1000.0
        log.info(
            "loaded %s (%s, sha256 %s%s) in %.0f ms: %d thread(s)",
            self.name,
            exported.path,
            exported.sha256,
            ", exported now" if exported.made else "",
            self.load_ms,
            self.threads,
        )

    def _infer(self, batch: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        outs = self._session.run(None, {self._input: batch})
        if self.cut_head:
            hw = (batch.shape[2], batch.shape[3])
            return dfl_decode(outs, hw, min_score=self.confidence)
        return np.asarray(outs[0], dtype=np.float32)

"""Detectors: the :class:`Detector` protocol and the factory the worker builds them with.

Importing this package is cheap: torch and ultralytics are imported only when a backend is
built, so the CLI and the rules tests do not pay seconds of import time.
"""

from __future__ import annotations

from typing import Any

from gridwatch.detectors.base import Detector, DetectorError, ImageBGR
from gridwatch.detectors.weights import (
    DEFAULT_MODEL,
    ResolvedWeights,
    default_weights_path,
    resolve_weights,
    weights_sha256,
)

BACKENDS = ("ultralytics", "darknet", "openvino", "onnx")
"""Backend names :func:`build_detector` knows. ``openvino`` and ``onnx`` run an export of the
ultralytics weights, made offline on first use and cached by their sha256 (see
:mod:`gridwatch.detectors.export`); ``openvino`` is the fastest measured on CPU."""

__all__ = [
    "BACKENDS",
    "DEFAULT_MODEL",
    "Detector",
    "DetectorError",
    "ImageBGR",
    "ResolvedWeights",
    "build_detector",
    "default_weights_path",
    "resolve_weights",
    "weights_sha256",
]


def build_detector(
    model: str = DEFAULT_MODEL,
    confidence: float = 0.25,
    *,
    backend: str = "ultralytics",
    **kw: Any,
) -> Detector:
    """Build and warm up a detector.

    ``backend`` picks the implementation by name; ``kw`` goes to its constructor (for
    ``ultralytics``: ``iou``, ``imgsz``, ``device``, ``threads``, ``classes``, ``agnostic_nms``,
    ``warmup``, see :class:`~gridwatch.detectors.ultralytics_backend.UltralyticsDetector`).
    Raises :class:`DetectorError` for an unknown backend or model and ``ValueError``/``TypeError``
    for bad parameters.
    """
    name = backend.strip().lower()
    if name == "ultralytics":
        from gridwatch.detectors.ultralytics_backend import UltralyticsDetector

        return UltralyticsDetector(model, confidence=confidence, **kw)
    if name == "darknet":  # COCO YOLOv3-tiny via cv2.dnn: vehicles for vehicle_stop
        from gridwatch.detectors.darknet_backend import DarknetDetector

        return DarknetDetector(model, confidence=confidence, **kw)
    if name == "openvino":
        from gridwatch.detectors.openvino_backend import OpenVinoDetector

        return OpenVinoDetector(model, confidence=confidence, **kw)
    if name == "onnx":
        from gridwatch.detectors.onnx_backend import OnnxDetector

        return OnnxDetector(model, confidence=confidence, **kw)
    raise DetectorError(
        f"unknown detector backend {backend!r}; known backends: {', '.join(BACKENDS)}"
    )

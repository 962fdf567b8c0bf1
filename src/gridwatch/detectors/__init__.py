"""Detectors: the :class:`Detector` protocol and the factory the worker builds them with.

Importing this package is cheap: torch and ultralytics are imported only when a backend is
built, so the CLI and the rules tests do not pay seconds of import time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gridwatch.detectors.base import Detector, DetectorError, ImageBGR
from gridwatch.detectors.weights import (
    DEFAULT_MODEL,
    ResolvedWeights,
    default_weights_path,
    resolve_weights,
    weights_sha256,
)

if TYPE_CHECKING:
    from gridwatch.config import DetectorConfig

BACKENDS = ("ultralytics", "darknet", "openvino", "onnx")
"""Backend names :func:`build_detector` knows. ``openvino`` and ``onnx`` run an export of the
ultralytics weights, made offline on first use and cached by their sha256 (see
:mod:`gridwatch.detectors.export`); ``openvino`` is the fastest measured on CPU. Both also take
any COCO-style YOLO model by path (OpenVINO IR directory or ``.xml``, ``.onnx``; static exports
are cut at the head, see :mod:`gridwatch.detectors.ir_models` and ``docs/models.md``)."""

__all__ = [
    "BACKENDS",
    "DEFAULT_MODEL",
    "Detector",
    "DetectorError",
    "ImageBGR",
    "ResolvedWeights",
    "build_detector",
    "default_weights_path",
    "detector_kwargs",
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
    if name in ("ultralytics", "darknet"):
        # their defaults are what these backends do anyway; anything else is refused loudly
        person_classes = kw.pop("person_classes", None)
        if person_classes is not None:
            raise DetectorError(
                f"detector.person_classes needs backend openvino or onnx, not {backend!r}"
            )
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


def detector_kwargs(cfg: DetectorConfig) -> dict[str, Any]:
    """``build_detector`` keyword arguments for a :class:`~gridwatch.config.DetectorConfig`
    (everything but ``model`` and ``confidence``), so callers pass every key the backend
    takes instead of listing them (and forgetting new ones).

    >>> from gridwatch.config import DetectorConfig
    >>> sorted(detector_kwargs(DetectorConfig()))
    ['backend', 'imgsz', 'iou', 'precision', 'streams', 'threads']
    >>> detector_kwargs(DetectorConfig(backend="onnx", person_classes=["person"]))["person_classes"]
    ['person']
    """
    kw: dict[str, Any] = {
        "backend": cfg.backend,
        "iou": cfg.iou,
        "imgsz": cfg.imgsz,
        "threads": cfg.threads,
    }
    if cfg.backend == "openvino":
        kw.update(streams=cfg.streams, precision=cfg.precision)
    if cfg.person_classes is not None:
        kw["person_classes"] = list(cfg.person_classes)
    return kw

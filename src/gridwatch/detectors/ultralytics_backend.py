"""Detector backend that runs an ultralytics model (``.pt``, or anything ``YOLO()`` loads).

Measured on the 2-core reference box (see ``FACTS.md``): the default YOLOv8s at ``imgsz=640``
costs 370–450 ms per frame and finds 93% of the people in hand-counted vtest frames. Three
ultralytics habits are worked around here:

* ``import ultralytics`` sets ``OMP_NUM_THREADS=1`` and its predictor calls
  ``torch.set_num_threads(cpu_count - 1)``, i.e. one thread on two cores. We set the thread
  count explicitly after the predictor exists and re-assert it before each call (it is
  process-global, so anything else in the process may change it).
* ``model.track(persist=True)`` keeps tracker state on the model, so one model cannot serve many
  cameras; we only ever call ``predict`` and track per camera in :mod:`gridwatch.tracking`.
* The first ``predict`` builds the predictor and fuses layers (seconds); we warm up at load so
  the first real frame is not penalised.

One instance is meant to be used by one inference thread at a time; a lock makes accidental
concurrent use safe (serialised) rather than corrupting the predictor's state.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from gridwatch.detectors.base import DetectorError, DetectorInfo, ImageBGR, check_image
from gridwatch.detectors.settings import DetectorSettings, backend_field
from gridwatch.detectors.weights import resolve_weights, weights_sha256
from gridwatch.model import Detections

logger = logging.getLogger(__name__)

FALL_MODEL_CLASSES = frozenset({"normal", "fall"})
"""Lower-cased class names of the default fall model: every one of them is a person."""


def person_ids_for(class_names: Mapping[int, str]) -> frozenset[int]:
    """Which classes count as a person for a model with these class names.

    The fall model's ``Normal`` and ``Fall`` are both people (a person lying down is still a
    person to count); for COCO-like models it is the class named ``person``.

    >>> sorted(person_ids_for({0: "Normal", 1: "Fall"}))
    [0, 1]
    >>> sorted(person_ids_for({0: "person", 1: "bicycle", 2: "car"}))
    [0]
    """
    lowered = {i: n.strip().lower() for i, n in class_names.items()}
    if lowered and set(lowered.values()) <= FALL_MODEL_CLASSES:
        return frozenset(lowered)
    return frozenset(i for i, n in lowered.items() if n == "person")


class UltralyticsDetectorConfig(DetectorSettings):
    """``detector: {backend: ultralytics}``: the ``.pt`` run by ultralytics' own ``predict``.

    >>> UltralyticsDetectorConfig(imgsz=320).model_dump()["backend"]
    'ultralytics'
    """

    backend: Literal["ultralytics"] = backend_field("ultralytics")

    def build(self, **runtime: Any) -> UltralyticsDetector:
        return UltralyticsDetector(
            self.model,
            confidence=self.confidence,
            iou=self.iou,
            imgsz=self.imgsz,
            threads=self.threads,
            **runtime,
        )


class UltralyticsDetector(DetectorInfo):
    """A :class:`~gridwatch.detectors.base.Detector` backed by ``ultralytics.YOLO.predict``.

    ``agnostic_nms`` defaults to ``True`` when every class is a person class (the fall model):
    there, class-aware NMS keeps a ``Normal`` and a ``Fall`` box on the same person (seen on vtest
    frame 400), which would double-count. For multi-class models it defaults to ``False`` so a
    person on a bicycle keeps both boxes.
    """

    def __init__(
        self,
        model: str = "default",
        *,
        confidence: float = 0.25,
        iou: float = 0.5,
        imgsz: int = 640,
        device: str = "cpu",
        threads: int | None = None,
        classes: Collection[int] | None = None,
        agnostic_nms: bool | None = None,
        warmup: bool = True,
    ) -> None:
        if not 0.0 < confidence <= 1.0:
            raise ValueError(f"confidence must be in (0, 1], got {confidence}")
        if not 0.0 < iou <= 1.0:
            raise ValueError(f"iou must be in (0, 1], got {iou}")
        if imgsz <= 0 or imgsz % 32:
            raise ValueError(f"imgsz must be a positive multiple of 32, got {imgsz}")
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")

        self.confidence = float(confidence)
        self.iou = float(iou)
        self.imgsz = int(imgsz)
        self.device = device
        self.threads: int = threads or os.cpu_count() or 1
        self._lock = threading.Lock()
        self._last_ms = 0.0
        self.calls = 0
        self.total_ms = 0.0

        t0 = time.perf_counter()
        resolved = resolve_weights(model)
        os.environ.setdefault("YOLO_VERBOSE", "False")  # keep ultralytics' banners out of our logs
        try:
            import torch
            from ultralytics.models.yolo.model import YOLO
        except ImportError as e:  # pragma: no cover - hard dependencies
            raise DetectorError(f"the ultralytics backend needs torch and ultralytics: {e}") from e
        self._torch: Any = torch
        try:
            self._model: Any = YOLO(resolved.load_arg)
        except Exception as e:  # ultralytics raises ConnectionError, FileNotFoundError, ...
            raise DetectorError(
                f"could not load model {model!r} ({resolved.source}: {resolved.load_arg}): "
                f"{type(e).__name__}: {e}. Use model: default (bundled YOLOv8s person/fall model) "
                "or the path of a local .pt/.onnx file"
            ) from e

        names: Mapping[int, str] = getattr(self._model, "names", None) or {}
        self._class_names: dict[int, str] = {int(k): str(v) for k, v in names.items()}
        self._person_class_ids = person_ids_for(self._class_names)
        if not self._person_class_ids:
            logger.warning("model %r has no person class (classes: %s)", model, self._class_names)
        self._classes: list[int] | None = None
        if classes is not None:
            unknown = sorted(set(classes) - set(self._class_names))
            if unknown:
                raise DetectorError(
                    f"classes {unknown} are not in model {model!r}; it has {self._class_names}"
                )
            self._classes = sorted(set(classes))
        self.agnostic_nms = (
            agnostic_nms
            if agnostic_nms is not None
            else bool(self._class_names) and self._person_class_ids == set(self._class_names)
        )

        ckpt = getattr(self._model, "ckpt_path", None) or resolved.path
        self.weights_path: Path | None = Path(ckpt) if ckpt else None
        self.weights_sha256: str | None = (
            weights_sha256(self.weights_path)
            if self.weights_path is not None and self.weights_path.is_file()
            else None
        )
        stem = self.weights_path.stem if self.weights_path is not None else Path(model).stem
        self._name = f"ultralytics:{stem}"

        self.warmup_ms = 0.0
        if warmup:
            t1 = time.perf_counter()
            self._predict([np.zeros((self.imgsz, self.imgsz, 3), dtype=np.uint8)])
            self.warmup_ms = (time.perf_counter() - t1) * 1000.0
        self._ensure_threads()
        self.load_ms = (time.perf_counter() - t0) * 1000.0
        logger.info(
            "loaded %s from %s (%s, sha256 %s) in %.0f ms (warm-up %.0f ms); imgsz=%d conf=%.2f "
            "iou=%.2f device=%s threads=%d classes=%s person=%s agnostic_nms=%s",
            self._name,
            self.weights_path,
            resolved.source,
            self.weights_sha256,
            self.load_ms,
            self.warmup_ms,
            self.imgsz,
            self.confidence,
            self.iou,
            self.device,
            self.threads,
            self._class_names,
            sorted(self._person_class_ids),
            self.agnostic_nms,
        )

    # -- the Detector protocol -----------------------------------------------------------------

    def detect_batch(self, images: Sequence[ImageBGR]) -> list[Detections]:
        """Detect in several frames with one ``predict`` call.

        ultralytics stacks same-shaped frames into one tensor (letterboxed to a common shape when
        they differ). On CPU this saves little per frame; it matters for GPU/OpenVINO backends.
        """
        checked = [check_image(im) for im in images]
        if not checked:
            return []
        t0 = time.perf_counter()
        with self._lock:
            self._ensure_threads()
            results = self._predict(checked)
            out = [self._to_detections(r, im) for r, im in zip(results, checked, strict=True)]
        ms = (time.perf_counter() - t0) * 1000.0
        self._last_ms = ms
        self.calls += len(checked)
        self.total_ms += ms
        return out

    # -- internals -----------------------------------------------------------------------------

    def _ensure_threads(self) -> None:
        """Put torch back to our thread count if the predictor (or anyone) changed it."""
        if self.device == "cpu" and self._torch.get_num_threads() != self.threads:
            self._torch.set_num_threads(self.threads)

    def _predict(self, images: list[ImageBGR]) -> list[Any]:
        results: list[Any] = self._model.predict(
            images if len(images) > 1 else images[0],
            imgsz=self.imgsz,
            conf=self.confidence,
            iou=self.iou,
            classes=self._classes,
            agnostic_nms=self.agnostic_nms,
            device=self.device,
            verbose=False,
        )
        return results

    def _to_detections(self, result: Any, image: ImageBGR) -> Detections:
        h, w = image.shape[:2]
        boxes = result.boxes
        if boxes is None or len(boxes) == 0:
            return Detections.empty((w, h), self._class_names)
        xyxy = np.array(boxes.xyxy.cpu().numpy(), dtype=np.float32)  # own copy, not a tensor view
        # ultralytics already clips; keep the contract even if a future version stops doing so
        xyxy[:, [0, 2]] = np.clip(xyxy[:, [0, 2]], 0.0, float(w))
        xyxy[:, [1, 3]] = np.clip(xyxy[:, [1, 3]], 0.0, float(h))
        return Detections.from_arrays(
            xyxy=xyxy,
            confidence=boxes.conf.cpu().numpy(),
            class_id=boxes.cls.cpu().numpy().astype(np.int64),
            image_size=(w, h),
            class_names=self._class_names,
        )

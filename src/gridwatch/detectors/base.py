"""What every detector backend promises to the rest of gridwatch.

The worker only sees this protocol: a BGR picture in, :class:`~gridwatch.model.Detections` in
pixel coordinates out. Backends (ultralytics ``.pt`` today, exported ONNX/OpenVINO later) differ
in speed and in how they load, never in what they return, so the tracker and the rules do not
care which one ran.

A detector instance is **not** meant to be shared by threads running at the same time: the worker
gives each detector to one inference thread (batching frames of many cameras into one call is
how it uses its cores, see ``DESIGN.md``). Backends may add a lock, but callers must not rely on
concurrency from one instance.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from gridwatch.model import Detections

ImageBGR = npt.NDArray[np.uint8]
"""H×W×3 ``uint8`` BGR image, as OpenCV and PyAV's ``bgr24`` give it."""


class DetectorError(Exception):
    """A detector could not be built or loaded (missing weights, unknown model, offline hub).

    The message is meant for the operator who wrote the config: it says what was asked for and
    what to write instead.
    """


@runtime_checkable
class Detector(Protocol):
    """An object detector that the worker can drive.

    ``person_class_ids`` exists because models disagree on what a person is: a COCO model has one
    ``person`` class among 80, the default fall model has ``Normal`` and ``Fall`` and both are a
    person. Rules that count people select on these ids, never on a hard-coded ``0``.
    """

    @property
    def name(self) -> str:
        """Short label for logs and metrics, e.g. ``ultralytics:best``."""
        ...

    @property
    def class_names(self) -> Mapping[int, str]:
        """Class id → the model's name for it."""
        ...

    @property
    def person_class_ids(self) -> frozenset[int]:
        """The class ids that count as a person."""
        ...

    @property
    def last_ms(self) -> float:
        """Wall time of the most recent ``detect``/``detect_batch`` call, milliseconds (metrics)."""
        ...

    @property
    def imgsz(self) -> int:
        """Longest side a whole frame is detected at (larger frames are scaled down to it)."""
        ...

    @property
    def native_resolution(self) -> bool:
        """Whether an input runs at its own size (region mosaics then pay only their pixels);
        False for backends that scale every input to ``imgsz`` (ultralytics' predict)."""
        ...

    @property
    def streams(self) -> int:
        """How many calls may usefully run at once (the inference service's thread count)."""
        ...

    def detect(self, image: ImageBGR) -> Detections:
        """Detect objects in one BGR image; boxes are pixel xyxy, ``image_size`` is ``(w, h)``."""
        ...

    def detect_batch(self, images: Sequence[ImageBGR]) -> list[Detections]:
        """Detect in several images, one :class:`Detections` per image, in the same order."""
        ...


class DetectorInfo:
    """The descriptive half of :class:`Detector`, shared by every backend.

    Backends differ in how they load and run a model, not in how they describe it: each sets
    ``_name``, ``_class_names``, ``_person_class_ids`` and ``_last_ms`` and implements
    :meth:`detect_batch`; this class turns those into the protocol's properties and gives
    :meth:`detect` as a batch of one, so the four backends cannot drift apart.

    >>> class Null(DetectorInfo):
    ...     def __init__(self) -> None:
    ...         self._name, self._class_names = "null", {0: "person"}
    ...         self._person_class_ids, self._last_ms = frozenset({0}), 0.0
    ...     def detect_batch(self, images):
    ...         return [Detections.empty((im.shape[1], im.shape[0])) for im in images]
    >>> d = Null()
    >>> isinstance(d, Detector), len(d.detect(np.zeros((4, 6, 3), np.uint8)))
    (True, 0)
    """

    _name: str
    _class_names: dict[int, str]
    _person_class_ids: frozenset[int]
    _last_ms: float
    imgsz: int = 640
    native_resolution: bool = False
    streams: int = 1

    @property
    def name(self) -> str:
        return self._name

    @property
    def class_names(self) -> Mapping[int, str]:
        return self._class_names

    @property
    def person_class_ids(self) -> frozenset[int]:
        return self._person_class_ids

    @property
    def last_ms(self) -> float:
        """Wall time of the last call (pre-process, inference, NMS, conversion), ms."""
        return self._last_ms

    def detect(self, image: ImageBGR) -> Detections:
        """Detect in one BGR frame; boxes come back in the frame's own pixels."""
        return self.detect_batch([image])[0]

    def detect_batch(self, images: Sequence[ImageBGR]) -> list[Detections]:
        raise NotImplementedError


def check_image(image: object) -> ImageBGR:
    """Validate that ``image`` is an H×W×3 ``uint8`` array and return it typed.

    Backends call this first so that a wrongly converted frame (RGB planar, float, grayscale)
    fails loudly at the boundary instead of producing silently wrong boxes.
    """
    if not isinstance(image, np.ndarray):
        raise TypeError(f"image must be a numpy array, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be H×W×3 BGR, got shape {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8, got {image.dtype}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"image is empty: shape {image.shape}")
    return image

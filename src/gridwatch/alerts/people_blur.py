"""People pixelated in moving pictures: one blur for the live view and for evidence clips.

Roles that get blurred snapshots also get blurred video, live (the console's
:class:`~gridwatch.console.live_source.BlurredVideoTrack`) and recorded (the clip service,
:mod:`gridwatch.alerts.clip_render`). Both blur each frame with :func:`blur_frame`, from the
latest *look* (:func:`look_at`: a person detector, :class:`PeopleFinder`, run on one frame):

* a fine mosaic everywhere (blocks of 1/``base_divisor`` of the short side): a far person the
  detector missed is a few blocks, while the scene stays readable;
* the blocks (1/``moved_divisor`` of the short side) whose mean brightness moved more than
  ``moved_threshold`` grey levels since the look's frame, pixelated as coarsely as a person:
  someone who walked in after the look, walked faster than the boxes grow, or was missed;
* the people found, coarsely, their boxes grown by ``margin`` plus ``walk_per_s`` of their
  width (and a sixth of that of their height) per second of the look's age (people walk);
* fail closed: no look yet, a look older than ``max_age_s`` or a failed one, and the whole
  frame is pixelated.

Looks are ``interval_s`` apart: on the wall clock live (on a background thread, the frames do
not wait), on the video's own clock for a clip (:class:`VideoTimeBlur`, inline: a recorded
clip has time to wait for its detector).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import cv2
import numpy as np
import numpy.typing as npt

from gridwatch.alerts.snapshot_service import pixelate, pixelate_whole

__all__ = [
    "BlurSettings",
    "FindPeople",
    "Look",
    "PeopleFinder",
    "VideoTimeBlur",
    "block_brightness",
    "blur_frame",
    "changed_blocks",
    "look_at",
    "pixelate_blocks",
]

log = logging.getLogger(__name__)

Image = npt.NDArray[np.uint8]
FindPeople = Callable[[Image], Sequence[Sequence[float]]]
"""BGR image → normalized xyxy boxes of the people on it (runs on a worker thread)."""
Outcome = Literal["whole", "people", "moved"]
"""What :func:`blur_frame` did: the whole frame; people (and the mosaic); people and blocks
that changed since the look."""


class PeopleFinder:
    """People boxes from the offline default model through OpenVINO.

    Built on first use (on the calling thread: about a second, during which a blurred view is
    blurred whole). A low confidence: a false box only blurs some background, a missed person
    would be shown in clear. The worker's input size (640): measured on the demo video (12
    frames, 73 people the worker's detector finds), 320 missed 24 of them and 416 missed 18,
    640 at confidence 0.1 none; one look costs about 130 ms of one core here."""

    def __init__(
        self,
        model: str = "default",
        *,
        imgsz: int = 640,
        confidence: float = 0.1,
        threads: int = 1,
        backend: str = "openvino",
    ) -> None:
        self.model = model
        self.imgsz = imgsz
        self.confidence = confidence
        self.threads = threads
        self.backend = backend
        self._detector: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._detector is None:
                from gridwatch.detectors import build_detector

                t0 = time.perf_counter()
                self._detector = build_detector(
                    self.model,
                    self.confidence,
                    backend=self.backend,
                    imgsz=self.imgsz,
                    threads=self.threads,
                )
                log.info(
                    "people blur: person detector %s (%s, imgsz %d) loaded in %.1f s",
                    self.model,
                    self.backend,
                    self.imgsz,
                    time.perf_counter() - t0,
                )
            return self._detector

    def __call__(self, image: Image) -> list[list[float]]:
        detector = self._load()
        found = detector.detect(image)
        persons = np.isin(found.class_id, list(detector.person_class_ids))
        boxes: list[list[float]] = found.select(persons).xyxyn().tolist()
        return boxes


@dataclass(frozen=True)
class BlurSettings:
    """The blur's parameters (see the module docstring)."""

    interval_s: float = 0.5
    """Seconds between looks (wall clock live, video time in a clip)."""
    max_age_s: float = 1.2
    """A look older than this is not trusted: the whole frame is pixelated."""
    margin: float = 0.2
    walk_per_s: float = 3.0
    retry_after_s: float = 5.0
    """After a failed look, the next one this much later (the frames meanwhile: whole)."""
    base_divisor: int = 96
    moved_divisor: int = 24
    moved_threshold: float = 8.0

    def moved_block(self, image: Image) -> int:
        """Side of the changed-blocks guard's cells for ``image``, in pixels."""
        return max(8, min(int(image.shape[0]), int(image.shape[1])) // self.moved_divisor)


class Look(NamedTuple):
    boxes: list[list[float]]
    """Normalized xyxy boxes of the people found."""
    brightness: npt.NDArray[np.float32]
    """:func:`block_brightness` of the frame looked at."""


def block_brightness(image: Image, block: int) -> npt.NDArray[np.float32]:
    """Mean brightness of each ``block``-pixel cell of a BGR picture (a grid of ``ceil``
    cells: the last row and column may be a little narrower).

    >>> img = np.zeros((48, 64, 3), np.uint8); img[:16, :16] = 255
    >>> block_brightness(img, 16).round().tolist()
    [[255.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]
    """
    h, w = image.shape[:2]
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    size = (max(1, -(-w // block)), max(1, -(-h // block)))
    cells: npt.NDArray[np.float32] = cv2.resize(gray, size, interpolation=cv2.INTER_AREA).astype(
        np.float32
    )
    return cells


def changed_blocks(
    before: npt.NDArray[np.float32], now: npt.NDArray[np.float32], threshold: float
) -> npt.NDArray[np.bool_]:
    """Cells whose brightness moved more than ``threshold`` grey levels, and their neighbours
    (a person's edge can sit in a cell that barely changed). A different grid (the stream's
    size changed) counts as every cell changed: fail closed.

    >>> a = np.zeros((3, 4), np.float32); b = a.copy(); b[0, 0] = 40
    >>> changed_blocks(a, b, 8.0).astype(int).tolist()
    [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0]]
    """
    if before.shape != now.shape:
        return np.ones(now.shape, bool)
    moved = (np.abs(now - before) > threshold).astype(np.uint8)
    grown: npt.NDArray[np.bool_] = cv2.dilate(moved, np.ones((3, 3), np.uint8)).astype(bool)
    return grown


def pixelate_blocks(image: Image, cells: npt.NDArray[np.bool_]) -> None:
    """Pixelate in place the ``cells`` (a :func:`block_brightness` grid) of ``image``: each
    becomes its mean colour."""
    h, w = image.shape[:2]
    gh, gw = cells.shape
    means = cv2.resize(image, (gw, gh), interpolation=cv2.INTER_AREA)
    blocks = cv2.resize(means, (w, h), interpolation=cv2.INTER_NEAREST)
    where = cv2.resize(cells.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0
    image[where] = blocks[where]


def look_at(image: Image, find_people: FindPeople, settings: BlurSettings) -> Look:
    """One look: the people on ``image`` and its block brightness (raises what the detector
    raises: the caller fails closed)."""
    boxes = [list(map(float, b[:4])) for b in find_people(image)]
    return Look(boxes, block_brightness(image, settings.moved_block(image)))


def blur_frame(image: Image, look: Look | None, age_s: float, settings: BlurSettings) -> Outcome:
    """Pixelate ``image`` in place from ``look``, taken ``age_s`` seconds before this frame
    (see the module docstring); the whole frame when there is no look or it is too old."""
    if look is None or age_s > settings.max_age_s:
        pixelate_whole(image)
        return "whole"
    h, w = image.shape[:2]
    moved = changed_blocks(
        look.brightness,
        block_brightness(image, settings.moved_block(image)),
        settings.moved_threshold,
    )
    # a fine mosaic everywhere first: the far, small people a detector misses most (a few
    # blocks each), while the scene stays readable; then what changed since the look and the
    # people found, coarse
    pixelate(image, 0, 0, w, h, max(4, min(w, h) // settings.base_divisor))
    outcome: Outcome = "people"
    if moved.any():
        pixelate_blocks(image, moved)
        outcome = "moved"
    age = max(0.0, age_s)
    grow_x = settings.margin + settings.walk_per_s * age
    grow_y = settings.margin + settings.walk_per_s * age / 6
    for x1, y1, x2, y2 in look.boxes:
        mx, my = (x2 - x1) * grow_x, (y2 - y1) * grow_y
        px1, py1 = max(0, int((x1 - mx) * w)), max(0, int((y1 - my) * h))
        px2, py2 = min(w, int(np.ceil((x2 + mx) * w))), min(h, int(np.ceil((y2 + my) * h)))
        pixelate(image, px1, py1, px2, py2, max(10, (px2 - px1) // 6))
    return outcome


class VideoTimeBlur:
    """:func:`blur_frame` over a recorded video, frame after frame on the video's own clock:
    a look (inline) every ``interval_s`` of video time; a failed look leaves the frames whole
    until the retry ``retry_after_s`` later (fail closed)."""

    def __init__(self, find_people: FindPeople, settings: BlurSettings | None = None) -> None:
        self.find_people = find_people
        self.settings = settings or BlurSettings()
        self._look: tuple[float, Look] | None = None
        self._next_look: float | None = None
        self.looks = 0
        self.look_failures = 0
        self.frames = {"whole": 0, "people": 0, "moved": 0}

    def __call__(self, image: Image, t: float) -> Outcome:
        """Blur ``image``, the frame at ``t`` seconds of the video, in place."""
        s = self.settings
        if self._next_look is None or t >= self._next_look:
            try:
                self._look = (t, look_at(image, self.find_people, s))
                self.looks += 1
                self._next_look = t + s.interval_s
            except Exception as e:
                self.look_failures += 1
                self._look = None
                self._next_look = t + s.retry_after_s
                log.warning("people blur: the person detector failed (%s); blurring whole", e)
        look = self._look
        outcome = blur_frame(
            image, None if look is None else look[1], 0.0 if look is None else t - look[0], s
        )
        self.frames[outcome] += 1
        return outcome

"""One inference service for all of a worker's cameras: bounded, batching, never queueing.

Cameras submit an image (a whole frame or a region mosaic) and get a future. ``workers``
inference threads (as many as the detector has parallel streams) each take the oldest pending
requests — up to ``max_batch`` of them, waiting at most ``max_wait_ms`` for a batch to fill —
and run them in **one** ``detect_batch`` call, whichever cameras they come from. (Inside it,
an exported backend makes one model call per input shape: same-sized images from several
cameras share one tensor.)

Never building latency (DESIGN principle 2):

* a camera has at most one pending request: a newer one replaces it and the replaced one is
  dropped (its future raises :class:`Dropped`), counted;
* at most ``max_pending`` requests wait in all; a camera that submits beyond that is refused
  (:class:`Dropped`), counted;
* frame age is taken when the batch starts, so it includes the wait behind other cameras.

On a CPU a batch costs about the sum of its parts (measured 4 × 160² in one call: 10% less CPU
than 4 calls; see ``docs/performance.md``); batching matters more on accelerators. What
matters on a CPU is that the service never lets two inferences fight over one core and never
lets work pile up.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field

from gridwatch.detectors.base import Detector, ImageBGR
from gridwatch.model import Detections

log = logging.getLogger(__name__)


class Dropped(Exception):
    """The request was not run: replaced by a newer one from its camera, or the service was
    full or closed."""


@dataclass(frozen=True, slots=True)
class InferenceResult:
    detections: Detections
    """In the submitted image's pixels."""
    frame_age_ms: float
    """Age of the frame when its batch started."""
    detector_ms: float
    """Wall time of the batch's ``detect_batch`` call."""
    batch_size: int
    batch_cameras: int


@dataclass
class _Request:
    camera_id: str
    image: ImageBGR
    frame_mono_ts: float
    submitted: float
    future: Future[InferenceResult]


@dataclass
class BatchingStats:
    submitted: int = 0
    completed: int = 0
    replaced: int = 0
    """Dropped because the same camera submitted a newer image first."""
    refused: int = 0
    """Dropped because ``max_pending`` requests were already waiting."""
    failed: int = 0
    batches: int = 0
    images: int = 0
    multi_camera_batches: int = 0
    busy_s: float = 0.0
    """Seconds spent inside ``detect_batch`` (summed over workers)."""
    batch_sizes: collections.Counter[int] = field(default_factory=collections.Counter)


class BatchingService:
    """See the module docs. Start with :meth:`start`, stop with :meth:`close`."""

    def __init__(
        self,
        detector: Detector,
        *,
        max_batch: int = 8,
        max_wait_ms: float = 5.0,
        max_pending: int = 64,
        workers: int = 1,
    ) -> None:
        if max_batch < 1 or max_pending < 1 or workers < 1:
            raise ValueError("max_batch, max_pending and workers must be >= 1")
        if max_wait_ms < 0:
            raise ValueError("max_wait_ms must be >= 0")
        self.detector = detector
        self.max_batch = max_batch
        self.max_wait_s = max_wait_ms / 1000.0
        self.max_pending = max_pending
        self.workers = workers
        self.stats = BatchingStats()
        self._pending: collections.OrderedDict[str, _Request] = collections.OrderedDict()
        self._cond = threading.Condition()
        self._closed = False
        self._threads: list[threading.Thread] = []

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> BatchingService:
        if self._threads:
            return self
        for i in range(self.workers):
            t = threading.Thread(target=self._run, name=f"inference-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def close(self, timeout: float | None = 5.0) -> None:
        """Stop the workers; pending requests are dropped."""
        with self._cond:
            self._closed = True
            pending = list(self._pending.values())
            self._pending.clear()
            self._cond.notify_all()
        for r in pending:
            r.future.set_exception(Dropped("inference service closed"))
        for t in self._threads:
            t.join(timeout)
        self._threads = []

    def __enter__(self) -> BatchingService:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._pending)

    # -- API -----------------------------------------------------------------------------------

    def submit(
        self, camera_id: str, image: ImageBGR, frame_mono_ts: float | None = None
    ) -> Future[InferenceResult]:
        """Queue ``image`` for detection; never blocks. The future raises :class:`Dropped`
        when the request is replaced, refused or the service closes."""
        now = time.monotonic()
        req = _Request(
            camera_id, image, now if frame_mono_ts is None else frame_mono_ts, now, Future()
        )
        replaced: _Request | None = None
        refused = False
        with self._cond:
            if self._closed:
                refused = True
            elif camera_id in self._pending:
                replaced = self._pending.pop(camera_id)
                self._pending[camera_id] = req
                self.stats.replaced += 1
            elif len(self._pending) >= self.max_pending:
                refused = True
                self.stats.refused += 1
            else:
                self._pending[camera_id] = req
            self.stats.submitted += 1
            self._cond.notify()
        if replaced is not None:
            replaced.future.set_exception(Dropped(f"camera {camera_id}: replaced by a newer frame"))
        if refused:
            req.future.set_exception(
                Dropped(f"camera {camera_id}: {self.max_pending} requests already pending")
            )
        return req.future

    # -- workers -----------------------------------------------------------------------------

    def _take_batch(self) -> list[_Request] | None:
        with self._cond:
            while not self._pending and not self._closed:
                self._cond.wait()
            if self._closed:
                return None
            # let a batch fill for up to max_wait after its oldest request arrived
            oldest = next(iter(self._pending.values())).submitted
            while len(self._pending) < self.max_batch and not self._closed:
                left = oldest + self.max_wait_s - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            if self._closed:
                return None
            batch: list[_Request] = []
            while self._pending and len(batch) < self.max_batch:
                _, req = self._pending.popitem(last=False)
                batch.append(req)
            return batch

    def _run(self) -> None:
        while True:
            batch = self._take_batch()
            if batch is None:
                return
            batch = [r for r in batch if r.future.set_running_or_notify_cancel()]
            if not batch:
                continue
            start = time.monotonic()
            t0 = time.perf_counter()
            try:
                results = self.detector.detect_batch([r.image for r in batch])
            except Exception as exc:  # a bad image or a backend error: fail these, go on
                log.exception("inference failed for %d image(s)", len(batch))
                with self._cond:
                    self.stats.failed += len(batch)
                for r in batch:
                    r.future.set_exception(exc)
                continue
            ms = (time.perf_counter() - t0) * 1000.0
            cameras = len({r.camera_id for r in batch})
            with self._cond:
                self.stats.batches += 1
                self.stats.images += len(batch)
                self.stats.completed += len(batch)
                self.stats.busy_s += ms / 1000.0
                self.stats.batch_sizes[len(batch)] += 1
                if cameras > 1:
                    self.stats.multi_camera_batches += 1
            for r, det in zip(batch, results, strict=True):
                r.future.set_result(
                    InferenceResult(
                        detections=det,
                        frame_age_ms=(start - r.frame_mono_ts) * 1000.0,
                        detector_ms=ms,
                        batch_size=len(batch),
                        batch_cameras=cameras,
                    )
                )

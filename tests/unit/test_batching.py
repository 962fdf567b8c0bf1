"""The inference service batches cameras together and drops, never queues, under overload."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence

import numpy as np
import pytest

from gridwatch.detectors.batching import BatchingService, Dropped
from gridwatch.model import Detections


class RecordingDetector:
    """Returns no boxes; records each call's batch; optionally blocks until released."""

    name = "recording"
    imgsz = 640
    native_resolution = False
    streams = 1
    class_names: Mapping[int, str] = {0: "person"}
    person_class_ids = frozenset({0})
    last_ms = 0.0

    def __init__(self, delay_s: float = 0.0, gate: threading.Event | None = None) -> None:
        self.delay_s = delay_s
        self.gate = gate
        self.batches: list[int] = []
        self.started = threading.Event()

    def detect(self, image: np.ndarray) -> Detections:
        return self.detect_batch([image])[0]

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[Detections]:
        self.started.set()
        if self.gate is not None:
            self.gate.wait(5)
        time.sleep(self.delay_s)
        self.batches.append(len(images))
        return [Detections.empty((im.shape[1], im.shape[0])) for im in images]


def img(v: int = 0) -> np.ndarray:
    return np.full((32, 32, 3), v, np.uint8)


def test_a_batch_carries_several_cameras() -> None:
    det = RecordingDetector()
    with BatchingService(det, max_batch=8, max_wait_ms=300) as service:
        futures = [service.submit(f"cam{i}", img(i)) for i in range(4)]
        results = [f.result(5) for f in futures]
    assert det.batches == [4]
    assert {r.batch_cameras for r in results} == {4}
    assert service.stats.multi_camera_batches == 1
    assert service.stats.completed == 4


def test_a_full_batch_does_not_wait() -> None:
    det = RecordingDetector()
    with BatchingService(det, max_batch=2, max_wait_ms=10_000) as service:
        futures = [service.submit(f"cam{i}", img()) for i in range(2)]
        assert all(f.result(2) for f in futures)


def test_a_slow_detector_drops_frames_instead_of_queueing() -> None:
    gate = threading.Event()
    det = RecordingDetector(gate=gate)
    with BatchingService(det, max_batch=1, max_wait_ms=0) as service:
        first = service.submit("cam", img(0))
        assert det.started.wait(2)  # the detector is busy with the first frame
        newer = [service.submit("cam", img(i)) for i in range(1, 6)]
        assert service.pending == 1  # one camera, one waiting request: no queue
        gate.set()
        assert first.result(2)
        assert newer[-1].result(2)
    for f in newer[:-1]:
        with pytest.raises(Dropped):
            f.result(0)
    assert service.stats.replaced == 4
    assert det.batches == [1, 1]


def test_beyond_max_pending_requests_are_refused() -> None:
    gate = threading.Event()
    det = RecordingDetector(gate=gate)
    with BatchingService(det, max_batch=1, max_wait_ms=0, max_pending=2) as service:
        service.submit("busy", img())
        assert det.started.wait(2)
        a, b, c = (service.submit(f"cam{i}", img()) for i in range(3))
        with pytest.raises(Dropped):
            c.result(0)
        assert service.stats.refused == 1
        gate.set()
        assert a.result(2)
        assert b.result(2)


def test_closing_drops_what_is_pending() -> None:
    gate = threading.Event()
    det = RecordingDetector(gate=gate)
    service = BatchingService(det, max_batch=1, max_wait_ms=0).start()
    service.submit("busy", img())
    assert det.started.wait(2)
    waiting = service.submit("other", img())
    threading.Timer(0.2, gate.set).start()
    service.close()
    with pytest.raises(Dropped):
        waiting.result(0)


class FailingDetector(RecordingDetector):
    def detect_batch(self, images: Sequence[np.ndarray]) -> list[Detections]:
        if len(self.batches) == 0:
            self.batches.append(-1)
            raise RuntimeError("backend hiccup")
        return super().detect_batch(images)


def test_a_failing_call_fails_its_requests_and_the_service_goes_on() -> None:
    det = FailingDetector()
    with BatchingService(det, max_batch=1, max_wait_ms=0) as service:
        with pytest.raises(RuntimeError):
            service.submit("cam", img()).result(2)
        assert service.submit("cam", img()).result(2)
    assert service.stats.failed == 1


def test_frame_age_is_taken_when_the_batch_starts() -> None:
    det = RecordingDetector()
    with BatchingService(det, max_batch=1, max_wait_ms=0) as service:
        r = service.submit("cam", img(), frame_mono_ts=time.monotonic() - 0.5).result(2)
    assert r.frame_age_ms >= 500

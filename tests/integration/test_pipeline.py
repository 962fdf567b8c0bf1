"""The analysis loop never builds a queue: a slow detector drops frames, frame age stays low."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import numpy.typing as npt

from gridwatch.config import parse_config
from gridwatch.ingest.reader import CameraReader
from gridwatch.model import Detections, Frame, IncidentEvent
from gridwatch.rules.engine import CameraRules
from gridwatch.tracking import CameraTracker
from gridwatch.worker.pipeline import CameraPipeline

VTEST = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")


class SlowDetector:
    """Stands in for a model 4× slower than the camera's frame interval (pure timing logic)."""

    name = "slow"
    imgsz = 640
    native_resolution = False
    streams = 1
    class_names: Mapping[int, str] = {0: "person"}
    person_class_ids = frozenset({0})

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.calls = 0

    def detect(self, image: npt.NDArray[np.uint8]) -> Detections:
        self.calls += 1
        time.sleep(self.delay_s)
        h, w = image.shape[:2]
        return Detections.empty((w, h), self.class_names)

    def detect_batch(self, images: Sequence[npt.NDArray[np.uint8]]) -> list[Detections]:
        return [self.detect(i) for i in images]


CONFIG = f"""
grids: [{{id: g}}]
cameras:
  - id: cam
    grid: g
    url: {VTEST}
    analysis_fps: 10
    zones: [{{id: z, polygon: [[0, 0], [1, 0], [1, 1]]}}]
    rules: [{{type: crowding, zone: z, min_count: 3}}]
"""


async def test_slow_detector_drops_frames_instead_of_queueing() -> None:
    cfg = parse_config(CONFIG)
    cam = cfg.cameras[0]
    reader = CameraReader(cam.id, cam.url)
    detector = SlowDetector(0.4)
    events: list[IncidentEvent] = []

    async def sink(c, e: IncidentEvent, f: Frame | None, r) -> None:  # type: ignore[no-untyped-def]
        events.append(e)

    executor = ThreadPoolExecutor(1)
    pipe = CameraPipeline(
        cam, reader, detector, executor, CameraRules(cam, cfg), CameraTracker(10), sink
    )
    reader.start()
    task = asyncio.create_task(pipe.run())
    try:
        await asyncio.sleep(5)
    finally:
        task.cancel()
        reader.stop(5)
        executor.shutdown()
    # ~10 frames/s decoded, ~2.5/s analysed: the rest replaced in the slot, counted
    assert reader.stats.frames_decoded >= 35
    assert 6 <= pipe.stats.analysed <= 15
    assert reader.slot.dropped >= reader.stats.frames_decoded - pipe.stats.analysed - 2
    # each analysed frame was fresh: no backlog accumulated
    ages = list(pipe.stats.frame_age_ms)
    assert max(ages) < 250, ages
    assert statistics.median(ages) < 150
    assert events == []

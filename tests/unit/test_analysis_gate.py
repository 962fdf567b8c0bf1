"""The analyser: static frames skip the detector, motion gets regions, boxes come back in
frame coordinates, and an idle slow camera switches to keyframes and back."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import cv2
import numpy as np
import pytest

from gridwatch.detectors.analyser import AnalysisSettings, CameraAnalyser
from gridwatch.detectors.batching import BatchingService
from gridwatch.detectors.regions import RegionSettings
from gridwatch.model import Detections, Frame

W, H = 768, 576


class BrightBlobDetector:
    """Finds white rectangles: exact boxes, so mapping can be checked to the pixel."""

    name = "blobs"
    class_names: Mapping[int, str] = {0: "person"}
    person_class_ids = frozenset({0})
    last_ms = 0.0
    native_resolution = True
    imgsz = 640
    streams = 1

    def __init__(self) -> None:
        self.sizes: list[tuple[int, int]] = []

    def detect(self, image: np.ndarray) -> Detections:
        return self.detect_batch([image])[0]

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[Detections]:
        out = []
        for im in images:
            self.sizes.append((im.shape[1], im.shape[0]))
            mask = (im[:, :, 0] > 230).astype(np.uint8)
            n, _, stats, _ = cv2.connectedComponentsWithStats(mask)
            rows = [(s[0], s[1], s[0] + s[2], s[1] + s[3]) for s in stats[1:n] if s[4] >= 20]
            out.append(
                Detections.from_arrays(
                    xyxy=np.array(rows, np.float32).reshape(-1, 4),
                    confidence=np.full(len(rows), 0.9, np.float32),
                    class_id=np.zeros(len(rows), np.int64),
                    image_size=(im.shape[1], im.shape[0]),
                    class_names=self.class_names,
                )
            )
        return out


def street(seed: int) -> np.ndarray:
    base = np.tile(np.linspace(40, 150, W, dtype=np.float32), (H, 1))
    grain = np.random.default_rng(seed).normal(0, 2, (H, W))
    gray = np.clip(base + grain, 0, 200).astype(np.uint8)
    return np.repeat(gray[:, :, None], 3, axis=2)


def person(img: np.ndarray, x: int, y: int) -> np.ndarray:
    out = img.copy()
    out[y : y + 90, x : x + 36] = 250
    return out


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def frame(image: np.ndarray, seq: int) -> Frame:
    return Frame("cam", image, 0.0, 0.0, seq)


@pytest.fixture
def detector() -> BrightBlobDetector:
    return BrightBlobDetector()


async def test_static_scene_is_gated_and_motion_gets_regions(detector: BrightBlobDetector) -> None:
    clock = Clock()
    settings = AnalysisSettings(regions=RegionSettings(scale="native"), refresh_s=0)
    with BatchingService(detector, max_wait_ms=0) as service:
        analyser = CameraAnalyser("cam", service, settings, clock=clock)
        first = await analyser.analyse(frame(street(0), 0))
        assert first.mode == "full"
        modes = []
        for i in range(1, 6):
            clock.t += 0.5
            modes.append((await analyser.analyse(frame(street(i), i))).mode)
        assert modes == ["gated"] * 5
        calls = len(detector.sizes)
        clock.t += 0.5
        moved = await analyser.analyse(frame(person(street(9), 500, 300), 9))
    assert moved.mode == "regions"
    assert len(detector.sizes) == calls + 1
    w, h = detector.sizes[-1]
    assert w * h < W * H / 4  # a small mosaic, not the frame
    assert moved.detections.xyxy.tolist() == [[500, 300, 536, 390]]
    assert moved.detections.image_size == (W, H)


async def test_objects_keep_the_detector_running_until_they_leave(
    detector: BrightBlobDetector,
) -> None:
    clock = Clock()
    settings = AnalysisSettings(regions=RegionSettings(scale="native"), refresh_s=0, memory_s=0)
    with BatchingService(detector, max_wait_ms=0) as service:
        analyser = CameraAnalyser("cam", service, settings, clock=clock)
        await analyser.analyse(frame(street(0), 0))
        clock.t += 0.5
        assert (await analyser.analyse(frame(person(street(1), 200, 200), 1))).mode == "regions"
        # standing still: no motion, but a person is there, so look again (in a region)
        for i in range(2, 5):
            clock.t += 0.5
            r = await analyser.analyse(frame(person(street(i), 200, 200), i))
            assert r.mode == "regions"
            assert len(r.detections) == 1
        clock.t += 0.5
        gone = await analyser.analyse(frame(street(5), 5))  # left: motion where they stood
        assert len(gone.detections) == 0
        clock.t += 0.5
        assert (await analyser.analyse(frame(street(6), 6))).mode == "gated"


async def test_motion_outside_the_zones_does_not_run_the_detector(
    detector: BrightBlobDetector,
) -> None:
    clock = Clock()
    right = [(0.6, 0.0), (1.0, 0.0), (1.0, 1.0), (0.6, 1.0)]
    with BatchingService(detector, max_wait_ms=0) as service:
        analyser = CameraAnalyser(
            "cam", service, AnalysisSettings(refresh_s=0), zones=[right], clock=clock
        )
        await analyser.analyse(frame(street(0), 0))
        calls = len(detector.sizes)
        clock.t += 0.5
        r = await analyser.analyse(frame(person(street(1), 100, 300), 1))
    assert r.mode == "gated"
    assert len(detector.sizes) == calls


async def test_a_backend_that_upscales_gets_whole_frames(detector: BrightBlobDetector) -> None:
    clock = Clock()
    with BatchingService(detector, max_wait_ms=0) as service:
        analyser = CameraAnalyser(
            "cam", service, AnalysisSettings(refresh_s=0), native_resolution=False, clock=clock
        )
        await analyser.analyse(frame(street(0), 0))
        clock.t += 0.5
        r = await analyser.analyse(frame(person(street(1), 500, 300), 1))
    assert r.mode == "full"
    assert detector.sizes[-1] == (W, H)


async def test_refresh_looks_at_the_whole_frame(detector: BrightBlobDetector) -> None:
    clock = Clock()
    with BatchingService(detector, max_wait_ms=0) as service:
        analyser = CameraAnalyser("cam", service, AnalysisSettings(refresh_s=10), clock=clock)
        await analyser.analyse(frame(street(0), 0))
        clock.t += 5
        assert (await analyser.analyse(frame(street(1), 1))).mode == "gated"
        clock.t += 5
        assert (await analyser.analyse(frame(street(2), 2))).mode == "full"


async def test_idle_slow_camera_decodes_keyframes_until_motion(
    detector: BrightBlobDetector,
) -> None:
    clock = Clock()
    switches: list[bool] = []
    settings = AnalysisSettings(refresh_s=0, idle_s=5)
    with BatchingService(detector, max_wait_ms=0) as service:
        analyser = CameraAnalyser(
            "cam",
            service,
            settings,
            analysis_fps=1.0,
            set_keyframes_only=switches.append,
            clock=clock,
        )
        for i in range(8):
            await analyser.analyse(frame(street(i), i))
            clock.t += 1
        assert switches == [True]
        assert analyser.keyframes_only
        await analyser.analyse(frame(person(street(9), 300, 300), 9))
        assert switches == [True, False]
        # a fast camera never switches
        fast: list[bool] = []
        other = CameraAnalyser(
            "fast", service, settings, analysis_fps=2.0, set_keyframes_only=fast.append
        )
        assert not other.adaptive


async def test_a_stationary_object_is_carried_without_looking_until_motion_touches_it(
    detector: BrightBlobDetector,
) -> None:
    clock = Clock()
    settings = AnalysisSettings(
        regions=RegionSettings(scale="native"), refresh_s=0, memory_s=0, stationary_looks=3
    )
    with BatchingService(detector, max_wait_ms=0) as service:
        analyser = CameraAnalyser("cam", service, settings, clock=clock)
        modes = []
        for i in range(8):
            r = await analyser.analyse(frame(person(street(i), 300, 300), i))
            modes.append(r.mode)
            assert r.detections.xyxy.tolist() == [[300, 300, 336, 390]]  # always reported
            clock.t += 0.5
        assert modes[:4] == ["full", "regions", "regions", "regions"]
        assert set(modes[4:]) == {"gated"}  # parked: no more looks
        calls = len(detector.sizes)
        # someone walks past, touching it: it is looked at again
        touched = person(person(street(20), 300, 300), 330, 310)
        r = await analyser.analyse(frame(touched, 20))
        assert r.mode == "regions"
        assert len(detector.sizes) == calls + 1


async def test_a_walker_found_again_is_looked_for_where_they_are_not_where_they_were(
    detector: BrightBlobDetector,
) -> None:
    """Box memory: an object a newer look found again (its box overlaps) is looked for at its
    new place only; an object the newer look missed is still looked for where it was."""
    clock = Clock()
    settings = AnalysisSettings(regions=RegionSettings(scale="native"), refresh_s=0, memory_s=1)
    with BatchingService(detector, max_wait_ms=0) as service:
        analyser = CameraAnalyser("cam", service, settings, clock=clock)
        await analyser.analyse(frame(person(person(street(0), 100, 100), 500, 300), 0))
        clock.t += 0.5
        # the walker moved 24 px right (IoU 0.2 with the old box); the other one vanished
        r = await analyser.analyse(frame(person(street(1), 124, 100), 1))
        assert r.mode == "regions"
        assert r.detections.xyxy.tolist() == [[124, 100, 160, 190]]
        remembered = analyser._remembered(clock.t).tolist()
    assert sorted(remembered) == [[124, 100, 160, 190], [500, 300, 536, 390]]

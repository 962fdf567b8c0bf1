"""The Darknet YOLOv3-tiny COCO backend (vehicles for vehicle_stop) on a real vtest frame."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from gridwatch.config import parse_config
from gridwatch.detectors import DetectorError, build_detector
from gridwatch.detectors.darknet_backend import packaged_files, patched_cfg

VTEST = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")


@pytest.fixture(scope="module")
def frame() -> np.ndarray:  # type: ignore[type-arg]
    cap = cv2.VideoCapture(str(VTEST))
    ok, img = cap.read()
    cap.release()
    assert ok
    return img  # type: ignore[no-any-return]


def test_finds_the_parked_van_and_people(frame: np.ndarray, tmp_path: Path) -> None:  # type: ignore[type-arg]
    det = build_detector("yolov3-tiny", 0.25, backend="darknet", imgsz=608, cache_dir=tmp_path)
    assert det.name == "darknet:yolov3-tiny@608"
    assert len(det.class_names) == 80
    assert det.person_class_ids == {0}
    d = det.detect(frame)
    assert d.image_size == (768, 576)
    names = [det.class_names[int(c)] for c in d.class_id]
    vehicles = [b for b, n in zip(d.xyxy, names, strict=True) if n in ("car", "truck", "bus")]
    # the white van parked at the top right (x 645-742, y 38-101 px), looked at on frame 0
    assert any(b[0] > 600 and b[2] < 760 and b[3] < 120 for b in vehicles), list(
        zip(names, d.xyxy, strict=False)
    )
    assert names.count("person") >= 3  # 4 people on the path in frame 0
    assert det.last_ms > 0


def test_the_packaged_cfg_is_patched_in_a_copy(tmp_path: Path) -> None:
    files = packaged_files()
    original = files.cfg.read_text()
    fixed = patched_cfg(files.cfg, tmp_path).read_text()
    masks = [line.split("=")[1].strip() for line in fixed.splitlines() if line.startswith("mask")]
    assert masks == ["3,4,5", "1,2,3"]
    assert "mask = 0,1,2" in original  # the installed file is left alone
    assert files.cfg.read_text() == original


def test_unknown_model_and_config_backend(tmp_path: Path) -> None:
    with pytest.raises(DetectorError, match="unknown darknet model"):
        build_detector("yolov9", 0.25, backend="darknet", cache_dir=tmp_path)
    cfg = parse_config("detector: {backend: darknet, model: yolov3-tiny, imgsz: 608}\n")
    assert cfg.detector.backend == "darknet"

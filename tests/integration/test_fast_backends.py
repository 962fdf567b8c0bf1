"""The OpenVINO and ONNX Runtime exports: made offline once, cached, and as good as the .pt."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from gridwatch.detectors import BACKENDS, DetectorError, build_detector
from gridwatch.detectors.export import ExportError, export_model
from gridwatch.detectors.onnx_backend import OnnxDetector
from gridwatch.detectors.openvino_backend import OpenVinoDetector
from gridwatch.detectors.ultralytics_backend import UltralyticsDetector
from gridwatch.model import Detections

pytestmark = pytest.mark.timeout(300)


def assets() -> list[np.ndarray]:
    import ultralytics

    root = Path(ultralytics.__file__).parent / "assets"
    return [cv2.imread(str(root / n)) for n in ("bus.jpg", "zidane.jpg")]


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ix = np.clip(
        np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None
    )
    iy = np.clip(
        np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None
    )
    inter = ix * iy
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / (area_a[:, None] + area_b[None, :] - inter)


@pytest.fixture(scope="module")
def reference() -> list[Detections]:
    pt = UltralyticsDetector(threads=2)
    return [pt.detect(im) for im in assets()]


@pytest.mark.parametrize("backend", ["openvino", "onnx"])
def test_export_finds_what_the_pt_finds(backend: str, reference: list[Detections]) -> None:
    det = build_detector("default", 0.25, backend=backend, threads=1)
    assert isinstance(det, OpenVinoDetector | OnnxDetector)
    assert det.class_names == {0: "Normal", 1: "Fall"}
    assert det.person_class_ids == {0, 1}
    for image, ref in zip(assets(), reference, strict=True):
        got = det.detect(image)
        assert got.image_size == (image.shape[1], image.shape[0])
        assert len(ref) > 0
        matched = (iou(ref.xyxy, got.xyxy).max(axis=1) >= 0.5).sum() if len(got) else 0
        assert matched >= len(ref) - 1, (ref.xyxy, got.xyxy)


def test_batches_of_mixed_shapes_come_back_in_order() -> None:
    det = OpenVinoDetector(threads=1, streams=1)
    bus, zidane = assets()
    singles = [det.detect(bus), det.detect(zidane)]
    batch = det.detect_batch([bus, zidane, bus])
    assert [d.image_size for d in batch] == [
        singles[0].image_size,
        singles[1].image_size,
        singles[0].image_size,
    ]
    assert len(batch[0]) == len(batch[2]) == len(singles[0])


def test_a_batch_of_seven_runs_one_image_a_call_and_keeps_each_images_boxes() -> None:
    det = OpenVinoDetector(threads=1, streams=1)
    bus = assets()[0]
    flipped = cv2.flip(bus, 1)
    images = [bus, flipped, bus, flipped, flipped, bus, flipped]  # one input shape
    singles = [det.detect(im) for im in (bus, flipped)]
    sizes: list[int] = []
    infer_one = det._infer_one

    def spy(batch: np.ndarray) -> np.ndarray:
        sizes.append(len(batch))
        return infer_one(batch)

    det._infer_one = spy  # type: ignore[method-assign]
    got = det.detect_batch(images)
    assert sizes == [1] * 7  # one image a call: the plugin pays for every batch-size change
    for im, d in zip(images, got, strict=True):
        ref = singles[0] if im is bus else singles[1]
        assert len(d) == len(ref) > 0
        np.testing.assert_allclose(d.xyxy, ref.xyxy, atol=1.0)


def test_exports_are_cached_by_the_weights_hash() -> None:
    first = export_model("default", "onnx")
    again = export_model("default", "onnx")
    assert again.made is False
    assert again.path == first.path
    assert first.weights_sha256 in str(first.path.parent)


def test_a_failed_export_says_so(tmp_path: Path) -> None:
    bogus = tmp_path / "broken.pt"
    bogus.write_bytes(b"not a model at all")
    with pytest.raises(ExportError, match="could not export"):
        export_model(str(bogus), "openvino", cache_dir=tmp_path / "cache")


def test_unknown_backend_lists_the_fast_ones() -> None:
    assert {"openvino", "onnx"} <= set(BACKENDS)
    with pytest.raises(DetectorError, match="openvino"):
        build_detector("default", backend="tensorrt")

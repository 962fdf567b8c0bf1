"""Any COCO YOLO model by path: the shared static INT8 OpenVINO export, and a static ONNX.

The real model (``../shared/models/yolov8n_int8_openvino_model``, static 1×3×320×320 with its
box decoding baked in) can only run at other sizes through the cut Detect head and the numpy
DFL decoding; these tests run it on a real dense frame at two sizes and check the people it
finds against the clip's ground truth. The ONNX test builds a tiny static YOLOv8-shaped graph
in memory, so the ONNX cut is tested on every machine.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from gridwatch.config import parse_config
from gridwatch.detectors import DetectorError, OpenVinoDetectorConfig, build_detector
from gridwatch.detectors.ir_models import REG_MAX, prepare_onnx_model, prepare_openvino_model
from gridwatch.detectors.openvino_backend import OpenVinoDetector
from gridwatch.model import Detections

SHARED = Path(__file__).resolve().parents[3] / "shared"
INT8_MODEL = SHARED / "models" / "yolov8n_int8_openvino_model"
TOWNCENTRE = SHARED / "data" / "towncentre-690x388"
CLIP = TOWNCENTRE / "TownCentre_clip_41f_690x388_10fps.mp4"
GT = TOWNCENTRE / "TownCentre_clip_41f_690x388_10fps.gt.txt"
FRAME = 37
"""A busy frame of the clip: 20 annotated people, most of them small."""


def _need(path: Path, what: str) -> Path:
    if not path.exists():
        message = (
            f"{what} not found at {path}: it is a fetched public file kept beside the repository "
            f"in ../shared (see ../shared/models/README.md and ../shared/data/README.md), not "
            "committed; docs/models.md says how to make such a model yourself"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="module")
def int8_model() -> Path:
    return _need(INT8_MODEL, "the YOLOv8n INT8 OpenVINO model")


@pytest.fixture(scope="module")
def towncentre_frame() -> tuple[np.ndarray, np.ndarray]:
    """Frame ``FRAME`` (1-based, as the MOT ground truth counts) and its xyxy boxes."""
    cap = cv2.VideoCapture(str(_need(CLIP, "the TownCentre clip")))
    try:
        for _ in range(FRAME):
            ok, frame = cap.read()
            assert ok, f"could not read frame {FRAME} of {CLIP}"
    finally:
        cap.release()
    rows = np.loadtxt(_need(GT, "the TownCentre ground truth"), delimiter=",", ndmin=2)
    rows = rows[rows[:, 0] == FRAME]
    boxes = np.column_stack(
        [rows[:, 2], rows[:, 3], rows[:, 2] + rows[:, 4], rows[:, 3] + rows[:, 5]]
    )
    return frame, boxes


def _matched(det: np.ndarray, gt: np.ndarray, thr: float = 0.5) -> int:
    """Greedy one-to-one matches at IoU ≥ ``thr``."""
    if not len(det) or not len(gt):
        return 0
    lt = np.maximum(det[:, None, :2], gt[None, :, :2])
    rb = np.minimum(det[:, None, 2:], gt[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(axis=2)
    area_d = (det[:, 2:] - det[:, :2]).prod(axis=1)
    area_g = (gt[:, 2:] - gt[:, :2]).prod(axis=1)
    iou = inter / (area_d[:, None] + area_g[None, :] - inter)
    n = 0
    while iou.size and iou.max() >= thr:
        i, j = np.unravel_index(int(iou.argmax()), iou.shape)
        iou[i, :], iou[:, j] = -1.0, -1.0
        n += 1
    return n


def test_static_int8_ir_runs_at_two_sizes_and_finds_the_people(
    int8_model: Path, towncentre_frame: tuple[np.ndarray, np.ndarray]
) -> None:
    frame, gt = towncentre_frame
    counts = {}
    for imgsz in (640, 960):
        det = OpenVinoDetector(str(int8_model), confidence=0.4, imgsz=imgsz, warmup=False)
        assert det.cut_head
        assert det.class_names[0] == "person"
        assert det.class_names[2] == "car"
        assert det.person_class_ids == {0}
        assert det.native_resolution  # any input size: a detector never scales up
        # at 960 the frame is enlarged first, as the analyser's "look closer" does
        scale = imgsz / frame.shape[1] if imgsz > frame.shape[1] else 1.0
        image = cv2.resize(frame, None, fx=scale, fy=scale) if scale > 1 else frame
        found = det.detect(image)
        found = Detections.from_arrays(
            xyxy=found.xyxy / scale, confidence=found.confidence, class_id=found.class_id,
            image_size=(690, 388), class_names=found.class_names,
        )  # fmt: skip
        assert found.image_size == (690, 388)
        people = found.xyxy[np.isin(found.class_id, list(det.person_class_ids))]
        assert {found.class_names[int(c)] for c in found.class_id} <= set(det.class_names.values())
        assert (people[:, 2:] > people[:, :2]).all()
        heights = people[:, 3] - people[:, 1]
        assert heights.min() > 10
        assert heights.max() < 200  # people in this scene are 20–110 px tall
        matched = _matched(people, gt)
        assert matched >= 0.8 * len(people), (imgsz, matched, len(people))
        counts[imgsz] = (len(people), matched)
    n640, m640 = counts[640]
    n960, m960 = counts[960]
    assert n640 >= 10
    assert n960 >= 14, "at 960 (upscaled) the small people of the dense scene are found"
    assert m960 >= m640


def test_ir_by_xml_through_the_config(int8_model: Path) -> None:
    xml = int8_model / "yolov8n.xml"
    text = f"detector: {{model: '{xml}', imgsz: 320, confidence: 0.3, person_classes: [person]}}"
    cfg = parse_config(text).detector  # no backend: openvino
    assert isinstance(cfg, OpenVinoDetectorConfig)
    assert cfg.person_classes == ["person"]
    det = cfg.build(warmup=False)
    assert det.name.startswith("openvino:yolov8n:")
    frame = np.full((240, 320, 3), 114, np.uint8)
    assert len(det.detect(frame)) == 0  # grey: nothing, and no crash at a non-square size


def test_ir_without_metadata_yaml_takes_names_from_the_ir(int8_model: Path, tmp_path: Path) -> None:
    import shutil

    for name in ("yolov8n.xml", "yolov8n.bin"):
        shutil.copyfile(int8_model / name, tmp_path / name)
    det = OpenVinoDetector(str(tmp_path), imgsz=320, warmup=False)
    assert det.class_names[0] == "person"
    assert det.class_names[9] == "traffic_light"  # ultralytics stores labels without spaces
    assert det.person_class_ids == {0}


def test_ir_on_the_onnx_backend_is_refused_with_advice(int8_model: Path) -> None:
    with pytest.raises(DetectorError, match="backend: openvino"):
        build_detector(str(int8_model), backend="onnx", warmup=False)


def test_unknown_person_class_is_refused(int8_model: Path) -> None:
    with pytest.raises(DetectorError, match="pedestrian"):
        build_detector(str(int8_model), person_classes=["pedestrian"], backend="openvino")


def test_person_classes_are_refused_by_backends_without_them() -> None:
    with pytest.raises(DetectorError, match="person_classes"):
        build_detector("default", backend="ultralytics", person_classes=["person"])


# --------------------------------------------------------------------------- a static ONNX


def _tiny_static_yolo(path: Path, nc: int = 2, size: int = 64) -> None:
    """A YOLOv8-shaped static ONNX: per stride a box conv (64 ch) and a class conv (nc ch),
    concatenated (the 4-D head outputs), flattened and concatenated over anchors — the
    structure the cut looks for — followed by a decoding stand-in with the static anchors."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, inits, flat = [], [], []
    inits.append(numpy_helper.from_array(np.array([1, 4 * REG_MAX + nc, -1], np.int64), "shape"))
    for s in (8, 16, 32):
        for part, ch in (("box", 4 * REG_MAX), ("cls", nc)):
            w = rng.normal(0, 0.5, (ch, 3, s, s)).astype(np.float32)
            inits.append(numpy_helper.from_array(w, f"w_{part}{s}"))
            nodes.append(
                helper.make_node("Conv", ["images", f"w_{part}{s}"], [f"{part}{s}"], strides=[s, s])
            )
        nodes.append(helper.make_node("Concat", [f"box{s}", f"cls{s}"], [f"head{s}"], axis=1))
        nodes.append(helper.make_node("Reshape", [f"head{s}", "shape"], [f"flat{s}"]))
        flat.append(f"flat{s}")
    anchors = sum((size // s) ** 2 for s in (8, 16, 32))
    nodes.append(helper.make_node("Concat", flat, ["all"], axis=2))
    # a baked-in constant of the static anchor count: why the whole graph cannot be reshaped
    inits.append(numpy_helper.from_array(np.ones((1, 1, anchors), np.float32), "baked"))
    nodes.append(helper.make_node("Mul", ["all", "baked"], ["output0"]))
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])],
        [
            helper.make_tensor_value_info(
                "output0", TensorProto.FLOAT, [1, 4 * REG_MAX + nc, anchors]
            )
        ],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, {"names": "{0: 'person', 1: 'car'}"})
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def test_static_onnx_is_cut_and_runs_at_any_size_on_both_runtimes(tmp_path: Path) -> None:
    import onnxruntime as ort
    import openvino as ov

    path = tmp_path / "tiny.onnx"
    _tiny_static_yolo(path)
    names = {0: "person", 1: "car"}
    prepared = prepare_onnx_model(path, names)
    assert prepared.cut
    assert prepared.num_classes == 2
    x = np.random.default_rng(1).random((2, 3, 96, 128), dtype=np.float32)
    session = ort.InferenceSession(prepared.model, providers=["CPUExecutionProvider"])
    maps = session.run(None, {session.get_inputs()[0].name: x})
    assert [m.shape for m in maps] == [(2, 66, 12, 16), (2, 66, 6, 8), (2, 66, 3, 4)]

    core = ov.Core()
    cut = prepare_openvino_model(core.read_model(str(path)), names)
    assert cut.cut
    request = core.compile_model(cut.model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    ov_out = request(x)
    for i, m in enumerate(maps):
        np.testing.assert_allclose(ov_out[i], m, rtol=1e-3, atol=1e-3)

    for backend in ("onnx", "openvino"):
        det = build_detector(
            str(path),
            0.5,
            backend=backend,
            imgsz=128,
            warmup=False,
            cache_dir=tmp_path / "cache",
        )
        assert det.class_names == names
        assert det.person_class_ids == {0}
        out = det.detect(np.zeros((72, 100, 3), np.uint8))
        assert out.image_size == (100, 72)

"""The ``detector:`` section: one config model per backend, discriminated on ``backend``.

A key of another backend is an error at its file and line; a section without ``backend`` is
the OpenVINO one; every backend's model survives a round trip through YAML, Python and JSON.
"""

from __future__ import annotations

import textwrap
from typing import Any

import pytest
import yaml
from pydantic import TypeAdapter, ValidationError

from gridwatch.config import ConfigError, GridwatchConfig, parse_config
from gridwatch.detectors import (
    BACKENDS,
    DEFAULT_BACKEND,
    DarknetDetectorConfig,
    DetectorConfig,
    DetectorError,
    DetectorSettings,
    OnnxDetectorConfig,
    OpenVinoDetectorConfig,
    UltralyticsDetectorConfig,
    backend_config,
    backends_with,
    build_detector,
    with_backend,
)

ADAPTER: TypeAdapter[Any] = TypeAdapter(DetectorConfig)


def errors_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "cfg.yaml")
    return [str(i) for i in info.value.issues]


# ------------------------------------------------------------------------------- the default


@pytest.mark.parametrize(
    "text",
    ["", "timezone: Asia/Shanghai\n", "detector: {}\n", "detector: {model: default, imgsz: 320}\n"],
)
def test_backend_defaults_to_openvino_when_omitted(text: str) -> None:
    cfg = parse_config(text, "cfg.yaml").detector
    assert DEFAULT_BACKEND == "openvino"
    assert isinstance(cfg, OpenVinoDetectorConfig)
    assert cfg.backend == "openvino"
    assert (cfg.precision, cfg.streams, cfg.person_classes) == ("f32", None, None)


def test_defaults_are_those_of_the_flat_section() -> None:
    """Every key and default of the section before it was split per backend."""
    expected = {
        "backend": "openvino",
        "model": "default",
        "confidence": 0.25,
        "iou": 0.5,
        "imgsz": 640,
        "threads": None,
        "precision": "f32",
        "streams": None,
        "person_classes": None,
    }
    assert GridwatchConfig().detector.model_dump() == expected
    assert ADAPTER.validate_python({}).model_dump() == expected
    for backend in BACKENDS:  # each key has its one default on every backend that takes it
        dumped = ADAPTER.validate_python({"backend": backend}).model_dump()
        assert dumped == {**{k: expected[k] for k in dumped}, "backend": backend}
    assert set().union(*(backend_config(b).model_fields for b in BACKENDS)) == set(expected)


def test_backend_picks_the_model() -> None:
    models = {
        "ultralytics": UltralyticsDetectorConfig,
        "darknet": DarknetDetectorConfig,
        "openvino": OpenVinoDetectorConfig,
        "onnx": OnnxDetectorConfig,
    }
    assert set(models) == set(BACKENDS)
    for name, model in models.items():
        cfg = parse_config(f"detector: {{backend: {name}}}\n").detector
        assert type(cfg) is model
        assert cfg.backend == name
        assert backend_config(name) is model
        assert issubclass(model, DetectorSettings)


def test_schema_lists_the_backends() -> None:
    schema = GridwatchConfig.model_json_schema()
    detector = schema["properties"]["detector"]
    assert detector["discriminator"]["propertyName"] == "backend"
    assert set(detector["discriminator"]["mapping"]) == set(BACKENDS)
    assert detector["title"]
    assert detector["description"]
    for ref in detector["discriminator"]["mapping"].values():
        model = schema["$defs"][ref.rsplit("/", 1)[1]]
        assert model["additionalProperties"] is False
        for name, field in model["properties"].items():
            assert field.get("title"), (ref, name)
            assert field.get("description"), (ref, name)


# ------------------------------------------------------------- keys of another backend: errors

SECTION = textwrap.dedent(
    """\
    timezone: Asia/Shanghai
    detector:
      backend: {backend}
      {key}: {value}
      model: default
    """
)


@pytest.mark.parametrize(
    ("backend", "key", "value", "owners"),
    [
        ("ultralytics", "precision", "bf16", "openvino"),
        ("darknet", "precision", "bf16", "openvino"),
        ("onnx", "precision", "bf16", "openvino"),
        ("ultralytics", "streams", "2", "openvino"),
        ("onnx", "streams", "2", "openvino"),
        ("ultralytics", "person_classes", "[person]", "openvino or onnx"),
        ("darknet", "person_classes", "[person]", "openvino or onnx"),
    ],
)
def test_a_key_of_another_backend_is_an_error_at_its_line(
    backend: str, key: str, value: str, owners: str
) -> None:
    text = SECTION.format(backend=backend, key=key, value=value)
    assert errors_of(text) == [
        f"cfg.yaml:4:3: detector.{key}: unknown field {key!r} for backend {backend} "
        f"(it is a key of backend {owners})"
    ]


@pytest.mark.parametrize(
    ("backend", "key", "value"),
    [
        ("openvino", "precision", "bf16"),
        ("openvino", "streams", "2"),
        ("openvino", "person_classes", "[person]"),
        ("onnx", "person_classes", "[person]"),
        ("darknet", "threads", "2"),
        ("ultralytics", "imgsz", "320"),
    ],
)
def test_a_key_of_the_backend_is_taken(backend: str, key: str, value: str) -> None:
    cfg = parse_config(SECTION.format(backend=backend, key=key, value=value)).detector
    assert getattr(cfg, key) == yaml.safe_load(value)


def test_without_backend_an_openvino_key_is_taken_and_an_error_is_located() -> None:
    """The default backend's tag is not in the document: the error still finds its line."""
    text = "detector:\n  model: default\n  precision: bf16\n  streams: 0\n  imgsz: 10\n"
    assert sorted(errors_of(text)) == [
        "cfg.yaml:4:3: detector.streams: Input should be greater than or equal to 1",
        "cfg.yaml:5:3: detector.imgsz: Input should be greater than or equal to 64",
    ]
    assert errors_of("detector: {model: default, prec: f32}\n") == [
        "cfg.yaml:1:28: detector.prec: unknown field 'prec'"
    ]


def test_unknown_backend_is_an_error_at_its_line() -> None:
    text = "timezone: Asia/Shanghai\ndetector:\n  backend: tensorrt\n"
    assert errors_of(text) == [
        "cfg.yaml:3:3: detector.backend: unknown detector backend 'tensorrt'; "
        "known: ultralytics, darknet, openvino, onnx"
    ]


def test_a_bad_value_of_a_named_backend_is_located() -> None:
    text = "detector:\n  backend: ultralytics\n  iou: 0\n"
    assert errors_of(text) == ["cfg.yaml:3:3: detector.iou: Input should be greater than 0"]


def test_python_construction_forbids_the_keys_of_other_backends() -> None:
    with pytest.raises(ValidationError, match="precision"):
        UltralyticsDetectorConfig(precision="bf16")  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="person_classes"):
        ADAPTER.validate_python({"backend": "darknet", "person_classes": ["person"]})


# ---------------------------------------------------------------------------------- round trips

EXAMPLES: dict[str, dict[str, Any]] = {
    "ultralytics": {"model": "/opt/w/best.pt", "confidence": 0.4, "iou": 0.6, "imgsz": 960},
    "darknet": {"model": "yolov3-tiny", "confidence": 0.3, "iou": 0.45, "imgsz": 608, "threads": 2},
    "openvino": {
        "model": "/opt/m/yolov8n_int8_openvino_model",
        "confidence": 0.35,
        "iou": 0.55,
        "imgsz": 320,
        "threads": 1,
        "precision": "bf16",
        "streams": 2,
        "person_classes": ["person", "rider"],
    },
    "onnx": {"model": "/opt/m/yolov8n.onnx", "threads": 3, "person_classes": ["Person"]},
}


@pytest.mark.parametrize("backend", BACKENDS)
def test_each_backend_round_trips(backend: str) -> None:
    cfg = ADAPTER.validate_python({"backend": backend, **EXAMPLES[backend]})
    assert type(cfg) is backend_config(backend)
    dumped = cfg.model_dump()
    assert {k: dumped[k] for k in EXAMPLES[backend]} == EXAMPLES[backend]
    # Python, JSON, and YAML through the config loader give the same model back
    assert ADAPTER.validate_python(dumped) == cfg
    assert ADAPTER.validate_json(ADAPTER.dump_json(cfg)) == cfg
    assert parse_config(yaml.safe_dump({"detector": dumped}), "cfg.yaml").detector == cfg
    assert (
        GridwatchConfig.model_validate_json(
            GridwatchConfig(detector=cfg).model_dump_json()
        ).detector
        == cfg
    )
    # and the model's own constructor takes its dump
    assert type(cfg).model_validate(dumped) == cfg


# --------------------------------------------------------------------------- switching, building


def test_with_backend_keeps_the_shared_keys() -> None:
    ov = OpenVinoDetectorConfig(imgsz=320, threads=2, precision="bf16", person_classes=["p"])
    onnx = with_backend(ov, "onnx")
    assert isinstance(onnx, OnnxDetectorConfig)
    assert (onnx.imgsz, onnx.threads, onnx.person_classes) == (320, 2, ["p"])
    ul = with_backend(onnx, "ultralytics")
    assert isinstance(ul, UltralyticsDetectorConfig)
    assert ul == UltralyticsDetectorConfig(imgsz=320, threads=2)
    assert with_backend(ov, "openvino") is ov
    with pytest.raises(DetectorError, match="unknown detector backend 'tensorrt'"):
        with_backend(ov, "tensorrt")


def test_model_copy_cannot_change_the_backend() -> None:
    """It would keep the old backend's model (and builder) under the new name."""
    cfg = UltralyticsDetectorConfig()
    with pytest.raises(ValueError, match="with_backend"):
        cfg.model_copy(update={"backend": "openvino"})
    assert cfg.model_copy(update={"imgsz": 320}).imgsz == 320


def test_backends_with() -> None:
    assert backends_with("precision") == ["openvino"]
    assert backends_with("person_classes") == ["openvino", "onnx"]
    assert backends_with("model") == list(BACKENDS)
    assert backends_with("upscale") == []


def test_build_detector_refuses_before_loading_anything() -> None:
    """The keyword interface is checked by the backend's model, so these fail in microseconds."""
    with pytest.raises(DetectorError, match="unknown detector backend 'tensorrt'"):
        build_detector("default", backend="tensorrt")
    with pytest.raises(DetectorError, match="person_classes needs backend openvino or onnx"):
        build_detector("default", backend="ultralytics", person_classes=["person"])
    with pytest.raises(DetectorError, match="precision needs backend openvino, not 'onnx'"):
        build_detector("default", backend="onnx", precision="bf16")
    with pytest.raises(ValueError, match="streams"):
        build_detector("default", backend="openvino", streams=0)


def test_build_detector_builds_through_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """``build_detector`` is the config's ``build``: config keys validated, the rest passed on."""
    built: list[tuple[DetectorSettings, dict[str, Any]]] = []

    def fake_build(self: DetectorSettings, **runtime: Any) -> Any:
        built.append((self, runtime))
        return "detector"

    for backend in BACKENDS:
        monkeypatch.setattr(backend_config(backend), "build", fake_build)
    assert build_detector("x.onnx", 0.4, backend=" ONNX ", threads=2, warmup=False) == "detector"
    cfg, runtime = built[-1]
    assert cfg == OnnxDetectorConfig(model="x.onnx", confidence=0.4, threads=2)
    assert runtime == {"warmup": False}
    # a key of another backend left at None is what the old factory ignored too
    build_detector("default", backend="darknet", person_classes=None, streams=None, imgsz=608)
    assert built[-1] == (DarknetDetectorConfig(imgsz=608), {})

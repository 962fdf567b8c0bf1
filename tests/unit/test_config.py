"""Config validation: every bad field is reported with file, line and field path."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from gridwatch.config import ConfigError, load_config, parse_config

REPO = Path(__file__).resolve().parents[2]

GOOD = textwrap.dedent(
    """\
    timezone: Asia/Shanghai
    nats: {url: "nats://127.0.0.1:4222"}
    detector: {model: default, confidence: 0.25}
    schedules:
      school-hours:
        - {days: [mon, tue, wed, thu, fri], between: ["07:00", "08:30"]}
    grids:
      - {id: g1, name: "第1网格"}
    cameras:
      - id: cam-1
        name: "南门"
        grid: g1
        url: "rtsp://127.0.0.1:8554/gate"
        analysis_fps: 2
        zones:
          - {id: apron, polygon: [[0.05, 0.40], [0.95, 0.40], [0.95, 0.98], [0.05, 0.98]]}
        rules:
          - {type: crowding, zone: apron, min_count: 6, min_duration_s: 10, clear_after_s: 15,
             schedule: school-hours}
    """
)


def errors_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "cfg.yaml")
    return [str(i) for i in info.value.issues]


def test_good_config_parses() -> None:
    cfg = parse_config(GOOD, "cfg.yaml")
    cam = cfg.cameras[0]
    assert cam.rules[0].min_count == 6
    assert cam.zones[0].polygon[0] == (0.05, 0.40)
    assert cfg.schedules["school-hours"][0].minutes() == (7 * 60, 8 * 60 + 30)
    assert not cam.is_file


@pytest.mark.parametrize("path", ["configs/example.yaml", "configs/demo.yaml"])
def test_shipped_configs_are_valid(path: str) -> None:
    assert load_config(REPO / path).cameras


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("grid: g1", "grid: g9", "cfg.yaml:12:5: cameras[0].grid: unknown grid 'g9' (known: g1)"),
        (
            "zone: apron,",
            "zone: gate,",
            "cfg.yaml:18:26: cameras[0].rules[0].zone: unknown zone 'gate' (known: apron)",
        ),
        (
            "schedule: school-hours}",
            "schedule: nights}",
            "cfg.yaml:19:10: cameras[0].rules[0].schedule: unknown schedule 'nights'",
        ),
        (
            "min_count: 6",
            "min_count: -2",
            "cfg.yaml:18:39: cameras[0].rules[0].min_count: "
            "Input should be greater than or equal to 1",
        ),
        (
            "min_duration_s: 10",
            "min_duration_s: -1",
            "cfg.yaml:18:53: cameras[0].rules[0].min_duration_s: "
            "Input should be greater than or equal to 0",
        ),
        (
            "[0.05, 0.40], [0.95, 0.40], [0.95, 0.98], [0.05, 0.98]",
            "[0.05, 0.40], [0.95, 0.40]",
            "cfg.yaml:16:21: cameras[0].zones[0].polygon: List should have at least 3 items",
        ),
        (
            "[0.95, 0.98], [0.05, 0.98]",
            "[1.5, 0.98], [0.05, 0.98]",
            "cfg.yaml:16:21: cameras[0].zones[0].polygon: point 2 (1.5, 0.98) is outside 0..1",
        ),
        (
            "analysis_fps: 2",
            "analysis_fps: 0",
            "cameras[0].analysis_fps: Input should be greater than 0",
        ),
        (
            "analysis_fps: 2",
            "analysis_fps: 2\n    fps: 3",
            "cfg.yaml:15:5: cameras[0].fps: unknown field 'fps'",
        ),
        (
            '"07:00"',
            '"7am"',
            "cfg.yaml:6:41: schedules.school-hours[0].between: time '7am' must be HH:MM",
        ),
        ("[mon, tue,", "[monday, tue,", "schedules.school-hours[0].days[0]: Input should be 'mon'"),
        (
            "timezone: Asia/Shanghai",
            "timezone: Mars/Olympus",
            "cfg.yaml:1:1: timezone: unknown time zone",
        ),
        (
            'url: "rtsp://127.0.0.1:8554/gate"',
            'url: "http://x/y"',
            "cameras[0].url: url must be rtsp://",
        ),
        ("id: cam-1", "id: cam 1", "cameras[0].id: String should match pattern"),
        ('    name: "南门"\n', "", None),  # name is optional: still valid
    ],
)
def test_each_bad_field_is_reported_with_its_place(
    old: str, new: str, expected: str | None
) -> None:
    assert old in GOOD
    text = GOOD.replace(old, new, 1)
    if expected is None:
        parse_config(text, "cfg.yaml")
        return
    errors = errors_of(text)
    assert any(expected in e for e in errors), errors


def test_all_errors_are_reported_at_once() -> None:
    text = GOOD.replace("grid: g1", "grid: nowhere").replace("min_count: 6", "min_count: 0")
    errors = errors_of(text)
    assert len(errors) == 2
    assert any("min_count" in e for e in errors)
    assert any("unknown grid 'nowhere'" in e for e in errors)


def test_missing_required_field() -> None:
    text = GOOD.replace('    url: "rtsp://127.0.0.1:8554/gate"\n', "")
    assert any(
        e.startswith("cfg.yaml:10:5: cameras[0].url: required field is missing")
        for e in errors_of(text)
    )


def test_duplicate_ids() -> None:
    text = GOOD + textwrap.indent(GOOD.split("cameras:\n", 1)[1].replace("南门", "北门"), "")
    assert any("duplicate camera id 'cam-1'" in e for e in errors_of(text))


def test_yaml_syntax_error_has_position() -> None:
    errors = errors_of("cameras: [\n  - id: x\n")
    assert errors[0].startswith("cfg.yaml:")
    assert "(syntax)" in errors[0]


def test_a_key_given_twice_is_an_error_at_the_second() -> None:
    """PyYAML keeps the last of two equal keys: a second ``grids:`` would drop the first."""
    text = GOOD + "grids: [{id: other}]\n"
    errors = errors_of(text)
    line = text.count("\n")
    assert errors[0].startswith(f"cfg.yaml:{line}:1"), errors
    assert "duplicate key 'grids'" in errors[0]
    nested = "grids: [{id: g, name: a, name: b}]\ncameras: []\n"
    assert "duplicate key 'name'" in errors_of(nested)[0]


def test_top_level_must_be_mapping() -> None:
    assert "top level must be a mapping" in errors_of("- 1\n- 2\n")[0]


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.yaml")


def _models_under(model: type, seen: set[type] | None = None) -> set[type]:
    """Every pydantic model reachable from ``model``'s fields (lists, unions, dicts, optionals)."""
    import typing

    from pydantic import BaseModel

    seen = set() if seen is None else seen
    if model in seen:
        return seen
    seen.add(model)
    stack: list[object] = [f.annotation for f in model.model_fields.values()]  # type: ignore[attr-defined]
    while stack:
        t = stack.pop()
        if isinstance(t, type) and issubclass(t, BaseModel):
            _models_under(t, seen)
        stack.extend(typing.get_args(t))
    return seen


def test_every_field_has_title_and_description() -> None:
    """Walks the whole config schema from the top, so a new section cannot be forgotten."""
    from gridwatch.config import GridwatchConfig

    models = _models_under(GridwatchConfig)
    assert len(models) > 25  # rules, analysis, console, dispatch... all reached
    missing = [
        f"{m.__name__}.{name}"
        for m in models
        for name, f in m.model_fields.items()
        if not f.description or (not f.title and name != "id")
    ]
    assert not missing, missing

"""Config of the rules beyond crowding: every type parses, errors are located, the engine
builds each rule and resolves class names against the model."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest

from gridwatch.config import ConfigError, GridwatchConfig, parse_config
from gridwatch.model import Detections, IncidentState
from gridwatch.rules.base import FrameSample
from gridwatch.rules.engine import CameraRules, RuleBuildError
from gridwatch.rules.fall import FallRule
from gridwatch.rules.line_crossing import LineCrossingRule
from gridwatch.rules.offline import OfflineRule
from gridwatch.rules.registry import RULES
from gridwatch.rules.tamper import TamperRule

HEAD = textwrap.dedent(
    """\
    schedules:
      night: [{between: ["22:00", "06:00"]}]
    grids: [{id: g1}]
    cameras:
      - id: cam-1
        grid: g1
        url: rtsp://127.0.0.1:8554/gate
        analysis_fps: 5
        zones:
          - {id: lane, polygon: [[0, 0.5], [1, 0.5], [1, 1], [0, 1]]}
        rules:
    """
)
ALL_RULES = """\
      - {type: crowding, zone: lane, min_count: 5}
      - {type: loitering, zone: lane, min_dwell_s: 120, severity: info}
      - {type: intrusion, zone: lane, schedule: night, severity: critical}
      - {type: line_crossing, id: gate, line: [[0, 0.5], [1, 0.5]], forbidden_direction: in}
      - {type: vehicle_stop, zone: lane, min_dwell_s: 60}
      - {type: fall, min_duration_s: 5}
      - {type: tamper, checks: [covered, moved]}
      - {type: offline, offline_after_s: 20}
"""
COCO = {0: "person", 2: "car", 3: "motorbike", 5: "bus", 7: "truck"}


def cfg(rules: str = ALL_RULES) -> GridwatchConfig:
    return parse_config(HEAD + rules, "cfg.yaml")


def errors_of(rules: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        cfg(rules)
    return [str(i) for i in info.value.issues]


def test_every_rule_type_parses_and_builds() -> None:
    c = cfg()
    rules = CameraRules(c.cameras[0], c, person_classes={0}, class_names=COCO)
    assert [r.type for r in rules.rules] == [
        "crowding", "loitering", "intrusion", "line_crossing", "vehicle_stop", "fall",
    ]  # fmt: skip
    assert [type(r) for r in rules.frame_rules] == [TamperRule, OfflineRule]
    assert rules.needs_detections
    severity = {getattr(r, "rule_key", r.type): r.params.severity for r in rules.rules}  # type: ignore[attr-defined]
    assert severity["loitering/lane"] == "info"
    assert severity["intrusion/lane"] == "critical"
    assert rules.frame_rules[0].params.severity == "warning"  # type: ignore[attr-defined]
    line = next(r for r in rules.rules if isinstance(r, LineCrossingRule))
    assert line.rule_key == "line_crossing/gate"
    fall = next(r for r in rules.rules if isinstance(r, FallRule))
    assert fall.zone is None
    health = rules.health()
    counting = health.pop("counting")  # crowding counts over tracks (gridwatch.tracking.counting)
    assert health == {
        "tamper": [],
        "tamper_reference": False,
        "online": True,
        "offline": None,
    }
    assert counting["counted"] == 0
    assert counting["held"] == 0
    assert rules.counter is not None


def test_events_carry_their_rules_severity_and_zone_of() -> None:
    """The event sink reads the severity off the event: it never asks the rules again."""
    c = cfg(
        "      - {type: tamper, severity: critical}\n"
        "      - {type: offline, offline_after_s: 1, severity: info}\n"
    )
    rules = CameraRules(c.cameras[0], c)
    assert not rules.needs_detections
    assert rules.zone_of("tamper/covered") is None
    rules.update_frame(FrameSample(5.0, None, None, None))
    (raised,) = rules.update_frame(FrameSample(7.0, None, None, None))
    assert (raised.type, raised.state, raised.severity) == ("offline", IncidentState.RAISED, "info")
    c2 = cfg("      - {type: crowding, zone: lane, min_count: 1, min_duration_s: 0}\n")
    crowd = CameraRules(c2.cameras[0], c2, person_classes={0})
    one = Detections.from_arrays(
        xyxy=[[10, 60, 20, 90]], confidence=[0.9], class_id=[0], image_size=(100, 100)
    )
    (ev,) = crowd.update(one, 0.0)
    assert ev.severity == "warning"
    assert crowd.zone_of("crowding/lane") == crowd.zones["lane"]


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        (
            "      - {type: loitering, zone: lane, min_dwell_s: -3}\n",
            "cfg.yaml:12:39: cameras[0].rules[0].min_dwell_s: "
            "Input should be greater than or equal to 0",
        ),
        (
            "      - {type: loitering, zone: lane, dwell: 3}\n",
            "cfg.yaml:12:39: cameras[0].rules[0].dwell: unknown field 'dwell'",
        ),
        (
            "      - {type: loiter, zone: lane}\n",
            "cfg.yaml:12:10: cameras[0].rules[0].type: unknown rule type; known: crowding, "
            "loitering, intrusion, line_crossing, vehicle_stop, fall, tamper, offline, running, "
            "gathering, density, abandoned_object",
        ),
        (
            "      - {zone: lane}\n",
            "cfg.yaml:12:9: cameras[0].rules[0].type: required field is missing",
        ),
        (
            "      - {type: line_crossing, id: gate, line: [[0, 0.5], [1, 0.5]]}\n",
            "cfg.yaml:12:9: cameras[0].rules[0]: "
            "give exactly one of forbidden_direction and max_count",
        ),
        (
            "      - {type: line_crossing, id: gate, line: [[0, 0.5], [1.5, 0.5]], max_count: 3}\n",
            "cfg.yaml:12:41: cameras[0].rules[0].line: point 1 (1.5, 0.5) is outside 0..1",
        ),
        (
            "      - {type: intrusion, zone: yard}\n",
            "cfg.yaml:12:27: cameras[0].rules[0].zone: unknown zone 'yard' (known: lane)",
        ),
        (
            "      - {type: fall, schedule: nights}\n",
            "cfg.yaml:12:22: cameras[0].rules[0].schedule: "
            "unknown schedule 'nights' (known: night)",
        ),
        (
            "      - {type: tamper, checks: [smoke]}\n",
            "cfg.yaml:12:33: cameras[0].rules[0].checks[0]: Input should be 'covered', 'frozen', "
            "'defocused' or 'moved'",
        ),
        (
            "      - {type: offline}\n      - {type: offline}\n",
            "cfg.yaml:13:10: cameras[0].rules[1].type: "
            "only one offline rule per camera (rule 0 is one)",
        ),
        (
            "      - {type: fall, zone: lane}\n      - {type: fall, zone: lane}\n",
            "cfg.yaml:13:22: cameras[0].rules[1].zone: "
            "a second fall rule on zone 'lane' (rule 0 is one): merge them",
        ),
    ],
)
def test_rule_errors_are_located(rules: str, expected: str) -> None:
    assert expected in errors_of(rules)


@pytest.mark.parametrize(
    ("rules", "class_names", "message"),
    [
        (
            "      - {type: vehicle_stop, zone: lane}\n",
            {0: "Normal", 1: "Fall"},
            "no vehicle class",
        ),
        ("      - {type: intrusion, zone: lane, classes: [cat]}\n", COCO, "no class ['cat']"),
        (
            "      - {type: intrusion, zone: lane, classes: [person]}\n",
            None,
            "need the model's class names",
        ),
    ],
)
def test_engine_refuses_rules_the_model_cannot_serve(
    rules: str, class_names: dict[int, str] | None, message: str
) -> None:
    c = cfg(rules)
    with pytest.raises(RuleBuildError, match=message.replace("[", r"\[").replace("]", r"\]")):
        CameraRules(c.cameras[0], c, class_names=class_names)


def test_class_names_resolve_case_insensitively() -> None:
    c = cfg("      - {type: intrusion, zone: lane, classes: [Car, TRUCK]}\n")
    rules = CameraRules(c.cameras[0], c, class_names=COCO)
    assert rules.rules[0]._classes == frozenset({2, 7})  # type: ignore[attr-defined]


def test_walker_rules_at_low_fps_warn(caplog: pytest.LogCaptureFixture) -> None:
    c = cfg(ALL_RULES)
    cam = c.cameras[0].model_copy(update={"analysis_fps": 2.0})
    CameraRules(cam, c, person_classes={0}, class_names=COCO)
    assert "fall, intrusion, line_crossing follow walking people" in caplog.text
    caplog.clear()  # at the tracker's rate, no warning
    CameraRules(c.cameras[0].model_copy(update={"analysis_fps": 5.0}), c, person_classes={0},
                class_names=COCO)  # fmt: skip
    assert "follow walking people" not in caplog.text


def _fields(model: Any) -> list[tuple[str, Any]]:
    return list(model.model_fields.items())


@pytest.mark.parametrize("model", [cls.Config for cls in RULES.values()], ids=list(RULES))
def test_every_field_is_documented(model: Any) -> None:
    for name, field in _fields(model):
        assert field.title, f"{model.__name__}.{name} has no title"
        assert field.description, f"{model.__name__}.{name} has no description"


def test_schema_lists_the_rule_types() -> None:
    schema = GridwatchConfig.model_json_schema()
    mapping = schema["$defs"]["CameraConfig"]["properties"]["rules"]["items"]["discriminator"]
    assert sorted(mapping["mapping"]) == sorted(
        [
            "crowding",
            "loitering",
            "intrusion",
            "line_crossing",
            "vehicle_stop",
            "fall",
            "tamper",
            "offline",
            "running",
            "gathering",
            "density",
            "abandoned_object",
        ]
    )

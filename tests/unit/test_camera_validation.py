"""One camera is validated like a camera of a config file; URLs never show their password."""

from __future__ import annotations

import pytest

from gridwatch.config import (
    CameraConfig,
    ConfigError,
    _self_intersection,
    check_camera,
    parse_config,
)
from gridwatch.ingest.urls import redact_text, redact_url, url_has_redacted_password

CONFIG = parse_config(
    """
grids: [{id: g1}, {id: g2}]
schedules:
  school: [{days: [mon], between: ["07:00", "08:00"]}]
""",
    "deploy.yaml",
)
SQUARE = [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]]


def cam(**kw: object) -> dict[str, object]:
    return {"id": "cam-1", "grid": "g1", "url": "rtsp://10.0.0.1/s", **kw}


def messages(exc: ConfigError) -> list[str]:
    return [f"{i.field}: {i.message}" for i in exc.issues]


def test_a_valid_camera_passes() -> None:
    c = check_camera(
        cam(
            zones=[{"id": "z", "polygon": SQUARE}],
            rules=[{"type": "crowding", "zone": "z", "min_count": 3, "schedule": "school"}],
            privacy_masks=[{"id": "w", "polygon": [[0, 0], [0.2, 0], [0.2, 0.2]]}],
            lat=40.6,
            lon=109.8,
            sub_url="rtsp://10.0.0.1/sub",
        ),
        CONFIG,
    )
    assert isinstance(c, CameraConfig)
    assert c.privacy_masks[0].id == "w"
    assert c.lat == 40.6
    assert c.sub_url


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (cam(grid="g9"), "grid: unknown grid 'g9' (known: g1, g2)"),
        (
            cam(url="http://cam/x"),
            "url: url must be rtsp://, rtsps:// or a local file path, not http://",
        ),
        (cam(sub_url="ftp://cam/x"), "sub_url: url must be rtsp://"),
        (cam(lat=95), "lat: Input should be less than or equal to 90"),
        (cam(analysis_fps=0), "analysis_fps: Input should be greater than 0"),
        (cam(colour="red"), "colour: unknown field 'colour'"),
        (cam(id="bad id"), "id: String should match pattern"),
        (
            cam(zones=[{"id": "z", "polygon": [[0, 0], [1, 1], [1, 0], [0, 1]]}]),
            "zones[0].polygon: the polygon crosses itself (edge 0-1 crosses edge 2-3)",
        ),
        (
            cam(privacy_masks=[{"id": "m", "polygon": [[0, 0], [1, 1], [1, 0], [0, 1]]}]),
            "privacy_masks[0].polygon: the polygon crosses itself",
        ),
        (
            cam(rules=[{"type": "crowding", "zone": "nope", "min_count": 2}]),
            "rules[0].zone: unknown zone 'nope' (known: none defined)",
        ),
        (
            cam(
                zones=[{"id": "z", "polygon": SQUARE}],
                rules=[{"type": "crowding", "zone": "z", "min_count": 2, "schedule": "night"}],
            ),
            "rules[0].schedule: unknown schedule 'night' (known: school)",
        ),
        (
            cam(privacy_masks=[{"id": "m", "polygon": SQUARE}, {"id": "m", "polygon": SQUARE}]),
            "privacy_masks[1].id: duplicate mask id 'm'",
        ),
    ],
)
def test_every_problem_is_named(data: dict[str, object], expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        check_camera(data, CONFIG)
    assert any(m.startswith(expected) for m in messages(info.value)), messages(info.value)


def test_all_problems_at_once() -> None:
    with pytest.raises(ConfigError) as info:
        check_camera(cam(grid="g9", lat=200, url="http://x"), CONFIG)
    fields = sorted(i.field for i in info.value.issues)
    assert fields == ["grid", "lat", "url"]


def test_the_config_check_reports_camera_problems_the_same_way() -> None:
    text = """
grids: [{id: g1}]
cameras:
  - id: c
    grid: g1
    url: rtsp://h/s
    zones: [{id: z, polygon: [[0, 0], [1, 1], [1, 0], [0, 1]]}]
    privacy_masks:
      - {id: m, polygon: [[0, 0], [0.5, 0], [0.5, 0.5]]}
      - {id: m, polygon: [[0, 0], [0.5, 0], [0.5, 0.5]]}
"""
    with pytest.raises(ConfigError) as info:
        parse_config(text, "f.yaml")
    got = [str(i) for i in info.value.issues]
    assert any("f.yaml:7:" in g and "crosses itself" in g for g in got), got
    assert any("cameras[0].privacy_masks[1].id: duplicate mask id 'm'" in g for g in got), got


@pytest.mark.parametrize(
    ("polygon", "crossing"),
    [
        ([(0, 0), (1, 0), (1, 1), (0, 1)], None),
        ([(0, 0), (1, 1), (1, 0), (0, 1)], (0, 2)),
        ([(0.1, 0.1), (0.5, 0.9), (0.9, 0.1)], None),
        # a concave "C" is fine
        ([(0, 0), (1, 0), (1, 0.2), (0.2, 0.2), (0.2, 0.8), (1, 0.8), (1, 1), (0, 1)], None),
        # a vertex touching a non-adjacent edge is not
        ([(0, 0), (1, 0), (0.5, 0.0), (0.5, 1)], (0, 2)),
    ],
)
def test_self_intersection(polygon: list[tuple[float, float]], crossing: object) -> None:
    assert _self_intersection(polygon) == crossing


def test_passwords_are_redacted() -> None:
    url = "rtsp://admin:p%40ss:w0rd@10.0.0.7:554/Streaming/Channels/102"
    assert redact_url(url) == "rtsp://admin:***@10.0.0.7:554/Streaming/Channels/102"
    assert redact_url("rtsp://10.0.0.7/x") == "rtsp://10.0.0.7/x"
    assert redact_url("/videos/demo.mp4") == "/videos/demo.mp4"
    msg = "ConnectionRefusedError: [Errno 111] Connection refused: 'rtsp://u:secret@h/x'"
    assert "secret" not in redact_text(msg)
    assert "rtsp://u:***@h/x" in redact_text(msg)
    assert url_has_redacted_password("rtsp://u:***@h/x")
    assert not url_has_redacted_password("rtsp://u:pw@h/x")

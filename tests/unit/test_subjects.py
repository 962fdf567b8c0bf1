"""Subject names: the grid is a subject token, so permissions can route by grid."""

from __future__ import annotations

import pytest

from gridwatch.alerts.subjects import (
    ALERTS_PREFIX,
    alert_filter,
    alert_subject,
    check_token,
    health_subject,
)

BAD_TOKENS = [
    "",
    "a.b",
    "a*",
    "*",
    ">",
    "a>",
    "a b",
    "tab\t",
    "grød",
    "a/b",
    "\na",
    "a\n",  # a trailing newline is not part of a token
]


def test_alert_subject_layout() -> None:
    assert alert_subject("kdl-01", "gate-9", "crowding") == "gw.v1.alerts.kdl-01.gate-9.crowding"
    assert alert_subject("G_1", "c", "t").startswith(ALERTS_PREFIX + ".")


@pytest.mark.parametrize("bad", BAD_TOKENS)
@pytest.mark.parametrize("position", [0, 1, 2])
def test_alert_subject_rejects_bad_tokens(bad: str, position: int) -> None:
    args = ["grid", "cam", "type"]
    args[position] = bad
    with pytest.raises(ValueError, match="NATS subject token"):
        alert_subject(*args)


@pytest.mark.parametrize(
    ("grid", "camera", "expected"),
    [
        (None, None, "gw.v1.alerts.>"),
        ("kdl-01", None, "gw.v1.alerts.kdl-01.*.*"),
        (None, "gate-9", "gw.v1.alerts.*.gate-9.*"),
        ("kdl-01", "gate-9", "gw.v1.alerts.kdl-01.gate-9.*"),
    ],
)
def test_alert_filter(grid: str | None, camera: str | None, expected: str) -> None:
    assert alert_filter(grid, camera) == expected


@pytest.mark.parametrize("bad", ["a.b", "*", ">", "a b"])
def test_alert_filter_rejects_wildcards_smuggled_in(bad: str) -> None:
    with pytest.raises(ValueError, match="grid id"):
        alert_filter(grid=bad)
    with pytest.raises(ValueError, match="camera id"):
        alert_filter(camera=bad)


def test_health_subject_and_error_names_the_field() -> None:
    assert health_subject("gate-9") == "gw.v1.health.gate-9"
    with pytest.raises(ValueError, match=r"camera id 'a\.b'"):
        health_subject("a.b")
    assert check_token("ok_-9") == "ok_-9"

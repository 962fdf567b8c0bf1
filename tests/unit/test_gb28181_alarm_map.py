"""Rule → alarm mapping, priorities, Chinese descriptions and local time, on real Alert models."""

from __future__ import annotations

import datetime as dt

import pytest

from gridwatch.gb28181.alarm_map import (
    DEFAULT_ALARM_TYPES,
    DESCRIPTION_MAX_CHARS,
    RULE_NAMES_ZH,
    AlarmCode,
    alarm_code,
    describe_zh,
    local_time,
    priority,
)
from gridwatch.gb28181.manscdp import alarm_notify, outside_gb2312, wvp_parse
from gridwatch.model import Alert, IncidentEvent, IncidentState
from gridwatch.rules.registry import RULE_TYPES

ISSUE_17_TABLE = {
    "crowding": (5, 10, None),
    "intrusion": (5, 6, 1),
    "line_crossing": (5, 5, None),
    "loitering": (5, 8, None),
    "tamper": (5, 11, None),
    "running": (5, 12, None),
    "abandoned_object": (5, 3, None),
    "offline": (6, None, None),
}


def test_default_table_is_exactly_the_issue() -> None:
    assert {k: tuple(v) for k, v in DEFAULT_ALARM_TYPES.items()} == ISSUE_17_TABLE


def test_overrides_and_fallback() -> None:
    table = {"crowding": AlarmCode(5, 9)}
    assert alarm_code("crowding", table) == AlarmCode(5, 9, None)
    assert alarm_code("loitering", table) == AlarmCode(5, 8, None)
    assert alarm_code("vehicle_stop") == AlarmCode(5, None, None)


@pytest.mark.parametrize(
    ("severity", "expected"), [("critical", 1), ("warning", 2), ("info", 3), ("", 4)]
)
def test_priorities(severity: str, expected: int) -> None:
    assert priority(severity) == expected


def _alert(rule: str, zone: str | None, count: int, started: float = 1_764_900_000.0) -> Alert:
    event = IncidentEvent(
        f"{rule}/{zone}", rule, IncidentState.RAISED, zone, started, started, count, count, (), 0
    )
    return Alert.from_event(
        event, camera_id="gate", camera_name="东门 1", grid_id="north", snapshot=None
    )


def test_description_of_real_alerts() -> None:
    assert (
        describe_zh(_alert("crowding", "gate-apron", 18), zone_name="校门口")
        == "人群聚集: 校门口 区域 18 人"
    )
    assert describe_zh(_alert("intrusion", "yard", 2)) == "区域入侵: yard 区域 2 人"
    assert describe_zh(_alert("tamper", None, 0)) == "视频异常: 东门 1"
    assert describe_zh(_alert("fall", None, 1)) == "人员跌倒: 东门 1 1 人"
    assert describe_zh(_alert("new_rule", None, 0)) == "new_rule: 东门 1"
    assert len(describe_zh(_alert("crowding", "z" * 500, 3))) == DESCRIPTION_MAX_CHARS


def test_rule_names_cover_every_rule_type_and_stay_in_gb2312() -> None:
    assert set(RULE_TYPES) <= set(RULE_NAMES_ZH)
    assert all(not outside_gb2312(n) for n in RULE_NAMES_ZH.values())


def test_local_time_in_configured_zone() -> None:
    alert = _alert(
        "crowding", "z", 6, started=dt.datetime(2026, 12, 5, 16, 30, 0, tzinfo=dt.UTC).timestamp()
    )
    assert local_time(alert.started_at) == "2026-12-06T00:30:00"
    assert local_time(alert.started_at, "Europe/Berlin") == "2026-12-05T17:30:00"
    assert local_time(dt.datetime(2026, 12, 5, 16, 30)) == "2026-12-06T00:30:00"  # naive = UTC


def test_alert_to_alarm_body_end_to_end() -> None:
    """A real alert through the mapping into a body WVP reads with the same values."""
    alert = _alert("intrusion", "yard", 3)
    code = alarm_code(alert.type)
    body = alarm_notify(
        1,
        "34020000001320000001",
        priority(alert.severity),
        code.method,
        local_time(alert.started_at),
        describe_zh(alert),
        117.2,
        31.8,
        code.alarm_type,
        code.event_type,
    )
    got = wvp_parse(body)
    assert got["AlarmMethod"] == "5"
    assert got["AlarmType"] == "6"
    assert got["Info"]["EventType"] == "1"
    assert got["AlarmPriority"] == "2"
    assert got["AlarmDescription"] == "区域入侵: yard 区域 3 人"
    assert got["AlarmTime"] == local_time(alert.started_at)

"""From a gridwatch alert to a GB/T 28181 Alarm: method, type, priority, description, time.

The default table is the one issue 17 agreed with the superior's administrators; a deployment
overrides entries under ``gb28181.alarm_types``
(:class:`~gridwatch.gb28181.settings.Gb28181Settings`).
Video alarm types are GB/T 28181-2016 Table A.2 (AlarmMethod 5): 3 abandoned object,
5 tripwire, 6 intrusion (EventType 1 enter, 2 leave), 8 loitering, 10 density,
11 video abnormal, 12 fast moving. AlarmMethod 6 is a device fault.

>>> DEFAULT_ALARM_TYPES["crowding"]
AlarmCode(method=5, alarm_type=10, event_type=None)
>>> alarm_code("intrusion")
AlarmCode(method=5, alarm_type=6, event_type=1)
>>> alarm_code("fall")
AlarmCode(method=5, alarm_type=None, event_type=None)
>>> priority("critical"), priority("info"), priority("bogus")
(1, 3, 4)
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Mapping
from typing import NamedTuple, Protocol

VIDEO = 5
"""AlarmMethod 5: video alarm."""
DEVICE_FAULT = 6
"""AlarmMethod 6: device fault alarm."""

DEFAULT_TIME_ZONE = "Asia/Shanghai"
DESCRIPTION_MAX_CHARS = 128
"""AlarmDescription is cut to this (WVP stores it in a varchar(255) column)."""


class AlarmCode(NamedTuple):
    """What a rule type becomes: ``(AlarmMethod, AlarmType, EventType)``; ``alarm_type`` None
    means no ``<Info>`` element (the superior then shows the method only)."""

    method: int
    alarm_type: int | None = None
    event_type: int | None = None


DEFAULT_ALARM_TYPES: Mapping[str, AlarmCode] = {
    "crowding": AlarmCode(VIDEO, 10),
    "intrusion": AlarmCode(VIDEO, 6, 1),
    "line_crossing": AlarmCode(VIDEO, 5),
    "loitering": AlarmCode(VIDEO, 8),
    "tamper": AlarmCode(VIDEO, 11),
    "running": AlarmCode(VIDEO, 12),
    "abandoned_object": AlarmCode(VIDEO, 3),
    "offline": AlarmCode(DEVICE_FAULT),
}
"""Rule type → alarm code, exactly as issue 17 lists it (docs/gb28181.md, "Alarm mapping")."""

FALLBACK = AlarmCode(VIDEO)
"""A rule type without an entry (fall, vehicle_stop, ...): a plain video alarm, no AlarmType."""

SEVERITY_PRIORITY: Mapping[str, int] = {"critical": 1, "warning": 2, "info": 3}
"""Alert severity → AlarmPriority (1 highest … 4 lowest); anything else is 4."""

RULE_NAMES_ZH: Mapping[str, str] = {
    "crowding": "人群聚集",
    "intrusion": "区域入侵",
    "line_crossing": "越线",
    "loitering": "徘徊",
    "tamper": "视频异常",
    "running": "快速奔跑",
    "abandoned_object": "物品遗留",
    "offline": "设备离线",
    "fall": "人员跌倒",
    "vehicle_stop": "车辆违停",
    "density": "人群密度",
    "gathering": "人员聚集",
    "dwell": "人员逗留",
    "people_count": "人数统计",
}
"""Chinese rule names for AlarmDescription (all within GB2312)."""


def alarm_code(rule_type: str, table: Mapping[str, AlarmCode] | None = None) -> AlarmCode:
    """The code of a rule type: ``table`` (the configured one) first, then the defaults."""
    if table is not None and rule_type in table:
        return table[rule_type]
    return DEFAULT_ALARM_TYPES.get(rule_type, FALLBACK)


def priority(severity: str) -> int:
    """AlarmPriority of an alert severity (1 highest … 4)."""
    return SEVERITY_PRIORITY.get(severity, 4)


class AlertLike(Protocol):
    """What :func:`describe_zh` reads of an alert (:class:`gridwatch.model.Alert` has it)."""

    @property
    def type(self) -> str: ...
    @property
    def zone_id(self) -> str | None: ...
    @property
    def count(self) -> int: ...
    @property
    def camera_name(self) -> str: ...


def describe_zh(alert: AlertLike, *, zone_name: str | None = None) -> str:
    """The Chinese AlarmDescription: rule, zone (or camera) and count.

    >>> from types import SimpleNamespace as A
    >>> describe_zh(A(type="crowding", zone_id="gate", count=18, camera_name="校门"),
    ...             zone_name="校门口")
    '人群聚集: 校门口 区域 18 人'
    >>> describe_zh(A(type="offline", zone_id=None, count=0, camera_name="东门 1"))
    '设备离线: 东门 1'
    """
    rule = RULE_NAMES_ZH.get(alert.type, alert.type)
    where = zone_name or alert.zone_id
    if where:
        text = f"{rule}: {where} 区域 {alert.count} 人"
    elif alert.count > 0:
        text = f"{rule}: {alert.camera_name} {alert.count} 人"
    else:
        text = f"{rule}: {alert.camera_name}".rstrip(": ")
    return text[:DESCRIPTION_MAX_CHARS]


def local_time(when: dt.datetime | float, time_zone: str = DEFAULT_TIME_ZONE) -> str:
    """``YYYY-MM-DDTHH:MM:SS`` in the deployment's zone (GB/T 28181 times carry no offset).

    >>> local_time(dt.datetime(2026, 12, 5, 4, 30, 15, 900000, tzinfo=dt.UTC))
    '2026-12-05T12:30:15'
    >>> local_time(0.0, "UTC")
    '1970-01-01T00:00:00'
    """
    tz = zoneinfo.ZoneInfo(time_zone)
    if isinstance(when, dt.datetime):
        moment = when if when.tzinfo else when.replace(tzinfo=dt.UTC)
    else:
        moment = dt.datetime.fromtimestamp(when, tz=dt.UTC)
    return moment.astimezone(tz).strftime("%Y-%m-%dT%H:%M:%S")

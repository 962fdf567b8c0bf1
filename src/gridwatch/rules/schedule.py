"""Weekly schedule windows, evaluated in the deployment's local time zone.

>>> import zoneinfo, datetime as dt
>>> tz = zoneinfo.ZoneInfo("Asia/Shanghai")
>>> s = Schedule([(frozenset({"mon"}), 7 * 60, 8 * 60 + 30)], tz)
>>> monday_0730 = dt.datetime(2026, 11, 23, 7, 30, tzinfo=tz).timestamp()
>>> s.is_active(monday_0730), s.is_active(monday_0730 + 3600)
(True, False)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Sequence
from typing import Protocol

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
"""``datetime.weekday()`` → the day names of a schedule window (as in the config)."""


class WindowLike(Protocol):
    """A schedule window of the config (:class:`gridwatch.config.ScheduleWindow`)."""

    @property
    def days(self) -> Collection[str]: ...

    def minutes(self) -> tuple[int, int]: ...


Window = tuple[frozenset[str], int, int]
"""(weekdays, start minute, end minute); end < start crosses midnight into the next day."""


class Schedule:
    """Active when local time is inside any window. Start inclusive, end exclusive."""

    def __init__(self, windows: Iterable[Window], tz: dt.tzinfo) -> None:
        self._windows = list(windows)
        self._tz = tz

    @classmethod
    def from_config(cls, windows: Sequence[WindowLike], tz: dt.tzinfo) -> Schedule:
        return cls(((frozenset(w.days), *w.minutes()) for w in windows), tz)

    def is_active(self, ts: float) -> bool:
        local = dt.datetime.fromtimestamp(ts, tz=self._tz)
        minute = local.hour * 60 + local.minute + local.second / 60.0
        today = WEEKDAYS[local.weekday()]
        yesterday = WEEKDAYS[(local.weekday() - 1) % 7]
        for days, start, end in self._windows:
            if start < end:
                if today in days and start <= minute < end:
                    return True
            else:  # crosses midnight: the part before midnight belongs to the listed day
                if today in days and minute >= start:
                    return True
                if yesterday in days and minute < end:
                    return True
        return False


class AlwaysActive:
    """The schedule of a rule that names none."""

    def is_active(self, ts: float) -> bool:
        return True

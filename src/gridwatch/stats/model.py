"""The GW_STATS record: one camera's people-flow figures over one period.

The wire contract shared by the worker (publisher), ``gridwatch stats`` and the console pages:
JSON of :class:`StatsRecord` on ``gw.v1.stats.<grid>.<camera>.<period>`` with ``Nats-Msg-Id``
``<camera>.<period>.<start ISO>`` (:meth:`StatsRecord.msg_id`), so a record published twice
(a retried publish, a rollup made again by another worker) is stored once.

Periods are aligned on the epoch (UTC): a minute starts at a whole minute, a quarter at
:00/:15/:30/:45, an hour at a whole hour, a day at 00:00 UTC. Tests shrink the minute
(``stats.period_s``); the other periods are always 15, 60 and 1440 minutes.

>>> r = StatsRecord(camera="gate-9", grid="kdl-01", period="minute",
...                 start=dt.datetime(2026, 12, 5, 8, 1, tzinfo=dt.UTC),
...                 end=dt.datetime(2026, 12, 5, 8, 2, tzinfo=dt.UTC), samples=120,
...                 zones={"apron": ZoneStats(mean=3.25, max=7)},
...                 lines={"gate": LineStats(in_=12, out=3)},
...                 heat=HeatGrid(cols=2, rows=1, cells=[5, 0]))
>>> import json
>>> wire = json.loads(r.to_json())
>>> wire["start"], wire["end"], wire["samples"]
('2026-12-05T08:01:00Z', '2026-12-05T08:02:00Z', 120)
>>> wire["zones"], wire["lines"]
({'apron': {'mean': 3.25, 'max': 7}}, {'gate': {'in': 12, 'out': 3}})
>>> r.msg_id()
'gate-9.minute.2026-12-05T08:01:00Z'
>>> StatsRecord.from_json(r.to_json()) == r
True
>>> t = dt.datetime(2026, 12, 5, 8, 17, 30, tzinfo=dt.UTC).timestamp()
>>> [iso(b) for b in period_bounds(t, "quarter")]
['2026-12-05T08:15:00Z', '2026-12-05T08:30:00Z']
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_serializer, model_validator

from gridwatch.bus.names import STATS_PERIODS, stats_subject

Period = Literal["minute", "quarter", "hour", "day"]
PERIOD_MINUTES: dict[str, int] = {"minute": 1, "quarter": 15, "hour": 60, "day": 1440}
"""Each period's length in minutes."""
ROLLUP_SOURCE: dict[str, Period] = {"quarter": "minute", "hour": "quarter", "day": "hour"}
"""Which finer records a rollup merges."""
assert tuple(PERIOD_MINUTES) == STATS_PERIODS


def period_seconds(period: str, minute_s: int = 60) -> int:
    """Length of ``period`` in seconds (``minute_s``: the minute's length; tests shrink it).

    >>> period_seconds("hour"), period_seconds("day", minute_s=2)
    (3600, 2880)
    """
    return PERIOD_MINUTES[period] * minute_s


def period_bounds(ts: float, period: str, minute_s: int = 60) -> tuple[dt.datetime, dt.datetime]:
    """The UTC start and end of the ``period`` that holds the epoch time ``ts``."""
    length = period_seconds(period, minute_s)
    start = math.floor(ts / length) * length
    return _utc(start), _utc(start + length)


def _utc(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.UTC)


def iso(t: dt.datetime) -> str:
    """``2026-12-05T08:01:00Z`` (seconds; fractions only when there are any)."""
    t = t.astimezone(dt.UTC)
    spec = "seconds" if t.microsecond == 0 else "milliseconds"
    return t.replace(tzinfo=None).isoformat(timespec=spec) + "Z"


class _Wire(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class ZoneStats(_Wire):
    mean: float = Field(ge=0, description="Mean people in the zone over the samples.")
    max: int = Field(ge=0, description="Most people in the zone in one sample.")


class LineStats(_Wire):
    in_: int = Field(default=0, ge=0, alias="in", description="Crossings in.")
    out: int = Field(default=0, ge=0, description="Crossings out.")


class HeatGrid(_Wire):
    cols: int = Field(ge=1, description="Columns of the normalized image grid.")
    rows: int = Field(ge=1, description="Rows of the normalized image grid.")
    cells: list[int] = Field(description="rows*cols foot-point counts, row-major.")

    @model_validator(mode="after")
    def _size(self) -> HeatGrid:
        if len(self.cells) != self.rows * self.cols:
            raise ValueError(f"heat has {len(self.cells)} cells, not {self.rows}x{self.cols}")
        return self


class StatsRecord(_Wire):
    """One camera's statistics over one period (see the module docstring)."""

    v: Literal[1] = 1
    camera: str
    grid: str
    period: Period
    start: dt.datetime
    end: dt.datetime
    samples: int = Field(ge=0, description="Analysed frames that contributed.")
    zones: dict[str, ZoneStats] = Field(default_factory=dict)
    lines: dict[str, LineStats] = Field(default_factory=dict)
    heat: HeatGrid | None = None

    @field_serializer("start", "end")
    def _ser_time(self, t: dt.datetime) -> str:
        return iso(t)

    @model_validator(mode="after")
    def _aware(self) -> StatsRecord:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("start and end must carry a time zone")
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self

    def to_json(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()

    @classmethod
    def from_json(cls, data: bytes | str) -> StatsRecord:
        return cls.model_validate_json(data)

    def msg_id(self) -> str:
        """``Nats-Msg-Id``: ``<camera>.<period>.<start ISO>``."""
        return f"{self.camera}.{self.period}.{iso(self.start)}"

    def subject(self) -> str:
        return stats_subject(self.grid, self.camera, self.period)

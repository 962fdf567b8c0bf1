"""The ``stats:`` section of the config: whether workers publish people-flow statistics, how
long ``GW_STATS`` keeps them, and the heat grid's size.

Minute records expire long before the rollups (a year of minutes per camera is half a million
records nobody reads one by one); the quarter, hour and day records live as long as the stream
keeps anything.

>>> s = StatsConfig()
>>> s.retention_days, s.minute_retention_days, s.minute_ttl_s, (s.heat_cols, s.heat_rows)
(365.0, 14.0, 1209600, (32, 18))
"""

from __future__ import annotations

from pydantic import Field, model_validator

from gridwatch.config.strict import Strict as _Strict


class StatsConfig(_Strict):
    enabled: bool = Field(
        default=True,
        title="Enabled",
        description="Workers publish per-minute people-flow statistics of every camera they run "
        "to stream GW_STATS.",
    )
    retention_days: float = Field(
        default=365.0,
        gt=0,
        title="Retention",
        description="Days GW_STATS keeps records (the stream's max age): the quarter, hour and "
        "day rollups live this long.",
    )
    minute_retention_days: float = Field(
        default=14.0,
        gt=0,
        title="Minute retention",
        description="Days a minute record lives (a per-message TTL); the rollups keep the rest.",
    )
    heat_cols: int = Field(
        default=32, ge=1, le=256, title="Heat columns", description="Columns of the heat grid."
    )
    heat_rows: int = Field(
        default=18, ge=1, le=256, title="Heat rows", description="Rows of the heat grid."
    )
    period_s: int = Field(
        default=60,
        ge=1,
        le=60,
        title="Minute length (tests)",
        description="Seconds in a 'minute' record; quarter, hour and day are 15, 60 and 1440 of "
        "them. Only tests change it (60 in production).",
    )
    rollup_delay_s: float = Field(
        default=20.0,
        ge=0,
        title="Rollup delay",
        description="Seconds after a period ends before its rollup is made (the last minute "
        "records must be stored first); each coarser level waits this much longer again.",
    )
    queue_size: int = Field(
        default=1024,
        ge=1,
        title="Queue size",
        description="Closed records waiting to be published; beyond it new ones are dropped "
        "(counted).",
    )

    @model_validator(mode="after")
    def _minutes_within_stream(self) -> StatsConfig:
        if 60 % self.period_s:
            raise ValueError("period_s must divide 60")
        if self.minute_retention_days > self.retention_days:
            raise ValueError("minute_retention_days cannot exceed retention_days")
        return self

    @property
    def minute_ttl_s(self) -> int:
        """The minute records' per-message TTL in whole seconds (at least 1, NATS's minimum)."""
        return max(1, round(self.minute_retention_days * 86400))

"""The GW_STATS contract: the record's wire form, merging into rollups, the ``stats:`` config
section and the CLI's rows."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from pydantic import ValidationError

from gridwatch.bus.names import stats_filter, stats_subject
from gridwatch.cli.stats_cmd import CSV_HEADER, parse_time, rows
from gridwatch.config import ConfigError, parse_config
from gridwatch.stats.model import HeatGrid, LineStats, StatsRecord, ZoneStats, period_bounds
from gridwatch.stats.query import merge
from gridwatch.stats.settings import StatsConfig

START = dt.datetime(2026, 12, 5, 8, 0, tzinfo=dt.UTC)


def rec(
    minute: int,
    samples: int,
    zones: dict[str, tuple[float, int]],
    lines: dict[str, tuple[int, int]] | None = None,
    *,
    camera: str = "gate-9",
    heat: list[int] | None = None,
) -> StatsRecord:
    start = START + dt.timedelta(minutes=minute)
    return StatsRecord(
        camera=camera,
        grid="kdl-01",
        period="minute",
        start=start,
        end=start + dt.timedelta(minutes=1),
        samples=samples,
        zones={k: ZoneStats(mean=m, max=x) for k, (m, x) in zones.items()},
        lines={k: LineStats(in_=i, out=o) for k, (i, o) in (lines or {}).items()},
        heat=HeatGrid(cols=2, rows=1, cells=heat or [samples, 0]),
    )


def test_the_wire_form_is_the_contract() -> None:
    r = rec(1, 120, {"apron": (3.25, 7)}, {"gate": (12, 3)})
    wire = json.loads(r.to_json())
    assert wire == {
        "v": 1,
        "camera": "gate-9",
        "grid": "kdl-01",
        "period": "minute",
        "start": "2026-12-05T08:01:00Z",
        "end": "2026-12-05T08:02:00Z",
        "samples": 120,
        "zones": {"apron": {"mean": 3.25, "max": 7}},
        "lines": {"gate": {"in": 12, "out": 3}},
        "heat": {"cols": 2, "rows": 1, "cells": [120, 0]},
    }
    assert r.msg_id() == "gate-9.minute.2026-12-05T08:01:00Z"
    assert r.subject() == "gw.v1.stats.kdl-01.gate-9.minute"
    assert StatsRecord.from_json(json.dumps(wire)) == r


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"period": "week"}, "period"),
        ({"heat": {"cols": 2, "rows": 2, "cells": [1]}}, "heat has 1 cells"),
        ({"end": "2026-12-05T08:00:00Z"}, "end must be after start"),
        ({"start": "2026-12-05T08:01:00"}, "time zone"),
        ({"extra": 1}, "extra"),
    ],
)
def test_a_bad_record_is_refused(change: dict[str, object], why: str) -> None:
    wire = json.loads(rec(1, 1, {}).to_json()) | change
    with pytest.raises(ValidationError, match=why):
        StatsRecord.model_validate(wire)


def test_subjects() -> None:
    assert stats_subject("g", "c", "day") == "gw.v1.stats.g.c.day"
    assert stats_filter("minute") == "gw.v1.stats.*.*.minute"
    assert stats_filter("quarter", camera="c") == "gw.v1.stats.*.c.quarter"
    with pytest.raises(ValueError, match="period"):
        stats_subject("g", "c", "week")
    with pytest.raises(ValueError, match="camera id"):
        stats_subject("g", "a.b", "day")


def test_merge_weights_the_mean_by_samples_and_sums_the_rest() -> None:
    q = merge(
        [
            rec(0, 100, {"a": (2.0, 4)}, {"l": (5, 1)}, heat=[1, 2]),
            rec(7, 300, {"a": (4.0, 9), "b": (1.0, 1)}, {"l": (0, 2), "m": (1, 0)}, heat=[3, 4]),
        ],
        period="quarter",
    )
    assert q.period == "quarter"
    assert (q.start, q.end) == (START, START + dt.timedelta(minutes=15))
    assert q.samples == 400
    assert q.zones["a"] == ZoneStats(mean=3.5, max=9)
    assert q.zones["b"] == ZoneStats(mean=1.0, max=1)  # weighted over the records that have it
    assert q.lines["l"] == LineStats(in_=5, out=3)
    assert q.lines["m"] == LineStats(in_=1, out=0)
    assert q.heat is not None
    assert q.heat.cells == [4, 6]


def test_merge_refuses_mixed_cameras_and_records_outside_the_period() -> None:
    with pytest.raises(ValueError, match="one camera"):
        merge([rec(0, 1, {}), rec(1, 1, {}, camera="other")])
    with pytest.raises(ValueError, match="outside"):
        merge([rec(14, 1, {}), rec(15, 1, {})], period="quarter")
    with pytest.raises(ValueError, match="nothing"):
        merge([])


def test_merge_without_a_period_spans_the_records() -> None:
    m = merge([rec(3, 1, {}), rec(40, 1, {})])
    assert m.period == "minute"
    assert (m.start, m.end) == (START + dt.timedelta(minutes=3), START + dt.timedelta(minutes=41))


def test_periods_align_on_utc() -> None:
    t = (START + dt.timedelta(hours=5, minutes=47, seconds=3)).timestamp()
    assert period_bounds(t, "day")[0] == dt.datetime(2026, 12, 5, tzinfo=dt.UTC)
    assert period_bounds(t, "hour")[0] == START + dt.timedelta(hours=5)
    assert period_bounds(t, "quarter")[0] == START + dt.timedelta(hours=5, minutes=45)
    assert period_bounds(t, "minute", minute_s=2)[0] == START + dt.timedelta(
        hours=5, minutes=47, seconds=2
    )


def test_the_stats_section() -> None:
    cfg = parse_config("stats: {retention_days: 30, minute_retention_days: 2, heat_cols: 8}\n")
    assert cfg.stats.retention_days == 30
    assert cfg.stats.minute_ttl_s == 2 * 86400
    assert StatsConfig().enabled
    with pytest.raises(ConfigError) as e:
        parse_config("stats:\n  retention_days: 3\n  minute_retention_days: 7\n", "s.yaml")
    assert "s.yaml:1:1: stats: minute_retention_days cannot exceed" in str(e.value)
    with pytest.raises(ConfigError) as e:
        parse_config("stats:\n  heat_colls: 8\n", "s.yaml")
    assert "s.yaml:2:3: stats.heat_colls" in str(e.value)
    with pytest.raises(ValidationError, match="divide 60"):
        StatsConfig(period_s=7)


def test_cli_rows_and_times() -> None:
    r = rec(1, 10, {"a": (1.5, 3)}, {"l": (2, 1)})
    assert rows([r]) == [
        ("2026-12-05T08:01:00Z", "2026-12-05T08:02:00Z", "kdl-01", "gate-9", "minute", "10",
         "zone", "a", "1.5", "3", "", ""),
        ("2026-12-05T08:01:00Z", "2026-12-05T08:02:00Z", "kdl-01", "gate-9", "minute", "10",
         "line", "l", "", "", "2", "1"),
    ]  # fmt: skip
    assert all(len(row) == len(CSV_HEADER) for row in rows([r, rec(2, 1, {})]))
    now = dt.datetime(2026, 12, 5, 9, tzinfo=dt.UTC)
    assert parse_time("90m", now) == now - dt.timedelta(minutes=90)
    assert parse_time("2026-12-05T10:00+02:00", now) == dt.datetime(2026, 12, 5, 8, tzinfo=dt.UTC)


def test_cli_help_and_bad_options() -> None:
    from typer.testing import CliRunner

    from gridwatch.cli.main import app

    runner = CliRunner()
    result = runner.invoke(app, ["stats", "--help"])
    assert result.exit_code == 0
    for option in ("--camera", "--grid", "--period", "--since", "--until", "--csv"):
        assert option in result.output
    both = runner.invoke(app, ["stats", "--camera", "a", "--grid", "g"])
    assert both.exit_code == 2
    backwards = runner.invoke(app, ["stats", "--since", "1h", "--until", "2h"])
    assert backwards.exit_code == 2

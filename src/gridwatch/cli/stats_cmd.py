"""``gridwatch stats``: people-flow statistics from GW_STATS as a table, CSV or JSON.

One row per zone (mean and max people) and per line (crossings in and out) of each record;
records are read with :func:`gridwatch.stats.query.read_stats` (a grid's users see their grid
only: NATS refuses them any other). Times are UTC.

>>> import datetime as dt
>>> now = dt.datetime(2026, 12, 5, 9, 0, tzinfo=dt.UTC)
>>> parse_time("2h", now).isoformat(), parse_time("2026-12-05T08:15", now).isoformat()
('2026-12-05T07:00:00+00:00', '2026-12-05T08:15:00+00:00')
"""

from __future__ import annotations

import csv
import datetime as dt
import sys
from typing import Annotated

import typer
from rich.table import Table

from gridwatch.cli.common import (
    EXIT_INVALID,
    EnvConfigOpt,
    EnvNatsOpt,
    JsonOpt,
    LogOpt,
    fail,
    load_env,
    nats_session,
    out,
    parse_duration,
    print_json,
    run,
)
from gridwatch.stats.model import PERIOD_MINUTES, Period, StatsRecord, iso

DEFAULT_SPAN: dict[str, str] = {"minute": "1h", "quarter": "1d", "hour": "1d", "day": "30d"}
"""How far back ``--since`` goes by default, per period."""
CSV_HEADER = (
    "start", "end", "grid", "camera", "period", "samples", "kind", "id", "mean", "max", "in", "out"
)  # fmt: skip


def parse_time(text: str, now: dt.datetime) -> dt.datetime:
    """An ISO time (UTC unless it carries an offset) or a duration back from ``now``."""
    text = text.strip()
    try:
        t = dt.datetime.fromisoformat(text)
    except ValueError:
        return now - parse_duration(text)
    return t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t.astimezone(dt.UTC)


def rows(records: list[StatsRecord]) -> list[tuple[str, ...]]:
    """The long form of ``records``: one row per zone and per line (one bare row for a record
    that has neither), columns as :data:`CSV_HEADER`."""
    out_rows: list[tuple[str, ...]] = []
    for r in records:
        head = (iso(r.start), iso(r.end), r.grid, r.camera, r.period, str(r.samples))
        for zid, z in r.zones.items():
            out_rows.append((*head, "zone", zid, f"{z.mean:g}", str(z.max), "", ""))
        for lid, line in r.lines.items():
            out_rows.append((*head, "line", lid, "", "", str(line.in_), str(line.out)))
        if not r.zones and not r.lines:
            out_rows.append((*head, "", "", "", "", "", ""))
    return out_rows


def stats(
    camera: Annotated[
        str | None, typer.Option("--camera", help="Only this camera.", show_default=False)
    ] = None,
    grid: Annotated[
        str | None, typer.Option("--grid", help="Only this grid's cameras.", show_default=False)
    ] = None,
    period: Annotated[
        str, typer.Option("--period", help="Record length: minute, quarter, hour or day.")
    ] = "hour",
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="From this time (ISO, UTC unless an offset is given) or this long ago (90m, "
            "2h, 7d). Default: 1h of minutes, 1d of quarters or hours, 30d of days.",
            show_default=False,
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(
            "--until", help="Up to this time (same forms); default: now.", show_default=False
        ),
    ] = None,
    as_csv: Annotated[
        bool,
        typer.Option("--csv", help="CSV on stdout (one row per zone and line of each record)."),
    ] = False,
    as_json: JsonOpt = False,
    config: EnvConfigOpt = None,
    nats_url: EnvNatsOpt = None,
    log_level: LogOpt = "warning",
) -> None:
    """People-flow statistics (GW_STATS): occupancy per zone, crossings per line."""
    if period not in PERIOD_MINUTES:
        fail(f"--period {period!r}: give minute, quarter, hour or day", EXIT_INVALID)
    if camera and grid:
        fail("give --camera or --grid, not both", EXIT_INVALID)
    p: Period = period  # type: ignore[assignment]  # checked above
    now = dt.datetime.now(dt.UTC)
    try:
        start = parse_time(since or DEFAULT_SPAN[period], now)
        end = parse_time(until, now) if until else None
    except typer.BadParameter as e:
        fail(f"--since/--until: {e}", EXIT_INVALID)
    if end is not None and end <= start:
        fail("--until must be after --since", EXIT_INVALID)
    env = load_env(config, nats_url, log_level)

    async def main() -> list[StatsRecord]:
        from gridwatch.stats.query import read_stats

        async with nats_session(env) as nc:
            return await read_stats(
                nc.jetstream(), period=p, since=start, until=end, grid=grid, camera=camera
            )

    try:
        records = run(main())
    except typer.Exit:
        raise
    except Exception as e:  # refused (another grid), timeouts
        fail(f"cannot read statistics: {type(e).__name__}: {e}")
    if as_json:
        print_json([r.model_dump(mode="json", by_alias=True) for r in records])
        return
    if as_csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(CSV_HEADER)
        writer.writerows(rows(records))
        return
    if not records:
        scope = f"camera {camera}" if camera else f"grid {grid}" if grid else "any camera"
        out.print(f"no {period} records of {scope} since {iso(start)}", markup=False)
        return
    table = Table(title=f"people-flow statistics, {period} (UTC)", title_justify="left")
    for col in ("start", "camera", "samples", "kind", "id", "mean", "max", "in", "out"):
        table.add_column(
            col, justify="right" if col in ("samples", "mean", "max", "in", "out") else "left"
        )
    for row in rows(records):
        start_s, _end, _grid, cam, _period, samples, *rest = row
        table.add_row(start_s, cam, samples, *rest)
    out.print(table)
    cams = len({r.camera for r in records})
    out.print(f"{len(records)} records of {cams} camera(s)", markup=False)


def register(app: typer.Typer) -> None:
    app.command("stats")(stats)

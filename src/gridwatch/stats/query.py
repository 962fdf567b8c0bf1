"""Reading GW_STATS back, and merging records into coarser ones.

:func:`read_stats` is the one reader (``gridwatch stats``, the console's pages, the rollups):
an ephemeral, named consumer (so NATS permissions can confine a grid's users to their grid's
subjects: the create subject carries the filter) that starts at ``since`` and stops once it has
caught up with the stream's end. :func:`merge` is the one definition of a rollup.

>>> import datetime as dt
>>> from gridwatch.stats.model import HeatGrid, LineStats, StatsRecord, ZoneStats
>>> def rec(minute, samples, mean, top, crossed):
...     start = dt.datetime(2026, 12, 5, 8, minute, tzinfo=dt.UTC)
...     return StatsRecord(camera="gate-9", grid="kdl-01", period="minute", start=start,
...                        end=start + dt.timedelta(minutes=1), samples=samples,
...                        zones={"apron": ZoneStats(mean=mean, max=top)},
...                        lines={"gate": LineStats(in_=crossed, out=1)},
...                        heat=HeatGrid(cols=2, rows=1, cells=[samples, 1]))
>>> q = merge([rec(0, 100, 2.0, 4, 5), rec(1, 300, 4.0, 9, 0)], period="quarter")
>>> q.period, q.samples, q.zones["apron"].mean, q.zones["apron"].max
('quarter', 400, 3.5, 9)
>>> q.lines["gate"].in_, q.lines["gate"].out, q.heat.cells
(5, 2, [400, 2])
>>> q.start.isoformat(), q.end.isoformat()
('2026-12-05T08:00:00+00:00', '2026-12-05T08:15:00+00:00')
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from gridwatch.bus.consumers import StreamFollower
from gridwatch.bus.names import STATS_CONSUMER_PREFIX, STATS_STREAM, stats_filter
from gridwatch.stats.model import (
    HeatGrid,
    LineStats,
    Period,
    StatsRecord,
    ZoneStats,
    period_bounds,
)

log = logging.getLogger(__name__)

__all__ = ["merge", "read_stats"]


async def read_stats(
    js: JetStreamContext,
    *,
    period: Period,
    since: dt.datetime,
    until: dt.datetime | None = None,
    grid: str | None = None,
    camera: str | None = None,
    idle_timeout: float = 3.0,
    limit: int | None = None,
) -> list[StatsRecord]:
    """The ``period`` records (of ``grid`` and/or ``camera``; any when None) that start in
    [``since``, ``until``), oldest first.

    Records are stored when their period has ended, so the consumer starts at ``since`` and
    every record that starts at or after it is found; those that started earlier are left
    out. A message that is not a valid record is logged and skipped. An empty list when the
    stream does not exist."""
    follower = StreamFollower(
        js,
        STATS_STREAM,
        stats_filter(period, grid=grid, camera=camera),
        start=since,
        prefix=STATS_CONSUMER_PREFIX,
    )
    out: list[StatsRecord] = []
    try:
        try:
            await follower.open()
        except NotFoundError:
            return []
        while not follower.caught_up:
            msg = await follower.next(idle_timeout)
            if msg is None:
                break
            try:
                record = StatsRecord.from_json(msg.data)
            except ValueError as e:
                log.warning("skipping a malformed record on %s: %s", msg.subject, e)
                continue
            if record.start < since:
                continue
            if until is not None and record.start >= until:
                continue
            out.append(record)
            if limit is not None and len(out) >= limit:
                break
    finally:
        await follower.close()
    out.sort(key=lambda r: (r.start, r.grid, r.camera))
    return out


def merge(
    records: Sequence[StatsRecord],
    *,
    period: Period | None = None,
    minute_s: int = 60,
) -> StatsRecord:
    """One record of ``records`` (all of one camera): sample-weighted mean, max of maxima,
    crossings, heat and samples summed. With ``period``, the result spans the whole aligned
    ``period`` that holds the first record (a rollup); without, from the first start to the
    last end with the records' own period."""
    if not records:
        raise ValueError("nothing to merge")
    first = records[0]
    if any(r.camera != first.camera or r.grid != first.grid for r in records):
        raise ValueError("merge takes the records of one camera")
    if period is None:
        start, end = min(r.start for r in records), max(r.end for r in records)
        period = first.period
    else:
        start, end = period_bounds(first.start.timestamp(), period, minute_s)
        if any(not (start <= r.start and r.end <= end) for r in records):
            raise ValueError(f"records outside the {period} from {start.isoformat()}")
    samples = sum(r.samples for r in records)
    zones: dict[str, ZoneStats] = {}
    for zid in dict.fromkeys(z for r in records for z in r.zones):
        have = [(r.samples, r.zones[zid]) for r in records if zid in r.zones]
        weight = sum(n for n, _ in have)
        mean = sum(n * z.mean for n, z in have) / weight if weight else 0.0
        zones[zid] = ZoneStats(mean=round(mean, 3), max=max(z.max for _, z in have))
    lines: dict[str, LineStats] = {}
    for lid in dict.fromkeys(line for r in records for line in r.lines):
        have_lines = [r.lines[lid] for r in records if lid in r.lines]
        lines[lid] = LineStats(
            in_=sum(x.in_ for x in have_lines), out=sum(x.out for x in have_lines)
        )
    heat = _merge_heat([r.heat for r in records if r.heat is not None])
    return StatsRecord(
        camera=first.camera,
        grid=first.grid,
        period=period,
        start=start,
        end=end,
        samples=samples,
        zones=zones,
        lines=lines,
        heat=heat,
    )


def _merge_heat(grids: list[HeatGrid]) -> HeatGrid | None:
    if not grids:
        return None
    cols, rows = grids[0].cols, grids[0].rows
    same = [g for g in grids if (g.cols, g.rows) == (cols, rows)]
    if len(same) != len(grids):  # the heat size was reconfigured within the period
        log.warning("heat grids of different sizes in one period: the first size is kept")
    cells = [sum(col) for col in zip(*(g.cells for g in same), strict=True)]
    return HeatGrid(cols=cols, rows=rows, cells=cells)

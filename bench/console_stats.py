"""The Statistics page's cost: the flow of one gate camera with its 8-week band
(:func:`gridwatch.console.stats_data.flow_view`, first request and later ones, when the past
weekdays are kept) and a 30-day heat map (:func:`~gridwatch.console.stats_data.heat_view`), on a
local nats-server (file storage), with ``--days`` days of quarter records (32x18 heat grids)
and 30 days of hour records of one camera.

A worst case: the records are all stored now, so every read (which starts at a stored time)
goes through all of them; in production a day's read goes through that day's records only.

    .venv/bin/python -m bench.console_stats [--days 57] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
import tempfile
import time
import zoneinfo
from pathlib import Path


async def run(days: int, runs: int) -> list[tuple[str, float, str]]:
    import nats

    from gridwatch.bus.infra import ensure_stats_stream
    from gridwatch.console.stats_data import PastDays, flow_view, heat_view
    from gridwatch.stats.model import HeatGrid, LineStats, StatsRecord, ZoneStats
    from gridwatch_devtools.nats_server import NatsServer

    tz_name = "Asia/Shanghai"
    tz = zoneinfo.ZoneInfo(tz_name)
    heat = HeatGrid(cols=32, rows=18, cells=[i % 7 for i in range(32 * 18)])
    out: list[tuple[str, float, str]] = []
    with tempfile.TemporaryDirectory() as d:
        async with NatsServer(store_dir=Path(d)) as srv:
            nc = await nats.connect(srv.url)
            js = nc.jetstream()
            await ensure_stats_stream(js, max_age_s=400 * 86400)
            day = dt.datetime.now(tz).date()
            t0 = dt.datetime.combine(day - dt.timedelta(days=days - 1), dt.time(), tz)
            q, h = dt.timedelta(minutes=15), dt.timedelta(hours=1)
            records = [
                StatsRecord(camera="gate-1", grid="g1", period="quarter", start=t0 + i * q,
                            end=t0 + (i + 1) * q, samples=900,
                            zones={"apron": ZoneStats(mean=2.0, max=5)},
                            lines={"in": LineStats(in_=i % 40, out=3)}, heat=heat)
                for i in range(days * 96)
            ]  # fmt: skip
            h0 = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
            records += [
                StatsRecord(camera="gate-1", grid="g1", period="hour", start=h0 - (k + 1) * h,
                            end=h0 - k * h, samples=3600, lines={"in": LineStats(in_=5)},
                            heat=heat)
                for k in range(30 * 24)
            ]  # fmt: skip
            for r in records:
                await js.publish(r.subject(), r.to_json(), headers={"Nats-Msg-Id": r.msg_id()})
            cache = PastDays()
            for i in range(runs):
                a = time.perf_counter()
                v = await flow_view(
                    js, grid="g1", camera="gate-1", day=day, tz_name=tz_name, past_days=cache
                )
                b = time.perf_counter()
                first = "first (band read)" if i == 0 else "again (band kept)"
                out.append((f"flow, {first}", b - a, f"{v.lines[0].weeks} weeks"))
                until = dt.datetime.now(dt.UTC)
                hv = await heat_view(
                    js, grid="g1", camera="gate-1", since=until - dt.timedelta(days=30),
                    until=until, size=(32, 18),
                )  # fmt: skip
                c = time.perf_counter()
                out.append(("heat, 30 days", c - b, f"{hv.records} {hv.period}+ records"))
            await nc.close()
    return out


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="bench.console_stats", description=__doc__)
    p.add_argument("--days", type=int, default=57, help="days of quarter records (57: 8 weeks)")
    p.add_argument("--runs", type=int, default=3)
    a = p.parse_args(argv)
    rows = asyncio.run(run(a.days, a.runs))
    print(f"{'what':<28} {'ms':>8}  detail")
    for what, s, detail in rows:
        print(f"{what:<28} {s * 1000:>8.0f}  {detail}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

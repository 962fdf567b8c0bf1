"""GW_STATS on a real nats-server: minute records with a per-message TTL, idempotent
rollups (quarter, hour, day) whoever makes them and however often, and reading back with
filters. Records here are synthetic (``synthetic: true``): the worker test
(test_stats_worker.py) publishes real ones from video."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from gridwatch.bus.infra import ensure_stats_stream
from gridwatch.bus.names import STATS_STREAM
from gridwatch.stats.model import HeatGrid, LineStats, StatsRecord, ZoneStats
from gridwatch.stats.publisher import StatsPublisher
from gridwatch.stats.query import read_stats
from gridwatch.stats.settings import StatsConfig

pytestmark = pytest.mark.timeout(60)

DAY = dt.datetime(2026, 11, 30, tzinfo=dt.UTC)
"""A past day: rollups of closed periods are made from records published now."""


def minute(t: dt.datetime, people: int, *, camera: str = "gate", grid: str = "g1") -> StatsRecord:
    return StatsRecord(
        camera=camera,
        grid=grid,
        period="minute",
        start=t,
        end=t + dt.timedelta(minutes=1),
        samples=10,
        zones={"apron": ZoneStats(mean=float(people), max=people + 1)},
        lines={"door": LineStats(in_=people, out=1)},
        heat=HeatGrid(cols=2, rows=1, cells=[people, 1]),
    )


async def _stream(js: JetStreamContext) -> None:
    await ensure_stats_stream(js, max_age_s=365 * 86400)


async def test_minute_records_expire_by_their_ttl_and_rollups_stay(js: JetStreamContext) -> None:
    await _stream(js)
    info = await js.stream_info(STATS_STREAM)
    assert info.config.allow_msg_ttl is True
    assert info.config.max_age == pytest.approx(365 * 86400)
    settings = StatsConfig(minute_retention_days=2 / 86400, rollup_delay_s=0)
    pub = StatsPublisher(js, settings)
    for i in range(3):
        assert await pub.publish(minute(DAY + dt.timedelta(hours=8, minutes=i), i))
    made = await pub.rollup("g1", "gate", "quarter", DAY + dt.timedelta(hours=8))
    assert made is not None
    assert made.samples == 30
    last = await js.get_last_msg(STATS_STREAM, "gw.v1.stats.g1.gate.minute")
    assert (last.headers or {})["Nats-TTL"] == "2"
    assert (last.headers or {})["Nats-Msg-Id"] == "gate.minute.2026-11-30T08:02:00Z"
    quarter = await js.get_last_msg(STATS_STREAM, "gw.v1.stats.g1.gate.quarter")
    assert "Nats-TTL" not in (quarter.headers or {})
    for _ in range(50):  # the server expires them about a second after their TTL
        await asyncio.sleep(0.2)
        try:
            await js.get_last_msg(STATS_STREAM, "gw.v1.stats.g1.gate.minute")
        except NotFoundError:
            break
    else:
        pytest.fail("minute records outlived their 2 s TTL")
    since = DAY + dt.timedelta(hours=8)
    assert await read_stats(js, period="minute", since=since) == []
    [kept] = await read_stats(js, period="quarter", since=since)
    assert kept == made


async def test_rollups_are_made_once_whoever_makes_them(js: JetStreamContext) -> None:
    await _stream(js)
    settings = StatsConfig(rollup_delay_s=5)
    a, b = StatsPublisher(js, settings), StatsPublisher(js, settings)
    start = DAY + dt.timedelta(hours=8)
    for i in range(30):  # 08:00 .. 08:29, people = minute number
        await a.publish(minute(start + dt.timedelta(minutes=i), i))
    await a.publish(minute(start, 0, camera="other"))
    # two workers (the camera's old and new owner) at once: one record (Nats-Msg-Id)
    made = await asyncio.gather(
        a.rollup("g1", "gate", "quarter", start), b.rollup("g1", "gate", "quarter", start)
    )
    assert sum(m is not None for m in made) == 1
    assert (
        a.stats.duplicates + b.stats.duplicates <= 1
    )  # 1: both read the stream before either stored
    # later, long after the duplicate window: the stream has it, nothing is published again
    assert await b.rollup("g1", "gate", "quarter", start) is None
    [q] = await read_stats(js, period="quarter", since=start, camera="gate")
    assert q.samples == 150
    assert q.zones["apron"].mean == pytest.approx(7.0)  # mean of 0..14
    assert q.zones["apron"].max == 15
    assert q.lines["door"] == LineStats(in_=sum(range(15)), out=15)

    # the scheduler: at 08:30 + delay the 08:15 quarter is due (the hour is not yet)
    now = (start + dt.timedelta(minutes=30, seconds=6)).timestamp()
    assert await a.rollup_due([("g1", "gate")], now) == 1
    assert await a.rollup_due([("g1", "gate")], now) == 0  # known done, nothing read
    assert await b.rollup_due([("g1", "gate")], now) == 0  # the stream has both quarters
    # the hour from its quarters, the day from its hours
    hour = await a.rollup("g1", "gate", "hour", start)
    assert hour is not None
    assert hour.samples == 300
    assert hour.zones["apron"].mean == pytest.approx(14.5)  # mean of 0..29
    day = await a.rollup("g1", "gate", "day", DAY)
    assert day is not None
    assert (day.start, day.end) == (DAY, DAY + dt.timedelta(days=1))
    assert day.samples == 300
    assert day.heat is not None
    assert day.heat.cells == [sum(range(30)), 30]
    # nothing to merge: no record
    assert await a.rollup("g1", "gate", "quarter", start + dt.timedelta(hours=3)) is None


async def test_read_stats_filters_by_grid_camera_and_time(js: JetStreamContext) -> None:
    await _stream(js)
    pub = StatsPublisher(js, StatsConfig())
    t = DAY + dt.timedelta(hours=9)
    for cam, grid in (("a", "g1"), ("b", "g1"), ("c", "g2")):
        for i in range(3):
            await pub.publish(minute(t + dt.timedelta(minutes=i), i, camera=cam, grid=grid))
    every = await read_stats(js, period="minute", since=t)
    assert len(every) == 9
    assert [r.start for r in every] == sorted(r.start for r in every)
    g1 = await read_stats(js, period="minute", since=t, grid="g1")
    assert {r.camera for r in g1} == {"a", "b"}
    window = await read_stats(
        js,
        period="minute",
        since=t + dt.timedelta(minutes=1),
        until=t + dt.timedelta(minutes=2),
        camera="c",
    )
    assert [(r.camera, r.start) for r in window] == [("c", t + dt.timedelta(minutes=1))]
    assert await read_stats(js, period="hour", since=t) == []

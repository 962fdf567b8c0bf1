"""GW_STATS under the generated NATS permissions, on a real nats-server: the worker identity
creates the stream, publishes minutes and makes a rollup by reading them back; a grid's
responder reads their own grid's statistics and nothing else; operators and the console read
every grid; people never publish statistics."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from gridwatch.bus.infra import ensure_stats_stream
from gridwatch.stats.model import LineStats, StatsRecord, ZoneStats
from gridwatch.stats.publisher import StatsPublisher
from gridwatch.stats.query import read_stats
from gridwatch.stats.settings import StatsConfig
from tests.security.test_nats_permissions import GRID_A, GRID_B, _server

pytestmark = pytest.mark.timeout(60)

START = dt.datetime(2026, 11, 30, 8, tzinfo=dt.UTC)


def _minute(grid: str, i: int) -> StatsRecord:
    t = START + dt.timedelta(minutes=i)
    return StatsRecord(
        camera=f"cam-{grid}",
        grid=grid,
        period="minute",
        start=t,
        end=t + dt.timedelta(minutes=1),
        samples=4,
        zones={"apron": ZoneStats(mean=1.0, max=2)},
        lines={"door": LineStats(in_=1, out=0)},
    )


async def test_statistics_are_published_by_workers_and_read_within_the_grid(
    tmp_path: Path,
) -> None:
    async with _server(tmp_path) as (_cfg, _srv, logins):
        worker = await logins.connect("svc-worker")
        wjs = worker.jetstream(timeout=2)
        await ensure_stats_stream(wjs, max_age_s=86400)
        pub = StatsPublisher(wjs, StatsConfig())
        for grid in (GRID_A, GRID_B):
            for i in range(3):
                assert await pub.publish(_minute(grid, i))
        rolled = await pub.rollup(GRID_A, f"cam-{GRID_A}", "quarter", START)
        assert rolled is not None
        assert rolled.samples == 12
        assert await pub.rollup(GRID_A, f"cam-{GRID_A}", "quarter", START) is None  # MSG.GET
        assert logins.violations["svc-worker"] == []

        aux = await logins.connect("aux-li")  # responder of grid A
        ajs = aux.jetstream(timeout=1)
        mine = await read_stats(ajs, period="minute", since=START, grid=GRID_A)
        assert [(r.grid, r.start) for r in mine] == [
            (GRID_A, START + dt.timedelta(minutes=i)) for i in range(3)
        ]
        assert logins.violations["aux-li"] == []
        with pytest.raises(Exception):  # noqa: B017, PT011 - refused by the server
            await read_stats(ajs, period="minute", since=START, grid=GRID_B)
        with pytest.raises(Exception):  # noqa: B017, PT011 - every grid's: refused as well
            await read_stats(ajs, period="quarter", since=START)
        with pytest.raises(Exception):  # noqa: B017, PT011 - people never publish
            await ajs.publish(f"gw.v1.stats.{GRID_A}.cam-{GRID_A}.minute", b"{}")
        assert len(logins.violations["aux-li"]) == 3

        for reader in ("op-zhang", "svc-console"):
            nc = await logins.connect(reader)
            every = await read_stats(nc.jetstream(timeout=2), period="minute", since=START)
            assert {r.grid for r in every} == {GRID_A, GRID_B}
            assert logins.violations[reader] == []
        op = await logins.connect("op-zhang")
        with pytest.raises(Exception):  # noqa: B017, PT011 - operators read, never publish
            await op.jetstream(timeout=1).publish(f"gw.v1.stats.{GRID_B}.x.minute", b"{}")

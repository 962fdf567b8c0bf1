"""The Statistics page's reads under the real, restricted NATS identities: the worker
(``service: worker``) publishes GW_STATS records and an alert with its snapshot, the snapshot
service (``service: [cases, snapshots]``) serves pictures, and the console's own identity
(``service: console``) computes the flow, the heat map and the picture exactly as the page's
routes do, on a nats-server started from ``gridwatch nats-config``'s output, without a single
permissions violation. A grid responder's own login may read their grid's statistics and not
another grid's (the NATS layer under the console's scope check)."""

from __future__ import annotations

import asyncio
import datetime as dt
import zoneinfo
from pathlib import Path

import nats.errors
import pytest

from gridwatch.alerts.publisher import AlertPublisher
from gridwatch.alerts.snapshot_service import SnapshotService
from gridwatch.alerts.snapshots import SnapshotStore
from gridwatch.alerts.streams import ensure_alert_infra
from gridwatch.console.backend import ConsoleBackend
from gridwatch.console.stats_data import flow_view, heat_view, latest_snapshot, load_records
from tests.plugins.dispatch import make_alert, tiny_jpeg
from tests.plugins.stats_scenario import local_midnight, publish, scenario_timezone
from tests.security.test_nats_permissions import GRID_A, GRID_B, _server

pytestmark = pytest.mark.timeout(90)


async def test_the_console_identity_reads_the_statistics(tmp_path: Path) -> None:
    async with _server(tmp_path) as (cfg, _, logins):
        tz_name = scenario_timezone()  # today's records are all in the past there
        tz = zoneinfo.ZoneInfo(tz_name)
        day = dt.datetime.now(tz).date()
        worker = await logins.connect("svc-worker")
        infra = await asyncio.wait_for(ensure_alert_infra(worker.jetstream()), 10)
        want = await publish(worker.jetstream(), camera="cam-a", grid=GRID_A, tz=tz, day=day)
        await publish(worker.jetstream(), camera="cam-b", grid=GRID_B, tz=tz, day=day)
        alert = make_alert(GRID_A, "cam-a", 1, snapshot=True)
        await AlertPublisher(
            worker, snapshots=SnapshotStore(infra.snapshots)
        ).publish_with_snapshot(alert, tiny_jpeg(160, 120, 90))
        svc = await logins.connect("svc-casesnaps")
        snaps = SnapshotService(svc, cfg)
        await asyncio.wait_for(snaps.start(), 15)
        try:
            console = await logins.connect("svc-console")
            js = console.jetstream()
            flow = await flow_view(js, grid=GRID_A, camera="cam-a", day=day, tz_name=tz_name)
            assert flow.lines[0].today == want.today
            assert flow.lines[0].weeks == 7
            t0 = local_midnight(day, tz)
            heat = await heat_view(
                js, grid=GRID_A, camera="cam-a", since=t0, until=t0 + dt.timedelta(days=1),
                size=(32, 18),
            )  # fmt: skip
            assert heat.cells == want.heat_today
            name = await latest_snapshot(js, grid=GRID_A, camera="cam-a")
            assert name == alert.snapshot
            assert await latest_snapshot(js, grid=GRID_A, camera="cam-a2") is None
            li = next(u for u in cfg.users if u.name == "aux-li")
            data, variant = await ConsoleBackend(console, timeout=5.0).snapshot(
                li, GRID_A, name, full=False
            )
            assert data[:2] == b"\xff\xd8"
            assert variant == "blurred"
            for user in ("svc-worker", "svc-casesnaps", "svc-console"):
                assert logins.violations[user] == [], (user, logins.violations[user])

            # a grid A responder's own login: grid A's records, never grid B's
            own = await logins.connect("aux-li")
            got = await load_records(
                own.jetstream(), period="quarter", since=t0, until=t0 + dt.timedelta(days=1),
                grid=GRID_A, camera="cam-a",
            )  # fmt: skip
            assert len(got) == 4
            assert logins.violations["aux-li"] == []
            with pytest.raises(nats.errors.TimeoutError):  # refused: the request is dropped
                await load_records(
                    own.jetstream(), period="quarter", since=t0, until=t0 + dt.timedelta(days=1),
                    grid=GRID_B, camera="cam-b",
                )  # fmt: skip
            [violation] = logins.violations["aux-li"]
            assert "consumer.create.gw_stats" in violation
            assert "gw.v1.stats.grid-b.cam-b.quarter" in violation
        finally:
            await snaps.stop()

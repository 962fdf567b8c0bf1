"""The lease protocol's safety rules against a real nats-server (one node; the cluster tests
are test_cluster_*.py): a worker that cannot renew stops its cameras before its leases can
expire; a stale view never hands out a live worker's camera; a fenced worker stops at once;
and ``gridwatch workers`` / ``gridwatch camera show`` tell who runs what."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from gridwatch.config import CameraConfig
from gridwatch.leases.journal import read_intervals
from gridwatch.leases.kv import cas_delete
from gridwatch.leases.manager import LeaseManager
from gridwatch.leases.records import WORKERS_BUCKET
from gridwatch.leases.settings import LeaseConfig
from gridwatch.registry.store import CameraRegistry
from gridwatch_devtools.nats_server import NatsServer
from tests.plugins.dispatch import wait_until
from tests.plugins.nats_fixtures import NatsConnect

pytestmark = pytest.mark.timeout(120)

EXE = str(Path(sys.executable).with_name("gridwatch"))
FAST = {"ttl_s": 3.0, "renew_s": 1.0, "margin_s": 0.5, "settle_s": 0.2, "tick_s": 0.1}

Start = Callable[..., Awaitable[LeaseManager[str]]]


@pytest.fixture
async def start_worker(nats_connect: NatsConnect, tmp_path: Path) -> AsyncIterator[Start]:
    """In-process lease managers whose "cameras" are names; all closed at teardown."""
    managers: list[LeaseManager[str]] = []

    async def start(name: str, cameras: list[str], **settings: object) -> LeaseManager[str]:
        nc = await nats_connect()
        cfg = LeaseConfig.model_validate(
            {
                "enabled": True,
                "capacity": 10,
                "journal": str(tmp_path / f"{name}.journal"),
                **FAST,
                **settings,
            }
        )

        async def apply(_: list[str]) -> None:
            return None

        m: LeaseManager[str] = LeaseManager(nc.jetstream(), cfg, apply, key=str, worker_id=name)
        managers.append(m)
        await m.start()
        await m.set_cameras(cameras)
        return m

    yield start
    for m in managers:
        await m.close()


async def test_a_worker_that_cannot_renew_stops_before_its_leases_expire(
    nats_server: NatsServer, start_worker: Start, tmp_path: Path
) -> None:
    a = await start_worker("a", ["c1", "c2", "c3"])
    await wait_until(lambda: len(a.running) == 3, within=20)

    await asyncio.to_thread(nats_server.stop)  # no renewal can get through now
    await wait_until(lambda: not a.running, within=a.settings.ttl_s + 5)
    expiry = a.deadline  # sent time of the last acknowledged renewal + ttl; fixed meanwhile
    iv = read_intervals([tmp_path / "a.journal"])
    stops = [stop for items in iv.values() for _, _, stop in items]
    assert len(stops) == 3
    assert max(stops) < expiry, (max(stops), expiry)  # stopped while the leases still held
    assert a.stats.lapses == 1
    await asyncio.sleep(max(0.0, expiry - a.clock()) + 0.05)
    assert not a.may_publish("c1")  # past the expiry no alert of it goes out

    # NATS back before anyone ended the session: the same session renews and resumes
    await asyncio.to_thread(nats_server.start)
    await wait_until(lambda: len(a.running) == 3, within=30)
    assert a.stats.lost_sessions == 0
    assert a.stats.sessions == 1


async def test_a_stale_view_never_hands_out_a_live_workers_camera(start_worker: Start) -> None:
    a = await start_worker("a", ["c1"])
    await wait_until(lambda: a.running == {"c1"}, within=20)
    b = await start_worker("b", ["c1"])
    await wait_until(lambda: b.valid() and b.view is not None and b.view.synced.is_set(), 20)
    assert b.view is not None
    # b's view loses a's key (as if its watch lagged): c1's holder is an unknown session
    st = b.view.workers.pop("a")
    b.view.session_worker.pop(st.record.session)
    claimed = await b._claim("c1", {})
    assert not claimed
    assert b.stats.claims_refused_alive == 1
    assert a.running == {"c1"}
    assert "c1" in a.owned


async def test_a_fenced_worker_stops_at_once_and_starts_over(
    start_worker: Start, tmp_path: Path
) -> None:
    a = await start_worker("a", ["c1", "c2"])
    await wait_until(lambda: len(a.running) == 2, within=20)
    first = a.session
    # someone ends a's session the only way the protocol allows: CAS-delete its key
    await cas_delete(a.js, WORKERS_BUCKET, "a", a.session_rev, wait_s=5)
    await wait_until(lambda: a.stats.lost_sessions == 1, within=10)
    await wait_until(lambda: len(a.running) == 2 and a.session not in (None, first), within=20)
    assert a.stats.sessions == 2
    iv = read_intervals([tmp_path / "a.journal"])
    assert all(len(items) == 2 for items in iv.values())  # stopped, then started again


async def test_workers_command_and_camera_show_name_the_owner(
    nats_server: NatsServer, nats_connect: NatsConnect, start_worker: Start
) -> None:
    ids = [f"c{i}" for i in range(4)]
    reg = await CameraRegistry.open((await nats_connect()).jetstream())
    for cid in [*ids, "c9"]:
        await reg.create(CameraConfig(id=cid, grid="g1", url=f"rtsp://10.0.0.1/{cid}"))
    a = await start_worker("alpha", ids)
    b = await start_worker("beta", ids)
    await wait_until(lambda: len(a.running) == 2 and len(b.running) == 2, within=30)
    await asyncio.sleep(1.5)  # a heartbeat lists what runs now

    def gw(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [EXE, *args, "--nats", nats_server.url],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    doc = json.loads((await asyncio.to_thread(gw, "workers", "--json")).stdout)
    workers = {w["worker"]: w for w in doc["workers"]}
    assert set(workers) == {"alpha", "beta"}
    assert sorted(workers["alpha"]["leases"]) == sorted(a.running)
    assert sorted(workers["beta"]["running"]) == sorted(b.running)
    assert workers["alpha"]["capacity"] == 10
    assert workers["alpha"]["load"] == 0.2
    assert doc["cameras"] == {"owned": 4, "orphaned": [], "registry": 5, "unassigned": ["c9"]}

    table = await asyncio.to_thread(gw, "workers")
    assert table.returncode == 0, table.stderr
    assert "alpha" in table.stdout
    assert "unassigned: c9" in table.stdout

    owner_of = next(iter(a.running))
    shown = await asyncio.to_thread(gw, "camera", "show", owner_of, "--json")
    owner = json.loads(shown.stdout)["owner"]
    assert owner["state"] == "owned"
    assert owner["worker"] == "alpha"
    assert owner["running"] is True
    text = await asyncio.to_thread(gw, "camera", "show", "c9")
    assert "# owner: nobody (unassigned" in text.stdout

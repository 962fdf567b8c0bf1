"""Nothing lost, nothing doubled: nats-server is killed (SIGKILL) while alerts are being raised
and cases acknowledged, and restarted on the same store after a pause.

Alerts go through the worker's alert path (:class:`SpoolingPublisher`: direct publish, spool on
disk while NATS is away, in-order replay). Afterwards every alert raised is in GW_ALERTS exactly
once (by Nats-Msg-Id), with its snapshot, and every case transition a client got a successful
reply for is in GW_CASES.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import signal

import pytest

from gridwatch.alerts.snapshots import SnapshotStore
from gridwatch.alerts.spool import AlertSpool, SpoolingPublisher
from gridwatch.alerts.streams import ensure_alert_infra
from gridwatch.alerts.subjects import ALERTS_STREAM
from gridwatch.cases.client import CaseClient, CaseRequestError
from gridwatch.cases.model import CaseState
from gridwatch.cases.service import CaseService
from gridwatch.cases.store import load_all
from tests.plugins.dispatch import (
    GRID_A,
    GRID_B,
    UserConnections,
    dispatch_config,
    make_alert,
    secured_server,
    tiny_jpeg,
    wait_until,
)

pytestmark = pytest.mark.timeout(120)

N_ALERTS = 60
FAST = {"reconnect_time_wait": 0.1, "max_reconnect_attempts": -1}


async def test_kill_nats_while_raising_alerts(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = dispatch_config()
    async with secured_server(cfg, tmp_path) as server:
        users = UserConnections(server)
        stop = asyncio.Event()
        tasks: list[asyncio.Task[None]] = []
        try:
            svc = await users.connect("svc", **FAST)
            infra = await ensure_alert_infra(svc.jetstream())
            service = CaseService(await users.connect("svc", **FAST), cfg)
            await asyncio.wait_for(service.start(), 15)
            spool = AlertSpool(tmp_path / "spool")
            out = SpoolingPublisher(
                svc, spool, snapshots=SnapshotStore(infra.snapshots), ack_timeout=1.0
            )
            tasks.append(asyncio.create_task(out.run_replay(poll_s=0.1)))

            raised: list[str] = []
            acked: dict[str, str] = {}
            ack_errors: collections.Counter[str] = collections.Counter()

            async def cameras() -> None:
                for i in range(N_ALERTS):
                    grid = GRID_A if i % 2 == 0 else GRID_B
                    alert = make_alert(grid, f"cam-{grid}", i, snapshot=True)
                    raised.append(alert.message_id)
                    await out.publish_with_snapshot(alert, tiny_jpeg(value=i))
                    await asyncio.sleep(0.05)

            async def operator(client: CaseClient) -> None:
                while True:  # cancelled at the end
                    try:
                        for case in await client.list(states=[CaseState.OPEN]):
                            await client.acknowledge(case.id)
                            acked[case.id] = "op-zhang"
                    except CaseRequestError as e:
                        ack_errors[e.code] += 1
                    if stop.is_set():
                        return
                    await asyncio.sleep(0.05)

            op = CaseClient(await users.connect("op-zhang", **FAST), "op-zhang", timeout=1.0)
            tasks.append(asyncio.create_task(operator(op)))
            producer = asyncio.create_task(cameras())

            await wait_until(lambda: len(raised) >= N_ALERTS // 3)
            assert server.pid is not None
            os.kill(server.pid, signal.SIGKILL)
            await asyncio.to_thread(server.stop)
            killed_at = len(raised)
            await asyncio.sleep(1.5)  # alerts keep coming: they go to the spool
            spooled_during_outage = spool.stats.spooled
            await asyncio.to_thread(server.start)  # same port, same store
            await asyncio.wait_for(producer, 60)

            await wait_until(
                lambda: not len(spool) and len(service.cases) >= N_ALERTS, within=45, step=0.1
            )
            await asyncio.sleep(0.5)  # the operator acknowledges the last cases
            stop.set()
            for t in tasks:
                t.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t

            assert 0 < killed_at < N_ALERTS
            assert spooled_during_outage > 0, "the outage should have sent alerts to the spool"
            assert spool.stats.dropped_alerts == 0

            # every alert exactly once, in GW_ALERTS
            js = svc.jetstream()
            info = await js.stream_info(ALERTS_STREAM)
            sub = await js.subscribe(">", stream=ALERTS_STREAM, ordered_consumer=True)
            ids: collections.Counter[str] = collections.Counter()
            for _ in range(info.state.messages):
                msg = await sub.next_msg(timeout=5)
                ids[(msg.headers or {})["Nats-Msg-Id"]] += 1
            await sub.unsubscribe()
            assert info.state.messages == N_ALERTS
            assert set(ids) == set(raised)
            assert max(ids.values()) == 1
            store = SnapshotStore(infra.snapshots)
            last = make_alert(GRID_B, f"cam-{GRID_B}", N_ALERTS - 1, snapshot=True)
            assert last.snapshot is not None
            assert (await store.get(last.snapshot)).startswith(b"\xff\xd8")

            # every acknowledged transition survived, read back from the stream itself
            cases = await load_all(js)
            by_id = {c.id: c for c in cases.values()}
            assert len(acked) > 0
            for case_id, who in acked.items():
                assert by_id[case_id].state is CaseState.ACKNOWLEDGED, case_id
                assert by_id[case_id].acknowledged_by == who
            assert len(by_id) == N_ALERTS
            print(
                f"\nkill-and-restart: {N_ALERTS} alerts, killed after {killed_at}, "
                f"{spool.stats.spooled} spooled and replayed, {out.direct_published} direct, "
                f"stream holds {info.state.messages} (each once); {len(acked)} acks survived; "
                f"case-command errors during the outage: {dict(ack_errors)}"
            )
            await service.stop()
        finally:
            stop.set()
            for t in tasks:
                t.cancel()
            await users.close()

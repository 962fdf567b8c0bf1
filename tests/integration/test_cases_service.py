"""The case service against a real, secured nats-server: alerts open cases, people move them
through their lifecycle under their own NATS logins, deadlines escalate, state survives a
restart of the service (rebuilt from GW_CASES)."""

from __future__ import annotations

import asyncio
import json

import pytest
from nats.aio.msg import Msg

from gridwatch.alerts.publisher import AlertPublisher
from gridwatch.alerts.streams import ensure_alert_infra
from gridwatch.cases.client import CaseClient, CaseRequestError
from gridwatch.cases.model import CaseState
from gridwatch.cases.service import CaseService
from tests.plugins.dispatch import (
    GRID_A,
    GRID_B,
    UserConnections,
    dispatch_config,
    make_alert,
    secured_server,
    wait_until,
)

pytestmark = pytest.mark.timeout(90)


async def test_case_lifecycle_over_nats(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = dispatch_config(
        """
cases:
  check_interval_s: 0.1
  deadlines:
    critical: {acknowledge_s: 0.4, on_scene_s: 30, escalation_interval_s: 0.4}
"""
    )
    async with secured_server(cfg, tmp_path) as server:
        users = UserConnections(server)
        try:
            svc = await users.connect("svc")
            await ensure_alert_infra(svc.jetstream())
            service = CaseService(svc, cfg)
            await asyncio.wait_for(service.start(), 15)
            pub = AlertPublisher(svc)
            alert = make_alert(GRID_A, "cam-a", 1)
            await pub.publish(alert)
            await wait_until(lambda: len(service.cases) == 1)

            li = CaseClient(await users.connect("aux-li"), "aux-li", grid=GRID_A)
            wang = CaseClient(await users.connect("lead-wang"), "lead-wang", grid=GRID_A)
            zhao = CaseClient(await users.connect("aux-zhao"), "aux-zhao", grid=GRID_B)
            op = CaseClient(await users.connect("op-zhang"), "op-zhang")  # grid _all

            assert [c.id for c in await li.list()] == [alert.id]
            assert await zhao.list() == []
            with pytest.raises(CaseRequestError) as e:
                await zhao.acknowledge(alert.id)
            assert e.value.code == "not_found"
            with pytest.raises(CaseRequestError) as e:
                await li.resolve(alert.id, "handled")
            assert e.value.code == "conflict"

            assert (await li.acknowledge(alert.id)).state is CaseState.ACKNOWLEDGED
            assert (await li.acknowledge(alert.id)).acknowledged_by == "aux-li"  # retry: same
            c = await wang.dispatch(alert.id, "aux-li")
            assert (c.state, c.dispatched_to, c.dispatched_by) == (
                CaseState.DISPATCHED,
                "aux-li",
                "lead-wang",
            )
            assert (await li.on_scene(alert.id)).state is CaseState.ON_SCENE
            c = await op.resolve(alert.id, "false_alarm", note="a queue for the bus")
            assert (c.state, c.outcome, c.resolved_by) == (
                CaseState.RESOLVED,
                "false_alarm",
                "op-zhang",
            )
            assert (await op.get(alert.id)).note == "a queue for the bus"

            # escalation of an unacknowledged critical alert: grid leader, then command centre
            seen: list[dict[str, object]] = []

            async def on_case(msg: Msg) -> None:
                seen.append(json.loads(msg.data))

            wang_nc = users.clients[2]
            await wang_nc.subscribe(f"gw.v1.cases.{GRID_A}.>", cb=on_case)
            await wang_nc.flush(timeout=2)
            critical = make_alert(GRID_A, "cam-a", 2, severity="critical")
            await pub.publish(critical)
            await wait_until(lambda: sum(e["type"] == "escalated" for e in seen) >= 2, within=10)
            esc = [e for e in seen if e["type"] == "escalated"]
            assert [(e["level"], e["target"]) for e in esc[:2]] == [
                (1, "grid_leader"),
                (2, "command_centre"),
            ]
            await asyncio.sleep(0.6)
            assert sum(e["type"] == "escalated" for e in seen) == 2  # the chain has 2 levels

            # the state is rebuilt from the stream by a new instance
            before = {k: (c.state, c.version) for k, c in service.cases.items()}
            await service.stop()
            again = CaseService(svc, cfg)
            await asyncio.wait_for(again.start(), 15)
            try:
                assert {k: (c.state, c.version) for k, c in again.cases.items()} == before
                for _ in range(50):  # the new instance's subscription may take a moment
                    try:
                        got = await op.get(critical.id)
                        break
                    except CaseRequestError as e:
                        if e.code not in ("unavailable", "timeout"):
                            raise
                        await asyncio.sleep(0.1)
                assert got.escalation_level == 2
            finally:
                await again.stop()
        finally:
            await users.close()

"""Grid isolation is enforced by a real nats-server running the generated configuration: a
responder of grid A cannot read grid B's alerts by core subscription, by JetStream consumer or
through the snapshot object store, cannot read another user's replies, and cannot send case
commands for another grid or under another name."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Awaitable, Callable

import nats.errors
import pytest
from nats.aio.msg import Msg
from nats.js import api as js_api

from gridwatch.alerts.publisher import AlertPublisher
from gridwatch.alerts.streams import ensure_alert_infra
from gridwatch.alerts.subjects import ALERTS_STREAM, alert_filter
from gridwatch.alerts.tail import iter_alerts
from gridwatch.auth.natsconf import build_nats_config, permissions_for
from gridwatch.cases.store import ensure_case_infra
from tests.plugins.dispatch import (
    GRID_A,
    GRID_B,
    UserConnections,
    dispatch_config,
    make_alert,
    secured_server,
    tiny_jpeg,
)

pytestmark = pytest.mark.timeout(90)

DENIED = (nats.errors.TimeoutError, nats.errors.NoRespondersError, TimeoutError)


def test_generated_permissions_shape() -> None:
    cfg = dispatch_config()
    conf = build_nats_config(cfg, store_dir="/data")
    users = {u["user"]: u for u in conf["authorization"]["users"]}
    assert users["aux-li"]["password"].startswith("$2b$04$")
    assert "permissions" not in users["svc"]  # services are unrestricted
    li = permissions_for(cfg.users[1])
    assert li is not None
    assert li["subscribe"]["allow"] == [
        f"gw.v1.alerts.{GRID_A}.>",
        f"gw.v1.cases.{GRID_A}.>",
        "_INBOX.aux-li.>",
    ]
    assert f"gw.v1.case-cmd.{GRID_A}.aux-li" in li["publish"]["allow"]
    assert not any("OBJ_" in s or "$O." in s for s in li["publish"]["allow"])
    op = permissions_for(cfg.users[0])
    assert op is not None
    # operators read alerts and cases, not the services' subjects (their queue groups)
    assert op["subscribe"]["allow"] == ["gw.v1.alerts.>", "gw.v1.cases.>", "_INBOX.op-zhang.>"]


async def test_responder_sees_only_their_grid(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = dispatch_config()
    async with secured_server(cfg, tmp_path) as server:
        users = UserConnections(server)
        try:
            svc = await users.connect("svc")
            infra = await asyncio.wait_for(ensure_alert_infra(svc.jetstream()), 10)
            await asyncio.wait_for(ensure_case_infra(svc.jetstream()), 10)
            li = await users.connect("aux-li")
            op = await users.connect("op-zhang")

            got_a: list[str] = []
            got_b: list[str] = []
            got_op: list[str] = []
            await li.subscribe(alert_filter(GRID_A), cb=_into(got_a))
            await li.subscribe(alert_filter(GRID_B), cb=_into(got_b))
            await li.subscribe("gw.v1.>", cb=_into(got_b))
            await li.subscribe("_INBOX.op-zhang.>", cb=_into(got_b))
            await op.subscribe("gw.v1.alerts.>", cb=_into(got_op))
            await li.flush(timeout=2)
            await op.flush(timeout=2)
            await asyncio.sleep(0.2)
            violations = [e for e in users.errors["aux-li"] if "permissions violation" in e]
            assert len(violations) == 3, users.errors["aux-li"]

            alert_a = make_alert(GRID_A, "cam-a", 1, snapshot=True)
            alert_b = make_alert(GRID_B, "cam-b", 2, snapshot=True)
            from gridwatch.alerts.snapshots import SnapshotStore

            pub = AlertPublisher(svc, snapshots=SnapshotStore(infra.snapshots))
            await pub.publish_with_snapshot(alert_a, tiny_jpeg())
            await pub.publish_with_snapshot(alert_b, tiny_jpeg())
            for _ in range(50):
                if got_a and len(got_op) >= 2:
                    break
                await asyncio.sleep(0.05)
            assert got_a == [alert_a.subject()]
            assert got_b == []  # refused subscriptions deliver nothing
            assert sorted(got_op) == sorted([alert_a.subject(), alert_b.subject()])

            # JetStream: a consumer inside the grid works ...
            seen = []
            async for alert in iter_alerts(li, grid=GRID_A, since=dt.timedelta(days=1)):
                seen.append(alert.id)
                break
            assert seen == [alert_a.id]
            # ... one on grid B, or on every grid, is refused
            js = li.jetstream(timeout=0.4)
            for filt in (alert_filter(GRID_B), "gw.v1.alerts.>"):
                with pytest.raises(DENIED):
                    await js.add_consumer(
                        ALERTS_STREAM,
                        js_api.ConsumerConfig(name="sneaky", filter_subject=filt),
                    )
            with pytest.raises(DENIED):
                await js.add_consumer(ALERTS_STREAM, js_api.ConsumerConfig(durable_name="all"))
            # the object store (snapshots of every grid) is out of reach
            with pytest.raises(DENIED):
                await js.object_store("gw_snapshots")
            with pytest.raises(DENIED):
                await js.get_msg("OBJ_gw_snapshots", seq=1)
            with pytest.raises(DENIED):
                await js.get_last_msg(ALERTS_STREAM, alert_b.subject())
            # an operator reads every grid through JetStream
            ops = []
            async for alert in iter_alerts(op, since=dt.timedelta(days=1)):
                ops.append(alert.grid_id)
                if len(ops) == 2:
                    break
            assert sorted(ops) == [GRID_A, GRID_B]

            # case commands: only on their own grid, only under their own name
            before = len(users.errors["aux-li"])
            for subject in (
                f"gw.v1.case-cmd.{GRID_B}.aux-li",
                f"gw.v1.case-cmd.{GRID_A}.lead-wang",
                f"gw.v1.case-cmd.{GRID_A}",
                "gw.v1.case-cmd._all.aux-li",
            ):
                with pytest.raises(DENIED):
                    await li.request(subject, json.dumps({"op": "list"}).encode(), timeout=0.3)
            await asyncio.sleep(0.1)
            assert len(users.errors["aux-li"]) >= before + 4
        finally:
            await users.close()


def _into(out: list[str]) -> Callable[[Msg], Awaitable[None]]:
    async def cb(msg: Msg) -> None:
        out.append(msg.subject)

    return cb

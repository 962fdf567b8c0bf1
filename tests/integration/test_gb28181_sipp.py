"""The GB/T 28181 cascade against SIPp as the superior platform (an independent SIP
implementation, scenarios in tests/integration/sipp/), with a real nats-server whose
permissions are the generated ones (the cascade runs as its own ``service: gb28181`` user) and
real alerts published into GW_ALERTS by the project's publisher.

SIPp challenges our REGISTER and verifies the MD5 digest (``<verifyauth>``), and checks our
MANSCDP bodies with regular expressions; any failed check fails a call and SIPp's exit code.
The test reads SIPp's message log too, for what a regex cannot say (every catalog item, the
GB2312 text, each alert arriving exactly once)."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import pytest

from gridwatch.alerts.publisher import AlertPublisher
from gridwatch.alerts.streams import ensure_alert_infra
from gridwatch.bus.messages import CameraHealth
from gridwatch.bus.names import GB28181_KV, GB28181_SENT_KV, health_subject
from gridwatch.gb28181 import manscdp
from gridwatch.gb28181.metrics import CascadeStatus
from gridwatch.gb28181.service import Gb28181Service
from tests.integration.gb28181_peers import (
    CHANNELS,
    GB_PASSWORD,
    OUR_ID,
    Sipp,
    cascade_config,
    connect_as,
    env_ok,
    free_port,
    manscdp_text,
    secured_nats,
    sipp_messages,
    wait_for,
)
from tests.plugins.dispatch import make_alert

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(not env_ok(), reason="sipp/kamailio not installed (./run installs them)"),
]


def _alarms(log: Path) -> list:  # type: ignore[type-arg]
    return [
        m
        for m in sipp_messages(log)
        if m.method == "MESSAGE" and b"<CmdType>Alarm</CmdType>" in m.body
    ]


def _service(nc, cfg) -> Gb28181Service:  # type: ignore[no-untyped-def]
    return Gb28181Service(nc, cfg, timeout_s=2.0, backoff_base_s=0.2, retry_base_s=0.1)


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_register_keepalive_alarm_unregister(tmp_path: Path, transport: str) -> None:
    port = free_port(socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM)
    cfg = cascade_config(port, keepalive_s=5, transport=transport)
    sipp = Sipp(
        "superior_register_alarm.xml",
        port,
        tmp_path,
        {"user": OUR_ID, "pw": GB_PASSWORD, "expires": "3600", "channel": CHANNELS["cam-a"]},
        transport="u1" if transport == "udp" else "t1",
    )
    sipp.start()
    async with secured_nats(cfg, tmp_path) as server:
        svc = await connect_as(server, "svc")
        errors: list[str] = []
        gb = await connect_as(server, "gb", errors)
        try:
            await ensure_alert_infra(svc.jetstream())
            service = _service(gb, cfg)
            await service.start()
            try:
                await wait_for(lambda: service.registration.registered.is_set(), 5)
                t0 = time.time()
                alert = make_alert("grid-a", "cam-a", 1, started_at=t0, count=18)
                await AlertPublisher(svc).publish(alert)
                # an updated message of the same incident is not an alarm
                upd = make_alert(
                    "grid-a", "cam-a", 1, state="updated", sequence=1, started_at=t0, count=19
                )
                await AlertPublisher(svc).publish(upd)
                await wait_for(lambda: service.outbox is not None and service.outbox.stats.sent, 5)
                await wait_for(lambda: service.registration.status.last_keepalive_ok, 8)
                await wait_for(lambda: service.outbox.stats.skipped >= 1, 5)  # type: ignore[union-attr]
                status = service.status()
                assert status.state == "registered"
                assert status.sent == 1
                # the status report for `gridwatch status`, through the cascade's own identity
                await asyncio.sleep(0.2)
                kv = await svc.jetstream().key_value(GB28181_KV)
                await service._publish_status()
                report = CascadeStatus.model_validate_json((await kv.get("status")).value or b"")
                assert report.sent == 1
                assert report.state == "registered"
                sent = await svc.jetstream().key_value(GB28181_SENT_KV)
                assert (await sent.get(alert.id)).value.startswith(alert.message_id.encode())
            finally:
                await service.stop()
            assert not errors, errors  # no permission violation for the gb28181 identity
        finally:
            await svc.drain()
            await gb.drain()
    rc = sipp.stop()
    assert rc == 0, sipp.output()
    received = sipp_messages(sipp.message_log)
    registers = [m for m in received if m.method == "REGISTER"]
    assert registers[0].headers.get("authorization") is None  # challenged first
    assert 'username="34020000002000000001"' in (registers[1].headers["authorization"])
    assert registers[0].call_id == registers[1].call_id
    assert [m.cseq[0] for m in registers[:2]] == [1, 2]
    assert registers[-1].headers["expires"] == "0"  # un-registered on stop
    assert all(f"SIP/2.0/{transport.upper()} " in m.headers["via"] for m in received)
    assert ":0>" not in (registers[0].headers.get("contact") or "")  # the real local port
    (alarm,) = _alarms(sipp.message_log)
    text = manscdp_text(alarm)
    assert "人群聚集: z1 区域 18 人" in text
    fields = manscdp.parse_request(alarm.body).fields
    assert (float(fields["Longitude"]), float(fields["Latitude"])) == (121.4737, 31.2304)
    assert alarm.call_id.startswith(f"gw-alarm-{alert.id}@")
    assert alarm.body.startswith(b'<?xml version="1.0" encoding="GB2312"?>')
    keepalives = [m for m in received if b"<CmdType>Keepalive</CmdType>" in m.body]
    assert keepalives


async def test_wrong_password_is_refused_and_retried(tmp_path: Path) -> None:
    port = free_port()
    cfg = cascade_config(port)
    sipp = Sipp(
        "superior_register_alarm.xml",
        port,
        tmp_path,
        {"user": OUR_ID, "pw": "not-" + GB_PASSWORD, "expires": "3600", "channel": "x"},
    )
    sipp.start()
    async with secured_nats(cfg, tmp_path) as server:
        svc = await connect_as(server, "svc")
        gb = await connect_as(server, "gb")
        try:
            await ensure_alert_infra(svc.jetstream())
            service = _service(gb, cfg)
            await service.start()
            try:
                await wait_for(lambda: service.registration.status.failures >= 2, 8)
                assert not service.registration.registered.is_set()
                assert "403" in service.registration.status.last_error
            finally:
                await service.stop()
        finally:
            await svc.drain()
            await gb.drain()
    assert sipp.stop() != 0  # SIPp's verifyauth refused our digest: the calls failed


async def test_catalog_device_info_and_guard(tmp_path: Path) -> None:
    port = free_port()
    cfg = cascade_config(port, keepalive_s=60, page_size=2)
    # 2 grids x (215 + 216) + 3 cameras
    sipp = Sipp(
        "superior_catalog.xml", port, tmp_path, {"user": OUR_ID, "pw": GB_PASSWORD, "sumnum": "7"}
    )
    sipp.start()
    async with secured_nats(cfg, tmp_path) as server:
        svc = await connect_as(server, "svc")
        gb = await connect_as(server, "gb")
        try:
            await ensure_alert_infra(svc.jetstream())
            service = _service(gb, cfg)
            await service.start()
            try:
                online = CameraHealth(camera_id="cam-a", state="online", online=True)
                for _ in range(20):  # until the service has seen it (core NATS, no replay)
                    await svc.publish(health_subject("cam-a"), online.to_json())
                    await svc.flush()
                    if service.online("cam-a"):
                        break
                    await asyncio.sleep(0.05)
                await wait_for(lambda: not service.guard_on, 8)  # ResetGuard from SIPp
                await wait_for(lambda: service.queries.get("OPTIONS"), 5)
                alert = make_alert("grid-a", "cam-b", 2, started_at=time.time())
                await AlertPublisher(svc).publish(alert)
                await wait_for(lambda: service.outbox.stats.gated == 1, 5)  # type: ignore[union-attr]
                await asyncio.sleep(0.5)  # the control's Response MESSAGE goes out
            finally:
                await service.stop()
            rc = sipp.stop()
            # the guard persists: a new service starts disarmed
            again = _service(gb, cfg)
            await again.start()
            try:
                assert again.guard_on is False
            finally:
                await again.stop()
        finally:
            await svc.drain()
            await gb.drain()
    assert rc == 0, sipp.output()
    received = sipp_messages(sipp.message_log)
    assert not [m for m in received if b"<CmdType>Alarm</CmdType>" in m.body]  # gated
    pages = [m for m in received if b"<CmdType>Catalog</CmdType>" in m.body]
    assert len(pages) == 4  # 7 items, 2 per page
    items: dict[str, dict[str, str]] = {}
    for page in pages:
        text = manscdp_text(page)
        assert "<SumNum>7</SumNum>" in text
        root = manscdp.xml_root(text)
        for item in root.iter("Item"):
            fields = {c.tag: (c.text or "") for c in item}
            items[fields["DeviceID"]] = fields
    assert len(items) == 7
    kinds = sorted(gid[10:13] for gid in items)
    assert kinds == ["132"] * 3 + ["215"] * 2 + ["216"] * 2
    a = items[CHANNELS["cam-a"]]
    assert (a["Name"], a["Status"], float(a["Longitude"]), float(a["Latitude"])) == (
        "校门口",
        "ON",
        121.4737,
        31.2304,
    )
    assert items[CHANNELS["cam-b"]]["Status"] == "OFF"  # no health report: off
    orgs = {gid: f for gid, f in items.items() if gid[10:13] == "216"}
    assert a["ParentID"] in orgs
    assert a["BusinessGroupID"] == orgs[a["ParentID"]]["ParentID"]
    assert "北区网格" in {f["Name"] for f in items.values()}
    answers = [m for m in received if b"<Result>OK</Result>" in m.body]
    by_cmd = {manscdp.parse_request(m.body).cmd_type: m for m in answers}
    assert set(by_cmd) == {"DeviceInfo", "DeviceControl", "DeviceStatus"}
    status_text = manscdp_text(by_cmd["DeviceStatus"])
    assert "<DutyStatus>OFFDUTY</DutyStatus>" in status_text  # asked after ResetGuard


async def test_superior_killed_mid_stream_no_alarm_lost_or_doubled(tmp_path: Path) -> None:
    port = free_port()
    cfg = cascade_config(port, keepalive_s=60)
    sipp = Sipp(
        "superior_register_alarm.xml",
        port,
        tmp_path,
        {"user": OUR_ID, "pw": GB_PASSWORD, "expires": "3600", "channel": CHANNELS["cam-a"]},
    )
    sipp.start()
    n = 12
    logs = []
    async with secured_nats(cfg, tmp_path) as server:
        svc = await connect_as(server, "svc")
        gb = await connect_as(server, "gb")
        try:
            await ensure_alert_infra(svc.jetstream())
            service = _service(gb, cfg)
            await service.start()
            pub = AlertPublisher(svc)
            ids = []
            try:
                await wait_for(lambda: service.registration.registered.is_set(), 5)
                t0 = time.time()
                for i in range(n):
                    alert = make_alert("grid-a", "cam-a", 10 + i, started_at=t0, count=5 + i)
                    ids.append(alert.id)
                    await pub.publish(alert)
                    if i == 3:
                        await wait_for(lambda: service.outbox.stats.sent >= 3, 5)  # type: ignore[union-attr]
                        sipp.kill()  # the superior dies mid-stream
                        logs.append(sipp.message_log)
                    if i == 8:
                        await asyncio.sleep(1.0)  # alarms pile up while it is down
                        assert service.outbox.stats.sent < n  # type: ignore[union-attr]
                        sipp.start()  # it comes back (a new process: no memory)
                        logs.append(sipp.message_log)
                    await asyncio.sleep(0.1)
                await wait_for(lambda: service.outbox.stats.sent == n, 20)  # type: ignore[union-attr]
                assert service.outbox.stats.duplicates == 0  # type: ignore[union-attr]
            finally:
                await service.stop()
            # a restart of our side re-reads nothing twice either
            again = _service(gb, cfg)
            await again.start()
            await asyncio.sleep(1.0)
            assert again.outbox.stats.sent == 0  # type: ignore[union-attr]
            await again.stop()
        finally:
            await svc.drain()
            await gb.drain()
    assert sipp.stop() == 0, sipp.output()
    # what the superior accepted: the 200s it sent to Alarm MESSAGEs (a copy it got but died
    # before answering was not delivered; its retransmissions keep the branch)
    accepted: dict[str, set[str]] = {}
    for log in logs:
        for m in sipp_messages(log, "sent"):
            if m.status == 200 and m.call_id.startswith("gw-alarm-"):
                alert_id = m.call_id.removeprefix("gw-alarm-").split("@")[0]
                accepted.setdefault(alert_id, set()).add(f"{log.name}:{m.branch}")
    assert set(accepted) == set(ids)  # none lost
    doubled = {a: b for a, b in accepted.items() if len(b) != 1}
    assert not doubled  # none twice
    assert all(_alarms(log) for log in logs)  # both runs of the superior took some

"""Push notifications and webhooks, checked by parties that verify them as the real ones do:
a local push service that checks the VAPID JWT and decrypts aes128gcm like a browser, and a
webhook receiver that checks the HMAC. The notifier pushes a raised alert to the on-duty
people of its grid only, retries a failing webhook, and does not push twice across a restart.
Snapshots reach people through the snapshot service, blurred unless their role allows more."""

from __future__ import annotations

import asyncio

import aiohttp
import cv2
import numpy as np
import pytest

from gridwatch.alerts.publisher import AlertPublisher
from gridwatch.alerts.snapshot_service import (
    SnapshotRequestError,
    SnapshotService,
    request_snapshot,
)
from gridwatch.alerts.snapshots import SnapshotStore
from gridwatch.alerts.streams import ensure_alert_infra
from gridwatch.cases.store import ensure_case_infra
from gridwatch.notify.local_endpoint import LocalPushService, WebhookReceiver
from gridwatch.notify.notifier import Notifier
from gridwatch.notify.subscriptions import register_subscription
from gridwatch.notify.webpush import VapidKey
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
SECRET = "hook-secret-123"


async def test_push_and_webhook_once_each(tmp_path) -> None:  # type: ignore[no-untyped-def]
    vapid = VapidKey.generate()
    async with LocalPushService() as push, WebhookReceiver(SECRET.encode()) as hook:
        cfg = dispatch_config(
            f"""
notify:
  public_base_url: https://gw.example.cn
  push_allow_endpoints: ["http://127.0.0.1"]  # the local push service of this test
  webhooks:
    - {{name: hotline, url: "{hook.url}", secret: {SECRET}, events: [alert.raised],
        backoff_initial_s: 0.05, max_attempts: 5}}
"""
        )
        async with secured_server(cfg, tmp_path) as server:
            users = UserConnections(server)
            try:
                svc = await users.connect("svc")
                await ensure_alert_infra(svc.jetstream())
                await ensure_case_infra(svc.jetstream())
                subs = {}
                for name in ("aux-li", "lead-wang", "aux-zhao"):
                    nc = await users.connect(name)  # each registers their own phone
                    from gridwatch.notify.subscriptions import ensure_push_bucket

                    await ensure_push_bucket(svc.jetstream())
                    subs[name] = push.subscribe(vapid.application_server_key)
                    await register_subscription(nc.jetstream(), name, subs[name])
                # a responder cannot register a phone under someone else's name
                li_js = users.clients[1].jetstream(timeout=0.5)
                with pytest.raises(Exception):  # noqa: B017, PT011 - refused by the server
                    await register_subscription(li_js, "aux-zhao", push.subscribe())

                hook.fail_next = 2  # the webhook fails twice, then accepts
                notifier = Notifier(await users.connect("svc"), cfg, vapid=vapid)
                await notifier.start()
                pub = AlertPublisher(svc)
                alert = make_alert(GRID_A, "cam-a", 1, snapshot=True, count=9)
                await pub.publish(alert)
                await wait_until(lambda: len(push.received) >= 2 and len(hook.received) >= 1)
                await asyncio.sleep(0.3)
                by_sub = {p.subscription_id: p for p in push.received}
                sid = {n: s["endpoint"].rsplit("/", 1)[1] for n, s in subs.items()}
                assert set(by_sub) == {sid["aux-li"], sid["lead-wang"]}  # not grid B's
                p = by_sub[sid["aux-li"]].payload
                assert (p["alert_id"], p["count"], p["camera"], p["type"]) == (
                    alert.id,
                    9,
                    "Camera cam-a",
                    "crowding",
                )
                assert p["url"] == f"https://gw.example.cn/m/cases/{GRID_A}/{alert.id}"
                assert p["snapshot_url"].endswith("?variant=blurred")
                assert by_sub[sid["aux-li"]].topic == alert.id[:32]
                assert by_sub[sid["aux-li"]].claims["sub"].startswith("mailto:")
                assert push.rejected == []
                assert [w.event for w in hook.received] == ["alert.raised"]
                assert hook.received[0].body["alert"]["id"] == alert.id
                assert hook.attempts == 3
                assert hook.bad_signatures == 0

                # restart: the durable consumers resume; nothing is sent twice
                await notifier.stop()
                n_push, n_hook = len(push.received), len(hook.received)
                # simulate a crash before the ack: replay the same alert from a new consumer
                again = Notifier(await users.connect("svc"), cfg, vapid=vapid)
                await again.start()
                await again.deliver(again.plan_alert(alert))
                assert again.stats.skipped_duplicates == 3
                second = make_alert(GRID_B, "cam-b", 2)
                await pub.publish(second)
                await wait_until(lambda: len(push.received) == n_push + 1)
                await asyncio.sleep(0.3)
                assert push.received[-1].subscription_id == sid["aux-zhao"]
                assert len(hook.received) == n_hook + 1
                assert sum(r.payload["alert_id"] == alert.id for r in push.received) == 2

                # an expired subscription is removed
                push.expire(subs["aux-zhao"])
                third = make_alert(GRID_B, "cam-b", 3)
                await pub.publish(third)
                await wait_until(lambda: again.stats.subscriptions_removed == 1)
                assert "aux-zhao" not in {u for u, s in again.subscriptions.items() if s}
                await again.stop()
            finally:
                await users.close()


async def test_snapshot_service_blurs_and_isolates(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = dispatch_config()
    async with secured_server(cfg, tmp_path) as server:
        users = UserConnections(server)
        try:
            svc = await users.connect("svc")
            infra = await ensure_alert_infra(svc.jetstream())
            service = SnapshotService(svc, cfg)
            await service.start()
            img = np.zeros((120, 160, 3), np.uint8)
            img[:, :, :] = (np.arange(160)[None, :, None] * 37 % 255).astype(np.uint8)
            jpeg = bytes(cv2.imencode(".jpg", img)[1].tobytes())
            alert = make_alert(GRID_A, "cam-a", 1, snapshot=True)
            await AlertPublisher(
                svc, snapshots=SnapshotStore(infra.snapshots)
            ).publish_with_snapshot(alert, jpeg)
            assert alert.snapshot is not None
            li = await users.connect("aux-li")
            data, variant = await request_snapshot(
                li, grid=GRID_A, user="aux-li", name=alert.snapshot, variant="full"
            )
            assert variant == "blurred"  # a responder asked for full, gets blurred
            got = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            x1, y1, x2, y2 = (
                int(v * s) for v, s in zip(alert.boxes[0], (160, 120, 160, 120), strict=True)
            )
            inside = got[y1 + 5 : y2 - 5, x1 + 5 : x2 - 5].astype(float)
            orig = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
            assert (
                np.abs(np.diff(inside, axis=1)).mean()
                < 0.5
                * np.abs(
                    np.diff(orig[y1 + 5 : y2 - 5, x1 + 5 : x2 - 5].astype(float), axis=1)
                ).mean()
            )
            op = await users.connect("op-zhang")
            full, variant = await request_snapshot(
                op, grid=GRID_A, user="op-zhang", name=alert.snapshot, variant="full"
            )
            assert (variant, full) == ("full", jpeg)
            assert service.full_views == 1
            zhao = await users.connect("aux-zhao")
            with pytest.raises(SnapshotRequestError) as e:  # asks in their own grid: not there
                await request_snapshot(zhao, grid=GRID_B, user="aux-zhao", name=alert.snapshot)
            assert e.value.code == "not_found"
            with pytest.raises(Exception):  # noqa: B017, PT011 - other grid: the server refuses
                await request_snapshot(
                    zhao, grid=GRID_A, user="aux-zhao", name=alert.snapshot, reply_timeout=0.3
                )
            await service.stop()
        finally:
            await users.close()


def test_vapid_key_roundtrip(tmp_path) -> None:  # type: ignore[no-untyped-def]
    key = VapidKey.generate()
    path = key.save(tmp_path / "vapid.pem")
    assert VapidKey.load(path).application_server_key == key.application_server_key
    assert oct(path.stat().st_mode & 0o777) == "0o600"


async def test_webhook_signature_rejects_tampering() -> None:
    from gridwatch.notify.webhook import sign, verify

    header = sign(b"k", b'{"a":1}')
    assert verify(b"k", header, b'{"a":1}')
    assert not verify(b"k", header, b'{"a":2}')
    assert not verify(b"other", header, b'{"a":1}')
    old = sign(b"k", b"{}", ts=1)
    assert not verify(b"k", old, b"{}")
    async with (
        WebhookReceiver(b"k") as rx,
        aiohttp.ClientSession() as s,
        s.post(rx.url, data=b"{}", headers={"X-Gridwatch-Signature": old}) as r,
    ):
        assert r.status == 401

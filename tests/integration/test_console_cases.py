"""Case actions through the console as the logged-in person, shown live on other people's
walls, and audited in GW_AUDIT; full snapshot views audited before they are served; Web Push
subscriptions stored where the notifier reads them; camera health from the workers' reports."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest

from gridwatch.alerts.subjects import health_subject
from gridwatch.auth.subjects import PUSH_SUBS_KV
from gridwatch.config import CameraConfig
from gridwatch.notify.subscriptions import subscription_key
from gridwatch.registry.store import CameraRegistry
from tests.plugins.console_stack import SseReader, console_stack
from tests.plugins.dispatch import GRID_A, make_alert, tiny_jpeg, wait_until

pytestmark = pytest.mark.timeout(120)


async def test_case_actions_live_and_audited(tmp_path) -> None:  # type: ignore[no-untyped-def]
    async with console_stack(tmp_path) as stack:
        alert = make_alert(GRID_A, "cam-a", 1, snapshot=True, severity="critical")
        await stack.publisher.publish_with_snapshot(alert, tiny_jpeg(320, 240))
        await wait_until(lambda: len(stack.cases.cases) == 1)
        zhang, zhang_csrf = await stack.login("op-zhang")
        wang, _ = await stack.login("lead-wang")  # grid leader of A
        li, li_csrf = await stack.login("aux-li")  # responder of A
        base = f"/api/cases/{GRID_A}/{alert.id}"

        async with SseReader(wang) as wang_feed:
            item = wang_feed.latest(alert.id)
            assert item is not None
            assert item["state"] == "open"
            assert item["severity"] == "critical"
            assert item["deadline"]["kind"] == "acknowledge"  # critical: 30 s from the raise
            # the operator acknowledges; the grid leader's wall shows it without a reload
            async with zhang.post(f"{base}/acknowledge", headers=zhang_csrf) as r:
                assert r.status == 200, await r.text()
                assert (await r.json())["case"]["acknowledged_by"] == "op-zhang"
            await wait_until(
                lambda: (wang_feed.latest(alert.id) or {}).get("state") == "acknowledged"
            )
            live = wang_feed.latest(alert.id)
            assert live is not None
            assert live["case"]["acknowledged_by"] == "op-zhang"
            assert live["deadline"]["kind"] == "on_scene"

            # refused actions say why (and are audited too)
            async with li.post(f"{base}/acknowledge", headers=li_csrf) as r:
                assert r.status == 409  # already acknowledged, by someone else
            async with zhang.post(
                f"{base}/dispatch", json={"responder": "aux-zhao"}, headers=zhang_csrf
            ) as r:
                assert r.status == 400  # not a responder of this grid
            async with zhang.post(
                f"{base}/resolve", json={"outcome": "maybe"}, headers=zhang_csrf
            ) as r:
                assert r.status == 400

            async with zhang.post(
                f"{base}/dispatch", json={"responder": "aux-li"}, headers=zhang_csrf
            ) as r:
                assert (await r.json())["case"]["dispatched_to"] == "aux-li"
            async with li.post(f"{base}/on_scene", headers=li_csrf) as r:
                assert (await r.json())["case"]["on_scene_by"] == "aux-li"
            async with li.post(
                f"{base}/resolve",
                json={"outcome": "false_alarm", "note": "a queue for the bus"},
                headers=li_csrf,
            ) as r:
                case = (await r.json())["case"]
            assert (case["state"], case["outcome"], case["resolved_by"]) == (
                "resolved",
                "false_alarm",
                "aux-li",
            )
            await wait_until(lambda: (wang_feed.latest(alert.id) or {}).get("state") == "resolved")
            assert wang_feed.latest(alert.id)["deadline"] is None  # type: ignore[index]

        # the detail has the whole history, in order, with who
        async with wang.get(f"/api/alerts/{GRID_A}/{alert.id}") as r:
            detail = await r.json()
        assert [(e["type"], e["actor"]) for e in detail["history"]] == [
            ("opened", "system"),
            ("acknowledged", "op-zhang"),
            ("dispatched", "op-zhang"),
            ("on_scene", "aux-li"),
            ("resolved", "aux-li"),
        ]
        assert detail["history"][-1]["note"] == "a queue for the bus"

        # the operator's view of the snapshot is full, and audited before it is served
        snap = quote(alert.snapshot, safe="/")
        async with zhang.get(f"/api/snapshots/{GRID_A}/{snap}?alert={alert.id}") as r:
            assert r.status == 200
            assert r.headers["X-Gw-Variant"] == "full"
            assert r.headers["Cache-Control"] == "no-store, private"
        async with zhang.get(f"/api/snapshots/{GRID_A}/{snap}?variant=blurred") as r:
            assert r.headers["X-Gw-Variant"] == "blurred"

        records = await stack.audit_records()
        cases = [a for a in records if a["kind"] == "case"]
        assert [(a["what"], a["user"], a["result"]) for a in cases] == [
            ("acknowledge", "op-zhang", "ok"),
            ("acknowledge", "aux-li", "conflict"),
            ("dispatch", "op-zhang", "invalid"),
            ("dispatch", "op-zhang", "ok"),
            ("on_scene", "aux-li", "ok"),
            ("resolve", "aux-li", "ok"),
        ]
        for a in cases:
            assert a["subject"] == f"gw.v1.audit.case.{GRID_A}"
            assert a["case"] == alert.id
            assert a["grid"] == GRID_A
            assert a["at"].endswith("+00:00")
            assert a["session"]
        assert cases[-1]["outcome"] == "false_alarm"
        assert cases[-1]["note"] == "a queue for the bus"
        views = [a for a in records if a["kind"] == "view"]
        assert [(a["what"], a["user"], a["snapshot"], a["alert"]) for a in views] == [
            ("snapshot_full", "op-zhang", alert.snapshot, alert.id)
        ]
        # the snapshot service's own record of that full view lands in the stream too
        service_records = [a for a in records if a["subject"] == f"gw.v1.audit.snapshot.{GRID_A}"]
        assert [a["user"] for a in service_records] == ["op-zhang"]

        # no audit, no picture: with the audit stream gone, a full view is refused
        await stack.svc.jetstream().delete_stream("GW_AUDIT")
        async with zhang.get(f"/api/snapshots/{GRID_A}/{snap}") as r:
            assert r.status == 503
            assert (await r.json())["code"] == "audit"


async def test_push_subscription_and_camera_health(tmp_path) -> None:  # type: ignore[no-untyped-def]
    async with console_stack(tmp_path) as stack:
        li, li_csrf = await stack.login("aux-li")
        sub = {
            "endpoint": "https://push.example.net/wpush/v2/abc",
            "expirationTime": None,
            "keys": {"p256dh": "BNc-key", "auth": "auth-secret"},
        }
        async with li.post("/api/push/subscribe", json=sub, headers=li_csrf) as r:
            assert r.status == 200
            key = (await r.json())["key"]
        assert key == subscription_key("aux-li", sub)
        kv = await stack.svc.jetstream().key_value(PUSH_SUBS_KV)
        stored = json.loads((await kv.get(key)).value or b"{}")
        assert stored == {"user": "aux-li", "endpoint": sub["endpoint"], "keys": sub["keys"]}
        async with li.post(
            "/api/push/subscribe", json={"endpoint": "ftp://x"}, headers=li_csrf
        ) as r:
            assert r.status == 400

        # health as the workers report it: online, tamper; a camera never reported: unknown
        reports = {
            "cam-a": {"camera_id": "cam-a", "online": True, "analysis_fps": 2.0, "count": 3},
            "cam-a2": {"camera_id": "cam-a2", "online": True, "tamper": ["covered"]},
        }
        for cam, report in reports.items():
            await stack.svc.publish(health_subject(cam), json.dumps(report).encode())
        await stack.svc.flush(timeout=2)
        await wait_until(lambda: len(stack.console.health.reports) == 2)
        op, _ = await stack.login("op-zhang")
        async with op.get("/api/cameras") as r:
            cams = {c["id"]: c for c in (await r.json())["cameras"]}
        assert cams["cam-a"]["health"]["status"] == "online"
        assert cams["cam-a"]["health"]["count"] == 3
        assert cams["cam-a2"]["health"]["status"] == "tamper"
        assert cams["cam-a2"]["health"]["reason"] == "covered"
        assert cams["cam-b"]["health"]["status"] == "unknown"
        assert (cams["cam-a"]["lat"], cams["cam-a"]["lon"]) == (40.65, 109.84)
        assert "url" not in cams["cam-a"]  # stream URLs (and their passwords) stay on the server

        # a camera added live to the registry shows up (to its grid's people only)
        reg = await CameraRegistry.open(stack.svc.jetstream())
        await reg.create(
            CameraConfig(id="cam-new", name="New", grid=GRID_A, url="rtsp://u:secret@10.0.0.9/s")
        )
        await stack.console.cameras.refresh()
        async with li.get("/api/cameras") as r:
            ids = [c["id"] for c in (await r.json())["cameras"]]
        assert ids == ["cam-a", "cam-a2", "cam-new"]
        zhao, _ = await stack.login("aux-zhao")
        async with zhao.get("/api/cameras") as r:
            assert [c["id"] for c in (await r.json())["cameras"]] == ["cam-b"]
        async with op.get("/api/cameras/cam-new") as r:
            assert "secret" not in await r.text()

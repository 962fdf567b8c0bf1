"""Grid confinement of the console, endpoint by endpoint: a responder of grid A never gets grid
B's alerts, snapshots, cases, cameras or live events, whichever URL they try (another grid's
things answer 404, like things that do not exist), while an operator sees both grids. Real
secured nats-server, real case and snapshot services, real console over HTTP."""

from __future__ import annotations

import asyncio
from urllib.parse import quote

import pytest

from tests.plugins.console_stack import SseReader, Stack, console_stack
from tests.plugins.dispatch import GRID_A, GRID_B, make_alert, tiny_jpeg, wait_until

pytestmark = pytest.mark.timeout(120)


async def _publish(stack: Stack, grid: str, camera: str, n: int):  # type: ignore[no-untyped-def]
    alert = make_alert(grid, camera, n, snapshot=True)
    await stack.publisher.publish_with_snapshot(alert, tiny_jpeg(320, 240))
    return alert


async def test_a_responder_never_gets_another_grids_things(tmp_path) -> None:  # type: ignore[no-untyped-def]
    async with console_stack(tmp_path) as stack:
        a1 = await _publish(stack, GRID_A, "cam-a", 1)
        b1 = await _publish(stack, GRID_B, "cam-b", 2)
        await wait_until(lambda: len(stack.cases.cases) == 2)

        li, li_csrf = await stack.login("aux-li")  # responder, grid A
        op, _ = await stack.login("op-zhang")  # operator, every grid
        snap_a = quote(a1.snapshot, safe="/")
        snap_b = quote(b1.snapshot, safe="/")

        async with SseReader(li) as li_feed, SseReader(op) as op_feed:
            # the wall, replayed: the responder's has grid A only, the operator's both
            assert li_feed.ids() == {a1.id}
            assert op_feed.ids() == {a1.id, b1.id}
            # and live: a new alert of grid B reaches the operator, never the responder
            b2 = await _publish(stack, GRID_B, "cam-b", 3)
            a2 = await _publish(stack, GRID_A, "cam-a2", 4)
            await wait_until(lambda: {a2.id, b2.id} <= op_feed.ids(), within=15)
            await wait_until(lambda: a2.id in li_feed.ids(), within=15)
            await wait_until(lambda: stack.cases.cases.get(f"{GRID_B}.{b2.id}") is not None)
            await asyncio.sleep(0.5)  # anything stray would have arrived by now
            assert li_feed.ids() == {a1.id, a2.id}
            assert all(i["grid_id"] == GRID_A for i in li_feed.items())
        assert stack.console.stats.out_of_scope == 0  # the consumers' filters kept B out

        # every endpoint, with grid B's things named under grid B and under grid A
        denied_gets = [
            f"/api/alerts/{GRID_B}/{b1.id}",
            f"/api/alerts/{GRID_A}/{b1.id}",
            f"/api/snapshots/{GRID_B}/{snap_b}",
            f"/api/snapshots/{GRID_A}/{snap_b}",
            f"/api/snapshots/{GRID_B}/{snap_b}?variant=blurred",
            f"/m/snapshots/{GRID_B}/{quote(b1.snapshot, safe='')}?variant=blurred",
            f"/api/cases?grid={GRID_B}",
            f"/api/grids/{GRID_B}/responders",
            "/api/cameras/cam-b",
            "/api/stats",
            f"/alerts/{GRID_B}/{b1.id}",
            f"/m/cases/{GRID_B}/{b1.id}",
            "/cameras/cam-b",
            f"/summary/{GRID_B}",
            f"/api/summary/{GRID_B}",
            f"/api/summary/{GRID_B}?day=2026-11-26",
        ]
        for path in denied_gets:
            async with li.get(path, allow_redirects=False) as r:
                assert r.status == 404, (path, r.status, await r.text())
        denied_posts = [
            f"/api/cases/{GRID_B}/{b1.id}/acknowledge",
            f"/api/cases/{GRID_A}/{b1.id}/acknowledge",
            "/api/live/cam-b/offer",
            "/api/live/no-such-camera/offer",
        ]
        for path in denied_posts:
            async with li.post(path, json={}, headers=li_csrf) as r:
                assert r.status == 404, (path, r.status, await r.text())
        # nothing happened to B's case
        assert stack.cases.cases[f"{GRID_B}.{b1.id}"].state.value == "open"

        # what the responder does get: grid A only
        async with li.get("/api/cases") as r:
            assert {c["grid_id"] for c in (await r.json())["cases"]} == {GRID_A}
        async with li.get("/api/cameras") as r:
            assert sorted(c["id"] for c in (await r.json())["cameras"]) == ["cam-a", "cam-a2"]
        async with li.get("/api/config") as r:
            assert [g["id"] for g in (await r.json())["grids"]] == [GRID_A]
        async with li.get(f"/api/alerts/{GRID_A}/{a1.id}") as r:
            assert r.status == 200
            detail = await r.json()
        assert detail["item"]["grid_id"] == GRID_A
        assert [m["state"] for m in detail["messages"]] == ["raised"]
        assert [e["type"] for e in detail["history"]] == ["opened"]
        assert {p["name"] for p in detail["responders"]} == {"aux-li", "lead-wang"}
        async with li.get(f"/api/snapshots/{GRID_A}/{snap_a}") as r:
            assert r.status == 200
            assert r.headers["X-Gw-Variant"] == "blurred"  # responders: people blurred
            assert (await r.read()).startswith(b"\xff\xd8")
        async with li.get(f"/api/snapshots/{GRID_A}/{snap_a}?variant=full") as r:
            assert r.headers["X-Gw-Variant"] == "blurred"  # asking is not enough
        async with li.get(f"/alerts/{GRID_A}/{a1.id}") as r:
            assert r.status == 200

        # the operator sees both grids
        async with op.get("/api/cases") as r:
            assert {c["grid_id"] for c in (await r.json())["cases"]} == {GRID_A, GRID_B}
        async with op.get("/api/cameras") as r:
            assert len((await r.json())["cameras"]) == 3
        async with op.get(f"/api/alerts/{GRID_B}/{b1.id}") as r:
            assert r.status == 200
        # ... but not B's alert under grid A's name either (the services check the grid)
        async with op.get(f"/api/alerts/{GRID_A}/{b1.id}") as r:
            assert r.status == 404
        async with op.get(f"/api/snapshots/{GRID_A}/{snap_b}") as r:
            assert r.status == 404

        # grid B's responder, the mirror image
        zhao, _ = await stack.login("aux-zhao")
        async with zhao.get(f"/api/alerts/{GRID_A}/{a1.id}") as r:
            assert r.status == 404
        async with zhao.get("/api/cameras") as r:
            assert [c["id"] for c in (await r.json())["cameras"]] == ["cam-b"]
        # no responder's view of a snapshot was a full one: no view audit records
        assert not [a for a in await stack.audit_records() if a["kind"] == "view"]


async def test_live_routes_sit_behind_the_console_auth(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """With the live view plugged in, its routes get the console's login, CSRF and grid
    confinement before they run (no WebRTC here: the offers are refused before any)."""
    async with console_stack(tmp_path, live=True) as stack:
        anon = stack.client()
        async with anon.post("/api/live/cam-a/offer", json={}) as r:
            assert r.status == 401
        li, li_csrf = await stack.login("aux-li")
        async with li.post("/api/live/cam-a/offer", json={}) as r:
            assert r.status == 403  # no CSRF token
        async with li.post("/api/live/cam-b/offer", json={}, headers=li_csrf) as r:
            assert r.status == 404  # grid B's camera: confined by the console
        async with li.delete("/api/live/cam-b/some-session", headers=li_csrf) as r:
            assert r.status == 404
        # grid A's camera reaches the live handler, which reads the offer
        async with li.post("/api/live/cam-a/offer", json={"no": "offer"}, headers=li_csrf) as r:
            assert r.status == 400, await r.text()

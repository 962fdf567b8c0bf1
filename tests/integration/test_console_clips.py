"""Alert clips in the console (issue 14 item 3): ``GET /api/clips/<grid>/<name>`` and
``/m/clips/<grid>/<name>`` serve the MP4 the clip service serves the logged-in person, with the
onset, HTTP ranges for a seeking ``<video>`` (answered from one fetch), the scope's 404s, and a
full view audited by the console and the service.

Real parts: a nats-server with the permissions ``gridwatch nats-config`` generates, the case,
snapshot and clip services (the clip service's re-encode and person detector for the blurred
variant), a clip cut from the demo video as the worker cuts it and stored in gw_clips with the
worker's headers, the console over HTTP."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from nats.js.object_store import ObjectStore

from gridwatch.alerts.clip_service import ClipService
from gridwatch.bus.infra import ensure_clip_store
from gridwatch.console.clips import CLIP_CACHE, ClipCache
from tests.plugins.clips import demo_clip_mp4, frames_of, put_clip
from tests.plugins.console_stack import Stack, console_stack
from tests.plugins.dispatch import GRID_A, GRID_B

pytestmark = pytest.mark.timeout(240)

ALERT = "c0ffee01"
CLIP = f"cam-a/{ALERT}.mp4"


@contextlib.asynccontextmanager
async def clip_console(tmp_path: Path) -> AsyncIterator[tuple[Stack, ObjectStore, ClipService]]:
    """The console stack with the clip service beside the snapshot service (same identity)
    and gw_clips."""
    async with console_stack(tmp_path) as stack:
        service = ClipService(stack.svc, stack.config)
        await service.start()
        try:
            store = await ensure_clip_store(stack.svc.jetstream(), ttl_s=3600, max_bytes=1 << 28)
            yield stack, store, service
        finally:
            await service.stop()


def cache_of(stack: Stack) -> ClipCache:
    return stack.app[CLIP_CACHE]


async def test_the_operator_gets_the_full_clip_and_seeks_it_from_one_fetch(
    tmp_path: Path, demo_mp4: Path
) -> None:
    raw = demo_clip_mp4(demo_mp4, 28.0, 4.0)
    n = len(raw)
    async with clip_console(tmp_path) as (stack, store, service):
        await put_clip(store, "cam-a", ALERT, raw, grid=GRID_A, pre_roll_s=4.0)
        zhang, _ = await stack.login("op-zhang")
        url = f"/api/clips/{GRID_A}/{CLIP}"

        async with zhang.get(url) as r:
            assert r.status == 200, await r.text()
            body = await r.read()
            h = r.headers
        assert body == raw  # a camera without masks: the stored clip, byte for byte
        assert h["Content-Type"] == "video/mp4"
        assert h["Content-Length"] == str(n)
        assert h["Cache-Control"] == "no-store, private"
        assert h["Accept-Ranges"] == "bytes"
        assert (h["X-Gw-Variant"], h["X-Gw-Onset"]) == ("full", "4.000")

        # what a <video> asks while it seeks: ranges of the same clip
        ranges = {
            "bytes=100-1099": (100, 1099),
            "bytes=0-0": (0, 0),
            "bytes=-500": (n - 500, n - 1),
            f"bytes={n - 10}-": (n - 10, n - 1),
            "bytes=0-": (0, n - 1),
            f"bytes={n - 3}-{n + 1000}": (n - 3, n - 1),
        }
        for header, (first, last) in ranges.items():
            async with zhang.get(url, headers={"Range": header}) as r:
                assert r.status == 206, (header, r.status)
                assert r.headers["Content-Range"] == f"bytes {first}-{last}/{n}", header
                assert r.headers["Content-Length"] == str(last - first + 1)
                assert r.headers["X-Gw-Onset"] == "4.000"
                assert r.headers["Content-Type"] == "video/mp4"
                assert await r.read() == raw[first : last + 1], header
        for header in (f"bytes={n}-", f"bytes={n + 5}-{n + 9}", "bytes=-0"):
            async with zhang.get(url, headers={"Range": header}) as r:
                assert r.status == 416, (header, r.status)
                assert r.headers["Content-Range"] == f"bytes */{n}"
        for header in ("bytes=9-2", "bytes=0-1,5-6", "items=0-9"):  # ignored: the whole clip
            async with zhang.get(url, headers={"Range": header}) as r:
                assert (r.status, len(await r.read())) == (200, n), header
        async with zhang.head(url) as r:
            assert (r.status, r.headers["Content-Length"]) == (200, str(n))
        async with zhang.get(f"/m/clips/{GRID_A}/{CLIP}", headers={"Range": "bytes=5-9"}) as r:
            assert (r.status, await r.read()) == (206, raw[5:10])

        # one fetch from the clip service for all of it, audited once by it and by the console
        assert (cache_of(stack).fetches, service.served, service.full_views) == (1, 1, 1)
        records = await stack.audit_records()
        console_views = [a for a in records if a["kind"] == "view" and a["what"] == "clip_full"]
        assert [(a["user"], a["clip"], a["alert"], a["grid"]) for a in console_views] == [
            ("op-zhang", CLIP, ALERT, GRID_A)
        ]
        assert console_views[0]["subject"] == f"gw.v1.audit.view.{GRID_A}"
        assert console_views[0]["session"]
        served = [a for a in records if a.get("what") == "clip"]
        assert [(a["user"], a["clip"], a["blurred"]) for a in served] == [("op-zhang", CLIP, False)]

        # asked for blurred, an operator gets the blurred variant (and nothing is audited)
        async with zhang.get(f"{url}?variant=blurred") as r:
            assert r.status == 200, await r.text()
            assert (r.headers["X-Gw-Variant"], r.headers["X-Gw-Onset"]) == ("blurred", "4.000")
            assert await r.read() != raw
        async with zhang.get(f"{url}?variant=raw") as r:
            assert r.status == 400
        records = await stack.audit_records()
        assert len([a for a in records if a["kind"] == "view"]) == 2  # (console + service)


async def test_responders_get_the_blurred_clip_of_their_grid_only(
    tmp_path: Path, demo_mp4: Path
) -> None:
    raw = demo_clip_mp4(demo_mp4, 28.0, 4.0)
    async with clip_console(tmp_path) as (stack, store, _service):
        await put_clip(store, "cam-a", ALERT, raw, grid=GRID_A, pre_roll_s=4.0)
        li, _ = await stack.login("aux-li")
        for path in (f"/m/clips/{GRID_A}/{CLIP}?variant=blurred", f"/api/clips/{GRID_A}/{CLIP}"):
            async with li.get(path) as r:
                assert r.status == 200, (path, await r.text())
                assert r.headers["Content-Type"] == "video/mp4"
                assert (r.headers["X-Gw-Variant"], r.headers["X-Gw-Onset"]) == ("blurred", "4.000")
                blurred = await r.read()
        assert blurred != raw
        assert len(frames_of(blurred)) == len(frames_of(raw))  # every picture, re-encoded
        async with li.get(f"/api/clips/{GRID_A}/{CLIP}?variant=full") as r:
            assert r.headers["X-Gw-Variant"] == "blurred"  # asking is not enough
            assert await r.read() == blurred
        async with li.get(f"/api/clips/{GRID_A}/{CLIP}", headers={"Range": "bytes=-100"}) as r:
            assert (r.status, await r.read()) == (206, blurred[-100:])

        # another grid's responder: the grid is outside the scope, or the clip is not of it
        zhao, _ = await stack.login("aux-zhao")
        for path in (
            f"/api/clips/{GRID_A}/{CLIP}",
            f"/m/clips/{GRID_A}/{CLIP}?variant=blurred",
            f"/api/clips/{GRID_B}/{CLIP}",
            f"/m/clips/{GRID_B}/{CLIP}?variant=blurred",
        ):
            async with zhao.get(path, allow_redirects=False) as r:
                assert r.status == 404, (path, r.status)
        # an operator asking under the wrong grid: the service finds no such clip there (the
        # console's cache holds it under its own grid)
        zhang, _ = await stack.login("op-zhang")
        async with zhang.get(f"/api/clips/{GRID_A}/{CLIP}") as r:
            assert r.status == 200
        async with zhang.get(f"/api/clips/{GRID_B}/{CLIP}") as r:
            assert r.status == 404

        # not stored (yet), not a clip's name: 404; a 404 is not remembered
        later = "cam-a/feed0002.mp4"
        for path in (
            f"/api/clips/{GRID_A}/{later}",
            f"/api/clips/{GRID_A}/cam-a/{ALERT}.blurred.mp4",  # the service's cached variant
            f"/api/clips/{GRID_A}/{ALERT}.mp4",
            f"/api/clips/{GRID_A}/cam-a/..%2F{ALERT}.mp4",
            f"/api/clips/_all/{CLIP}",
        ):
            async with zhang.get(path) as r:
                assert r.status == 404, (path, r.status)
        await put_clip(store, "cam-a", "feed0002", raw, grid=GRID_A, pre_roll_s=2.5)
        async with zhang.get(f"/api/clips/{GRID_A}/{later}") as r:
            assert (r.status, r.headers["X-Gw-Onset"]) == (200, "2.500")

        # nobody logged in: the API says so, the phone view goes to the login page
        anon = stack.client()
        async with anon.get(f"/api/clips/{GRID_A}/{CLIP}") as r:
            assert r.status == 401
        async with anon.get(f"/m/clips/{GRID_A}/{CLIP}", allow_redirects=False) as r:
            assert r.status == 302
            assert r.headers["Location"].startswith("/login?next=")
        # no responder's view was a full one; the operator's was audited
        views = [a for a in await stack.audit_records() if a["kind"] == "view"]
        assert sorted((a["what"], a["user"], a["clip"]) for a in views) == [
            ("clip", "op-zhang", CLIP),
            ("clip", "op-zhang", later),
            ("clip_full", "op-zhang", CLIP),
            ("clip_full", "op-zhang", later),
        ]


async def test_without_the_clip_service_or_the_audit_a_clip_is_503(
    tmp_path: Path, demo_mp4: Path
) -> None:
    raw = demo_clip_mp4(demo_mp4, 28.0, 4.0)
    async with clip_console(tmp_path) as (stack, store, service):
        await put_clip(store, "cam-a", ALERT, raw, grid=GRID_A)
        await put_clip(store, "cam-a", "feed0003", raw, grid=GRID_A)
        zhang, _ = await stack.login("op-zhang")
        async with zhang.get(f"/api/clips/{GRID_A}/{CLIP}") as r:
            assert r.status == 200

        # no audit, no full clip
        await stack.svc.jetstream().delete_stream("GW_AUDIT")
        async with zhang.get(f"/api/clips/{GRID_A}/cam-a/feed0003.mp4") as r:
            assert r.status == 503
            assert (await r.json())["code"] == "audit"

        await service.stop()
        async with zhang.get(f"/api/clips/{GRID_A}/cam-a/feed0003.mp4") as r:
            assert r.status == 503
            body = await r.json()
        assert body["code"] == "unavailable"
        assert "clip service" in body["error"]
        # the clip fetched a moment ago still plays on (seeks do not ask the service again)
        async with zhang.get(f"/api/clips/{GRID_A}/{CLIP}", headers={"Range": "bytes=0-9"}) as r:
            assert (r.status, await r.read()) == (206, raw[:10])

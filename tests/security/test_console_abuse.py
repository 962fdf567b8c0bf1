"""Abuse of the console by clients on the network and by logged-in users (issue 13: items 3, 4,
5, 8 and the low ones about the live view's 502 and the reserved grid ``_all``).

Every test runs the real console (aiohttp on a port) over a secured nats-server started from
``gridwatch nats-config``'s permissions, with the case and snapshot services
(:mod:`tests.plugins.console_stack`); the push tests also run the notifier's sender against a
real local HTTP server. Each docstring names the attack and what must happen.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from gridwatch.auth.subjects import PUSH_SUBS_KV
from gridwatch.notify.webpush import (
    PublicResolver,
    PushResult,
    RefusedAddress,
    VapidKey,
    WebPushSender,
    push_session,
)
from tests.plugins.console_stack import CAMERAS_YAML, SseReader, console_stack
from tests.plugins.dispatch import GRID_A, password, wait_until

pytestmark = pytest.mark.timeout(120)

UNKNOWN_ID = "0123456789abcdef01234567"


async def _login(s: aiohttp.ClientSession, name: str, pw: str, **headers: str) -> int:
    async with s.post("/login", json={"name": name, "password": pw}, headers=headers) as r:
        return r.status


# -- item 3: the failed-login limit ---------------------------------------------------------------


async def test_a_burst_of_wrong_passwords_cannot_outrun_the_login_limit(tmp_path: Path) -> None:
    """Attack: 30 wrong passwords for one name sent at once, so that all of them are checked
    before the first failure is recorded (30 guesses where 5 are allowed).
    Must: at most ``login_max_failures`` (5) are checked (401); the rest are refused unchecked
    (429), and then even the right password is refused for the window."""
    async with console_stack(tmp_path, "login_max_failures: 5, login_window_s: 60") as stack:
        clients = [stack.client() for _ in range(30)]
        statuses = await asyncio.gather(*(_login(c, "aux-li", "guess") for c in clients))
        assert statuses.count(401) <= 5, statuses
        assert statuses.count(429) >= 25, statuses
        assert set(statuses) <= {401, 429}
        assert await _login(stack.client(), "aux-li", password("aux-li")) == 429


async def test_behind_a_trusted_proxy_each_client_has_its_own_address_limit(
    tmp_path: Path,
) -> None:
    """Attack: behind the documented TLS proxy every request comes from the proxy's address,
    so a few bad logins from one client lock every user out (a denial of service), or a
    client rotates a forged X-Forwarded-For to dodge the per-address limit.
    Must: with ``trusted_proxies`` set, the client address is the nearest untrusted one in
    X-Forwarded-For (what the proxy appended, not what the client wrote): the guessing client
    is limited, a client at another address still logs in, and the audit names it."""
    console = "login_max_failures: 3, login_window_s: 60, trusted_proxies: [127.0.0.1]"
    async with console_stack(tmp_path, console) as stack:
        attacker = stack.client()
        for i in range(3):  # each to another name, so only the address limit can stop it
            forged = f"10.9.9.{i}, 203.0.113.7"  # client-written part, then the proxy's
            status = await _login(attacker, f"nobody-{i}", "guess", **{"X-Forwarded-For": forged})
            assert status == 401
        assert (
            await _login(
                attacker, "nobody-9", "guess", **{"X-Forwarded-For": "1.1.1.1, 203.0.113.7"}
            )
            == 429
        )
        other = stack.client()
        assert (
            await _login(
                other, "op-zhang", password("op-zhang"), **{"X-Forwarded-For": "198.51.100.9"}
            )
            == 200
        )
        logins = [a for a in await stack.audit_records() if a.get("what") == "login"]
        assert [a["client"] for a in logins] == ["198.51.100.9"]


async def test_forwarded_headers_from_an_untrusted_peer_are_ignored(tmp_path: Path) -> None:
    """Attack: with no trusted proxy configured, a client writes a new X-Forwarded-For (or
    Forwarded) on every guess to look like many addresses.
    Must: the headers are ignored; the peer address is limited after
    ``login_max_failures``. (A guard on the trusted-proxy support: it held before it.)"""
    async with console_stack(tmp_path, "login_max_failures: 3, login_window_s: 60") as stack:
        s = stack.client()
        for i in range(3):
            hdr = {"X-Forwarded-For": f"198.51.100.{i}", "Forwarded": f"for=198.51.100.{i}"}
            assert await _login(s, f"nobody-{i}", "guess", **hdr) == 401
        hdr = {"X-Forwarded-For": "198.51.100.77"}
        assert await _login(s, "lead-wang", password("lead-wang"), **hdr) == 429


# -- item 4: the redirect after login -------------------------------------------------------------


EVIL_NEXT = [
    "/\t/evil.example",
    "/\n/evil.example",
    "/\r\n/evil.example",
    " /evil.example",
    "/\u3000/evil.example",
    "//evil.example",
    "///evil.example",
    "/\\evil.example",
    "\\/evil.example",
    "/%5Cevil.example",
    "/%2F/evil.example",
    "/.//evil.example",
    "https://evil.example/",
    "javascript:alert(1)",
    "evil.example",
    "/\x00/evil.example",
    "/login",
]


async def test_login_next_never_leaves_the_console(tmp_path: Path) -> None:
    """Attack: a link to the login page with ``next`` set so that, after a real login, the
    browser goes to another site (``/\\t/evil.example``: browsers strip the tab and read
    ``//evil.example``; backslashes, dot segments, encodings and schemes likewise).
    Must: ``next`` is handed back only when it is a path of this console; anything else
    falls back to the landing page (``/`` for an operator)."""
    async with console_stack(tmp_path) as stack:
        s = stack.client()
        body = {"name": "op-zhang", "password": password("op-zhang")}
        for nxt in EVIL_NEXT:
            async with s.post("/login", json={**body, "next": nxt}) as r:
                assert r.status == 200
                assert (await r.json())["next"] == "/", repr(nxt)
        async with s.post("/login", json={**body, "next": "/cameras/cam-a?x=1#live"}) as r:
            assert (await r.json())["next"] == "/cameras/cam-a?x=1#live"


# -- item 5: Web Push subscriptions ---------------------------------------------------------------

KEYS = {"p256dh": "BNc-key", "auth": "auth-secret"}
INWARD_ENDPOINTS = [
    "https://127.0.0.1/push/x",
    "https://127.1/push/x",  # a "name" that resolves to loopback
    "https://localhost/push/x",
    "https://10.0.0.5/push/x",
    "https://192.168.1.1/push/x",
    "https://169.254.169.254/latest/meta-data",
    "https://[::1]/push/x",
    "https://[::ffff:127.0.0.1]/push/x",
    "https://[::ffff:a00:5]/push/x",
    "https://[fe80::1]/push/x",
    "https://[fd00::1]/push/x",
    "https://224.0.0.1/push/x",
    "https://0.0.0.0/push/x",
    "http://push.example.net/push/x",  # plain http
    "ftp://push.example.net/x",
]


async def test_push_subscriptions_accept_public_https_endpoints_only(tmp_path: Path) -> None:
    """Attack: a logged-in user registers a push endpoint on loopback, a private network,
    link-local metadata or an IPv6/IPv4-mapped form of them, so the notifier POSTs into the
    internal network (blind SSRF); or sends ``keys`` that is not an object (a 500 before).
    Must: every such subscription is refused with 400 and nothing is stored; a public https
    endpoint is accepted."""
    async with console_stack(tmp_path) as stack:
        li, csrf = await stack.login("aux-li")
        for endpoint in INWARD_ENDPOINTS:
            sub = {"endpoint": endpoint, "keys": KEYS}
            async with li.post("/api/push/subscribe", json=sub, headers=csrf) as r:
                assert r.status == 400, (endpoint, await r.text())
        bad_bodies: list[Any] = [
            {"endpoint": "https://push.example.net/x", "keys": "p256dh"},
            {"endpoint": "https://push.example.net/x", "keys": ["a", "b"]},
            {"endpoint": "https://push.example.net/x", "keys": {"p256dh": 1, "auth": "x"}},
            {"endpoint": "https://push.example.net/x", "keys": {"p256dh": "a"}},
            {"endpoint": ["https://push.example.net/x"], "keys": KEYS},
            ["not", "an", "object"],
            "https://push.example.net/x",
        ]
        for body in bad_bodies:
            async with li.post("/api/push/subscribe", json=body, headers=csrf) as r:
                assert r.status == 400, (body, await r.text())
        ok = {"endpoint": "https://93.184.215.14/wpush/v2/abc", "keys": KEYS}
        async with li.post("/api/push/subscribe", json=ok, headers=csrf) as r:
            assert r.status == 200, await r.text()
            key = (await r.json())["key"]
        kv = await stack.svc.jetstream().key_value(PUSH_SUBS_KV)
        assert await kv.keys() == [key]  # none of the refused ones was stored


async def test_push_subscriptions_are_capped_per_user(tmp_path: Path) -> None:
    """Attack: one logged-in user registers subscription after subscription (each a push
    the notifier sends per alert, and an entry in the bucket).
    Must: a user holds at most ``push_max_subscriptions``; a new one replaces their oldest,
    and other users' subscriptions are untouched."""
    async with console_stack(tmp_path, extra="notify: {push_max_subscriptions: 3}") as stack:
        wang, wang_csrf = await stack.login("lead-wang")
        wang_sub = {"endpoint": "https://push.example.net/wang", "keys": KEYS}
        async with wang.post("/api/push/subscribe", json=wang_sub, headers=wang_csrf) as r:
            assert r.status == 200
        li, csrf = await stack.login("aux-li")
        keys = []
        for i in range(8):
            sub = {"endpoint": f"https://push.example.net/li-{i}", "keys": KEYS}
            async with li.post("/api/push/subscribe", json=sub, headers=csrf) as r:
                assert r.status == 200, await r.text()
                keys.append((await r.json())["key"])
        kv = await stack.svc.jetstream().key_value(PUSH_SUBS_KV)
        stored = set(await kv.keys())
        assert {k for k in stored if k.startswith("aux-li.")} == set(keys[-3:])
        assert sum(k.startswith("lead-wang.") for k in stored) == 1


@contextlib.asynccontextmanager
async def _push_target() -> AsyncIterator[tuple[str, list[str]]]:
    """A local HTTP server that records the paths POSTed to; ``/redirect`` answers 307 to
    ``/inside`` (what an attacker's push service would do to reach an internal URL)."""
    hits: list[str] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        hits.append(request.path)
        await request.read()
        if request.path == "/redirect":
            raise web.HTTPTemporaryRedirect("/inside")
        return web.Response(status=201)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield f"http://127.0.0.1:{server.port}", hits
    finally:
        await server.close()


def _subscription(endpoint: str) -> dict[str, Any]:
    """A subscription with real browser keys (so pywebpush can encrypt for it)."""
    ua = VapidKey.generate()
    return {
        "endpoint": endpoint,
        "keys": {"p256dh": ua.application_server_key, "auth": "c2VjcmV0c2VjcmV0MTI"},
    }


async def test_the_notifier_never_pushes_inward_nor_follows_redirects() -> None:
    """Attack: a subscription stored past the console (a person may write their own keys in
    the bucket) points at an internal address, or at a push service that redirects the
    notifier's POST to an internal URL.
    Must: the notifier's sender refuses endpoints that are not public https (unless their
    origin is in ``notify.push_allow_endpoints``, for a local test push service) without
    sending anything, refuses names that resolve inward when it connects, and treats a
    redirect as a failure without following it."""
    async with _push_target() as (origin, hits):
        port = origin.rsplit(":", 1)[1]
        for allow in ([], [origin]):
            session = push_session(allow)
            sender = WebPushSender(
                VapidKey.generate(),
                subject="mailto:ops@gridwatch.invalid",
                session=session,
                max_attempts=2,
                backoff_initial_s=0.01,
                allow_endpoints=allow,
            )
            try:
                if not allow:
                    for endpoint in (
                        f"{origin}/direct",  # loopback over http
                        f"https://127.0.0.1:{port}/direct",
                        f"https://[::ffff:127.0.0.1]:{port}/direct",
                    ):
                        out = await sender.send(_subscription(endpoint), b"{}")
                        assert out.result is PushResult.FAILED, endpoint
                        assert "refused" in out.detail, (endpoint, out)
                    assert hits == []
                    # a name is checked when the notifier connects: one that resolves to
                    # loopback (or later starts to) is refused there
                    with pytest.raises(RefusedAddress):
                        await PublicResolver().resolve("localhost", int(port))
                    assert await PublicResolver(["localhost"]).resolve("localhost", int(port))
                else:
                    out = await sender.send(_subscription(f"{origin}/ok"), b"{}")
                    assert out.result is PushResult.DELIVERED
                    out = await sender.send(_subscription(f"{origin}/redirect"), b"{}")
                    assert (out.result, out.status) == (PushResult.FAILED, 307)
                    assert hits == ["/ok", "/redirect"]  # never /inside
            finally:
                await session.close()


# -- item 8: resource exhaustion by a logged-in user ------------------------------------------


async def test_one_user_cannot_open_unbounded_live_walls(tmp_path: Path) -> None:
    """Attack: a logged-in user opens /api/events again and again (each costs two JetStream
    consumers and a replay of the look-back) to exhaust the console and NATS.
    Must: at most ``max_streams_per_user`` at once per user (429 beyond); other users are
    unaffected, and a closed stream frees its place."""
    async with console_stack(tmp_path, "max_streams_per_user: 2") as stack:
        li, _ = await stack.login("aux-li")
        async with SseReader(li) as one, SseReader(li) as two:
            assert (one.status, two.status) == (200, 200)
            async with li.get("/api/events") as r:
                assert r.status == 429
            # another session of the same user counts too
            li2, _ = await stack.login("aux-li")
            async with li2.get("/api/events") as r:
                assert r.status == 429
            wang, _ = await stack.login("lead-wang")
            async with SseReader(wang) as other:
                assert other.status == 200
        await wait_until(lambda: stack.console.streams.count("aux-li") == 0, within=20)
        async with SseReader(li) as again:
            assert again.status == 200


async def test_logout_ends_the_sessions_live_walls_at_once(tmp_path: Path) -> None:
    """Attack: a stolen or shared session keeps streaming the wall after its user logged
    out (the stream only re-checked the session at its next heartbeat).
    Must: logging out ends that session's live feeds at once, and only that session's."""
    async with console_stack(tmp_path, "sse_heartbeat_s: 60") as stack:
        li, csrf = await stack.login("aux-li")
        li2, _ = await stack.login("aux-li")
        reader = SseReader(li)
        other = SseReader(li2)
        async with reader, other:
            assert reader._task is not None
            assert other._task is not None
            async with li.post("/logout", headers=csrf) as r:
                assert r.status == 200
            await asyncio.wait_for(asyncio.shield(reader._task), 5)
            assert not other._task.done()
            assert stack.console.streams.count("aux-li") == 1


async def test_unknown_alert_ids_do_not_each_replay_the_grid(tmp_path: Path) -> None:
    """Attack: a logged-in user asks /api/alerts/<grid>/<id> for many made-up ids, at once
    and again and again: each unknown id replayed up to 2,000 messages of the grid.
    Must: replays are limited per user (``alert_lookups_per_minute``, counted before the
    replay so a burst cannot pass together; 429 beyond), and an id found unknown answers 404
    from memory, without another replay."""
    async with console_stack(tmp_path, "alert_lookups_per_minute: 3") as stack:
        backend = stack.console.backend
        replays = 0
        real = backend.alert_messages

        async def counting(*args: Any, **kwargs: Any) -> Any:
            nonlocal replays
            replays += 1
            return await real(*args, **kwargs)

        backend.alert_messages = counting  # type: ignore[method-assign]
        li, _ = await stack.login("aux-li")

        async def get(alert_id: str) -> int:
            async with li.get(f"/api/alerts/{GRID_A}/{alert_id}") as r:
                return r.status

        ids = [f"{i:024x}" for i in range(20)]
        statuses = await asyncio.gather(*(get(i) for i in ids))
        assert replays <= 3, replays
        assert statuses.count(404) == replays
        assert statuses.count(429) == 20 - replays
        first_404 = ids[statuses.index(404)]
        before = replays
        assert await get(first_404) == 404  # remembered: no replay, no 429
        assert replays == before
        # another user has their own allowance
        wang, _ = await stack.login("lead-wang")
        async with wang.get(f"/api/alerts/{GRID_A}/{UNKNOWN_ID}") as r:
            assert r.status == 404


def _live_cameras(url: str, dark_url: str) -> str:
    return CAMERAS_YAML.replace('url: "rtsp://127.0.0.1:9/a"', f'url: "{url}"').replace(
        'url: "rtsp://127.0.0.1:9/b"', f'url: "{dark_url}"'
    )


async def _offer(s: aiohttp.ClientSession, csrf: dict[str, str], camera: str) -> tuple[int, Any]:
    from aiortc import RTCConfiguration, RTCPeerConnection

    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        pc.addTransceiver("video", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        assert pc.localDescription is not None
        body = {"sdp": pc.localDescription.sdp, "type": "offer"}
        async with s.post(f"/api/live/{camera}/offer", json=body, headers=csrf) as r:
            return r.status, await r.json()
    finally:
        await pc.close()


@pytest.fixture
def gate_camera(rtsp_server: Any, demo_mp4: Path) -> str:
    return str(rtsp_server({"gate": demo_mp4}).url("gate"))


async def test_live_video_has_a_per_user_share_and_ends_at_logout(
    tmp_path: Path, gate_camera: str
) -> None:
    """Attack: one logged-in user opens live video sessions until the console's 16 viewers
    are all theirs (nobody else can watch), and keeps them after logging out.
    Must: at most ``max_live_per_user`` sessions per user (429 beyond, counted while the
    camera opens, so a burst cannot pass together); logging out hangs up that session's
    live videos at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    cams = _live_cameras(gate_camera, f"rtsp://127.0.0.1:{closed}/b")
    async with console_stack(
        tmp_path, "max_live_per_user: 2", cameras_yaml=cams, live=True
    ) as stack:
        hub = stack.console.live_hub
        assert hub is not None
        op, csrf = await stack.login("op-zhang")
        results = await asyncio.gather(*(_offer(op, csrf, "cam-a") for _ in range(4)))
        statuses = sorted(status for status, _ in results)
        assert statuses == [200, 200, 429, 429], results
        assert len(hub.session_ids()) == 2
        other, other_csrf = await stack.login("lead-wang")
        status, _ = await _offer(other, other_csrf, "cam-a")
        assert status == 200
        async with op.post("/logout", headers=csrf) as r:
            assert r.status == 200
        mine = {b["session"] for st, b in results if st == 200}
        assert not mine & set(hub.session_ids())
        assert len(hub.session_ids()) == 1  # the other user's is untouched


# -- low: the live view's 502, the reserved grid _all -------------------------------------------


async def test_an_unreachable_camera_does_not_reveal_its_address(tmp_path: Path) -> None:
    """Attack: a logged-in user asks for live video of a camera that is down; the 502 told
    the camera's host, port, path and user name (reconnaissance of the camera network).
    Must: a generic 502 message; the detail goes to the console's log only."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    dark = f"rtsp://admin:s3cret@127.0.0.1:{closed}/Streaming/secret-path"
    cams = _live_cameras(dark, dark)
    async with console_stack(tmp_path, cameras_yaml=cams, live=True) as stack:
        op, csrf = await stack.login("op-zhang")
        status, body = await asyncio.wait_for(_offer(op, csrf, "cam-a"), 30)
        assert status == 502, body
        text = json.dumps(body)
        for secret in ("127.0.0.1", str(closed), "admin", "s3cret", "secret-path", "rtsp"):
            assert secret not in text, (secret, text)
        assert stack.console.live_views.count("op-zhang") == 0


async def test_the_reserved_grid_all_is_no_grid_in_the_console(tmp_path: Path) -> None:
    """Attack: an operator sends case actions and look-ups through the reserved grid id
    ``_all`` (the services' "every grid" in subjects), which were accepted and audited under
    ``_all``.
    Must: ``_all`` in a console URL or action answers 404 like an unknown grid, and nothing
    is acted on or audited through it."""
    async with console_stack(tmp_path) as stack:
        op, csrf = await stack.login("op-zhang")
        for method, path in (
            ("POST", f"/api/cases/_all/{UNKNOWN_ID}/acknowledge"),
            ("POST", f"/api/cases/_all/{UNKNOWN_ID}/resolve"),
            ("GET", f"/api/alerts/_all/{UNKNOWN_ID}"),
            ("GET", "/api/cases?grid=_all"),
            ("GET", "/api/grids/_all/responders"),
            ("GET", "/api/snapshots/_all/cam-a/x.jpg"),
            ("GET", f"/alerts/_all/{UNKNOWN_ID}"),
        ):
            body = {"outcome": "false_alarm"} if path.endswith("resolve") else None
            async with op.request(method, path, json=body, headers=csrf) as r:
                assert r.status == 404, (method, path, r.status)
        records = await stack.audit_records()
        assert [a for a in records if a["kind"] != "login"] == []  # nothing was acted on

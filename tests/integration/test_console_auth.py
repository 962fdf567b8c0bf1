"""Console logins, sessions and CSRF against the real console (aiohttp on a port) over a real,
secured nats-server: bcrypt checks of the configured users, HttpOnly/SameSite=Strict session
cookies, the CSRF header on every state-changing request, rate-limited failed logins, session
expiry, and audit records of logins."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.plugins.console_stack import console_stack
from tests.plugins.dispatch import password

pytestmark = pytest.mark.timeout(120)


async def test_login_cookie_csrf_and_logout(tmp_path) -> None:  # type: ignore[no-untyped-def]
    async with console_stack(tmp_path) as stack:
        s = stack.client()
        # not logged in: the API says 401, pages send to the login page
        async with s.get("/api/me") as r:
            assert r.status == 401
        async with s.get("/cameras", allow_redirects=False) as r:
            assert r.status == 302
            assert r.headers["Location"] == "/login?next=/cameras"
        async with s.get("/login") as r:
            assert r.status == 200
            assert "Content-Security-Policy" in r.headers
            assert 'id="password"' in await r.text()
        # wrong password, unknown user, and a service account are refused alike
        for name, pw in (
            ("op-zhang", "nope"),
            ("nobody", "whatever"),
            ("svc", password("svc")),
        ):
            async with s.post("/login", json={"name": name, "password": pw}) as r:
                assert r.status == 401, name
                assert (await r.json())["error"] == "wrong name or password"
        # a login by form post (what a cross-site page could send) is not accepted
        form = {"name": "op-zhang", "password": password("op-zhang")}
        async with s.post("/login", data=form) as r:
            assert r.status == 415
        async with s.post(
            "/login",
            json={"name": "op-zhang", "password": password("op-zhang")},
            headers={"Origin": "https://evil.example"},
        ) as r:
            assert r.status == 403

        async with s.post(
            "/login", json={"name": "op-zhang", "password": password("op-zhang")}
        ) as r:
            assert r.status == 200
            body = await r.json()
            assert body["next"] == "/"
            cookie = r.headers["Set-Cookie"]
        assert "gw_session=" in cookie
        assert "HttpOnly" in cookie
        assert "SameSite=Strict" in cookie
        assert "Secure" not in cookie  # plain HTTP with cookie_secure: auto
        csrf = body["csrf"]
        async with s.get("/api/me") as r:
            me = await r.json()
        assert (me["name"], me["role"], me["grid"], me["csrf"]) == (
            "op-zhang",
            "operator",
            None,
            csrf,
        )

        push = {"endpoint": "https://push.example/x", "keys": {"p256dh": "a", "auth": "b"}}
        # every POST needs the session's CSRF token in the header
        async with s.post("/api/push/subscribe", json=push) as r:
            assert r.status == 403
            assert "CSRF" in (await r.json())["error"]
        wrong = {"X-CSRF-Token": "x" * 43}
        async with s.post("/api/push/subscribe", json=push, headers=wrong) as r:
            assert r.status == 403
        async with s.post(
            "/api/push/subscribe",
            json=push,
            headers={"X-CSRF-Token": csrf, "Origin": "https://evil.example"},
        ) as r:
            assert r.status == 403
        async with s.post("/api/push/subscribe", json=push, headers={"X-CSRF-Token": csrf}) as r:
            assert r.status == 200, await r.text()
        # a token of another session does not work in this one
        other, other_csrf = await stack.login("lead-wang")
        async with s.post("/api/push/subscribe", json=push, headers=other_csrf) as r:
            assert r.status == 403

        async with s.post("/logout") as r:
            assert r.status == 403  # logout is a POST too
        async with s.post("/logout", headers={"X-CSRF-Token": csrf}) as r:
            assert r.status == 200
        async with s.get("/api/me") as r:
            assert r.status == 401
        async with other.get("/api/me") as r:
            assert r.status == 200  # only that session ended

        # responders land on the phone view
        r_client = stack.client()
        async with r_client.post(
            "/login", json={"name": "aux-li", "password": password("aux-li")}
        ) as r:
            assert (await r.json())["next"] == "/m/"

        records = await stack.audit_records()
        logins = [(a["what"], a["user"]) for a in records if a["kind"] == "login"]
        assert ("login_failed", "op-zhang") in logins
        assert ("login_failed", "nobody") in logins
        assert ("login", "op-zhang") in logins
        assert ("logout", "op-zhang") in logins
        for a in records:
            assert a["at"]
            assert a["client"] == "127.0.0.1"


async def test_failed_logins_are_rate_limited(tmp_path) -> None:  # type: ignore[no-untyped-def]
    async with console_stack(tmp_path, "login_max_failures: 3, login_window_s: 60") as stack:
        s = stack.client()
        for _ in range(3):
            async with s.post("/login", json={"name": "aux-li", "password": "guess"}) as r:
                assert r.status == 401
        # the right password is not even checked now
        async with s.post("/login", json={"name": "aux-li", "password": password("aux-li")}) as r:
            assert r.status == 429
            assert int(r.headers["Retry-After"]) > 0
        # the address is limited too: other names from it are refused without a check
        async with s.post(
            "/login", json={"name": "lead-wang", "password": password("lead-wang")}
        ) as r:
            assert r.status == 429
        assert stack.console.limiter.blocked == 2
        refused = [a for a in await stack.audit_records() if a["what"] == "login_refused"]
        assert len(refused) == 2


async def test_sessions_expire_when_idle_and_after_their_lifetime(tmp_path) -> None:  # type: ignore[no-untyped-def]
    async with console_stack(tmp_path, "session_idle_s: 1.5, session_max_s: 4.0") as stack:
        idle, _ = await stack.login("op-zhang")
        async with idle.get("/api/me") as r:
            assert r.status == 200
        await asyncio.sleep(1.8)
        async with idle.get("/api/me") as r:
            assert r.status == 401

        # the server ends a session after its lifetime even if the browser kept the cookie
        # (browsers drop it then too: its Max-Age is the lifetime), and however busy it is
        login = stack.client()
        async with login.post(
            "/login", json={"name": "op-zhang", "password": password("op-zhang")}
        ) as r:
            token = r.cookies["gw_session"].value
            assert r.cookies["gw_session"]["max-age"] == "4"
        raw = aiohttp.ClientSession(base_url=stack.url, cookie_jar=aiohttp.DummyCookieJar())
        statuses = []
        try:
            for _ in range(10):  # a request every 0.5 s keeps it from idling out ...
                await asyncio.sleep(0.5)
                async with raw.get("/api/me", headers={"Cookie": f"gw_session={token}"}) as r:
                    statuses.append(r.status)
        finally:
            await raw.close()
        # ... but not past its lifetime of 4 s
        assert statuses[:4] == [200, 200, 200, 200], statuses
        assert statuses[-1] == 401, statuses
        assert len(stack.console.sessions) == 0  # both were dropped from the table


async def test_secure_cookie_when_configured(tmp_path) -> None:  # type: ignore[no-untyped-def]
    async with console_stack(tmp_path, "cookie_secure: always") as stack:
        s = stack.client()
        async with s.post(
            "/login", json={"name": "op-zhang", "password": password("op-zhang")}
        ) as r:
            assert r.status == 200
            assert "Secure" in r.headers["Set-Cookie"]

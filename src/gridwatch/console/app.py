"""The console's aiohttp application: login, sessions, CSRF, pages and static assets.

:func:`create_app` wires everything over one service connection to NATS. Two middlewares guard
every route:

* ``_security_headers``: a strict Content-Security-Policy (scripts, styles and connections from
  this origin only: no inline script, no CDN), no framing, no sniffing, no referrer, and
  ``no-store`` on everything that is not a static asset;
* ``_auth``: outside a short list of public paths (the login page, static assets, the PWA's
  manifest and service worker) a request needs a live session (cookie ``gw_session``); every
  POST/PUT/PATCH/DELETE also needs the session's CSRF token in the ``X-CSRF-Token`` header and,
  when the browser sends an ``Origin``, our own origin. It sets ``request[USER]`` (the
  :class:`~gridwatch.auth.models.UserConfig`), ``request[SCOPE]`` (the grid confinement, see
  :mod:`.scope`) and ``request[SESSION]``, and confines the live-video routes
  (``/api/live/<camera>/...``) to the cameras of the user's grid before they run (those also
  get ``request["user"]``, the live module's contract).

The JSON API and the live feed are in :mod:`.api`, case bundles in :mod:`.case_export`, alert
clips in :mod:`.clips`; what handlers share (the :class:`Console`, request keys, the client's
address, audit records) in :mod:`.context`.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import ipaddress
import json
import logging
import re
import time
import unicodedata
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import quote, unquote, urljoin, urlsplit, urlunsplit

from aiohttp import web
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from gridwatch.alerts.streams import ensure_alert_infra
from gridwatch.auth.models import UserConfig
from gridwatch.auth.passwords import hash_password, verify_password
from gridwatch.bus.names import (
    ALERTS_STREAM,
    CASES_KV,
    CASES_STREAM,
    kv_stream,
)
from gridwatch.cases.store import ensure_case_infra
from gridwatch.config import GridwatchConfig
from gridwatch.console import api, case_export, clips, stats_page, summary
from gridwatch.console.audit import AuditLog, ensure_audit_stream
from gridwatch.console.backend import ConsoleBackend
from gridwatch.console.cameras import CameraDirectory, HealthMonitor
from gridwatch.console.context import (
    CONSOLE,
    SCOPE,
    SESSION,
    USER,
    Console,
    LiveHubLike,
    audit_or_log,
    client_of,
    console_of,
    scope_of,
    user_of,
)
from gridwatch.console.scope import CONSOLE_ROLES, Scope
from gridwatch.console.sessions import LoginLimiter, Session, SessionStore, UserShares
from gridwatch.ingest.urls import redact_text

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).with_name("static")
COOKIE = "gw_session"
CSRF_HEADER = "X-CSRF-Token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
PUBLIC_PATHS = frozenset({"/login", "/m/manifest.json", "/m/sw.js", "/favicon.ico", "/healthz"})
PUBLIC_PREFIXES = ("/static/",)
LIVE_PATH = re.compile(r"^/api/live/([^/]+)(/|$)")
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; connect-src 'self'; worker-src 'self'; manifest-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_BCRYPT_COST = re.compile(r"^\$2[aby]\$(\d\d)\$")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
LIVE_OFFER_PATH = re.compile(r"^/api/live/([^/]+)/offer$")


# -- middlewares -----------------------------------------------------------------------------


@web.middleware
async def _security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        resp = await handler(request)
    except web.HTTPException as exc:
        _harden(request, exc)
        raise
    _harden(request, resp)
    return resp


def _harden(request: web.Request, resp: web.StreamResponse) -> None:
    if resp.prepared:  # a stream (the live feed) set its headers before it started
        return
    h = resp.headers
    h.setdefault("Content-Security-Policy", CSP)
    h.setdefault("X-Content-Type-Options", "nosniff")
    h.setdefault("X-Frame-Options", "DENY")
    h.setdefault("Referrer-Policy", "no-referrer")
    h.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    if not request.path.startswith(PUBLIC_PREFIXES):
        h.setdefault("Cache-Control", "no-store")


def _is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def _same_origin(request: web.Request, origin: str | None) -> bool:
    """Whether a browser's ``Origin`` (when it sent one) names this console. Only the host is
    compared: behind a TLS proxy the console sees http while the browser says https."""
    if origin is None:
        return True
    return urlsplit(origin).netloc == request.host


def _forbidden(request: web.Request, message: str) -> web.HTTPForbidden:
    log.info("refused %s %s from %s: %s", request.method, request.path, request.remote, message)
    return web.HTTPForbidden(text=json.dumps({"error": message}), content_type="application/json")


@web.middleware
async def _auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    c = console_of(request)
    path = request.path
    if _is_public(path):
        unsafe = request.method in UNSAFE_METHODS
        if unsafe and not _same_origin(request, request.headers.get("Origin")):
            raise _forbidden(request, "cross-origin request")
        return await handler(request)
    session = c.sessions.get(request.cookies.get(COOKIE))
    user = c.user_of(session)
    if session is None or user is None:
        if path.startswith("/api/"):
            raise web.HTTPUnauthorized(
                text='{"error": "log in first"}', content_type="application/json"
            )
        raise web.HTTPFound(f"/login?next={quote(path, safe='/')}")
    if request.method in UNSAFE_METHODS:
        if not _same_origin(request, request.headers.get("Origin")):
            raise _forbidden(request, "cross-origin request")
        if not SessionStore.csrf_ok(session, request.headers.get(CSRF_HEADER)):
            raise _forbidden(request, "missing or wrong CSRF token")
    scope = Scope.of(user)
    request[USER] = user
    request[SCOPE] = scope
    request[SESSION] = session
    m = LIVE_PATH.match(path)
    if m is not None:
        grid = c.cameras.grid_of(m.group(1))
        if grid is None or not scope.allows(grid):
            raise web.HTTPNotFound(text="not found")
        with warnings.catch_warnings():  # the live routes' contract is request["user"]
            warnings.simplefilter("ignore", web.NotAppKeyWarning)
            request["user"] = user
        if request.method == "POST" and LIVE_OFFER_PATH.match(path):
            return await _live_offer(request, handler, c, user, session)
    return await handler(request)


# -- what a session holds open ------------------------------------------------------------------


async def _live_offer(
    request: web.Request, handler: Handler, c: Console, user: UserConfig, session: Session
) -> web.StreamResponse:
    """A live video offer within the user's share of viewers (``max_live_per_user``), its
    session bound to the console session (a logout hangs it up), and a 502 that says nothing
    about the camera's address (the redacted detail is logged)."""
    _prune_live_views(c)
    slot = object()  # counted while the camera opens, so concurrent offers cannot pass together
    if not c.live_views.reserve(user.name, session.id_hash, slot):
        return web.json_response(
            {"error": f"at most {c.live_views.per_user} live videos at once; close one first"},
            status=429,
        )
    try:
        resp = await handler(request)
    except BaseException:
        c.live_views.discard(slot)
        raise
    live_id = None
    if resp.status == 200 and isinstance(resp, web.Response) and resp.text:
        with contextlib.suppress(ValueError, TypeError, KeyError):
            live_id = json.loads(resp.text)["session"]
    if isinstance(live_id, str):
        c.live_views.replace(slot, live_id)
        if not c.sessions.alive(session):  # logged out while the camera was opening
            await end_session_resources(c, session.id_hash)
    else:
        c.live_views.discard(slot)
    if resp.status == 502:
        detail = resp.text if isinstance(resp, web.Response) else None
        log.warning(
            "live view for %s: camera unavailable: %s", user.name, redact_text(detail or "")
        )
        return web.json_response({"error": "the camera cannot be shown right now"}, status=502)
    return resp


def _prune_live_views(c: Console) -> None:
    """Forget live sessions the hub no longer has (hung up, failed, timed out)."""
    if c.live_hub is None:
        return
    alive = set(c.live_hub.session_ids())
    for item, _user, _sid in c.live_views.items():
        if isinstance(item, str) and item not in alive:
            c.live_views.discard(item)


async def end_session_resources(c: Console, session_id: str) -> None:
    """End what one console session (``Session.id_hash``) holds open: its live feeds stop
    (the page reconnects and finds itself logged out) and its live videos are hung up."""
    for feed in c.streams.of_session(session_id):
        feed.stop()
    for item in c.live_views.of_session(session_id):
        if not isinstance(item, str):
            continue  # still opening: hung up when its offer returns
        c.live_views.discard(item)
        if c.live_hub is not None:
            try:
                await c.live_hub.hangup(item)
            except Exception:  # one failed hang-up must not keep the others up
                log.exception("live session %s: hang-up at logout failed", item[:8])


async def _sweep_sessions(c: Console) -> None:
    """Hang up the live videos of sessions that expired (a logout does it at once)."""
    while True:
        await asyncio.sleep(min(c.config.console.sse_heartbeat_s, 15.0))
        try:
            _prune_live_views(c)
            ended = {sid for _, _, sid in c.live_views.items() if not c.sessions.alive_id(sid)}
            for sid in ended:
                await end_session_resources(c, sid)
            now = time.monotonic()
            for key in [k for k, until in c.unknown_alerts.items() if until <= now]:
                del c.unknown_alerts[key]
        except Exception:
            log.exception("session sweep failed")


# -- login and pages --------------------------------------------------------------------------


def _cookie_secure(request: web.Request, mode: str) -> bool:
    return mode == "always" or (mode == "auto" and request.secure)


async def login_page(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC_DIR / "login.html")


async def login(request: web.Request) -> web.StreamResponse:
    """JSON ``{"name", "password"}`` → a session cookie. Only JSON is accepted, so a
    cross-site form cannot log a browser in under someone else's name (login CSRF)."""
    c = console_of(request)
    if request.content_type != "application/json":
        raise web.HTTPUnsupportedMediaType(text="send JSON")
    try:
        body = await request.json()
        name = str(body.get("name", ""))[:64]
        password = str(body.get("password", ""))[:256]
    except (ValueError, AttributeError):
        raise web.HTTPBadRequest(text="bad login request") from None
    keys = (f"user:{name}", f"ip:{client_of(request)}")
    wait = c.limiter.acquire(*keys)  # reserved before bcrypt: a burst cannot pass together
    if wait > 0:
        await audit_or_log(request, "login", "login_refused", None, user=name)
        return web.json_response(
            {"error": "too many failed logins; try again later"},
            status=429,
            headers={"Retry-After": str(int(wait) + 1)},
        )
    user = c.users.get(name)
    candidate = user.password_hash if user is not None else c.dummy_hash
    try:
        ok = await asyncio.to_thread(verify_password, password, candidate)
    finally:
        c.limiter.release(*keys)  # (failed/succeeded follow with no await in between)
    if not ok or user is None or user.role not in CONSOLE_ROLES:
        c.limiter.failed(*keys)
        grid = user.grid if user is not None else None
        await audit_or_log(request, "login", "login_failed", grid, user=name)
        return web.json_response({"error": "wrong name or password"}, status=401)
    c.limiter.succeeded(keys[0])
    token, session = c.sessions.create(user.name, client_of(request))
    request[USER] = user
    request[SESSION] = session
    await audit_or_log(request, "login", "login", user.grid)
    nxt = safe_next(body.get("next"), "/m/" if user.grid_scoped else "/")
    resp = web.json_response({"ok": True, "next": nxt, "csrf": session.csrf})
    resp.set_cookie(
        COOKIE,
        token,
        httponly=True,
        samesite="Strict",
        secure=_cookie_secure(request, c.config.console.cookie_secure),
        path="/",
        max_age=int(c.config.console.session_max_s),
    )
    return resp


def safe_next(nxt: object, default: str) -> str:
    r"""Where to go after login: ``nxt`` when it is a path of this console, else ``default``.

    Refused: anything but a string starting with one ``/``; whitespace or control characters
    anywhere (browsers strip tabs and newlines, so ``/\t/evil.example`` becomes
    ``//evil.example``); backslashes (read as ``/``); a scheme or host; a path that starts
    with ``//`` once percent-decoded or once its dot segments are resolved; the login page.

    >>> [safe_next(n, "/") for n in ("/cameras?x=1", "/\t/evil.example", "//evil.example",
    ...     "/\\evil.example", "https://evil.example", "/%2F/evil.example", "/.//evil")]
    ['/cameras?x=1', '/', '/', '/', '/', '/', '/']
    """
    if not isinstance(nxt, str) or not 0 < len(nxt) <= 2048:
        return default
    decoded = unquote(nxt)
    for text in (nxt, decoded):
        if "\\" in text or any(
            ch.isspace() or unicodedata.category(ch)[0] in ("C", "Z") for ch in text
        ):
            return default
        if not text.startswith("/") or text.startswith("//"):
            return default
    u = urlsplit(urljoin("http://console.invalid/", nxt))
    if (u.scheme, u.netloc) != ("http", "console.invalid") or u.path.startswith("//"):
        return default
    if u.path == "/login" or u.path.startswith("/login/"):
        return default
    return urlunsplit(("", "", u.path, u.query, u.fragment))


async def logout(request: web.Request) -> web.StreamResponse:
    c = console_of(request)
    await audit_or_log(request, "login", "logout", user_of(request).grid)
    ended = c.sessions.delete(request.cookies.get(COOKIE))
    if ended is not None:
        await end_session_resources(c, ended.id_hash)
    resp = web.json_response({"ok": True, "next": "/login"})
    resp.del_cookie(COOKIE, path="/")
    return resp


def page(name: str, grid_param: str | None = None) -> Handler:
    """A static HTML page behind the login; ``grid_param`` names the URL part that must be
    inside the user's scope (another grid's page is a 404)."""
    path = STATIC_DIR / name

    async def handler(request: web.Request) -> web.StreamResponse:
        if grid_param is not None:
            scope_of(request).require(request.match_info[grid_param])
        return web.FileResponse(path)

    return handler


async def camera_page(request: web.Request) -> web.StreamResponse:
    c = console_of(request)
    grid = c.cameras.grid_of(request.match_info["camera_id"])
    if grid is None:
        raise web.HTTPNotFound(text="not found")
    scope_of(request).require(grid)
    return web.FileResponse(STATIC_DIR / "camera.html")


async def static_file(request: web.Request) -> web.StreamResponse:
    """The PWA's manifest and service worker: public (browsers fetch the manifest without
    cookies) and served from /m/ so the worker's scope is the responder view."""
    name = {"/m/manifest.json": "m/manifest.json", "/m/sw.js": "m/sw.js"}[request.path]
    resp = web.FileResponse(STATIC_DIR / name)
    if name.endswith(".js"):
        resp.headers["Service-Worker-Allowed"] = "/m/"
        resp.headers["Cache-Control"] = "no-cache"
    else:
        resp.headers["Content-Type"] = "application/manifest+json"
    return resp


async def healthz(request: web.Request) -> web.StreamResponse:
    c = console_of(request)
    ok = c.nc.is_connected
    return web.json_response({"ok": ok}, status=200 if ok else 503)


async def favicon(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC_DIR / "icon.svg", headers={"Content-Type": "image/svg+xml"})


async def to_phone_view(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/m/")


async def index(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC_DIR / "wall.html")


# -- the application ---------------------------------------------------------------------------


def _dummy_hash(users: list[UserConfig]) -> str:
    """A hash checked for unknown names, with the users' own cost, so a wrong name takes as
    long as a wrong password (no user enumeration by timing)."""
    for u in users:
        m = _BCRYPT_COST.match(u.password_hash)
        if m:
            return hash_password("not-a-user-password", rounds=int(m.group(1)))
    return hash_password("not-a-user-password", rounds=4)


def _vapid_public_key(config: GridwatchConfig) -> str | None:
    path = config.notify.vapid_private_key_file
    if not path:
        return None
    try:
        from gridwatch.notify.webpush import VapidKey

        return VapidKey.load(path).application_server_key
    except (OSError, ValueError) as e:
        log.warning("no Web Push subscriptions in the console: %s", e)
        return None


def create_app(
    config: GridwatchConfig,
    nc: NATS,
    *,
    live_hub: LiveHubLike | None = None,
    cameras: CameraDirectory | None = None,
) -> web.Application:
    """The console over ``nc`` (a service account's connection, owned by the caller).

    ``live_hub``: a :class:`gridwatch.console.live.LiveHub`; its routes are added (they close
    it with the app). ``cameras``: a directory to share with the live hub's URL resolver
    (one is made otherwise).
    """

    s = config.console
    people = [u for u in config.users if u.role in CONSOLE_ROLES]
    console = Console(
        config=config,
        nc=nc,
        backend=ConsoleBackend(nc, timeout=s.request_timeout_s, lookback_s=s.wall_lookback_s),
        audit=AuditLog(
            nc.jetstream(),
            timeout=s.request_timeout_s,
            login_window_s=s.audit_login_window_s,
            login_max_keys=s.audit_login_max_keys,
        ),
        cameras=cameras or CameraDirectory(config, nc, live_sub_stream=s.live_sub_stream),
        health=HealthMonitor(nc, stale_s=s.health_stale_s),
        sessions=SessionStore(
            idle_s=s.session_idle_s, max_age_s=s.session_max_s, max_sessions=s.max_sessions
        ),
        limiter=LoginLimiter(max_failures=s.login_max_failures, window_s=s.login_window_s),
        users={u.name: u for u in config.users},
        dummy_hash=_dummy_hash(people),
        vapid_public_key=_vapid_public_key(config),
        live_hub=live_hub,
        trusted_proxies=[ipaddress.ip_network(n, strict=False) for n in s.trusted_proxies],
        streams=UserShares(s.max_streams_per_user),
        live_views=UserShares(s.max_live_per_user),
        alert_lookups=LoginLimiter(max_failures=s.alert_lookups_per_minute, window_s=60.0),
    )
    app = web.Application(middlewares=[_security_headers, _auth], client_max_size=256 * 1024)
    app[CONSOLE] = console
    r = app.router
    r.add_get("/login", login_page)
    r.add_post("/login", login)
    r.add_post("/logout", logout)
    r.add_get("/healthz", healthz)
    r.add_get("/favicon.ico", favicon)
    r.add_get("/", index)
    r.add_get("/alerts/{grid}/{alert_id}", page("alert.html", "grid"))
    r.add_get("/cameras", page("cameras.html"))
    r.add_get("/cameras/{camera_id}", camera_page)
    r.add_get("/map", page("map.html"))
    r.add_get("/m", to_phone_view)
    r.add_get("/m/", page("m/index.html"))
    r.add_get("/m/cases/{grid}/{alert_id}", page("m/index.html", "grid"))
    r.add_get("/m/manifest.json", static_file)
    r.add_get("/m/sw.js", static_file)
    case_export.register(app)  # before the API's /api/cases/<grid>/<id>/<op>
    api.register(app)
    clips.register(app)
    summary.register(app)  # the daily summary page and its numbers
    stats_page.register(app)  # the Statistics page: flow and heat maps
    r.add_static("/static", STATIC_DIR, follow_symlinks=False, show_index=False)
    if live_hub is not None:
        live = importlib.import_module("gridwatch.console.live")
        live.register_live_routes(app, live_hub)
    app.on_startup.append(_start)
    app.on_shutdown.append(_end_feeds)
    app.on_cleanup.append(_stop)
    return app


async def _ensure_read_streams(c: Console, js: JetStreamContext) -> None:
    """The streams the console reads belong to the workers and the case service, which make
    and converge them; the console only makes them when they are missing (a console started
    first), and only where its identity may: a ``service: console`` identity may look at them
    (STREAM.INFO) but not create them, so it logs what is missing and starts anyway (the pages
    fill once the owners have run)."""
    missing = []
    # not gw_snapshots: the console never reads it (the snapshot service does, for people)
    for name in (ALERTS_STREAM, CASES_STREAM, kv_stream(CASES_KV)):
        try:
            await js.stream_info(name)
        except NotFoundError:
            missing.append(name)
    if not missing:
        return
    a = c.config.alerts
    try:
        await ensure_alert_infra(
            js,
            max_age_s=a.retention_days * 86400,
            duplicate_window_s=a.duplicate_window_s,
            snapshot_ttl_s=None
            if a.snapshot_retention_days is None
            else a.snapshot_retention_days * 86400,
        )
        await ensure_case_infra(js, retention_days=c.config.cases.retention_days)
    except Exception as e:
        log.error(
            "console: %s missing and not made by this identity (%s): the workers and the case "
            "service make them; the console shows them once they "
            "exist",
            ", ".join(missing),
            type(e).__name__,
        )


async def _start(app: web.Application) -> None:
    """Make sure the streams the console reads exist (a console may start before any worker
    or case service), with the retention of the same config the others use."""
    c = app[CONSOLE]
    js = c.nc.jetstream()
    await _ensure_read_streams(c, js)
    cs = c.config.console
    await ensure_audit_stream(
        js,
        retention_days=cs.audit_retention_days,
        max_bytes=cs.audit_max_bytes,
        max_msgs=cs.audit_max_msgs,
    )
    await c.cameras.start()
    await c.health.start()
    task = asyncio.create_task(_sweep_sessions(c), name="console-session-sweep")
    c.tasks.add(task)
    task.add_done_callback(c.tasks.discard)
    c.started = True


async def _end_feeds(app: web.Application) -> None:
    for feed in list(app[CONSOLE].feeds):
        feed.stop()
    for task in list(app[CONSOLE].tasks):
        task.cancel()


async def _stop(app: web.Application) -> None:
    c = app[CONSOLE]  # (the live routes close the live hub themselves)
    await c.audit.close()  # writes the failed-login counts still held
    await c.health.stop()
    await c.cameras.stop()

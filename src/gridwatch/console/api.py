"""The console's JSON API and live feed, every handler confined by ``request["scope"]``.

=====================================================  ==========================================
``GET  /api/me``                                        who is logged in, their CSRF token
``GET  /api/config``                                    grids, deadlines, alert types (scoped)
``GET  /api/events``                                    the live wall (Server-Sent Events)
``GET  /api/cases?state=open,...``                      cases of the scope (case service)
``GET  /api/alerts/<grid>/<id>``                        one alert: item, messages, case history
``POST /api/cases/<grid>/<id>/<op>``                    acknowledge, dispatch, on_scene, resolve
``POST /api/cases/<grid>/<id>/export``                  the case bundle (zip; :mod:`.case_export`)
``GET  /api/snapshots/<grid>/<name>?variant=``          the JPEG (full views audited first)
``GET  /api/clips/<grid>/<name>?variant=``              the alert's MP4, HTTP ranges (:mod:`.clips`)
``GET  /api/grids/<grid>/responders``                   whom a case of the grid can go to
``GET  /api/cameras``, ``/api/cameras/<id>``            cameras with health (scoped)
``POST /api/push/subscribe``                            store this browser's Web Push subscription
                                                        (public https endpoints only, a few per
                                                        user: see notify.subscriptions)
``GET  /api/stats``                                     live feed counters (operators, admins)
=====================================================  ==========================================

A grid outside the scope answers 404 like an id that does not exist.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import time
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from gridwatch.alerts.snapshot_service import SnapshotRequestError
from gridwatch.cases.client import CaseRequestError
from gridwatch.cases.model import Case, CaseCommand, CaseState
from gridwatch.config import RULE_TYPES
from gridwatch.console.context import (
    audit_or_log,
    console_of,
    scope_of,
    session_of,
    user_of,
)
from gridwatch.console.feed import FeedClosed, LiveFeed, item_json, sse_event
from gridwatch.console.wall import Wall
from gridwatch.model import Alert
from gridwatch.notify.subscriptions import check_endpoint, validate_subscription

log = logging.getLogger(__name__)

CASE_OPS = ("acknowledge", "dispatch", "on_scene", "resolve")
OPEN_STATES = [CaseState.OPEN, CaseState.ACKNOWLEDGED, CaseState.DISPATCHED, CaseState.ON_SCENE]
CASE_ERROR_STATUS = {
    "invalid": 400,
    "forbidden": 403,
    "not_found": 404,
    "conflict": 409,
    "unavailable": 503,
    "timeout": 503,
}


def _error(status: int, message: str, code: str = "") -> web.Response:
    return web.json_response({"error": message, "code": code}, status=status)


def _case_error(e: CaseRequestError) -> web.Response:
    status = CASE_ERROR_STATUS.get(e.code, 502)
    if e.code == "not_found":
        return _error(404, "not found", e.code)
    return _error(status, str(e), e.code)


# -- who and what -------------------------------------------------------------------------------


async def me(request: web.Request) -> web.StreamResponse:
    user = user_of(request)
    c = console_of(request)
    return web.json_response(
        {
            "name": user.name,
            "display_name": user.display_name or user.name,
            "role": user.role,
            "grid": user.grid,
            "csrf": session_of(request).csrf,
            "full_snapshots": user.role in c.config.notify.full_snapshot_roles,
            "acts_on_cases": user.is_person,
        }
    )


async def config_view(request: web.Request) -> web.StreamResponse:
    c = console_of(request)
    scope = scope_of(request)
    cfg = c.config
    grids = [{"id": g.id, "name": g.name or g.id} for g in cfg.grids if scope.allows(g.id)]
    deadlines = {
        sev: {"acknowledge_s": d.acknowledge_s, "on_scene_s": d.on_scene_s}
        for sev in ("info", "warning", "critical")
        for d in [cfg.cases.deadline(sev)]
    }
    return web.json_response(
        {
            "grids": grids,
            "types": list(RULE_TYPES),
            "states": [s.value for s in CaseState],
            "deadlines": deadlines,
            # the players: whether alerts have clips, and how long after the alert one is stored
            "clips": {"enabled": cfg.alerts.clips.enabled, "post_s": cfg.alerts.clips.post_s},
            "vapid_public_key": c.vapid_public_key,
        }
    )


async def stats(request: web.Request) -> web.StreamResponse:
    if not scope_of(request).all_grids:
        raise web.HTTPNotFound(text="not found")
    c = console_of(request)
    return web.json_response(
        {
            "feed": vars(c.stats),
            "sessions": len(c.sessions),
            "sessions_evicted": c.sessions.evicted,
            "logins_blocked": c.limiter.blocked,
            "audit_written": c.audit.written,
            "audit_failed": c.audit.failed,
        }
    )


# -- the live wall --------------------------------------------------------------------------------


async def events(request: web.Request) -> web.StreamResponse:
    """The live wall of the user's scope as Server-Sent Events (see :mod:`.feed`)."""
    c = console_of(request)
    s = c.config.console
    user, scope, session = user_of(request), scope_of(request), session_of(request)

    def abort() -> None:
        transport = request.transport
        if transport is not None:
            transport.abort()  # type: ignore[attr-defined]

    feed = LiveFeed(
        c.nc.jetstream(),
        scope,
        c.config.cases,
        lookback_s=s.wall_lookback_s,
        max_items=s.wall_max_items,
        queue_size=s.sse_queue_size,
        stats=c.stats,
        on_overflow=abort,
    )
    # counted from here (before any await), so a burst of requests cannot pass the cap together
    if not c.streams.reserve(user.name, session.id_hash, feed):
        log.info("live feed of %s refused: %d open already", user.name, c.streams.per_user)
        return _error(429, "too many live walls open for this user; close one", "busy")
    seed: list[Case] = []
    if user.is_person or user.role == "admin":
        try:
            seed = await c.backend.list_cases(user, scope.grid, OPEN_STATES)
        except CaseRequestError as e:
            log.info("wall of %s opens without the case service's open cases: %s", user.name, e)
        except BaseException:
            c.streams.discard(feed)
            raise
    c.stats.clients += 1
    c.stats.connections += 1
    resp = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",
            "X-Content-Type-Options": "nosniff",
        }
    )
    c.feeds.add(feed)
    try:
        await feed.open(seed)
        await feed.caught_up(10.0)
        items = feed.snapshot()
        await resp.prepare(request)
        hello = {
            "user": user.name,
            "grid": scope.grid,
            "server_time": dt.datetime.now(dt.UTC).isoformat(),
        }
        await _write(resp, b"retry: 2000\n\n" + sse_event("hello", hello), s.sse_write_timeout_s)
        await _write(
            resp,
            sse_event("snapshot", {"items": [item_json(i) for i in items]}),
            s.sse_write_timeout_s,
        )
        while True:
            item = await feed.next(s.sse_heartbeat_s)
            if item is None:
                if not c.sessions.alive(session):
                    await _write(resp, sse_event("logout", {}), s.sse_write_timeout_s)
                    break
                c.sessions.touch(session)
                await _write(resp, b": ping\n\n", s.sse_write_timeout_s)
                continue
            await _write(resp, sse_event("item", item_json(item)), s.sse_write_timeout_s)
            c.stats.items_sent += 1
    except FeedClosed as e:
        log.debug("live feed of %s closed: %s", user.name, e.reason)
        if not resp.prepared:  # ended before it started: the browser retries
            return _error(503, "the live feed is not available right now", e.reason)
    except TimeoutError:
        if not resp.prepared:  # NATS did not answer while the feed was opening
            return _error(503, "the live feed is not available right now", "timeout")
        c.stats.slow_disconnects += 1
        log.info("live feed of %s: a write got stuck; disconnecting", user.name)
        abort()
    except ConnectionError:
        pass  # the browser went away
    finally:
        c.stats.clients -= 1
        c.feeds.discard(feed)
        c.streams.discard(feed)
        await feed.close()
    return resp


async def _write(resp: web.StreamResponse, data: bytes, limit_s: float) -> None:
    await asyncio.wait_for(resp.write(data), limit_s)


# -- cases -------------------------------------------------------------------------------------


async def list_cases(request: web.Request) -> web.StreamResponse:
    c = console_of(request)
    scope = scope_of(request)
    raw = request.query.get("state", "")
    try:
        states = [CaseState(v) for v in raw.split(",") if v] or None
    except ValueError:
        return _error(400, f"unknown state in {raw!r}")
    grid = request.query.get("grid")
    if grid is not None:
        scope.require(grid)
    try:
        cases = await c.backend.list_cases(user_of(request), grid or scope.grid, states)
    except CaseRequestError as e:
        return _case_error(e)
    cases = scope.keep(cases)
    return web.json_response({"cases": [x.model_dump(mode="json") for x in cases]})


async def alert_detail(request: web.Request) -> web.StreamResponse:
    c = console_of(request)
    user = user_of(request)
    grid = scope_of(request).require(request.match_info["grid"])
    alert_id = request.match_info["alert_id"]
    case: Case | None = None
    case_error = ""
    try:
        case = await c.backend.get_case(user, grid, alert_id)
    except CaseRequestError as e:
        case_error = str(e)
    except ValueError:
        raise web.HTTPNotFound(text="not found") from None
    if case is None:
        found = await _lookup_alert(request, grid, alert_id)
        if isinstance(found, web.Response):
            return found  # over the user's look-ups
        messages, history = found, []
    else:
        try:
            messages = await c.backend.alert_messages(grid, alert_id, case)
            history = await c.backend.history(grid, alert_id)
        except ValueError:  # not a valid id token
            raise web.HTTPNotFound(text="not found") from None
    if case is None and not messages:
        raise web.HTTPNotFound(text="not found")
    wall = Wall(c.config.cases)
    for stored_at, alert in messages:
        wall.fold_alert(alert, stored_at)
    item = wall.seed_case(case) if case is not None else wall.items[alert_id]
    return web.json_response(
        {
            "item": item_json(item),
            "messages": [
                {"stored_at": t.isoformat(), **a.model_dump(mode="json", exclude={"boxes"})}
                for t, a in messages
            ],
            "history": [ev.model_dump(mode="json") for ev in history],
            "responders": _responders(request, grid),
            "case_error": case_error,
        }
    )


_UNKNOWN_ALERTS_MAX = 10000


async def _lookup_alert(
    request: web.Request, grid: str, alert_id: str
) -> list[tuple[dt.datetime, Alert]] | web.Response:
    """The stored messages of an alert that has no case, or a refusal (429).

    Without a case the whole grid's look-back is replayed, so: an id found unknown answers
    404 from memory for ``alert_unknown_cache_s``, and each user gets
    ``alert_lookups_per_minute`` replays (reserved before the replay, so concurrent requests
    cannot pass the limit together); beyond that 429."""
    c = console_of(request)
    s = c.config.console
    key = (grid, alert_id)
    now = time.monotonic()
    if c.unknown_alerts.get(key, 0.0) > now:
        raise web.HTTPNotFound(text="not found")
    who = f"user:{user_of(request).name}"
    wait = c.alert_lookups.acquire(who)
    if wait > 0:
        return web.json_response(
            {"error": "too many alert look-ups; try again shortly", "code": "busy"},
            status=429,
            headers={"Retry-After": str(int(wait) + 1)},
        )
    try:
        messages = await c.backend.alert_messages(grid, alert_id, None)
    except ValueError:  # not a valid id token
        raise web.HTTPNotFound(text="not found") from None
    finally:
        c.alert_lookups.release(who)
        c.alert_lookups.failed(who)  # (the window counts every replay, found or not)
    if not messages and s.alert_unknown_cache_s > 0:
        while len(c.unknown_alerts) >= _UNKNOWN_ALERTS_MAX:
            del c.unknown_alerts[next(iter(c.unknown_alerts))]
        c.unknown_alerts[key] = time.monotonic() + s.alert_unknown_cache_s
    return messages


def _responders(request: web.Request, grid: str) -> list[dict[str, Any]]:
    c = console_of(request)
    return [
        {
            "name": u.name,
            "display_name": u.display_name or u.name,
            "role": u.role,
            "on_duty": u.on_duty,
        }
        for u in c.config.users
        if u.grid_scoped and u.grid == grid
    ]


async def responders(request: web.Request) -> web.StreamResponse:
    grid = scope_of(request).require(request.match_info["grid"])
    return web.json_response({"responders": _responders(request, grid)})


async def case_action(request: web.Request) -> web.StreamResponse:
    c = console_of(request)
    user = user_of(request)
    grid = scope_of(request).require(request.match_info["grid"])
    alert_id = request.match_info["alert_id"]
    op = request.match_info["op"]
    if op not in CASE_OPS:
        raise web.HTTPNotFound(text="not found")
    body: dict[str, Any] = {}
    if request.can_read_body:
        try:
            raw = await request.json()
        except ValueError:
            return _error(400, "the body must be JSON")
        if not isinstance(raw, dict):
            return _error(400, "the body must be a JSON object")
        body = raw
    try:
        cmd = CaseCommand(
            op=op,  # type: ignore[arg-type]
            case_id=alert_id,
            responder=body.get("responder") if op == "dispatch" else None,
            outcome=body.get("outcome") if op == "resolve" else None,
            note=str(body.get("note") or "") if op == "resolve" else "",
        )
    except ValidationError as e:
        return _error(400, f"bad {op}: {e.errors()[0]['msg']}", "invalid")
    fields: dict[str, Any] = {"case": alert_id, "op": op}
    if cmd.responder:
        fields["responder"] = cmd.responder
    if cmd.outcome:
        fields["outcome"] = cmd.outcome.value
        fields["note"] = cmd.note
    try:
        case = await c.backend.act(user, grid, cmd)
    except CaseRequestError as e:
        await audit_or_log(request, "case", op, grid, result=e.code, **fields)
        return _case_error(e)
    except ValueError:
        raise web.HTTPNotFound(text="not found") from None
    audited = await audit_or_log(
        request, "case", op, grid, result="ok", state=case.state.value, **fields
    )
    return web.json_response({"case": case.model_dump(mode="json"), "audited": audited})


# -- snapshots ---------------------------------------------------------------------------------


async def snapshot(request: web.Request) -> web.StreamResponse:
    """The JPEG as the snapshot service serves it to this user. A full (unblurred) one is
    served only after its audit record is stored."""
    c = console_of(request)
    user = user_of(request)
    grid = scope_of(request).require(request.match_info["grid"])
    name = request.match_info["name"]
    may_full = user.role in c.config.notify.full_snapshot_roles
    variant = request.query.get("variant", "full" if may_full else "blurred")
    if variant not in ("full", "blurred"):
        return _error(400, "variant is full or blurred")
    try:
        data, served = await c.backend.snapshot(user, grid, name, full=variant == "full")
    except SnapshotRequestError as e:
        if e.code in ("not_found", "forbidden", "invalid"):
            raise web.HTTPNotFound(text="not found") from None
        return _error(503, str(e), e.code)
    except ValueError:
        raise web.HTTPNotFound(text="not found") from None
    if served == "full":
        alert_id = request.query.get("alert")
        stored = await audit_or_log(
            request, "view", "snapshot_full", grid, snapshot=name, alert=alert_id
        )
        if not stored:
            return _error(503, "the view could not be audited, so it is not shown", "audit")
    return web.Response(
        body=data,
        content_type="image/jpeg",
        headers={"Cache-Control": "no-store, private", "X-Gw-Variant": served},
    )


# -- cameras -----------------------------------------------------------------------------------


async def cameras(request: web.Request) -> web.StreamResponse:
    c = console_of(request)
    scope = scope_of(request)
    views = [
        c.health.view(cam).model_dump(mode="json")
        for cam in sorted(c.cameras.cameras.values(), key=lambda x: x.id)
        if scope.allows(cam.grid)
    ]
    out: dict[str, Any] = {"cameras": views}
    if c.config.gb28181 is not None:
        from gridwatch.gb28181.service import cascade_view

        out["gb28181"] = await cascade_view(c.config, c.nc, [v["id"] for v in views])
    return web.json_response(out)


async def camera(request: web.Request) -> web.StreamResponse:
    c = console_of(request)
    cam = c.cameras.get(request.match_info["camera_id"])
    if cam is None:
        raise web.HTTPNotFound(text="not found")
    scope_of(request).require(cam.grid)
    return web.json_response({"camera": c.health.view(cam).model_dump(mode="json")})


# -- push --------------------------------------------------------------------------------------


async def push_subscribe(request: web.Request) -> web.StreamResponse:
    """Store this browser's ``PushSubscription.toJSON()`` for the user, in KV gw_push_subs
    (``<user>.<endpoint hash>``), where the notifier picks it up live."""
    c = console_of(request)
    n = c.config.notify
    try:
        body = await request.json()
        sub = validate_subscription(body)
        await check_endpoint(sub["endpoint"], n.push_allow_endpoints)
    except (ValueError, json.JSONDecodeError) as e:
        return _error(400, f"not a push subscription: {e}", "invalid")
    key = await c.backend.register_push(
        user_of(request), sub, max_per_user=n.push_max_subscriptions
    )
    return web.json_response({"ok": True, "key": key})


def register(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/me", me)
    r.add_get("/api/config", config_view)
    r.add_get("/api/stats", stats)
    r.add_get("/api/events", events)
    r.add_get("/api/cases", list_cases)
    r.add_get("/api/alerts/{grid}/{alert_id}", alert_detail)
    r.add_post("/api/cases/{grid}/{alert_id}/{op}", case_action)
    r.add_get("/api/snapshots/{grid}/{name:.+}", snapshot)
    r.add_get("/m/snapshots/{grid}/{name:.+}", snapshot)
    r.add_get("/api/grids/{grid}/responders", responders)
    r.add_get("/api/cameras", cameras)
    r.add_get("/api/cameras/{camera_id}", camera)
    r.add_post("/api/push/subscribe", push_subscribe)

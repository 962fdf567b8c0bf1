"""The console's Statistics page: people flow at the gates and where people stand.

Routes (all behind the login; a grid-scoped person gets their grid's cameras only, another
grid's camera answers 404 like one that does not exist):

``GET /statistics``                          the page (``static/stats.html``, charts by uPlot)
``GET /api/statistics/cameras``              the cameras in scope (gates, i.e. cameras with a
                                             line-crossing rule, first), the time zone, today
``GET /api/statistics/flow/<camera>?date=``  crossings in per line per 15 minutes of a local
                                             day (today by default) and the same weekday's band
``GET /api/statistics/heat/<camera>?since=&until=``  the heat grid summed over a period
                                             (ISO times or dates, naive ones in the config's
                                             time zone; today so far by default): quarter
                                             records up to 2 days, hour records up to 35, day
                                             records beyond, each followed by the finer records
                                             of the time not rolled up yet
``GET /api/statistics/picture/<camera>``     the picture the heat map is drawn over: the
                                             camera's latest alert snapshot, always the
                                             *blurred* variant (people pixelated by the snapshot
                                             service), whatever the person's role; 404 when the
                                             camera has none (the page draws on grey)

The numbers are computed in :mod:`.stats_data` from the GW_STATS records.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

from aiohttp import web

from gridwatch.alerts.snapshot_service import SnapshotRequestError
from gridwatch.config import CameraConfig
from gridwatch.console.context import console_of, scope_of, user_of
from gridwatch.console.stats_data import PastDays, flow_view, heat_view, latest_snapshot

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).with_name("static")
MAX_SPAN = dt.timedelta(days=400)
"""The longest period a heat map may sum."""
PAST_DAYS: web.AppKey[PastDays] = web.AppKey("gridwatch_stats_past_days", PastDays)
"""The counts of past days the flow charts' bands were read from (kept on the app)."""


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _camera(request: web.Request) -> CameraConfig:
    """The camera named in the URL, inside the person's scope; else 404."""
    c = console_of(request)
    cam = c.cameras.get(request.match_info["camera"])
    if cam is None:
        raise web.HTTPNotFound(text="not found")
    scope_of(request).require(cam.grid)
    return cam


def _is_gate(cam: CameraConfig) -> bool:
    return any(getattr(r, "type", "") == "line_crossing" for r in cam.rules)


async def page(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC_DIR / "stats.html")


async def cameras(request: web.Request) -> web.StreamResponse:
    c = console_of(request)
    scope = scope_of(request)
    tz = c.config.tzinfo()
    cams = [cam for cam in c.cameras.cameras.values() if scope.allows(cam.grid)]
    cams.sort(key=lambda cam: (not _is_gate(cam), cam.id))
    return web.json_response(
        {
            "timezone": c.config.timezone,
            "today": dt.datetime.now(tz).date().isoformat(),
            "cameras": [
                {"id": cam.id, "name": cam.name or cam.id, "grid_id": cam.grid,
                 "gate": _is_gate(cam)}
                for cam in cams
            ],
        }
    )  # fmt: skip


async def flow(request: web.Request) -> web.StreamResponse:
    c = console_of(request)
    cam = _camera(request)
    tz = c.config.tzinfo()
    raw = request.query.get("date")
    try:
        day = dt.date.fromisoformat(raw) if raw else dt.datetime.now(tz).date()
    except ValueError:
        return _error(400, "date is YYYY-MM-DD")
    view = await flow_view(
        c.nc.jetstream(),
        grid=cam.grid,
        camera=cam.id,
        day=day,
        tz_name=c.config.timezone,
        past_days=request.app[PAST_DAYS],
    )
    return web.json_response(text=view.model_dump_json())


def _when(raw: str | None, default: dt.datetime, tz: dt.tzinfo) -> dt.datetime:
    """An ISO time (naive: local) or date (local midnight)."""
    if not raw:
        return default
    if len(raw) == 10:
        return dt.datetime.combine(dt.date.fromisoformat(raw), dt.time(), tz)
    t = dt.datetime.fromisoformat(raw)
    return t if t.tzinfo is not None else t.replace(tzinfo=tz)


async def heat(request: web.Request) -> web.StreamResponse:
    c = console_of(request)
    cam = _camera(request)
    tz = c.config.tzinfo()
    now = dt.datetime.now(dt.UTC)
    midnight = dt.datetime.combine(now.astimezone(tz).date(), dt.time(), tz)
    try:
        since = _when(request.query.get("since"), midnight, tz).astimezone(dt.UTC)
        until = _when(request.query.get("until"), now, tz).astimezone(dt.UTC)
    except ValueError:
        return _error(400, "since and until are ISO times or dates")
    if not since < until or until - since > MAX_SPAN:
        return _error(400, f"since must be before until, at most {MAX_SPAN.days} days before")
    view = await heat_view(
        c.nc.jetstream(),
        grid=cam.grid,
        camera=cam.id,
        since=since,
        until=until,
        size=(c.config.stats.heat_cols, c.config.stats.heat_rows),
    )
    return web.json_response(text=view.model_dump_json())


async def picture(request: web.Request) -> web.StreamResponse:
    """The camera's latest alert snapshot, blurred (people pixelated) for everyone: the heat
    map shows where people stand, never who."""
    c = console_of(request)
    cam = _camera(request)
    name = await latest_snapshot(c.nc.jetstream(), grid=cam.grid, camera=cam.id)
    if name is None:
        raise web.HTTPNotFound(text="no picture of this camera yet")
    try:
        data, served = await c.backend.snapshot(user_of(request), cam.grid, name, full=False)
    except SnapshotRequestError as e:
        if e.code in ("not_found", "forbidden", "invalid"):
            raise web.HTTPNotFound(text="no picture of this camera yet") from None
        return _error(503, str(e))
    except ValueError:  # a stored name the snapshot request refuses
        raise web.HTTPNotFound(text="no picture of this camera yet") from None
    if served != "blurred":  # never: asked for blurred; refuse rather than show people
        log.error("picture of %s: the snapshot service sent %s, not blurred", cam.id, served)
        return _error(503, "no blurred picture")
    return web.Response(
        body=data,
        content_type="image/jpeg",
        headers={"Cache-Control": "no-store, private", "X-Gw-Variant": served},
    )


def register(app: web.Application) -> None:
    app[PAST_DAYS] = PastDays()
    r = app.router
    r.add_get("/statistics", page)
    r.add_get("/api/statistics/cameras", cameras)
    r.add_get("/api/statistics/flow/{camera}", flow)
    r.add_get("/api/statistics/heat/{camera}", heat)
    r.add_get("/api/statistics/picture/{camera}", picture)

"""The per-grid daily summary: what happened in one grid on one day, on a page that prints.

=====================================================  ==========================================
``GET  /summary``                                       the user's grid (or the first one in scope)
``GET  /summary/<grid>?day=YYYY-MM-DD``                 the page (``static/summary.html``)
``GET  /api/summary/<grid>?day=YYYY-MM-DD``             the numbers (:class:`DaySummary`, JSON)
=====================================================  ==========================================

The day is a calendar day in the deployment's time zone (``timezone:`` of the config), since
that is the day a grid's shift reports on; without ``day``, today there. A grid outside the
user's scope answers 404 (:mod:`.scope`).

Every incident opens exactly one case, whose ``opened`` event carries the alert's type,
camera and severity (:mod:`gridwatch.cases.service`), so the case lifecycle in stream
``GW_CASES`` alone has all the numbers: the summary replays the grid's case events stored
from the day's start (less :data:`STORED_MARGIN`) to a day after its end (acknowledged, on
scene and resolved come after the alert) and folds them with :func:`gridwatch.cases.model.apply`,
the same fold the case service uses. An incident belongs to the day its case opened.

* time to acknowledge: ``acknowledged_at - opened_at``; time to arrive: ``on_scene_at -
  opened_at`` (from the raise, as the deadlines count); median and 90th percentile
  (:func:`quantile`), over the incidents where it happened;
* false-alarm rate: resolved ``false_alarm`` / resolved, over the day's incidents resolved so far
  (None with none resolved: no rate is not a rate of 0).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Iterable
from pathlib import Path

import nats.errors
import nats.js.errors
from aiohttp import web
from nats.js import JetStreamContext
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gridwatch.auth.subjects import CASES_STREAM, case_filter
from gridwatch.bus.consumers import FeedGap, StreamFollower
from gridwatch.bus.names import CONSOLE_REPLAY_CONSUMER_PREFIX
from gridwatch.cases.model import Case, CaseEvent, CaseEventType, CaseState, Outcome, apply
from gridwatch.console.context import console_of, scope_of

log = logging.getLogger(__name__)

STATIC_PAGE = Path(__file__).with_name("static") / "summary.html"
STORED_MARGIN = dt.timedelta(hours=1)
"""Case events are stored when they happen; read from this much before the day's start so a
server clock a little ahead of the workers' loses nothing."""
FOLLOW_UP = dt.timedelta(days=1)
"""How long after the day's end its cases' later events (acknowledged, resolved) are read."""
PENDING_MSGS = 16_384
"""Events buffered ahead of the fold (about 10 MB): the server sends a day's events faster than
they are parsed, and a smaller buffer overflows into gaps (healed, but each costs a new
consumer)."""
MAX_EVENTS = 50_000
"""At most this many case events are read for one summary (``truncated`` says it was hit)."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DurationStats(_Model):
    """Median and 90th percentile of a duration, over ``n`` incidents."""

    n: int = Field(description="Incidents where it happened.")
    median_s: float | None = Field(description="Median in seconds; None when n is 0.")
    p90_s: float | None = Field(description="90th percentile in seconds; None when n is 0.")


class TypeStats(_Model):
    type: str = Field(description="Incident type (the rule type).")
    incidents: int
    acknowledge: DurationStats = Field(description="Time from the raise to acknowledged.")
    arrive: DurationStats = Field(description="Time from the raise to on scene.")
    resolved: int
    false_alarms: int


class IncidentRow(_Model):
    id: str
    type: str
    camera_id: str
    camera_name: str
    severity: str
    opened_at: dt.datetime = Field(description="When it was raised, in the deployment's zone.")
    state: CaseState
    acknowledge_s: float | None = Field(description="Raise to acknowledged, seconds.")
    arrive_s: float | None = Field(description="Raise to on scene, seconds.")
    outcome: Outcome | None
    acknowledged_by: str | None
    on_scene_by: str | None


class DaySummary(_Model):
    """One grid's day. ``by_hour[type]`` has 24 counts (local hour of the raise; on a day the
    clocks go back, the repeated hour counts in the same slot)."""

    grid_id: str
    grid_name: str
    day: dt.date
    timezone: str
    incidents: int
    types: list[str] = Field(description="Types seen, most incidents first.")
    by_hour: dict[str, list[int]]
    acknowledge: DurationStats
    arrive: DurationStats
    per_type: list[TypeStats]
    resolved: int
    false_alarms: int
    false_alarm_rate: float | None = Field(description="false_alarms / resolved; None if 0.")
    rows: list[IncidentRow] = Field(description="The day's incidents, oldest first.")
    truncated: bool = Field(description="The event limit was hit: numbers may be short.")


# -- pure: the numbers ----------------------------------------------------------------------------


def quantile(values: Iterable[float], q: float) -> float | None:
    """The ``q`` quantile with linear interpolation between closest ranks (numpy's default,
    ``statistics.quantiles(method="inclusive")``); None for no values.

    >>> quantile([60, 120, 300], 0.5), quantile([60, 120, 300], 0.9)
    (120.0, 264.0)
    >>> quantile([], 0.5) is None, quantile([42], 0.9)
    (True, 42.0)
    """
    xs = sorted(float(v) for v in values)
    if not xs:
        return None
    pos = (len(xs) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def duration_stats(values: Iterable[float]) -> DurationStats:
    """Median and p90 of ``values`` (seconds), to the millisecond."""
    xs = list(values)
    med, p90 = quantile(xs, 0.5), quantile(xs, 0.9)
    return DurationStats(
        n=len(xs),
        median_s=None if med is None else round(med, 3),
        p90_s=None if p90 is None else round(p90, 3),
    )


def day_bounds(day: dt.date, tz: dt.tzinfo) -> tuple[dt.datetime, dt.datetime]:
    """The UTC instants where local ``day`` starts and the next one starts (23 or 25 hours
    apart on the days clocks change).

    >>> import zoneinfo
    >>> s, e = day_bounds(dt.date(2026, 11, 26), zoneinfo.ZoneInfo("Asia/Shanghai"))
    >>> s.isoformat(), e.isoformat()
    ('2026-11-25T16:00:00+00:00', '2026-11-26T16:00:00+00:00')
    >>> s, e = day_bounds(dt.date(2026, 3, 29), zoneinfo.ZoneInfo("Europe/Berlin"))
    >>> (e - s).total_seconds() / 3600
    23.0
    """
    start = dt.datetime.combine(day, dt.time(0), tzinfo=tz).astimezone(dt.UTC)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), tzinfo=tz).astimezone(dt.UTC)
    return start, end


def _secs(later: dt.datetime | None, earlier: dt.datetime) -> float | None:
    return None if later is None else max(0.0, (later - earlier).total_seconds())


def summarize(
    cases: Iterable[Case],
    *,
    grid_id: str,
    grid_name: str,
    day: dt.date,
    tz: dt.tzinfo,
    truncated: bool = False,
) -> DaySummary:
    """The summary of the ``cases`` of ``grid_id`` raised on local ``day`` (others ignored).

    >>> import zoneinfo
    >>> from gridwatch.cases.model import opened_event
    >>> tz = zoneinfo.ZoneInfo("Asia/Shanghai")
    >>> t = dt.datetime(2026, 11, 26, 8, 30, tzinfo=tz)
    >>> c = apply(None, opened_event(case_id="c1", grid_id="g1", at=t, type="crowding",
    ...     camera_id="cam", camera_name="校门口", severity="warning"))
    >>> c = c.model_copy(update={"state": CaseState.RESOLVED, "acknowledged_at":
    ...     t + dt.timedelta(seconds=90), "resolved_at": t + dt.timedelta(minutes=5),
    ...     "outcome": Outcome.FALSE_ALARM})
    >>> s = summarize([c], grid_id="g1", grid_name="东城网格", day=t.date(), tz=tz)
    >>> s.incidents, s.by_hour["crowding"][8], s.acknowledge.median_s, s.false_alarm_rate
    (1, 1, 90.0, 1.0)
    """
    start, end = day_bounds(day, tz)
    mine = sorted(
        (c for c in cases if c.grid_id == grid_id and start <= c.opened_at < end),
        key=lambda c: (c.opened_at, c.id),
    )
    count: dict[str, int] = {}
    for c in mine:
        count[c.type] = count.get(c.type, 0) + 1
    types = sorted(count, key=lambda t: (-count[t], t))
    by_hour = {t: [0] * 24 for t in types}
    rows: list[IncidentRow] = []
    for c in mine:
        local = c.opened_at.astimezone(tz)
        by_hour[c.type][local.hour] += 1
        rows.append(
            IncidentRow(
                id=c.id,
                type=c.type,
                camera_id=c.camera_id,
                camera_name=c.camera_name,
                severity=c.severity,
                opened_at=local,
                state=c.state,
                acknowledge_s=_secs(c.acknowledged_at, c.opened_at),
                arrive_s=_secs(c.on_scene_at, c.opened_at),
                outcome=c.outcome,
                acknowledged_by=c.acknowledged_by,
                on_scene_by=c.on_scene_by,
            )
        )

    def stats(of: list[IncidentRow], t: str | None) -> tuple[DurationStats, DurationStats]:
        sel = [r for r in of if t is None or r.type == t]
        return (
            duration_stats(r.acknowledge_s for r in sel if r.acknowledge_s is not None),
            duration_stats(r.arrive_s for r in sel if r.arrive_s is not None),
        )

    per_type = []
    for t in types:
        ack, arrive = stats(rows, t)
        sel = [r for r in rows if r.type == t]
        per_type.append(
            TypeStats(
                type=t,
                incidents=len(sel),
                acknowledge=ack,
                arrive=arrive,
                resolved=sum(r.state is CaseState.RESOLVED for r in sel),
                false_alarms=sum(r.outcome is Outcome.FALSE_ALARM for r in sel),
            )
        )
    ack, arrive = stats(rows, None)
    resolved = sum(r.state is CaseState.RESOLVED for r in rows)
    false_alarms = sum(
        r.state is CaseState.RESOLVED and r.outcome is Outcome.FALSE_ALARM for r in rows
    )
    return DaySummary(
        grid_id=grid_id,
        grid_name=grid_name,
        day=day,
        timezone=str(tz),
        incidents=len(rows),
        types=types,
        by_hour=by_hour,
        acknowledge=ack,
        arrive=arrive,
        per_type=per_type,
        resolved=resolved,
        false_alarms=false_alarms,
        false_alarm_rate=false_alarms / resolved if resolved else None,
        rows=rows,
        truncated=truncated,
    )


def parse_day(raw: str | None, today: dt.date) -> dt.date:
    """``YYYY-MM-DD`` (``today`` when absent or empty); ValueError saying what is wrong.

    >>> parse_day("2026-11-26", dt.date(2026, 12, 5)), parse_day(None, dt.date(2026, 12, 5))
    (datetime.date(2026, 11, 26), datetime.date(2026, 12, 5))
    >>> parse_day("26.11.2026", dt.date(2026, 12, 5))
    Traceback (most recent call last):
    ValueError: day: expected YYYY-MM-DD, got '26.11.2026'
    """
    if not raw:
        return today
    try:
        if len(raw) != 10:
            raise ValueError(raw)
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"day: expected YYYY-MM-DD, got {raw[:40]!r}") from None


# -- I/O: the grid's case events -------------------------------------------------------------


async def load_cases(
    js: JetStreamContext,
    grid_id: str,
    start: dt.datetime,
    end: dt.datetime,
    *,
    max_events: int = MAX_EVENTS,
) -> tuple[list[Case], bool]:
    """The cases of ``grid_id`` opened in [start, end), folded from their events stored from
    ``start - STORED_MARGIN`` until ``end + FOLLOW_UP`` (or now); and whether ``max_events``
    cut the reading short. A case whose ``opened`` event was not read is left out (it opened
    before the window)."""
    follower = StreamFollower(
        js,
        CASES_STREAM,
        case_filter(grid_id),
        start=start - STORED_MARGIN,
        prefix=CONSOLE_REPLAY_CONSUMER_PREFIX,
        heal=True,  # a slow read (thousands of events) resumes after a gap instead of failing
        pending_msgs_limit=PENDING_MSGS,
    )
    stop_at = end + FOLLOW_UP
    cases: dict[str, Case] = {}
    read = 0
    try:
        await follower.open()
        while not follower.caught_up and read < max_events:
            msg = await follower.next(3.0)
            if msg is None or msg.metadata.timestamp >= stop_at:
                break
            read += 1
            try:
                ev = CaseEvent.model_validate_json(msg.data)
            except ValidationError:
                continue  # (the case service logs these)
            if ev.type is not CaseEventType.OPENED and ev.case_id not in cases:
                continue
            cases[ev.case_id] = apply(cases.get(ev.case_id), ev)
    finally:
        await follower.close()
    kept = [c for c in cases.values() if start <= c.opened_at < end]
    return kept, read >= max_events


# -- handlers -----------------------------------------------------------------------------------


async def summary_index(request: web.Request) -> web.StreamResponse:
    """To the user's own grid, or the first configured grid in scope."""
    c = console_of(request)
    scope = scope_of(request)
    grids = scope.grids(g.id for g in c.config.grids)
    grid = scope.grid or (grids[0] if grids else None)
    if grid is None:
        raise web.HTTPNotFound(text="no grid configured")
    raise web.HTTPFound(f"/summary/{grid}")


async def summary_page(request: web.Request) -> web.StreamResponse:
    scope_of(request).require(request.match_info["grid"])
    return web.FileResponse(STATIC_PAGE)


async def summary_api(request: web.Request) -> web.StreamResponse:
    c = console_of(request)
    grid = scope_of(request).require(request.match_info["grid"])
    tz = c.config.tzinfo()
    try:
        day = parse_day(request.query.get("day"), dt.datetime.now(tz).date())
    except ValueError as e:
        return web.json_response({"error": str(e)}, status=400)
    start, end = day_bounds(day, tz)
    try:
        cases, truncated = await load_cases(c.nc.jetstream(), grid, start, end)
    except (nats.errors.Error, nats.js.errors.Error, FeedGap, TimeoutError) as e:
        log.warning("summary of %s for %s: case events not readable: %s", grid, day, e)
        return web.json_response({"error": "the case history cannot be read now"}, status=503)
    names = {g.id: g.name or g.id for g in c.config.grids}
    s = summarize(
        cases,
        grid_id=grid,
        grid_name=names.get(grid, grid),
        day=day,
        tz=tz,
        truncated=truncated,
    )
    return web.json_response(text=s.model_dump_json())


def register(app: web.Application) -> None:
    r = app.router
    r.add_get("/summary", summary_index)
    r.add_get("/summary/{grid}", summary_page)
    r.add_get("/api/summary/{grid}", summary_api)

"""Follow alerts as they are stored: ``gridwatch alerts tail`` and anything that watches alerts.

An ephemeral JetStream consumer, not a core subscription: it delivers in stream order, can
start in the past (``since``) and then keeps following, resumes after the last alert it
delivered when the consumer is lost (server restart) or skips messages, and leaves nothing
behind on the server (no acks, in-memory, removed by the server once the client goes away).
It is the bus layer's :class:`~gridwatch.bus.consumers.StreamFollower` with ``heal`` (see there
why not nats.py's ``ordered_consumer=True``). The filter is
:func:`~gridwatch.alerts.subjects.alert_filter`, so a grid's responder asks only for their grid,
which is also all their NATS permissions allow.

A message that is not a valid :class:`Alert` (another schema version, a hand-published test) is
logged and skipped: one bad message must not stop an operator's feed.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.client import DEFAULT_JS_SUB_PENDING_BYTES_LIMIT, DEFAULT_JS_SUB_PENDING_MSGS_LIMIT
from pydantic import ValidationError

from gridwatch.alerts.snapshots import SnapshotStore
from gridwatch.alerts.subjects import ALERTS_STREAM, SNAPSHOT_BUCKET, alert_filter
from gridwatch.bus.connect import connect
from gridwatch.bus.consumers import FeedGap, StreamFollower
from gridwatch.bus.names import TAIL_CONSUMER_PREFIX
from gridwatch.model import Alert

log = logging.getLogger(__name__)


def _start_time(since: dt.timedelta | dt.datetime) -> dt.datetime:
    if isinstance(since, dt.timedelta):
        return dt.datetime.now(dt.UTC) - since
    if since.tzinfo is None:
        raise ValueError("since must be timezone-aware (naive datetimes are ambiguous)")
    return since


def parse_alert(msg: Msg) -> Alert | None:
    """The alert in ``msg``, or None (logged) when it does not parse."""
    try:
        return Alert.model_validate_json(msg.data)
    except ValidationError as e:
        seq: int | None = None
        with contextlib.suppress(Exception):
            seq = msg.metadata.sequence.stream
        log.warning(
            "skipping unparseable alert on %s (stream seq %s): %d error(s), first: %s",
            msg.subject,
            seq,
            e.error_count(),
            e.errors()[0]["msg"] if e.error_count() else "?",
        )
        return None


async def _open_when_the_stream_exists(
    follower: StreamFollower, stop: asyncio.Event | None, poll_s: float = 1.0
) -> bool:
    """Open the consumer, waiting until the alert stream exists (a tail started before any
    worker); False when ``stop`` is set first. No stream info is asked for: people may not (its
    subject list would show every grid)."""
    warned = False
    while stop is None or not stop.is_set():
        try:
            await follower.open()
            return True
        except nats.js.errors.NotFoundError:
            if not warned:
                log.warning("stream %s does not exist yet; waiting for a worker", ALERTS_STREAM)
                warned = True
        await asyncio.sleep(poll_s)
    return False


async def _next_message(follower: StreamFollower, check_interval: float) -> Msg:
    """The follower's next message, waiting as long as it takes."""
    while True:
        msg = await follower.next(check_interval)
        if msg is not None:
            return msg


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Mark a cancelled helper task's outcome as seen (nats.py may turn a cancellation into
    ConnectionClosedError), so asyncio does not log "exception was never retrieved"."""
    if not task.cancelled():
        task.exception()


async def iter_alerts(
    nc_or_url: NATS | str,
    *,
    grid: str | None = None,
    camera: str | None = None,
    since: dt.timedelta | dt.datetime | None = None,
    stop: asyncio.Event | None = None,
    idle_heartbeat: float = 5.0,
    check_interval: float = 5.0,
) -> AsyncIterator[Alert]:
    """Yield alerts for ``grid``/``camera`` (all when None) as they are stored.

    Starts with new alerts, or with those stored since ``since`` (a duration back from now, or
    an aware datetime), and then follows, in stream order, across reconnects and server
    restarts. Ends when ``stop`` is set, or when the caller stops iterating (``aclose``/
    ``break``). A URL opens a connection owned (and drained) by the iterator.
    ``check_interval`` is how long a quiet consumer goes before its existence is checked.
    """
    own = isinstance(nc_or_url, str)
    nc = (
        await connect(nc_or_url, name="gridwatch-tail", flush=False)
        if isinstance(nc_or_url, str)
        else nc_or_url
    )
    follower = StreamFollower(
        nc.jetstream(),
        ALERTS_STREAM,
        alert_filter(grid, camera),
        start=_start_time(since) if since is not None else None,
        idle_heartbeat=idle_heartbeat,
        prefix=TAIL_CONSUMER_PREFIX,
        heal=True,
        # nats.py's own limits: a tail of many days' alerts is read at the terminal's pace
        pending_msgs_limit=DEFAULT_JS_SUB_PENDING_MSGS_LIMIT,
        pending_bytes_limit=DEFAULT_JS_SUB_PENDING_BYTES_LIMIT,
    )
    stop_wait: asyncio.Task[bool] | None = (
        asyncio.ensure_future(stop.wait()) if stop is not None else None
    )
    get: asyncio.Task[Msg] | None = None
    try:
        if not await _open_when_the_stream_exists(follower, stop):
            return
        while stop is None or not stop.is_set():
            get = asyncio.ensure_future(_next_message(follower, check_interval))
            try:
                if stop_wait is None:
                    msg = await get
                else:
                    await asyncio.wait({get, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
                    if not get.done():
                        break
                    msg = get.result()
            except (FeedGap, nats.errors.ConnectionClosedError):
                log.info("connection closed: alert tail on %s ends", follower.subject)
                break
            get = None
            alert = parse_alert(msg)
            if alert is not None:
                yield alert
    finally:
        # Cancelled, not awaited: awaiting here could swallow a cancellation of our caller.
        for task in (get, stop_wait):
            if task is not None and not task.done():
                task.cancel()
                task.add_done_callback(_retrieve)
        await follower.close()
        if own:
            with contextlib.suppress(Exception):
                await nc.drain()


async def tail_alerts(
    nc_or_url: NATS | str,
    *,
    grid: str | None = None,
    camera: str | None = None,
    since: dt.timedelta | dt.datetime | None = None,
    on_alert: Callable[[Alert], Awaitable[None]] | None = None,
    stop: asyncio.Event | None = None,
) -> int:
    """Call ``on_alert`` (default: print :func:`format_alert_line`) for each alert until
    ``stop`` is set; return how many alerts were handled."""

    async def show(alert: Alert) -> None:
        print(format_alert_line(alert), flush=True)

    handler = on_alert or show
    n = 0
    stream = iter_alerts(nc_or_url, grid=grid, camera=camera, since=since, stop=stop)
    try:
        async for alert in stream:
            await handler(alert)
            n += 1
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
    return n


def format_alert_line(alert: Alert) -> str:
    """One line per alert for a terminal: when, what, where, how many, and the snapshot command.

    For example (one line)::

        2026-11-26 14:03:12Z  RAISED    crowding      grid kdl-01  cam gate-9 (Gate 9)  zone apron
        count 7 peak 9  snapshot: gridwatch snapshot get gate-9/ab12/raised-0.jpg
    """
    when = alert.observed_at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    parts = [
        when,
        f"{alert.state.value.upper():<8}",
        f"{alert.type:<12}",
        f"grid {alert.grid_id}",
        f"cam {alert.camera_id}" + (f" ({alert.camera_name})" if alert.camera_name else ""),
        f"zone {alert.zone_id or '-'}",
        f"count {alert.count} peak {alert.peak_count}",
    ]
    if alert.severity != "warning":
        parts.append(alert.severity)
    if alert.reason:
        parts.append(f"reason: {alert.reason}")
    parts.append(
        f"snapshot: gridwatch snapshot get {alert.snapshot}" if alert.snapshot else "no snapshot"
    )
    return "  ".join(parts)


async def fetch_snapshot(nc: NATS, name: str) -> bytes:
    """The JPEG stored as ``name`` in ``gw_snapshots`` (what ``gridwatch snapshot get`` does)."""
    store = await SnapshotStore.open(nc.jetstream(), bucket=SNAPSHOT_BUCKET)
    return await store.get(name)

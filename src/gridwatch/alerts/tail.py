"""Follow alerts as they are stored: ``gridwatch alerts tail`` and anything that watches alerts.

An ephemeral JetStream consumer, not a core subscription: it delivers in stream order, can
start in the past (``since``) and then keeps following, resumes after the last alert it
delivered when the consumer is lost (server restart) or skips messages, and leaves nothing
behind on the server (no acks, in-memory, removed by the server once the client goes away).
It is "ordered" in the NATS sense, implemented here rather than with nats.py's
``ordered_consumer=True``, whose recovery is wrong in two ways (see :class:`_Follower`). The
filter is :func:`~gridwatch.alerts.subjects.alert_filter`, so a grid's responder asks only for
their grid, which is also all their NATS permissions allow.

A message that is not a valid :class:`Alert` (another schema version, a hand-published test) is
logged and skipped: one bad message must not stop an operator's feed.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js import api as js_api
from pydantic import ValidationError

from gridwatch.alerts.snapshots import SnapshotStore
from gridwatch.alerts.subjects import ALERTS_STREAM, SNAPSHOT_BUCKET, alert_filter
from gridwatch.bus.connect import connect
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


class _Follower:
    """A self-healing ephemeral push consumer that resumes after the last alert it delivered.

    Why not nats.py's ``ordered_consumer=True``: measured with nats.py 2.16 and a server
    restart, its automatic reset restarts at ``last stream seq + 1`` with 0 as the "last" when
    nothing was delivered yet, so a NEW tail replays the whole stream (30 days of alerts), and
    it keeps the original ``opt_start_time`` next to the new start sequence, which the server
    rejects, so a ``since`` tail stops for good. Here the start is resolved once (NEW becomes
    "after the stream's last sequence now"), and the consumer is recreated from the last
    delivered sequence when it has vanished (server restart) or skipped messages.
    """

    def __init__(
        self,
        nc: NATS,
        subject: str,
        since: dt.timedelta | dt.datetime | None,
        idle_heartbeat: float,
        check_interval: float,
    ) -> None:
        self._js = nc.jetstream()
        self.subject = subject
        self._since = _start_time(since) if since is not None else None
        self._idle_heartbeat = idle_heartbeat
        self.check_interval = check_interval
        self._new_from: int | None = None
        self._last_sseq: int | None = None
        self._next_dseq = 1
        self._sub: JetStreamContext.PushSubscription | None = None

    def _config(self) -> js_api.ConsumerConfig:
        cfg = js_api.ConsumerConfig(
            # A name makes nats.py use the create API subject that carries the filter
            # ($JS.API.CONSUMER.CREATE.<stream>.<name>.<filter>), so NATS permissions can limit
            # a grid's users to consumers on their own grid's subjects.
            name=f"{TAIL_CONSUMER_PREFIX}_{uuid.uuid4().hex[:16]}",
            ack_policy=js_api.AckPolicy.NONE,
            mem_storage=True,
            num_replicas=1,
            inactive_threshold=max(30.0, 4 * self._idle_heartbeat),
        )
        if self._last_sseq is not None:
            cfg.deliver_policy = js_api.DeliverPolicy.BY_START_SEQUENCE
            cfg.opt_start_seq = self._last_sseq + 1
        elif self._since is not None:
            cfg.deliver_policy = js_api.DeliverPolicy.BY_START_TIME
            cfg.opt_start_time = self._since
        elif self._new_from is not None:
            cfg.deliver_policy = js_api.DeliverPolicy.BY_START_SEQUENCE
            cfg.opt_start_seq = self._new_from
        else:
            cfg.deliver_policy = js_api.DeliverPolicy.NEW
        return cfg

    async def wait_for_stream(self, stop: asyncio.Event | None, poll_s: float = 1.0) -> bool:
        """Open the consumer, waiting until the alert stream exists (a tail started before any
        worker); False when ``stop`` is set first. No stream info is asked for: people may
        not (its subject list would show every grid)."""
        warned = False
        while stop is None or not stop.is_set():
            try:
                await self.open()
                return True
            except nats.js.errors.NotFoundError:
                if not warned:
                    log.warning("stream %s does not exist yet; waiting for a worker", ALERTS_STREAM)
                    warned = True
            await asyncio.sleep(poll_s)
        return False

    async def open(self) -> None:
        cfg = self._config()
        self._sub = await self._js.subscribe(
            self.subject,
            stream=ALERTS_STREAM,
            config=cfg,
            flow_control=True,
            idle_heartbeat=self._idle_heartbeat,
        )
        self._next_dseq = 1
        if cfg.deliver_policy is js_api.DeliverPolicy.NEW:
            # where "new" began, so a consumer recreated before anything arrived resumes there
            info = await self._sub.consumer_info()
            last = info.delivered.stream_seq if info.delivered is not None else 0
            self._new_from = (last or 0) + 1
        log.debug(
            "following %s from %s",
            self.subject,
            cfg.opt_start_seq if cfg.opt_start_seq is not None else cfg.opt_start_time,
        )

    async def close(self) -> None:
        sub, self._sub = self._sub, None
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()  # type: ignore[no-untyped-call]

    async def _reopen(self, why: str) -> None:
        log.info(
            "alert consumer on %s: %s; resuming after seq %s", self.subject, why, self._last_sseq
        )
        await self.close()
        await self.open()

    async def next(self) -> Msg:
        """The next message in stream order, waiting as long as it takes."""
        while True:
            if self._sub is None:
                try:
                    await self.open()
                except (nats.errors.Error, TimeoutError) as e:
                    log.debug("consumer not recreated yet (%s), retrying", type(e).__name__)
                    await asyncio.sleep(self.check_interval)
                    continue
            assert self._sub is not None
            try:
                msg = await self._sub.next_msg(timeout=self.check_interval)
            except nats.errors.TimeoutError:
                await self._check_alive()
                continue
            meta = msg.metadata
            if meta.sequence.consumer != self._next_dseq:
                # Messages were dropped on the way (slow consumer): take them again.
                await self._reopen(
                    f"delivery gap (got {meta.sequence.consumer}, expected {self._next_dseq})"
                )
                continue
            self._next_dseq += 1
            self._last_sseq = meta.sequence.stream
            return msg

    async def _check_alive(self) -> None:
        """After a quiet spell, make sure the consumer still exists on the server and has not
        sent messages that never arrived (lost during a reconnect, with nothing after them to
        reveal the gap)."""
        assert self._sub is not None
        try:
            info = await asyncio.wait_for(self._sub.consumer_info(), self.check_interval)
        except nats.js.errors.NotFoundError:
            await self.close()  # gone (server restart): next() recreates it
            log.info("alert consumer on %s vanished; recreating it", self.subject)
            return
        except (nats.errors.Error, TimeoutError) as e:
            log.debug("consumer check failed (%s); will check again", type(e).__name__)
            return
        sent = info.delivered.consumer_seq if info.delivered is not None else 0
        if sent >= self._next_dseq and self._sub.pending_msgs == 0:
            await self._reopen(f"server sent up to {sent}, received {self._next_dseq - 1}")


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
    follower = _Follower(nc, alert_filter(grid, camera), since, idle_heartbeat, check_interval)
    stop_wait: asyncio.Task[bool] | None = (
        asyncio.ensure_future(stop.wait()) if stop is not None else None
    )
    get: asyncio.Task[Msg] | None = None
    try:
        if not await follower.wait_for_stream(stop):
            return
        while stop is None or not stop.is_set():
            get = asyncio.ensure_future(follower.next())
            try:
                if stop_wait is None:
                    msg = await get
                else:
                    await asyncio.wait({get, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
                    if not get.done():
                        break
                    msg = get.result()
            except nats.errors.ConnectionClosedError:
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

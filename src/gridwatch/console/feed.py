"""The live wall feed: Server-Sent Events fed from JetStream, one bounded queue per browser.

Per browser (an ``EventSource`` on ``/api/events``):

1. two ephemeral ordered consumers are opened, on GW_ALERTS and GW_CASES, filtered to the
   user's scope (:class:`gridwatch.console.scope.Scope`) and starting ``wall_lookback_s`` ago;
   still-open cases from before that are asked from the case service;
2. once both have replayed what is stored, the folded :class:`~.wall.Wall` is sent as one
   ``snapshot`` event (newest first);
3. from then on each message folded changes one item, sent as an ``item`` event.

Each browser has its own reader tasks and its own queue of at most ``sse_queue_size`` items.
A browser that does not keep up (its queue is full, or one write takes longer than
``sse_write_timeout_s``) is disconnected and counted; its ``EventSource`` reconnects and starts
from a fresh snapshot. So a slow phone on a bad network never holds up anyone else's wall, and
the server's memory per browser is bounded. A gap in a consumer's delivery (a server restart)
ends the connection the same way: a wall is never silently missing an update.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from pydantic import ValidationError

from gridwatch.alerts.subjects import ALERTS_STREAM
from gridwatch.alerts.tail import parse_alert
from gridwatch.auth.subjects import CASES_STREAM
from gridwatch.bus.consumers import FeedGap, StreamFollower
from gridwatch.cases.model import Case, CaseEvent
from gridwatch.cases.settings import CasesConfig
from gridwatch.console.scope import Scope
from gridwatch.console.wall import Wall, WallItem

log = logging.getLogger(__name__)


@dataclass
class FeedStats:
    """Counters of every live feed of one console (``/api/stats``)."""

    clients: int = 0
    """Browsers connected now."""
    connections: int = 0
    """Connections since start."""
    items_sent: int = 0
    dropped: int = 0
    """Items that did not fit a browser's queue (each also disconnects that browser)."""
    slow_disconnects: int = 0
    """Browsers disconnected for falling behind (full queue or a stuck write)."""
    gaps: int = 0
    """Feeds ended because a consumer skipped messages or vanished."""
    out_of_scope: int = 0
    """Messages outside the user's scope that reached a feed (always 0: the consumers'
    filters keep them out; counted, and dropped, as a second check)."""


class FeedClosed(Exception):
    """The feed ended (``reason``: slow, gap)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class LiveFeed:
    """The wall of one browser: consumers, folding, and a bounded queue of changed items."""

    def __init__(
        self,
        js: JetStreamContext,
        scope: Scope,
        cases: CasesConfig,
        *,
        lookback_s: float,
        max_items: int,
        queue_size: int,
        stats: FeedStats,
        idle_heartbeat: float = 5.0,
        on_overflow: Callable[[], None] | None = None,
    ) -> None:
        self.scope = scope
        self.wall = Wall(cases, max_items=max_items)
        self.stats = stats
        self.queue: asyncio.Queue[WallItem] = asyncio.Queue(maxsize=queue_size)
        self.on_overflow = on_overflow
        start = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=lookback_s)
        self.alerts = StreamFollower(
            js, ALERTS_STREAM, scope.alert_filter(), start=start, idle_heartbeat=idle_heartbeat
        )
        self.cases = StreamFollower(
            js, CASES_STREAM, scope.case_filter(), start=start, idle_heartbeat=idle_heartbeat
        )
        self.live = False
        self.closed: FeedClosed | None = None
        self._closed_event = asyncio.Event()
        self._caught_up = {"alerts": asyncio.Event(), "cases": asyncio.Event()}
        self._tasks: list[asyncio.Task[None]] = []

    async def open(self, seed: list[Case]) -> None:
        for case in seed:
            if self.scope.allows(case.grid_id):
                self.wall.seed_case(case)
        await self.alerts.open()
        await self.cases.open()
        self._tasks = [
            asyncio.create_task(self._read("alerts", self.alerts, self._on_alert)),
            asyncio.create_task(self._read("cases", self.cases, self._on_case)),
        ]

    async def caught_up(self, within: float) -> bool:
        """Wait until both consumers replayed what was stored (or ``within`` s)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while not all(e.is_set() for e in self._caught_up.values()):
            if self.closed is not None:
                raise self.closed
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    def snapshot(self) -> list[WallItem]:
        """The wall now; every later change goes to the queue."""
        self.live = True
        return self.wall.newest_first()

    async def _read(
        self, name: str, follower: StreamFollower, fold: Callable[[Msg], WallItem | None]
    ) -> None:
        try:
            if follower.caught_up:
                self._caught_up[name].set()
            while self.closed is None:
                msg = await follower.next(5.0)
                if msg is not None:
                    item = fold(msg)
                    if item is not None and self.live:
                        self._push(item)
                if follower.caught_up:
                    self._caught_up[name].set()
        except FeedGap as e:
            self.stats.gaps += 1
            log.info("live feed of %s ends: %s", self.scope.user.name, e)
            self._close("gap")
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("live feed reader %s failed", name)
            self._close("gap")

    def _on_alert(self, msg: Msg) -> WallItem | None:
        alert = parse_alert(msg)
        if alert is None:
            return None
        if not self.scope.allows(alert.grid_id):
            self.stats.out_of_scope += 1
            return None
        return self.wall.fold_alert(alert, msg.metadata.timestamp)

    def _on_case(self, msg: Msg) -> WallItem | None:
        try:
            ev = CaseEvent.model_validate_json(msg.data)
        except ValidationError:
            log.warning("skipping unparseable case event on %s", msg.subject)
            return None
        if not self.scope.allows(ev.grid_id):
            self.stats.out_of_scope += 1
            return None
        return self.wall.fold_case(ev, msg.metadata.sequence.stream)

    def _push(self, item: WallItem) -> None:
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.stats.dropped += 1
            self.stats.slow_disconnects += 1
            log.info("live feed of %s fell behind; disconnecting it", self.scope.user.name)
            self._close("slow")
            if self.on_overflow is not None:
                self.on_overflow()

    def stop(self) -> None:
        """End the feed from outside (the console shuts down): its connection closes."""
        self._close("shutdown")

    def _close(self, reason: str) -> None:
        if self.closed is None:
            self.closed = FeedClosed(reason)
            self._closed_event.set()

    async def next(self, wait_s: float) -> WallItem | None:
        """The next changed item; None after ``wait_s`` (time for a heartbeat); raises
        :class:`FeedClosed` when the feed ended."""
        if self.closed is not None:
            raise self.closed
        if not self.queue.empty():
            return self.queue.get_nowait()
        get = asyncio.ensure_future(self.queue.get())
        closed = asyncio.ensure_future(self._closed_event.wait())
        try:
            done, _ = await asyncio.wait(
                {get, closed}, timeout=wait_s, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            closed.cancel()
            if not get.done():
                get.cancel()
        if get in done and not get.cancelled():
            return get.result()
        if self.closed is not None:
            raise self.closed
        return None

    async def close(self) -> None:
        self._close("closed")
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks = []
        await self.alerts.close()
        await self.cases.close()


def sse_event(event: str, data: object) -> bytes:
    """One Server-Sent Event (``data`` as one line of JSON)."""
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str)
    return f"event: {event}\ndata: {payload}\n\n".encode()


def item_json(item: WallItem) -> dict[str, object]:
    out: dict[str, object] = item.model_dump(mode="json")
    return out

"""Ephemeral, ordered JetStream consumers for the console: replay from a point in time, say
when the replay is caught up, then follow live.

Each browser's live feed gets its own consumers (no acks, in server memory, removed by the
server shortly after the console lets go), filtered to the browser's scope. Unlike
:mod:`gridwatch.alerts.tail`, which heals itself to follow forever, a follower here gives up on
any irregularity (a gap in the delivery sequence, the consumer gone after a server restart) by
raising :class:`FeedGap`: the feed then closes the browser's connection, and the browser
reconnects and starts from a fresh replay. Simple, and nothing is ever silently missing from a
wall.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import uuid

import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js import api as js_api

from gridwatch.bus.names import CONSOLE_CONSUMER_PREFIX, CONSOLE_REPLAY_CONSUMER_PREFIX

log = logging.getLogger(__name__)

PENDING_MSGS_LIMIT = 4096
PENDING_BYTES_LIMIT = 16 * 1024 * 1024


class FeedGap(RuntimeError):
    """The consumer skipped messages or vanished: start over."""


class StreamFollower:
    """One ephemeral push consumer on ``stream`` filtered to ``subject``.

    ``start``: replay messages stored at or after this time first; None: only new ones.
    """

    def __init__(
        self,
        js: JetStreamContext,
        stream: str,
        subject: str,
        *,
        start: dt.datetime | None,
        idle_heartbeat: float = 5.0,
        prefix: str = CONSOLE_CONSUMER_PREFIX,
    ) -> None:
        self.js = js
        self.stream = stream
        self.subject = subject
        self.start = start
        self.idle_heartbeat = idle_heartbeat
        self.prefix = prefix
        self.caught_up = False
        self._next_dseq = 1
        self._sub: JetStreamContext.PushSubscription | None = None

    async def open(self) -> None:
        cfg = js_api.ConsumerConfig(
            # named: nats.py then uses the create subject that carries the filter
            name=f"{self.prefix}_{uuid.uuid4().hex[:16]}",
            ack_policy=js_api.AckPolicy.NONE,
            mem_storage=True,
            num_replicas=1,
            inactive_threshold=max(30.0, 4 * self.idle_heartbeat),
        )
        if self.start is not None:
            cfg.deliver_policy = js_api.DeliverPolicy.BY_START_TIME
            cfg.opt_start_time = self.start
        else:
            cfg.deliver_policy = js_api.DeliverPolicy.NEW
        self._sub = await self.js.subscribe(
            self.subject,
            stream=self.stream,
            config=cfg,
            flow_control=True,
            idle_heartbeat=self.idle_heartbeat,
            pending_msgs_limit=PENDING_MSGS_LIMIT,
            pending_bytes_limit=PENDING_BYTES_LIMIT,
        )
        info = await self._sub.consumer_info()
        delivered = info.delivered.consumer_seq if info.delivered is not None else 0
        # pending counts what is not yet *sent*: a fast server may have sent everything already
        self.caught_up = self.start is None or (not info.num_pending and not delivered)

    async def next(self, wait_s: float) -> Msg | None:
        """The next message in stream order; None after ``wait_s`` seconds without one (the
        consumer's existence is checked then). Raises :class:`FeedGap`."""
        if self._sub is None:
            raise FeedGap("not open")
        try:
            msg = await self._sub.next_msg(timeout=wait_s)
        except nats.errors.TimeoutError:
            await self._check_alive(wait_s)
            return None
        except nats.errors.ConnectionClosedError as e:
            raise FeedGap("connection closed") from e
        meta = msg.metadata
        if meta.sequence.consumer != self._next_dseq:
            raise FeedGap(f"delivery gap on {self.subject}")
        self._next_dseq += 1
        if meta.num_pending == 0:
            self.caught_up = True
        return msg

    async def _check_alive(self, wait_s: float) -> None:
        assert self._sub is not None
        try:
            info = await asyncio.wait_for(self._sub.consumer_info(), wait_s)
        except nats.js.errors.NotFoundError as e:
            raise FeedGap(f"consumer on {self.subject} vanished") from e
        except (nats.errors.Error, TimeoutError):
            return  # cannot tell now; the next quiet spell checks again
        sent = info.delivered.consumer_seq if info.delivered is not None else 0
        if sent >= self._next_dseq and self._sub.pending_msgs == 0:
            raise FeedGap(f"server sent {sent} on {self.subject}, got {self._next_dseq - 1}")

    async def close(self) -> None:
        sub, self._sub = self._sub, None
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()  # type: ignore[no-untyped-call]


async def replay(
    js: JetStreamContext,
    stream: str,
    subject: str,
    *,
    start: dt.datetime,
    limit: int = 1000,
    idle_timeout: float = 3.0,
) -> list[Msg]:
    """The messages on ``subject`` stored since ``start`` (at most ``limit``), then stop."""
    f = StreamFollower(js, stream, subject, start=start, prefix=CONSOLE_REPLAY_CONSUMER_PREFIX)
    out: list[Msg] = []
    try:
        await f.open()
        while not f.caught_up and len(out) < limit:
            msg = await f.next(idle_timeout)
            if msg is None:
                break
            out.append(msg)
    finally:
        await f.close()
    return out

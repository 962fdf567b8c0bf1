"""JetStream consumers, written once: a durable pull loop and ephemeral, ordered readers.

* :func:`pull_loop`: a service's durable consumer: fetch batches, handle each message, ack it
  (nak with a delay when handling fails: it is redelivered), re-create the subscription when
  the consumer or stream is gone, end when the service stops or the task is cancelled.
* :func:`read_ordered`: replay every stored message on a subject filter, in order, then stop
  (an ordered consumer: the case store's replays).
* :class:`StreamFollower`: an ephemeral consumer that replays from a point in time, says when
  the replay is caught up, then follows live (the console's feeds). Unlike
  :mod:`gridwatch.alerts.tail`, which heals itself to follow forever, a follower gives up on
  any irregularity (a gap in the delivery sequence, the consumer gone after a server restart)
  by raising :class:`FeedGap`: the console's feed then closes the browser's connection, and
  the browser reconnects and starts from a fresh replay. Simple, and nothing is ever silently
  missing from a wall. Each follower has no acks, lives in server memory and is removed by the
  server shortly after it is let go.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

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


async def pull_loop(
    subscribe: Callable[[], Awaitable[Any]],
    handle: Callable[[Msg], Awaitable[None]],
    *,
    stopping: Callable[[], bool],
    name: str,
    batch: int = 16,
    fetch_timeout: float = 1.0,
    retry_wait: float = 0.5,
    ack: bool = True,
    nak_delay: float = 1.0,
) -> None:
    """Fetch up to ``batch`` messages at a time from the pull subscription ``subscribe()``
    returns (called again after the consumer or stream was not found) until ``stopping()``.

    With ``ack``, each message is acked once ``handle`` returns, and nakked with ``nak_delay``
    when it raises (the server redelivers it). Without, ``handle`` owns the ack (it may hand
    the message to a task of its own). Cancelling the task ends the loop."""
    psub = None
    while not stopping():
        try:
            if psub is None:
                psub = await subscribe()
            msgs = await psub.fetch(batch, timeout=fetch_timeout)
        except (TimeoutError, nats.errors.TimeoutError):
            continue
        except asyncio.CancelledError:
            raise
        except (nats.errors.Error, nats.js.errors.Error) as e:
            log.debug("%s: consumer not available (%s); retrying", name, e)
            psub = None if isinstance(e, nats.js.errors.NotFoundError) else psub
            await asyncio.sleep(retry_wait)
            continue
        for msg in msgs:
            if not ack:
                await handle(msg)
                continue
            try:
                await handle(msg)
                await msg.ack()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning(
                    "%s: %s not handled yet (%s); it will be redelivered", name, msg.subject, e
                )
                with contextlib.suppress(Exception):
                    await msg.nak(delay=nak_delay)


async def read_ordered(
    js: JetStreamContext, stream: str, subject_filter: str, *, idle_timeout: float = 5.0
) -> AsyncIterator[Msg]:
    """Every message stored on ``subject_filter``, in stream order, then stop (a replay)."""
    sub = await js.subscribe(
        subject_filter,
        stream=stream,
        ordered_consumer=True,
        deliver_policy=js_api.DeliverPolicy.ALL,
    )
    try:
        info = await sub.consumer_info()
        # pending counts what is not yet *sent*: a fast server may have sent everything already
        if not info.num_pending and not (info.delivered and info.delivered.consumer_seq):
            return
        while True:
            msg = await sub.next_msg(timeout=idle_timeout)
            yield msg
            if msg.metadata.num_pending == 0:
                return
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()  # type: ignore[no-untyped-call]

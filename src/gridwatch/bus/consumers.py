"""JetStream consumers, written once: a durable pull loop and ephemeral, ordered readers.

* :func:`pull_loop`: a service's durable consumer: fetch batches, handle each message, ack it
  (nak with a delay when handling fails: it is redelivered), re-create the subscription when
  the consumer or stream is gone, end when the service stops or the task is cancelled.
* :func:`read_ordered`: replay every stored message on a subject filter, in order, then stop
  (an ordered consumer: the case store's replays).
* :class:`StreamFollower`: an ephemeral consumer that replays from a point in time (or starts
  with new messages), says when the replay is caught up, then follows live. It has no acks,
  lives in server memory and is removed by the server shortly after it is let go. On any
  irregularity (a gap in the delivery sequence, the consumer gone after a server restart, a
  quiet consumer whose server sent more than arrived) it either

  - gives up by raising :class:`FeedGap` (the console's feeds: the browser's connection is
    closed, the browser reconnects and starts from a fresh replay; nothing is ever silently
    missing from a wall), or
  - with ``heal``, re-creates itself to resume after the last message it delivered, and so
    follows forever (``gridwatch alerts tail``, :mod:`gridwatch.alerts.tail`).

  Why not nats.py's ``ordered_consumer=True`` for the second: measured with nats.py 2.16 and a
  server restart, its automatic reset restarts at ``last stream seq + 1`` with 0 as the "last"
  when nothing was delivered yet, so a NEW follower replays the whole stream, and it keeps the
  original ``opt_start_time`` next to the new start sequence, which the server rejects, so a
  follower from a point in time stops for good. Here the start is resolved once (NEW becomes
  "after the stream's last sequence now"), and the consumer is re-created from the last
  delivered stream sequence.
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
    ``heal``: re-create the consumer after an irregularity instead of raising
    :class:`FeedGap` (which is then raised only when the connection is closed for good).
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
        heal: bool = False,
        pending_msgs_limit: int = PENDING_MSGS_LIMIT,
        pending_bytes_limit: int = PENDING_BYTES_LIMIT,
    ) -> None:
        self.js = js
        self.stream = stream
        self.subject = subject
        self.start = start
        self.idle_heartbeat = idle_heartbeat
        self.prefix = prefix
        self.heal = heal
        self.pending_msgs_limit = pending_msgs_limit
        self.pending_bytes_limit = pending_bytes_limit
        self.caught_up = False
        self.last_seq: int | None = None
        """The stream sequence of the last message delivered (a healed consumer resumes after
        it)."""
        self.reopened = 0
        self._new_from: int | None = None
        self._next_dseq = 1
        self._sub: JetStreamContext.PushSubscription | None = None

    def _config(self) -> js_api.ConsumerConfig:
        cfg = js_api.ConsumerConfig(
            # named: nats.py then uses the create subject that carries the filter
            # ($JS.API.CONSUMER.CREATE.<stream>.<name>.<filter>), so NATS permissions can limit
            # a grid's users to consumers on their own grid's subjects
            name=f"{self.prefix}_{uuid.uuid4().hex[:16]}",
            ack_policy=js_api.AckPolicy.NONE,
            mem_storage=True,
            num_replicas=1,
            inactive_threshold=max(30.0, 4 * self.idle_heartbeat),
        )
        if self.last_seq is not None:
            cfg.deliver_policy = js_api.DeliverPolicy.BY_START_SEQUENCE
            cfg.opt_start_seq = self.last_seq + 1
        elif self.start is not None:
            cfg.deliver_policy = js_api.DeliverPolicy.BY_START_TIME
            cfg.opt_start_time = self.start
        elif self._new_from is not None:
            cfg.deliver_policy = js_api.DeliverPolicy.BY_START_SEQUENCE
            cfg.opt_start_seq = self._new_from
        else:
            cfg.deliver_policy = js_api.DeliverPolicy.NEW
        return cfg

    async def open(self) -> None:
        """Create the consumer (again, after the last message delivered, when it was open)."""
        cfg = self._config()
        self._sub = await self.js.subscribe(
            self.subject,
            stream=self.stream,
            config=cfg,
            flow_control=True,
            idle_heartbeat=self.idle_heartbeat,
            pending_msgs_limit=self.pending_msgs_limit,
            pending_bytes_limit=self.pending_bytes_limit,
        )
        self._next_dseq = 1
        info = await self._sub.consumer_info()
        delivered = info.delivered.consumer_seq if info.delivered is not None else 0
        if cfg.deliver_policy is js_api.DeliverPolicy.NEW:
            # where "new" began, so a consumer re-created before anything arrived resumes there
            last = info.delivered.stream_seq if info.delivered is not None else 0
            self._new_from = (last or 0) + 1
            self.caught_up = True
        # pending counts what is not yet *sent*: a fast server may have sent everything already
        self.caught_up = self.caught_up or (not info.num_pending and not delivered)
        log.debug(
            "following %s from %s",
            self.subject,
            cfg.opt_start_seq if cfg.opt_start_seq is not None else cfg.opt_start_time,
        )

    async def next(self, wait_s: float) -> Msg | None:
        """The next message in stream order; None after ``wait_s`` seconds without one (the
        consumer's existence is checked then). Raises :class:`FeedGap` (with ``heal``: only
        when the connection is closed)."""
        while True:
            if self._sub is None:
                if not self.heal:
                    raise FeedGap("not open")
                if not await self._try_open(wait_s):
                    return None
            assert self._sub is not None
            try:
                msg = await self._sub.next_msg(timeout=wait_s)
            except nats.errors.TimeoutError:
                await self._check_alive(wait_s)
                return None
            except nats.errors.ConnectionClosedError as e:
                raise FeedGap("connection closed") from e
            meta = msg.metadata
            if meta.sequence.consumer != self._next_dseq:
                # messages were dropped on the way (a slow consumer): take them again
                await self._gap(
                    f"delivery gap on {self.subject} "
                    f"(got {meta.sequence.consumer}, expected {self._next_dseq})"
                )
                continue
            self._next_dseq += 1
            self.last_seq = meta.sequence.stream
            if meta.num_pending == 0:
                self.caught_up = True
            return msg

    async def _try_open(self, wait_s: float) -> bool:
        """Re-create a healing consumer; False (after ``wait_s``) when it cannot be yet."""
        try:
            await self.open()
            return True
        except nats.errors.ConnectionClosedError as e:
            raise FeedGap("connection closed") from e
        except (nats.errors.Error, TimeoutError) as e:
            await self.close()
            log.debug("consumer on %s not re-created yet (%s)", self.subject, type(e).__name__)
            await asyncio.sleep(wait_s)
            return False

    async def _gap(self, why: str) -> None:
        """Raise :class:`FeedGap`; with ``heal``, drop the consumer to re-create it instead."""
        if not self.heal:
            raise FeedGap(why)
        log.info("%s; resuming after stream seq %s", why, self.last_seq)
        self.reopened += 1
        await self.close()

    async def _check_alive(self, wait_s: float) -> None:
        """After a quiet spell, make sure the consumer still exists on the server and has not
        sent messages that never arrived (lost during a reconnect, with nothing after them to
        reveal the gap)."""
        assert self._sub is not None
        try:
            info = await asyncio.wait_for(self._sub.consumer_info(), wait_s)
        except nats.js.errors.NotFoundError:
            await self._gap(f"consumer on {self.subject} vanished")
            return
        except (nats.errors.Error, TimeoutError):
            return  # cannot tell now; the next quiet spell checks again
        sent = info.delivered.consumer_seq if info.delivered is not None else 0
        if sent >= self._next_dseq and self._sub.pending_msgs == 0:
            await self._gap(f"server sent {sent} on {self.subject}, got {self._next_dseq - 1}")

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

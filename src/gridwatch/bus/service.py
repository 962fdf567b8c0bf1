"""One base for the NATS services (case, snapshot and clip services): start, drain, stop.

A service subscribes with :meth:`Service.subscribe` (or hands a pull subscription to
:meth:`Service.track`) and starts its loops with :meth:`Service.spawn`; :meth:`Service.stop`
then cancels the loops (waiting a bounded time: a stop must never hang on a task stuck in a
client library call) and unsubscribes everything, so no waiting pull request or queue member
takes the next message. ``stop`` may be called any number of times.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol, Self

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

log = logging.getLogger(__name__)


class _Unsubscribable(Protocol):
    def unsubscribe(self) -> Awaitable[None]: ...


class Service:
    """Subclasses do their work in :meth:`_on_start` (and may add to :meth:`_on_stop`)."""

    stop_timeout_s: float = 5.0
    """How long :meth:`stop` waits for cancelled tasks before logging them as stuck."""

    def __init__(self, nc: NATS, *, name: str) -> None:
        self.nc = nc
        self.name = name
        self._subs: list[_Unsubscribable] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    @property
    def stopping(self) -> bool:
        """True from :meth:`stop` (or :meth:`drain`) on: loops end when they see it."""
        return self._stopping

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self._stopping = False
        await self._on_start()

    async def _on_start(self) -> None:
        """Subscribe and spawn here."""

    async def drain(self) -> None:
        """Stop taking new requests, let the callbacks under way finish, then :meth:`stop`."""
        self._stopping = True
        subs, self._subs = self._subs, []
        for sub in subs:
            with contextlib.suppress(Exception):
                if isinstance(sub, Subscription):
                    await asyncio.wait_for(sub.drain(), self.stop_timeout_s)  # type: ignore[no-untyped-call]
                else:
                    await sub.unsubscribe()
        await self.stop()

    async def stop(self) -> None:
        """Cancel the tasks (bounded wait), then unsubscribe everything. Idempotent."""
        self._stopping = True
        tasks, self._tasks = self._tasks, []
        for t in tasks:
            t.cancel()
        if tasks:
            _, stuck = await asyncio.wait(tasks, timeout=self.stop_timeout_s)
            for t in stuck:
                log.warning("%s task %s did not stop in time", self.name, t.get_name())
        subs, self._subs = self._subs, []
        for sub in reversed(subs):  # the last tracked first (pull consumers before queues)
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        await self._on_stop()

    async def _on_stop(self) -> None:
        """Anything else to release after the tasks and subscriptions."""

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- tracked resources -------------------------------------------------------------------

    async def subscribe(
        self, subject: str, *, cb: Callable[[Msg], Awaitable[None]], queue: str = ""
    ) -> Subscription:
        """A core subscription, unsubscribed at :meth:`stop`."""
        sub = await self.nc.subscribe(subject, queue=queue, cb=cb)
        self._subs.append(sub)
        return sub

    def track(self, sub: _Unsubscribable) -> None:
        """Unsubscribe ``sub`` (a JetStream pull subscription, say) at :meth:`stop`."""
        self._subs.append(sub)

    def spawn(self, coro: Coroutine[Any, Any, None], *, name: str) -> asyncio.Task[None]:
        """A task cancelled (and awaited a bounded time) at :meth:`stop`."""
        task = asyncio.create_task(coro, name=name)
        self._tasks.append(task)
        return task

"""A one-slot "latest frame wins" buffer between a decoder thread and the analysis loop.

Ingest must never wait for analysis: when the detector is slower than the camera, the newest
frame replaces the one not yet taken and the drop is counted (Frigate's capture loop does the
same). The video never falls behind; the analysis rate drops instead.

The analysis side waits for a frame with :meth:`LatestSlot.wait` in its event loop: the decoder
thread wakes it when it puts one (and only while somebody waits), instead of the loop polling.
Why: a worker's idle cameras decode keyframes only (one frame per GOP) and used to poll their
slot every 20 ms while they waited — 60 such cameras were 3,000 event-loop wake-ups a second
next to the busy cameras' analyses (``docs/performance.md``).

>>> slot: LatestSlot[int] = LatestSlot()
>>> slot.put(1); slot.put(2)
>>> slot.take(), slot.dropped, slot.take()
(2, 1, None)
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Generic, TypeVar

T = TypeVar("T")


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _release(waiter: tuple[asyncio.AbstractEventLoop, asyncio.Future[None]] | None) -> None:
    """Wake ``waiter`` from any thread (None: nobody waits)."""
    if waiter is None:
        return
    loop, future = waiter
    # the loop is closed when the process shuts down with a reader still draining
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(_wake, future)


class LatestSlot(Generic[T]):
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: T | None = None
        self._waiter: tuple[asyncio.AbstractEventLoop, asyncio.Future[None]] | None = None
        self.put_count = 0
        self.dropped = 0

    def put(self, item: T) -> None:
        with self._cond:
            if self._item is not None:
                self.dropped += 1
            self._item = item
            self.put_count += 1
            self._cond.notify_all()
            waiter, self._waiter = self._waiter, None
        _release(waiter)

    def interrupt(self) -> None:
        """Wake a waiting :meth:`wait` with nothing to take (its consumer is stopping)."""
        with self._cond:
            waiter, self._waiter = self._waiter, None
        _release(waiter)

    @property
    def pending(self) -> bool:
        """Whether an item waits to be taken."""
        return self._item is not None

    def take(self, timeout: float | None = None) -> T | None:
        """The newest item, or None when nothing new arrives within ``timeout`` seconds."""
        with self._cond:
            if self._item is None and timeout:
                self._cond.wait_for(lambda: self._item is not None, timeout)
            item, self._item = self._item, None
            return item

    async def wait(self, within_s: float) -> bool:
        """From an event loop: return once an item is there (True) or ``within_s`` seconds have
        passed (False). One waiter at a time (the slot has one consumer).

        >>> async def main() -> tuple[bool, bool]:
        ...     slot: LatestSlot[int] = LatestSlot()
        ...     empty = await slot.wait(0.01)
        ...     asyncio.get_running_loop().call_later(0.01, slot.put, 7)
        ...     return empty, await slot.wait(5)
        >>> asyncio.run(main())
        (False, True)
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._cond:
            if self._item is not None:
                return True
            self._waiter = (loop, future)
        timer = loop.call_later(max(0.0, within_s), _wake, future)
        try:
            await future
        finally:
            timer.cancel()
            with self._cond:
                if self._waiter is not None and self._waiter[1] is future:
                    self._waiter = None
        return self._item is not None

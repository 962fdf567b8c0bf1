from __future__ import annotations

import asyncio
import threading
import time

from gridwatch.ingest.latest import LatestSlot
from gridwatch.ingest.reader import Backoff


def test_newest_wins_and_drops_are_counted() -> None:
    slot: LatestSlot[int] = LatestSlot()
    for i in range(5):
        slot.put(i)
    assert slot.take() == 4
    assert slot.dropped == 4
    assert slot.put_count == 5
    assert slot.take() is None


def test_take_waits_for_a_producer() -> None:
    slot: LatestSlot[str] = LatestSlot()
    threading.Timer(0.05, slot.put, args=("x",)).start()
    t0 = time.monotonic()
    assert slot.take(timeout=2) == "x"
    assert time.monotonic() - t0 < 1.5


def test_take_times_out_empty() -> None:
    slot: LatestSlot[str] = LatestSlot()
    assert slot.take(timeout=0.01) is None


def test_backoff_is_capped_exponential() -> None:
    b = Backoff(0.5, 4)
    assert [b.delay(n) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert Backoff(1, 30).delay(10_000) == 30


async def test_wait_is_woken_by_a_put_from_another_thread() -> None:
    """The analysis loop waits for a frame without polling: the decoder thread wakes it."""
    slot: LatestSlot[str] = LatestSlot()
    threading.Timer(0.05, slot.put, args=("x",)).start()
    t0 = time.monotonic()
    assert await slot.wait(5.0) is True
    assert time.monotonic() - t0 < 1.0  # woken by the put, not by the 5 s timeout
    assert slot.take() == "x"


async def test_wait_returns_at_once_when_an_item_is_there_and_times_out_when_none_comes() -> None:
    slot: LatestSlot[str] = LatestSlot()
    slot.put("ready")
    t0 = time.monotonic()
    assert await slot.wait(5.0) is True
    assert time.monotonic() - t0 < 0.1
    slot.take()
    t0 = time.monotonic()
    assert await slot.wait(0.05) is False
    assert 0.04 <= time.monotonic() - t0 < 1.0
    # a put after the wait ended wakes nobody and is simply taken later
    slot.put("late")
    assert slot.take() == "late"


async def test_interrupt_releases_a_waiter_with_nothing_to_take() -> None:
    """A consumer that stops (the console's live view) releases its own pending wait."""
    slot: LatestSlot[str] = LatestSlot()
    loop = asyncio.get_running_loop()
    loop.call_later(0.05, slot.interrupt)
    t0 = time.monotonic()
    assert await slot.wait(5.0) is False
    assert time.monotonic() - t0 < 1.0
    assert slot.take() is None

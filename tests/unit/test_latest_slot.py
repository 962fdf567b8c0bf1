from __future__ import annotations

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

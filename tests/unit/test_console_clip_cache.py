"""The console's clip answers (gridwatch.console.clips): byte ranges as RFC 9110 reads them, and
the small per-person cache that answers a playing video's range requests from one fetch."""

from __future__ import annotations

import asyncio

import pytest

from gridwatch.console.clips import ClipCache, ClipView, Unsatisfiable, byte_range


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        (None, 100, None),
        ("bytes=0-9", 100, (0, 9)),
        ("bytes=90-", 100, (90, 99)),
        ("bytes=-10", 100, (90, 99)),
        ("bytes=-1000", 100, (0, 99)),
        ("bytes=50-5000", 100, (50, 99)),
        ("bytes=99-99", 100, (99, 99)),
        (" bytes = 1 - 2 ", 100, (1, 2)),
        ("bytes=9-2", 100, None),  # invalid: ignored, the whole
        ("bytes=0-1,4-5", 100, None),  # several: the whole
        ("bytes=-", 100, None),
        ("bytes=a-b", 100, None),
        ("lines=0-1", 100, None),
    ],
)
def test_byte_ranges(header: str | None, size: int, expected: tuple[int, int] | None) -> None:
    assert byte_range(header, size) == expected


@pytest.mark.parametrize(
    ("header", "size"),
    [
        ("bytes=100-", 100),
        ("bytes=100-200", 100),
        ("bytes=-0", 100),
        ("bytes=0-", 0),
        ("bytes=-5", 0),
    ],
)
def test_unsatisfiable_ranges(header: str, size: int) -> None:
    with pytest.raises(Unsatisfiable):
        byte_range(header, size)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def view(size: int = 10, variant: str = "blurred") -> ClipView:
    return ClipView(b"x" * size, variant, 4.0)


async def test_a_fetch_is_kept_for_ttl_s_and_shared_by_requests_that_miss_together() -> None:
    clock = Clock()
    cache = ClipCache(ttl_s=60.0, clock=clock)
    calls = 0
    release = asyncio.Event()

    async def fetch() -> ClipView:
        nonlocal calls
        calls += 1
        await release.wait()
        return view()

    key = ("aux-li", "g", "cam/a1.mp4", "blurred")
    waiting = [asyncio.create_task(cache.get(key, fetch)) for _ in range(5)]
    await asyncio.sleep(0)
    release.set()
    got = await asyncio.gather(*waiting)
    assert (calls, cache.fetches) == (1, 1)
    assert all(g is got[0] for g in got)
    clock.t += 59.0
    assert await cache.get(key, fetch) is got[0]
    assert (calls, cache.hits) == (1, 1)
    clock.t += 1.0  # 60 s after the fetch: fetched again
    await cache.get(key, fetch)
    assert calls == 2


async def test_failures_are_not_kept_and_a_gone_request_does_not_stop_the_fetch() -> None:
    cache = ClipCache()
    key = ("op", "g", "cam/a1.mp4", "full")
    attempts = 0

    async def missing() -> ClipView:
        nonlocal attempts
        attempts += 1
        raise LookupError("not stored yet")

    for _ in range(2):
        with pytest.raises(LookupError):
            await cache.get(key, missing)
    assert (attempts, len(cache)) == (2, 0)

    release = asyncio.Event()

    async def slow() -> ClipView:
        await release.wait()
        return view(variant="full")

    first = asyncio.create_task(cache.get(key, slow))
    await asyncio.sleep(0)
    first.cancel()  # the browser went away
    second = asyncio.create_task(cache.get(key, slow))
    await asyncio.sleep(0)
    release.set()
    assert (await second).variant == "full"
    assert cache.fetches == 3  # (two failed, one shared)
    with pytest.raises(asyncio.CancelledError):
        await first
    await cache.close()
    assert len(cache) == 0


def test_bounded_per_person_in_all_and_in_bytes() -> None:
    cache = ClipCache(per_user=3, max_entries=5, max_bytes=100)
    for i in range(4):
        cache.put(("li", "g", f"c/{i}.mp4", "blurred"), view())
    assert [k[2] for k in cache._entries] == ["c/1.mp4", "c/2.mp4", "c/3.mp4"]
    assert cache.cached(("li", "g", "c/1.mp4", "blurred")) is not None  # now the most recent
    cache.put(("li", "g", "c/4.mp4", "blurred"), view())
    assert [k[2] for k in cache._entries] == ["c/3.mp4", "c/1.mp4", "c/4.mp4"]
    for i in range(3):
        cache.put(("wang", "g", f"c/{i}.mp4", "blurred"), view())
    assert len(cache) == 5  # in all: the least recently used went
    assert cache.cached(("li", "g", "c/3.mp4", "blurred")) is None
    cache.put(("op", "g", "c/big.mp4", "full"), view(size=95))  # the bytes: others make room
    assert (cache.bytes, len(cache)) == (95, 1)
    cache.put(
        ("op", "g", "c/huge.mp4", "full"), view(size=101)
    )  # larger than all: served, not kept
    assert cache.cached(("op", "g", "c/huge.mp4", "full")) is None
    assert cache.bytes == sum(len(v.data) for _, v in cache._entries.values())

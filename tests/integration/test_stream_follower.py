"""The one ephemeral follower (:class:`gridwatch.bus.consumers.StreamFollower`) through a real
nats-server: messages dropped on the way (a slow consumer) end a console feed with
:class:`FeedGap`, while a healing follower (the alert tail) takes them again, in order, once.
"""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from nats.js import JetStreamContext
from nats.js import api as js_api

from gridwatch.bus.consumers import FeedGap, StreamFollower

pytestmark = pytest.mark.timeout(60)

T = 10.0  # seconds: the bound on any single await below
STREAM = "T_FOLLOW"
N = 60
LIMIT = 5  # client-side buffer: the rest of a burst is dropped (nats.py's slow consumer)


async def _stream_with(js: JetStreamContext, n: int) -> dt.datetime:
    await asyncio.wait_for(js.add_stream(js_api.StreamConfig(name=STREAM, subjects=["t.>"])), T)
    start = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    for i in range(n):
        await asyncio.wait_for(js.publish(f"t.{i % 3}", str(i).encode()), T)
    return start


async def _drain(follower: StreamFollower, want: int, js: JetStreamContext) -> list[int]:
    got: list[int] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 3 * T
    while len(got) < want and loop.time() < deadline:
        msg = await follower.next(0.3)
        if msg is not None:
            got.append(int(msg.data))
            if len(got) == LIMIT:  # a live message after the drop reveals the gap at once
                await asyncio.wait_for(js.publish("t.live", str(N).encode()), T)
    return got


async def test_a_healing_follower_takes_dropped_messages_again_in_order(
    js: JetStreamContext,
) -> None:
    start = await _stream_with(js, N)
    follower = StreamFollower(
        js, STREAM, "t.>", start=start, idle_heartbeat=0.5, heal=True, pending_msgs_limit=LIMIT
    )
    await asyncio.wait_for(follower.open(), T)
    await asyncio.sleep(0.5)  # the server pushes the whole replay; the client keeps LIMIT
    try:
        got = await _drain(follower, N + 1, js)
    finally:
        await follower.close()

    assert got == list(range(N + 1))  # nothing lost, nothing twice
    assert follower.reopened >= 1
    assert follower.caught_up
    assert follower.last_seq == N + 1


async def test_a_console_follower_gives_up_on_a_gap(js: JetStreamContext) -> None:
    start = await _stream_with(js, N)
    follower = StreamFollower(
        js, STREAM, "t.>", start=start, idle_heartbeat=0.5, pending_msgs_limit=LIMIT
    )
    await asyncio.wait_for(follower.open(), T)
    await asyncio.sleep(0.5)
    try:
        with pytest.raises(FeedGap):
            await _drain(follower, N + 1, js)
    finally:
        await follower.close()
    assert follower.reopened == 0


async def test_a_healing_follower_of_new_messages_resumes_where_new_began(
    js: JetStreamContext,
) -> None:
    """A consumer lost before it delivered anything resumes after the stream's last message at
    its start: not from the beginning of the stream (nats.py's ordered consumer would)."""
    await _stream_with(js, 3)
    follower = StreamFollower(js, STREAM, "t.>", start=None, idle_heartbeat=0.5, heal=True)
    await asyncio.wait_for(follower.open(), T)
    assert follower.caught_up
    try:
        assert await follower.next(0.3) is None
        sub = follower._sub
        assert sub is not None
        info = await asyncio.wait_for(sub.consumer_info(), T)
        await asyncio.wait_for(js.delete_consumer(STREAM, info.name), T)
        assert await follower.next(0.3) is None  # the quiet spell finds it gone
        assert follower.reopened == 1
        await asyncio.wait_for(js.publish("t.0", b"3"), T)
        msg = await asyncio.wait_for(follower.next(T), 2 * T)
        assert msg is not None
        assert msg.data == b"3"
        assert await follower.next(0.3) is None
    finally:
        await follower.close()

"""Reading a KV bucket's current state through a watch: typed wrappers around nats.py's
watcher, and a snapshot read that does not trust nats.py's end-of-snapshot marker alone.

Used by the camera registry (``gridwatch camera list|export``, credential clean-up) and the
cluster status (``gridwatch workers``).
"""

from __future__ import annotations

import contextlib

import nats.errors
from nats.js.kv import KeyValue

__all__ = ["SNAPSHOT_SETTLE_S", "snapshot_entries", "watch_next", "watch_stop"]


async def watch_next(watcher: KeyValue.KeyWatcher, wait_s: float) -> object:
    """The next item of a KV watch (an entry, None for end-of-snapshot, or a stop marker);
    ``nats.errors.TimeoutError`` when nothing came within ``wait_s``. Typed wrapper."""
    return await watcher.updates(timeout=wait_s)  # type: ignore[no-untyped-call]


async def watch_stop(watcher: KeyValue.KeyWatcher) -> None:
    await watcher.stop()  # type: ignore[no-untyped-call]


SNAPSHOT_SETTLE_S = 0.3
"""How long a snapshot read keeps listening after nats.py's end-of-snapshot marker."""


async def snapshot_entries(
    watcher: KeyValue.KeyWatcher, wait_s: float, settle_s: float = SNAPSHOT_SETTLE_S
) -> list[KeyValue.Entry]:
    """Every entry of a fresh KV watch's initial snapshot, in order; stops the watcher.

    Why not stop at the first ``None`` (the end-of-snapshot marker): nats.py puts it first
    when the consumer's info, read just after subscribing, already counts the only message as
    delivered while it is still on its way (seen in CI: ``gridwatch camera export`` printed an
    empty registry right after a write). Entries that arrive within ``settle_s`` after the
    marker are part of the snapshot too (only when the marker came before any entry: after
    entries it is the true end); a live update in that window is harmless (it is as new as
    the read). ``wait_s``: the longest wait for the first item; ``settle_s`` 0: trust the
    marker (a clean-up that may as well miss a key)."""
    out: list[KeyValue.Entry] = []
    try:
        timeout, marked = wait_s, False
        while True:
            try:
                item = await watch_next(watcher, timeout)
            except nats.errors.TimeoutError:
                if marked:
                    break
                raise
            if item is None:
                if out or settle_s <= 0:  # entries came first: the marker is the true end
                    break
                marked, timeout = True, settle_s
            elif isinstance(item, KeyValue.Entry):
                out.append(item)
                if marked:  # the early marker's entries: the rest follow at once
                    timeout = settle_s
            else:
                break
    finally:
        with contextlib.suppress(Exception):
            await watch_stop(watcher)
    return out

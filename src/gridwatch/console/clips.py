"""Alert clips in the console: ``GET /api/clips/<grid>/<name>`` and ``/m/clips/<grid>/<name>``.

The MP4 of an alert's evidence clip (its ``clip`` field, ``<camera>/<alert id>.mp4``) as the clip
service (:mod:`gridwatch.alerts.clip_service`) serves it to the logged-in person, asked under
their name exactly as the snapshots are (``?variant=full|blurred``: full by default for the
roles in ``notify.full_snapshot_roles``, which the service alone decides to honour). A full clip
is audited twice, as a full snapshot is: by the clip service before it answers, and by the
console (``kind: view``, ``what: clip_full``) before the first byte goes out; no console record,
no clip (503 ``audit``).

A ``<video>`` asks for a clip many times while it plays and seeks (HTTP ``Range``), so what
the service sent is kept for a short while in the console's memory (:class:`ClipCache`: per
person, grid, name and variant asked for; a few clips per person, ``ttl_s`` from the fetch, a bound
on the bytes of all of them): the Range requests of one playback are answered from there, and
one playback of a full clip is one fetch and one audit record of each kind. Two requests that
miss at once share one fetch.

Answers: 200 (the whole clip) or 206 (``bytes=a-b``, ``bytes=a-``, ``bytes=-n``; one range;
several, malformed ones and any ``If-Range`` get the whole clip) with ``Content-Type:
video/mp4``, ``Accept-Ranges: bytes``, ``Cache-Control: no-store, private``, ``X-Gw-Variant``
(what was served) and ``X-Gw-Onset`` (the onset's offset into the clip in seconds, when the
clip says); 416 (``Content-Range: bytes */<size>``) for a range past the end; 404 for a grid
outside the scope, a name that is not a clip's, another grid's clip, and a clip not stored
(yet: it is stored ``alerts.clips.post_s`` after the alert); 503 with the service's reason and
code otherwise (``unavailable``, ``timeout``, ``busy``, ``audit``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from gridwatch.alerts.clip_service import ClipRequestError, parse_clip_name
from gridwatch.console.context import audit_or_log, console_of, scope_of, user_of

log = logging.getLogger(__name__)

CacheKey = tuple[str, str, str, str]
"""(user, grid, clip name, variant asked for)."""
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


@dataclass(frozen=True)
class ClipView:
    """A clip as it was served to one person."""

    data: bytes
    variant: str
    onset_s: float | None


class Unsatisfiable(ValueError):
    """A byte range that starts past the end of the clip (416)."""


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The one range (first, last byte, inclusive) a ``Range`` header asks of ``size`` bytes;
    None for the whole (no header, another unit, several ranges, a malformed one: ignored, as
    RFC 9110 allows); :class:`Unsatisfiable` for a range that starts past the end.

    >>> byte_range("bytes=0-99", 1000), byte_range("bytes=990-", 1000)
    ((0, 99), (990, 999))
    >>> byte_range("bytes=-10", 1000), byte_range("bytes=900-5000", 1000)
    ((990, 999), (900, 999))
    >>> byte_range("bytes=-5000", 1000), byte_range("bytes=9-2", 1000)
    ((0, 999), None)
    >>> byte_range("bytes=0-1,5-6", 1000), byte_range("items=0-1", 1000)
    (None, None)
    >>> byte_range("bytes=1000-", 1000)
    Traceback (most recent call last):
    ...
    gridwatch.console.clips.Unsatisfiable: bytes=1000- of 1000 bytes
    """
    if header is None:
        return None
    m = _RANGE.match(header.strip().replace(" ", ""))
    if m is None or not (m.group(1) or m.group(2)):
        return None
    first, last = m.group(1), m.group(2)
    if not first:  # the last n bytes
        n = int(last)
        if n == 0 or size == 0:
            raise Unsatisfiable(f"{header} of {size} bytes")
        return max(0, size - n), size - 1
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        return None  # invalid: ignored
    if start >= size:
        raise Unsatisfiable(f"{header} of {size} bytes")
    return start, min(end, size - 1)


class ClipCache:
    """The clips served lately, per (user, grid, name, variant asked for): at most ``per_user`` per
    person and ``max_entries`` in all, ``max_bytes`` together (the least recently used go
    first; a clip larger than that is served, not kept), each for ``ttl_s`` from its fetch.
    :meth:`get` runs a fetch once for concurrent misses of one key."""

    def __init__(
        self,
        *,
        per_user: int = 8,
        max_entries: int = 64,
        max_bytes: int = 256 * 1024 * 1024,
        ttl_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_user = per_user
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.ttl_s = ttl_s
        self.clock = clock
        self._entries: OrderedDict[CacheKey, tuple[float, ClipView]] = OrderedDict()
        self._pending: dict[CacheKey, asyncio.Task[ClipView]] = {}
        self.bytes = 0
        self.fetches = 0
        """Fetches started (each a request to the clip service)."""
        self.hits = 0

    def __len__(self) -> int:
        return len(self._entries)

    def cached(self, key: CacheKey) -> ClipView | None:
        """The clip kept under ``key`` when it is fresh (it becomes the most recent)."""
        found = self._entries.get(key)
        if found is None:
            return None
        fetched, view = found
        if self.clock() - fetched >= self.ttl_s:
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return view

    def put(self, key: CacheKey, view: ClipView) -> None:
        self._drop(key)
        if len(view.data) > self.max_bytes or self.per_user < 1 or self.max_entries < 1:
            return
        now = self.clock()
        for k in [k for k, (t, _) in self._entries.items() if now - t >= self.ttl_s]:
            self._drop(k)
        mine = [k for k in self._entries if k[0] == key[0]]
        for k in mine[: max(0, len(mine) - self.per_user + 1)]:
            self._drop(k)
        while self._entries and (
            len(self._entries) >= self.max_entries or self.bytes + len(view.data) > self.max_bytes
        ):
            self._drop(next(iter(self._entries)))
        self._entries[key] = (now, view)
        self.bytes += len(view.data)

    def _drop(self, key: CacheKey) -> None:
        found = self._entries.pop(key, None)
        if found is not None:
            self.bytes -= len(found[1].data)

    async def get(self, key: CacheKey, fetch: Callable[[], Awaitable[ClipView]]) -> ClipView:
        """The fresh clip of ``key``, or what ``fetch`` brings (kept when it succeeds; a
        failure is not kept: a clip not stored yet may be there on the next try). Requests
        that miss while a fetch of their key is under way wait for that one; it goes on when
        the request that started it goes away, so the others still get it."""
        view = self.cached(key)
        if view is not None:
            self.hits += 1
            return view
        task = self._pending.get(key)
        if task is None:
            self.fetches += 1
            task = asyncio.create_task(self._fetch(key, fetch), name="console-clip-fetch")
            self._pending[key] = task
            task.add_done_callback(lambda t: self._forget(key, t))
        return await asyncio.shield(task)

    async def _fetch(self, key: CacheKey, fetch: Callable[[], Awaitable[ClipView]]) -> ClipView:
        view = await fetch()
        self.put(key, view)
        return view

    def _forget(self, key: CacheKey, task: asyncio.Task[ClipView]) -> None:
        if self._pending.get(key) is task:
            del self._pending[key]
        if not task.cancelled():
            task.exception()  # retrieved: when nobody waits any more, it is not logged

    async def close(self) -> None:
        """Stop the fetches under way and forget every clip."""
        tasks = list(self._pending.values())
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(BaseException):
                await t
        self._pending.clear()
        self._entries.clear()
        self.bytes = 0


CLIP_CACHE: web.AppKey[ClipCache] = web.AppKey("gridwatch_clip_cache", ClipCache)


def _error(status: int, message: str, code: str = "") -> web.Response:
    return web.json_response({"error": message, "code": code}, status=status)


async def clip(request: web.Request) -> web.StreamResponse:
    """The clip as the clip service serves it to this user (see the module docstring)."""
    c = console_of(request)
    user = user_of(request)
    grid = scope_of(request).require(request.match_info["grid"])
    name = request.match_info["name"]
    try:
        _, alert_id = parse_clip_name(name)
    except ValueError:
        raise web.HTTPNotFound(text="not found") from None
    may_full = user.role in c.config.notify.full_snapshot_roles
    variant = request.query.get("variant", "full" if may_full else "blurred")
    if variant not in ("full", "blurred"):
        return _error(400, "variant is full or blurred")

    async def fetch() -> ClipView:
        data, served, onset = await c.backend.clip(user, grid, name, full=variant == "full")
        if served == "full":  # once per fetch from the service, before any byte leaves
            stored = await audit_or_log(
                request, "view", "clip_full", grid, clip=name, alert=alert_id
            )
            if not stored:
                raise ClipRequestError("audit", "the view could not be audited, so it is not shown")
        return ClipView(data, served, onset)

    try:
        view = await request.app[CLIP_CACHE].get((user.name, grid, name, variant), fetch)
    except ClipRequestError as e:
        if e.code in ("not_found", "forbidden", "invalid"):
            raise web.HTTPNotFound(text="not found") from None
        return _error(503, str(e), e.code)
    except ValueError:  # a grid or user name that is not a subject token
        raise web.HTTPNotFound(text="not found") from None
    return _answer(request, view)


def _answer(request: web.Request, view: ClipView) -> web.Response:
    size = len(view.data)
    headers = {
        "Accept-Ranges": "bytes",
        "Cache-Control": "no-store, private",
        "X-Gw-Variant": view.variant,
    }
    if view.onset_s is not None:
        headers["X-Gw-Onset"] = f"{view.onset_s:.3f}"
    wanted = None if "If-Range" in request.headers else request.headers.get("Range")
    try:
        span = byte_range(wanted, size)
    except Unsatisfiable:
        headers["Content-Range"] = f"bytes */{size}"
        resp = _error(416, "the range is past the end of the clip", "range")
        resp.headers.update(headers)
        return resp
    if span is None:
        return web.Response(body=view.data, content_type="video/mp4", headers=headers)
    first, last = span
    headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    return web.Response(
        status=206,
        body=view.data[first : last + 1],
        content_type="video/mp4",
        headers=headers,
    )


async def _close_cache(app: web.Application) -> None:
    await app[CLIP_CACHE].close()


def register(app: web.Application, cache: ClipCache | None = None) -> None:
    """The clip routes, and the app's :class:`ClipCache` (closed with the app)."""
    app[CLIP_CACHE] = cache or ClipCache()
    app.on_cleanup.append(_close_cache)
    app.router.add_get("/api/clips/{grid}/{name:.+}", clip)
    app.router.add_get("/m/clips/{grid}/{name:.+}", clip)

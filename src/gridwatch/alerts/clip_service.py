"""Evidence clips for people, per grid: masked, blurred unless their role may see more.

The workers store each raised alert's clip in object store ``gw_clips`` as the camera sent it
(:mod:`gridwatch.worker.clips`): nothing painted, nobody blurred. People never read that store
(NATS permissions cannot scope it per grid, as for snapshots); they ask this service on
``gw.v1.clip-get.<grid>.<their name>`` (:class:`ClipRequest`), which runs beside the snapshot
service, in the same process and as the same NATS identity (``service: snapshots``), and
applies the snapshot rules:

* the clip's ``Gw-Grid`` must be the grid asked for, and the user must be of that grid
  (operators: any); other service accounts are refused;
* ``full`` is served to the roles in ``notify.full_snapshot_roles`` who ask for it; everyone
  else gets ``blurred`` (also when they asked for full);
* every full view is audited before the first byte leaves: a ``kind: view``, ``what: clip``
  record on ``gw.v1.audit.view.<grid>`` acknowledged by stream GW_AUDIT (no record, no clip:
  ``Gw-Error: audit``).

Variants. ``full`` of a camera without privacy masks is the stored clip, byte for byte.
Anything else is re-encoded (:func:`gridwatch.alerts.clip_render.render_clip`, on a worker
thread, one clip at a time): the masks painted black (those recorded with the clip,
``Gw-Masks``, and those the config gives the camera now: a mask added later hides old clips
too) and, for ``blurred``, people pixelated by the live view's blur. A re-encoded variant is
cached in ``gw_clips`` as ``<camera>/<alert id>.<variant>.mp4`` with the clip's headers,
``Gw-Variant``, ``Gw-Source`` (the digest of the clip it was made from) and ``Gw-Masks`` (the
masks painted), so the next request for it is a read. A variant whose detector failed (frames
pixelated whole: fail closed) is served but not cached. Names of cached variants are not
valid request names.

The answer is a chunked binary reply (:func:`gridwatch.bus.rpc.respond_chunked`: a clip is
larger than NATS's ``max_payload``): the MP4 with ``Gw-Variant: blurred|full`` and the clip's
``Gw-Pre-Roll``; or ``Gw-Error: <code>`` (forbidden, not_found, invalid, audit, unavailable,
busy) and ``Gw-Message``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import re
import threading
import time
from collections.abc import Sequence
from typing import Literal

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import api as js_api
from nats.js.errors import NotFoundError
from nats.js.object_store import ObjectStore
from pydantic import BaseModel, ConfigDict, Field

from gridwatch.alerts.clip_render import RenderResult, render_clip
from gridwatch.alerts.people_blur import BlurSettings, FindPeople, Image, PeopleFinder
from gridwatch.alerts.subjects import ALERTS_STREAM, alert_filter
from gridwatch.alerts.tail import parse_alert
from gridwatch.alerts.viewing import audit_full_view, check_viewer, failure, requester
from gridwatch.auth.models import UserConfig
from gridwatch.auth.subjects import CLIP_REQ_PREFIX, audit_subject
from gridwatch.bus.consumers import StreamFollower
from gridwatch.bus.infra import ensure_audit_stream
from gridwatch.bus.names import (
    CLIP_BUCKET,
    CLIP_SERVICE_QUEUE,
    TAIL_CONSUMER_PREFIX,
    clip_request_subject,
)
from gridwatch.bus.rpc import (
    REPLY_WINDOW_S,
    BytesReply,
    RequestError,
    request_chunked,
    respond_chunked,
)
from gridwatch.bus.service import Service
from gridwatch.config import GridwatchConfig
from gridwatch.worker.clips import (
    CLIP_ALERT_HEADER,
    CLIP_CAMERA_HEADER,
    CLIP_GRID_HEADER,
    CLIP_MASKS_HEADER,
    CLIP_PRE_ROLL_HEADER,
)

log = logging.getLogger(__name__)

QUEUE_GROUP = CLIP_SERVICE_QUEUE
Variant = Literal["blurred", "full"]
VARIANT_HEADER = "Gw-Variant"
SOURCE_HEADER = "Gw-Source"
"""On a cached variant: the digest of the stored clip it was made from."""
CLIP_NAME_RE = re.compile(r"^([A-Za-z0-9_-]+)/([A-Za-z0-9_-]+)\.mp4$")
"""``<camera>/<alert id>.mp4`` (:func:`gridwatch.worker.clips.clip_name`); a cached variant's
name (``<camera>/<alert id>.<variant>.mp4``) does not match."""
Polygons = list[list[list[float]]]


class ClipRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(description="The alert's clip name (its 'clip' field).")
    variant: Variant = Field(default="blurred", description="blurred (default) or full.")


class ClipDenied(RequestError):
    """The service refuses a request (``code``: forbidden, not_found, invalid, audit,
    unavailable, busy)."""


class ClipRequestError(RequestError):
    """The clip service refused (``code`` as :class:`ClipDenied`) or was not there
    (``unavailable``, ``timeout``)."""


def variant_name(name: str, variant: Variant) -> str:
    """Where a re-encoded variant of clip ``name`` is cached.

    >>> variant_name("gate-9/ab12.mp4", "blurred")
    'gate-9/ab12.blurred.mp4'
    """
    return f"{name.removesuffix('.mp4')}.{variant}.mp4"


def parse_clip_name(name: str) -> tuple[str, str]:
    """(camera, alert id) of a clip name; ValueError for anything else.

    >>> parse_clip_name("gate-9/ab12.mp4")
    ('gate-9', 'ab12')
    """
    m = CLIP_NAME_RE.fullmatch(name)
    if m is None:
        raise ValueError(f"{name!r} is not a clip name (<camera>/<alert id>.mp4)")
    return m.group(1), m.group(2)


def _header(headers: dict[str, list[str]] | None, key: str) -> str | None:
    values = (headers or {}).get(key)
    return values[0] if values else None


def parse_masks(text: str | None) -> Polygons:
    """The polygons of a ``Gw-Masks`` header; ValueError when it is malformed (the caller
    fails closed: a clip whose masks cannot be read is not served).

    >>> parse_masks('[[[0.8,0.3],[1,0.3],[1,0.8]]]')
    [[[0.8, 0.3], [1.0, 0.3], [1.0, 0.8]]]
    >>> parse_masks(None)
    []
    """
    if text is None:
        return []
    raw = json.loads(text)
    if not isinstance(raw, list):
        raise ValueError("masks must be a list of polygons")
    out: Polygons = []
    for poly in raw:
        if not isinstance(poly, list) or len(poly) < 3:
            raise ValueError("a mask polygon needs 3 points or more")
        points = []
        for p in poly:
            if not isinstance(p, list) or len(p) != 2:
                raise ValueError("a mask point is [x, y]")
            points.append([float(p[0]), float(p[1])])
        out.append(points)
    return out


def _masks_json(masks: Polygons) -> str:
    return json.dumps(masks, separators=(",", ":"))


class ClipService(Service):
    """Answers clip requests (see the module docstring).

    ``find_people``: the person detector of the blur (default: a :class:`PeopleFinder`, loaded
    on the first blurred render). ``max_renders``: re-encodes at once; ``max_requests``:
    requests in flight (more are answered ``busy``)."""

    def __init__(
        self,
        nc: NATS,
        config: GridwatchConfig,
        *,
        op_timeout: float = 30.0,
        find_people: FindPeople | None = None,
        blur: BlurSettings | None = None,
        max_renders: int = 1,
        max_requests: int = 32,
    ) -> None:
        super().__init__(nc, name="clip service")
        self.config = config
        self.users = {u.name: u for u in config.users}
        self.camera_masks: dict[str, Polygons] = {
            c.id: [[[float(x), float(y)] for x, y in m.polygon] for m in c.privacy_masks]
            for c in config.cameras
        }
        self.op_timeout = op_timeout
        self.find_people: FindPeople = find_people or PeopleFinder()
        self._find_lock = threading.Lock()  # one detector, renders on several threads
        self.blur = blur or BlurSettings()
        self.max_requests = max_requests
        self._renders = asyncio.Semaphore(max_renders)
        self._rendering: dict[str, asyncio.Future[bytes]] = {}
        self._requests: set[asyncio.Task[None]] = set()
        self._cancel = threading.Event()
        self._store: ObjectStore | None = None
        self.served = 0
        self.full_views = 0
        self.audit_failed = 0
        self.cache_hits = 0
        self.renders: list[RenderResult] = []
        """The re-encodes done (the last 32), with their timings."""

    async def _on_start(self) -> None:
        self._cancel.clear()
        c = self.config.console
        try:  # not fatal: without GW_AUDIT, full clips are refused (their audit fails)
            await asyncio.wait_for(
                ensure_audit_stream(
                    self.nc.jetstream(),
                    retention_days=c.audit_retention_days,
                    max_bytes=c.audit_max_bytes,
                    max_msgs=c.audit_max_msgs,
                ),
                self.op_timeout,
            )
        except Exception as e:
            log.warning("audit stream GW_AUDIT not ensured (%s): full clips are refused", e)
        await self.subscribe(f"{CLIP_REQ_PREFIX}.*.*", queue=QUEUE_GROUP, cb=self._on_request)

    async def _on_stop(self) -> None:
        self._cancel.set()  # a render under way stops at its next picture
        tasks, self._requests = set(self._requests), set()
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=self.stop_timeout_s)

    async def _objects(self) -> ObjectStore:
        if self._store is None:
            self._store = await self.nc.jetstream().object_store(CLIP_BUCKET)
        return self._store

    def _find(self, image: Image) -> Sequence[Sequence[float]]:
        with self._find_lock:
            return self.find_people(image)

    # -- requests ----------------------------------------------------------------------------

    async def _on_request(self, msg: Msg) -> None:
        """Each request in a task of its own: a re-encode must not hold up the cached and
        raw answers behind it (nats.py runs one subscription's callbacks one at a time)."""
        if not msg.reply:
            return
        if len(self._requests) >= self.max_requests:
            with contextlib.suppress(Exception):
                await respond_chunked(msg, BytesReply.failure("busy", "too many clip requests"))
            return
        task = asyncio.create_task(self._answer(msg, time.monotonic()), name="clip-request")
        self._requests.add(task)
        task.add_done_callback(self._requests.discard)

    async def _answer(self, msg: Msg, received: float) -> None:
        try:
            grid, user = requester(msg.subject, self.users, ClipDenied)
            req = ClipRequest.model_validate_json(msg.data)
            reply = await self.serve(grid, user, req)
            if time.monotonic() - received > REPLY_WINDOW_S - 5:
                log.warning("clip %s for %s ready too late to answer", req.name, user.name)
                return
            self.served += 1
            await respond_chunked(msg, reply)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            with contextlib.suppress(Exception):
                await respond_chunked(msg, failure(e, msg.subject, ClipDenied))

    async def serve(self, grid: str, user: UserConfig, req: ClipRequest) -> BytesReply:
        """The clip as ``user`` may see it (see the module docstring); :class:`ClipDenied`."""
        check_viewer(user, grid, "clips", ClipDenied)
        try:
            camera, alert_id = parse_clip_name(req.name)
        except ValueError as e:
            raise ClipDenied("invalid", str(e)) from e
        store = await self._objects()
        try:
            info = await asyncio.wait_for(store.get_info(req.name), self.op_timeout)
        except NotFoundError as e:
            raise ClipDenied("not_found", f"no clip {req.name!r}") from e
        headers = info.headers
        if _header(headers, CLIP_GRID_HEADER) != grid:  # also refuses clips without a grid
            raise ClipDenied("not_found", f"no clip {req.name!r} in grid {grid}")
        try:
            masks = parse_masks(_header(headers, CLIP_MASKS_HEADER))
        except (ValueError, TypeError) as e:  # fail closed: never serve what cannot be masked
            log.error(
                "clip %s: unreadable %s header (%s): not served", req.name, CLIP_MASKS_HEADER, e
            )
            raise ClipDenied("unavailable", "the clip's privacy masks cannot be read") from e
        masks += [m for m in self.camera_masks.get(camera, []) if m not in masks]
        full = req.variant == "full" and user.role in self.config.notify.full_snapshot_roles
        variant: Variant = "full" if full else "blurred"
        if variant == "full" and not masks:
            obj = await asyncio.wait_for(store.get(req.name), self.op_timeout)
            data = bytes(obj.data or b"")
        else:
            data = await self._variant(store, req.name, info, variant, masks)
        if variant == "full":
            await self._audit(grid, user, req.name, camera, alert_id, masked=bool(masks))
            self.full_views += 1
        out = {VARIANT_HEADER: variant, CLIP_ALERT_HEADER: alert_id, CLIP_CAMERA_HEADER: camera}
        pre_roll = _header(headers, CLIP_PRE_ROLL_HEADER)
        if pre_roll is not None:
            out[CLIP_PRE_ROLL_HEADER] = pre_roll
        return BytesReply(data, out)

    # -- variants ----------------------------------------------------------------------------

    async def _variant(
        self,
        store: ObjectStore,
        name: str,
        info: js_api.ObjectInfo,
        variant: Variant,
        masks: Polygons,
    ) -> bytes:
        """The cached variant when it was made from this clip with these masks; else made
        now (one render per variant at a time: concurrent requests share it)."""
        cached_name = variant_name(name, variant)
        key = f"{cached_name}|{info.digest}|{_masks_json(masks)}"
        cached = await self._cached(store, cached_name, info, variant, masks)
        if cached is not None:
            self.cache_hits += 1
            return cached
        pending = self._rendering.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._rendering[key] = future
        try:
            data = await self._make(store, name, cached_name, info, variant, masks)
            future.set_result(data)
            return data
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as e:
            future.set_exception(e)
            future.exception()  # retrieved: waiters, if any, get it too
            raise
        finally:
            self._rendering.pop(key, None)

    async def _cached(
        self,
        store: ObjectStore,
        cached_name: str,
        info: js_api.ObjectInfo,
        variant: Variant,
        masks: Polygons,
    ) -> bytes | None:
        try:
            c_info = await asyncio.wait_for(store.get_info(cached_name), self.op_timeout)
        except NotFoundError:
            return None
        h = c_info.headers
        if (
            _header(h, VARIANT_HEADER) != variant
            or _header(h, SOURCE_HEADER) != info.digest
            or _header(h, CLIP_GRID_HEADER) != _header(info.headers, CLIP_GRID_HEADER)
            or _header(h, CLIP_MASKS_HEADER) != (_masks_json(masks) if masks else None)
        ):
            return None  # made from an older clip, or with other masks: made again
        try:
            obj = await asyncio.wait_for(store.get(cached_name), self.op_timeout)
        except NotFoundError:
            return None
        return bytes(obj.data or b"")

    async def _make(
        self,
        store: ObjectStore,
        name: str,
        cached_name: str,
        info: js_api.ObjectInfo,
        variant: Variant,
        masks: Polygons,
    ) -> bytes:
        async with self._renders:
            obj = await asyncio.wait_for(store.get(name), self.op_timeout)
            result = await asyncio.to_thread(
                render_clip,
                bytes(obj.data or b""),
                masks=masks,
                find_people=self._find if variant == "blurred" else None,
                settings=self.blur,
                cancel=self._cancel,
            )
        self.renders = [*self.renders[-31:], result]
        log.info(
            "clip %s: %s variant made, %d pictures (%.1f s of video) in %.1f s, %.2f s of CPU "
            "per second of video; %d looks, %d failed",
            name,
            variant,
            result.frames,
            result.duration_s,
            result.wall_s,
            result.cpu_per_video_s,
            result.looks,
            result.look_failures,
        )
        if result.look_failures:
            log.warning("clip %s: the detector failed; the blurred variant is not cached", name)
            return result.mp4
        headers = {k: list(v) for k, v in (info.headers or {}).items()}
        headers.pop(CLIP_MASKS_HEADER, None)
        if masks:
            headers[CLIP_MASKS_HEADER] = [_masks_json(masks)]
        headers.update(
            {
                VARIANT_HEADER: [variant],
                SOURCE_HEADER: [info.digest or ""],
                "Content-Type": ["video/mp4"],
            }
        )
        meta = js_api.ObjectMeta(
            name=cached_name,
            description=f"gridwatch alert evidence clip, {variant} (re-encoded)",
            headers=headers,
        )
        try:
            await asyncio.wait_for(store.put(cached_name, result.mp4, meta=meta), self.op_timeout)
        except Exception as e:  # served all the same; made again next time
            log.warning("clip %s: the %s variant was not cached (%s)", name, variant, e)
        return result.mp4

    # -- audit -------------------------------------------------------------------------------

    async def _audit(
        self, grid: str, user: UserConfig, name: str, camera: str, alert_id: str, *, masked: bool
    ) -> None:
        record = {
            "kind": "view",
            "what": "clip",
            "user": user.name,
            "role": user.role,
            "grid": grid,
            "clip": name,
            "camera": camera,
            "alert": alert_id,
            "blurred": False,
            "masked": masked,
            "at": dt.datetime.now(dt.UTC).isoformat(),
        }
        # acknowledged by JetStream (stream GW_AUDIT) before the clip leaves: no record, no clip
        try:
            await audit_full_view(
                self.nc,
                audit_subject("view", grid),
                record,
                ack_timeout=self.op_timeout,
                denied=ClipDenied,
            )
        except ClipDenied:
            self.audit_failed += 1
            raise


# -- client ------------------------------------------------------------------------------------


async def request_clip_reply(
    nc: NATS,
    *,
    name: str,
    grid: str,
    user: str,
    variant: Variant = "blurred",
    reply_timeout: float = 300.0,
    chunk_timeout: float = 15.0,
) -> BytesReply:
    """Ask the clip service; the whole reply (the MP4 and its headers: ``Gw-Variant``, the
    variant served, and ``Gw-Pre-Roll``). ``reply_timeout``: for the first chunk (a re-encode may
    come first); ``chunk_timeout``: between chunks. Raises :class:`ClipRequestError`."""
    return await request_chunked(
        nc,
        clip_request_subject(grid, user),
        ClipRequest(name=name, variant=variant),
        wait_s=reply_timeout,
        chunk_wait_s=chunk_timeout,
        error=ClipRequestError,
        unavailable="the clip service is not running",
        no_answer="the clip service did not answer within {timeout:.0f}s",
    )


async def request_clip(
    nc: NATS,
    *,
    name: str,
    grid: str,
    user: str,
    variant: Variant = "blurred",
    reply_timeout: float = 300.0,
) -> bytes:
    """The MP4 of clip ``name`` as the clip service serves it to ``user`` (blurred unless
    ``variant`` is full and their role may). Raises :class:`ClipRequestError`."""
    reply = await request_clip_reply(
        nc, name=name, grid=grid, user=user, variant=variant, reply_timeout=reply_timeout
    )
    return reply.data


def served_variant(reply: BytesReply) -> str:
    return reply.headers.get(VARIANT_HEADER, "blurred")


async def find_alert_clip(
    nc: NATS,
    alert_id: str,
    *,
    grid: str | None = None,
    since: dt.timedelta = dt.timedelta(days=7),
    idle_s: float = 3.0,
) -> tuple[str, str] | None:
    """(clip name, grid) of alert ``alert_id``, from its messages stored in GW_ALERTS over
    ``since`` (``grid``: that grid's only, which is all a responder may read); None when none
    of them names a clip."""
    follower = StreamFollower(
        nc.jetstream(),
        ALERTS_STREAM,
        alert_filter(grid),
        start=dt.datetime.now(dt.UTC) - since,
        prefix=TAIL_CONSUMER_PREFIX,
    )
    try:
        await follower.open()
        while not follower.caught_up:
            msg = await follower.next(idle_s)
            if msg is None:
                break
            alert = parse_alert(msg)
            if alert is not None and alert.id == alert_id and alert.clip:
                return alert.clip, alert.grid_id
    except NotFoundError:
        return None  # no alert stream yet
    finally:
        await follower.close()
    return None

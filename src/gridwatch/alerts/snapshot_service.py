"""Snapshots for people, per grid, blurred unless their role may see more.

The ``gw_snapshots`` object store cannot be scoped per grid by NATS permissions (object
subjects are ``$O.<bucket>.M.<base64 name>`` and ``$O.<bucket>.C.<nuid>``, nothing a
permission can match on a grid), so people never read it directly. They ask this service on
``gw.v1.snapshot-get.<grid>.<their name>`` (their permissions allow only their own name and,
for responders, their own grid). The service checks the object's ``Gw-Grid`` metadata against
the grid asked for and the user's grid, and answers the JPEG with people's regions pixelated,
or the full picture when the user's role is in ``notify.full_snapshot_roles`` and they asked
for it. Blurred means: every person the detector found on the whole picture (``Gw-People``)
and the rule's boxes (``Gw-Boxes``); the whole picture but its label bands when the worker said
so (``Gw-Blur: whole``: tamper and offline alerts, frames the detector did not look at), and
whenever that metadata is missing or malformed (fail closed; see
:class:`gridwatch.alerts.snapshots.SnapshotPrivacy`). Every full view is audited: logged and
published on ``gw.v1.audit.snapshot.<grid>`` to stream GW_AUDIT, and the full picture is sent
only once JetStream has acknowledged that record (otherwise ``Gw-Error: audit``).

Request and reply go through :mod:`gridwatch.bus.rpc` (a binary reply): the JPEG as the body
with header ``Gw-Variant: blurred|full``; or an empty body with ``Gw-Error: <code>`` and
``Gw-Message``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Sequence
from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.errors import NotFoundError
from nats.js.object_store import ObjectStore
from pydantic import BaseModel, ConfigDict, Field

from gridwatch.alerts.subjects import SNAPSHOT_BUCKET
from gridwatch.alerts.viewing import audit_full_view, check_viewer, failure, requester
from gridwatch.auth.models import UserConfig
from gridwatch.auth.subjects import (
    SNAPSHOT_REQ_PREFIX,
    audit_subject,
    snapshot_request_subject,
)
from gridwatch.bus.messages import SnapshotMeta
from gridwatch.bus.names import SNAPSHOT_SERVICE_QUEUE
from gridwatch.bus.rpc import BytesReply, RequestError, request_bytes, respond
from gridwatch.bus.service import Service
from gridwatch.config import GridwatchConfig
from gridwatch.console.audit import ensure_audit_stream

log = logging.getLogger(__name__)

QUEUE_GROUP = SNAPSHOT_SERVICE_QUEUE
Variant = Literal["blurred", "full"]
VARIANT_HEADER = "Gw-Variant"


class SnapshotRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(description="The alert's snapshot name.")
    variant: Variant = Field(default="blurred", description="blurred (default) or full.")


class SnapshotDenied(RequestError):
    """The service refuses a request (``code``: forbidden, not_found, invalid, audit)."""


def pixelate(img: npt.NDArray[np.uint8], x1: int, y1: int, x2: int, y2: int, block: int) -> None:
    """Pixelate ``img[y1:y2, x1:x2]`` in place into blocks of ``block`` pixels."""
    if x2 - x1 < 2 or y2 - y1 < 2:
        return
    roi = img[y1:y2, x1:x2]
    small = cv2.resize(
        roi, (max(1, (x2 - x1) // block), max(1, (y2 - y1) // block)), interpolation=cv2.INTER_AREA
    )
    img[y1:y2, x1:x2] = cv2.resize(small, (x2 - x1, y2 - y1), interpolation=cv2.INTER_NEAREST)


def whole_frame_block(w: int, h: int) -> int:
    """Block size of a whole-picture blur: 1/40 of the short side (a face is one block)."""
    return max(8, min(w, h) // 40)


def pixelate_boxes(
    img: npt.NDArray[np.uint8],
    boxes: Sequence[Sequence[float]],
    *,
    margin: float = 0.15,
    block: int = 10,
) -> None:
    """Pixelate each normalized xyxy box (grown by ``margin`` of its size) in place, in blocks
    of ``block`` pixels or a sixth of the box's width, whichever is larger (a person close to
    the camera is as unrecognisable as one far away)."""
    h, w = img.shape[:2]
    for b in boxes:
        x1, y1, x2, y2 = (float(v) for v in b[:4])
        mx, my = (x2 - x1) * margin, (y2 - y1) * margin
        px1, py1 = max(0, int((x1 - mx) * w)), max(0, int((y1 - my) * h))
        px2, py2 = min(w, int(np.ceil((x2 + mx) * w))), min(h, int(np.ceil((y2 + my) * h)))
        pixelate(img, px1, py1, px2, py2, max(block, (px2 - px1) // 6))


def pixelate_whole(
    img: npt.NDArray[np.uint8], keep: Sequence[Sequence[float]] = (), block: int | None = None
) -> None:
    """Pixelate the whole picture in place, but the normalized ``keep`` boxes (label bands)."""
    h, w = img.shape[:2]
    kept = []
    for b in keep:
        x1, y1 = max(0, int(float(b[0]) * w)), max(0, int(float(b[1]) * h))
        x2, y2 = min(w, int(np.ceil(float(b[2]) * w))), min(h, int(np.ceil(float(b[3]) * h)))
        if x2 > x1 and y2 > y1:
            kept.append((x1, y1, x2, y2, img[y1:y2, x1:x2].copy()))
    pixelate(img, 0, 0, w, h, block or whole_frame_block(w, h))
    for x1, y1, x2, y2, pixels in kept:
        img[y1:y2, x1:x2] = pixels


def blur_regions(
    jpeg: bytes,
    boxes: Sequence[Sequence[float]],
    *,
    margin: float = 0.15,
    block: int = 10,
    whole: bool = False,
    keep: Sequence[Sequence[float]] = (),
) -> bytes:
    """Pixelate each normalized xyxy box (grown by ``margin`` of its size) beyond recognition:
    a person becomes blocks of ``block`` pixels (or more), enough to count, not to identify.
    ``whole``: the whole picture instead, but the ``keep`` boxes (label bands)."""
    decoded = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    if decoded is None:
        raise ValueError("not a decodable JPEG")
    img: npt.NDArray[np.uint8] = np.asarray(decoded, dtype=np.uint8)
    if whole:
        pixelate_whole(img, keep)
    else:
        pixelate_boxes(img, boxes, margin=margin, block=block)
    ok, buf = cv2.imencode(".jpg", img, [int(cv2.IMWRITE_JPEG_QUALITY), 80])
    if not ok:
        raise RuntimeError("could not encode the blurred snapshot")
    return bytes(buf.tobytes())


def blur_plan(
    headers: dict[str, list[str]] | None,
) -> tuple[bool, list[list[float]], list[list[float]]]:
    """(whole picture?, boxes to blur, boxes to keep) from a snapshot's metadata: the people
    and the rule's boxes when the worker listed every person; else the whole picture."""
    return SnapshotMeta.from_headers(headers).blur_plan()


class SnapshotService(Service):
    """Answers snapshot requests (see the module docstring)."""

    def __init__(self, nc: NATS, config: GridwatchConfig, *, op_timeout: float = 10.0) -> None:
        super().__init__(nc, name="snapshot service")
        self.config = config
        self.users = {u.name: u for u in config.users}
        self.op_timeout = op_timeout
        self._store: ObjectStore | None = None
        self.served = 0
        self.full_views = 0
        self.audit_failed = 0

    async def _on_start(self) -> None:
        await self._ensure_audit_stream()
        await self.subscribe(f"{SNAPSHOT_REQ_PREFIX}.*.*", queue=QUEUE_GROUP, cb=self._on_request)

    async def _ensure_audit_stream(self) -> None:
        """GW_AUDIT with the config's limits (the service may start before any console). Not
        fatal: without the stream (or the right to make it) full views are refused, blurred
        ones served."""
        c = self.config.console
        try:
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
            log.warning("audit stream GW_AUDIT not ensured (%s): full snapshots are refused "
                        "until it exists", e)  # fmt: skip

    async def _objects(self) -> ObjectStore:
        if self._store is None:
            self._store = await self.nc.jetstream().object_store(SNAPSHOT_BUCKET)
        return self._store

    async def serve(
        self, grid: str, user: UserConfig, req: SnapshotRequest
    ) -> tuple[bytes, Variant]:
        check_viewer(user, grid, "snapshots", SnapshotDenied)
        store = await self._objects()
        try:
            obj = await asyncio.wait_for(store.get(req.name), self.op_timeout)
        except NotFoundError as e:
            raise SnapshotDenied("not_found", f"no snapshot {req.name!r}") from e
        headers = obj.info.headers if obj.info is not None else None
        obj_grid = SnapshotMeta.from_headers(headers).grid
        if obj_grid != grid:  # also refuses objects stored without a grid
            raise SnapshotDenied("not_found", f"no snapshot {req.name!r} in grid {grid}")
        data = bytes(obj.data or b"")
        full_ok = user.role in self.config.notify.full_snapshot_roles
        if req.variant == "full" and full_ok:
            await self._audit(grid, user, req.name)  # SnapshotDenied("audit") if not stored
            self.full_views += 1
            return data, "full"
        whole, boxes, keep = blur_plan(headers)
        blurred = await asyncio.to_thread(blur_regions, data, boxes, whole=whole, keep=keep)
        return blurred, "blurred"

    async def _audit(self, grid: str, user: UserConfig, name: str) -> None:
        record = {
            "kind": "snapshot_full_view",
            "user": user.name,
            "role": user.role,
            "grid": grid,
            "snapshot": name,
            "at": dt.datetime.now(dt.UTC).isoformat(),
        }
        # acknowledged by JetStream (stream GW_AUDIT) before the picture leaves: no record, no
        # picture, as in the console
        try:
            await audit_full_view(
                self.nc,
                audit_subject("snapshot", grid),
                record,
                ack_timeout=self.op_timeout,
                denied=SnapshotDenied,
            )
        except SnapshotDenied:
            self.audit_failed += 1
            raise

    async def _on_request(self, msg: Msg) -> None:
        if not msg.reply:
            return
        try:
            grid, user = requester(msg.subject, self.users, SnapshotDenied)
            req = SnapshotRequest.model_validate_json(msg.data)
            data, variant = await self.serve(grid, user, req)
            self.served += 1
            await respond(msg, BytesReply(data, {VARIANT_HEADER: variant}))
        except Exception as e:
            with contextlib.suppress(Exception):
                await respond(msg, failure(e, msg.subject, SnapshotDenied))


class SnapshotRequestError(RequestError):
    """The snapshot service refused (``code`` as :class:`SnapshotDenied`) or was not there
    (``unavailable``, ``timeout``)."""


async def request_snapshot(
    nc: NATS,
    *,
    grid: str,
    user: str,
    name: str,
    variant: Variant = "blurred",
    reply_timeout: float = 10.0,
) -> tuple[bytes, str]:
    """Ask the snapshot service; returns (JPEG, variant served). Raises
    :class:`SnapshotRequestError`."""
    reply = await request_bytes(
        nc,
        snapshot_request_subject(grid, user),
        SnapshotRequest(name=name, variant=variant),
        wait_s=reply_timeout,
        error=SnapshotRequestError,
        unavailable="the snapshot service is not running",
        no_answer="the snapshot service did not answer",
    )
    return reply.data, reply.headers.get(VARIANT_HEADER, "blurred")

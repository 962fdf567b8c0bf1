"""Annotated alert snapshots: rendering (OpenCV) and storage (JetStream object store).

An operator deciding whether to dispatch someone needs to see *what the rule saw*: the zone,
the objects it counted, and when. So a snapshot is the frame with the zone outline, the counted
boxes and a label burnt in, encoded once as JPEG at the worker, and stored in the
``gw_snapshots`` object store under a name the alert carries. Storing it in NATS (not on the
worker's disk) means the console and the phones fetch it with the same connection and
permissions they already have, and it expires with the bucket's TTL (privacy by retention).

Privacy masks are painted over *before* anything else is drawn, so a masked area (the windows
of a home) never leaves the worker in a snapshot.

**What the snapshot service blurs** (:class:`SnapshotPrivacy`). People whose role gets blurred
snapshots must not see anyone in clear, whatever the rule boxed. So the worker records, with
each snapshot, every person box the detector found on that frame (``Gw-People``), or that the
whole picture must be blurred (``Gw-Blur: whole``: tamper and offline alerts, frames the
detector did not look at). The record rides inside the JPEG as a comment segment from the
worker to :meth:`SnapshotStore.put` (so the spool, which keeps alert and JPEG bytes, carries
it unchanged), where it is taken out of the picture and stored as object metadata next to
``Gw-Grid`` and ``Gw-Boxes``. Objects without it (stored by older workers) are blurred whole.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt
from nats.js import JetStreamContext
from nats.js import api as js_api
from nats.js.errors import NotFoundError
from nats.js.object_store import ObjectStore

from gridwatch.alerts.subjects import SNAPSHOT_BUCKET, check_token
from gridwatch.bus.messages import BLUR_PEOPLE as BLUR_PEOPLE
from gridwatch.bus.messages import BLUR_WHOLE as BLUR_WHOLE
from gridwatch.bus.messages import SNAPSHOT_BLUR_HEADER as SNAPSHOT_BLUR_HEADER
from gridwatch.bus.messages import SNAPSHOT_BOXES_HEADER as SNAPSHOT_BOXES_HEADER
from gridwatch.bus.messages import SNAPSHOT_GRID_HEADER as SNAPSHOT_GRID_HEADER
from gridwatch.bus.messages import SNAPSHOT_KEEP_HEADER as SNAPSHOT_KEEP_HEADER
from gridwatch.bus.messages import SNAPSHOT_PEOPLE_HEADER as SNAPSHOT_PEOPLE_HEADER
from gridwatch.bus.messages import SnapshotMeta
from gridwatch.model import Alert, IncidentState

log = logging.getLogger(__name__)

PointNorm = tuple[float, float]
BoxNorm = tuple[float, float, float, float]

ZONE_COLOR = (0, 215, 255)  # amber (BGR)
BOX_COLOR = (0, 0, 255)  # red
LABEL_FG = (255, 255, 255)
LABEL_BG = (0, 0, 0)
JPEG_MAGIC = b"\xff\xd8\xff"


class SnapshotNotFoundError(LookupError):
    """No snapshot by that name (never stored, or expired by the bucket's TTL)."""


def snapshot_name(camera_id: str, alert_id: str, state: IncidentState | str, sequence: int) -> str:
    """The one place the object naming scheme lives: ``<camera>/<alert id>/<state>-<seq>.jpg``.

    Grouping by camera then incident lets an operator list one camera's snapshots, and makes
    each message of an incident (raised, updated, cleared) its own picture. Deterministic, so a
    retried put overwrites rather than duplicates.

    >>> snapshot_name("gate-9", "ab12", IncidentState.RAISED, 0)
    'gate-9/ab12/raised-0.jpg'
    """
    check_token(camera_id, "camera id")
    check_token(alert_id, "alert id")
    state_value = state.value if isinstance(state, IncidentState) else IncidentState(state).value
    if sequence < 0:
        raise ValueError(f"sequence must be >= 0, got {sequence}")
    return f"{camera_id}/{alert_id}/{state_value}-{sequence}.jpg"


def snapshot_headers(alert: Alert) -> dict[str, str]:
    """Object metadata of an alert's snapshot: its grid (access control) and the normalized
    boxes of the people counted (what the snapshot service blurs)."""
    return SnapshotMeta(grid=alert.grid_id, boxes=[list(b) for b in alert.boxes]).to_headers()


_PRIVACY_TAG = b"gridwatch-privacy/1:"
_JPEG_COM = b"\xff\xfe"
_MAX_SEGMENT = 65533  # a JPEG segment's payload: 2 bytes of length, which counts itself


@dataclass(frozen=True)
class SnapshotPrivacy:
    """What the snapshot service must blur for people who get blurred snapshots.

    ``people``: every person box (normalized xyxy) the detector found on the frame; None when
    the detector did not look at it, which blurs the whole picture. ``whole``: blur the whole
    picture anyway (tamper and offline alerts). ``keep``: regions without scene pixels (the
    label bands) that stay readable when the whole picture is blurred.
    """

    people: tuple[BoxNorm, ...] | None = None
    whole: bool = False
    keep: tuple[BoxNorm, ...] = ()

    @property
    def blur(self) -> str:
        return BLUR_WHOLE if self.whole or self.people is None else BLUR_PEOPLE

    def headers(self) -> dict[str, str]:
        """The object metadata: ``Gw-Blur``, and ``Gw-People``/``Gw-Keep`` when known."""
        return self.meta().to_headers()

    def meta(self) -> SnapshotMeta:
        """This record as snapshot metadata (:class:`gridwatch.bus.messages.SnapshotMeta`)."""
        return SnapshotMeta(
            blur=BLUR_WHOLE if self.blur == BLUR_WHOLE else BLUR_PEOPLE,
            people=None if self.people is None else [list(b) for b in self.people],
            keep=[list(b) for b in self.keep],
        )

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "people": None if self.people is None else [_rounded(b) for b in self.people],
                "whole": self.whole,
                "keep": [_rounded(b) for b in self.keep],
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def from_json(cls, data: bytes) -> SnapshotPrivacy:
        """Parse :meth:`to_json`; anything malformed blurs the whole picture (fail closed)."""
        try:
            d = json.loads(data)
            people = d.get("people")
            return cls(
                people=None if people is None else tuple(_box(b) for b in people),
                whole=bool(d.get("whole", True)),
                keep=tuple(_box(b) for b in d.get("keep") or ()),
            )
        except (ValueError, TypeError, AttributeError):
            return cls(people=None, whole=True)


def _rounded(box: Sequence[float]) -> list[float]:
    return [round(float(v), 4) for v in box[:4]]


def _box(v: object) -> BoxNorm:
    if not isinstance(v, list | tuple) or len(v) != 4:
        raise ValueError(f"not a box: {v!r}")
    x1, y1, x2, y2 = (float(c) for c in v)
    return (x1, y1, x2, y2)


def embed_privacy(jpeg: bytes, privacy: SnapshotPrivacy) -> bytes:
    """``jpeg`` with ``privacy`` in a comment segment right after its start marker.

    Too many people for one segment (some thousands) turns into a whole-picture blur."""
    if not jpeg.startswith(JPEG_MAGIC[:2]):
        raise ValueError("not a JPEG")
    payload = _PRIVACY_TAG + privacy.to_json()
    if len(payload) > _MAX_SEGMENT:
        payload = _PRIVACY_TAG + SnapshotPrivacy(people=None, whole=True).to_json()
    return jpeg[:2] + _JPEG_COM + (len(payload) + 2).to_bytes(2, "big") + payload + jpeg[2:]


def split_privacy(jpeg: bytes) -> tuple[bytes, SnapshotPrivacy | None]:
    """Take :func:`embed_privacy`'s segment out of ``jpeg``: (the picture, the record or None)."""
    if jpeg[:2] != JPEG_MAGIC[:2] or jpeg[2:4] != _JPEG_COM or len(jpeg) < 6:
        return jpeg, None
    end = 4 + int.from_bytes(jpeg[4:6], "big")
    payload = jpeg[6:end]
    if not payload.startswith(_PRIVACY_TAG):
        return jpeg, None
    return jpeg[:2] + jpeg[end:], SnapshotPrivacy.from_json(payload[len(_PRIVACY_TAG) :])


def snapshot_name_for(alert: Alert) -> str:
    """:func:`snapshot_name` for the message ``alert`` describes."""
    return snapshot_name(alert.camera_id, alert.id, alert.state, alert.sequence)


def alert_label(alert: Alert) -> str:
    """The text burnt into a snapshot: type, count, peak and UTC time of the observation."""
    t = alert.observed_at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    return (
        f"{alert.type} {alert.state.value}: {alert.count} (peak {alert.peak_count})  {t}  "
        # OpenCV's Hershey fonts draw ASCII only: a Chinese camera name would come out as "???"
        f"{alert.camera_name if alert.camera_name.isascii() else alert.camera_id}"
    )


def _to_pixels(points: Sequence[Sequence[float]], w: int, h: int) -> npt.NDArray[np.int32]:
    arr = np.clip(np.asarray(points, dtype=np.float64).reshape(-1, 2), 0.0, 1.0)
    px = np.rint(arr * np.array([w - 1, h - 1], dtype=np.float64)).astype(np.int32)
    return px.reshape(-1, 1, 2)


def render_snapshot(
    image_bgr: npt.NDArray[np.uint8],
    *,
    zone_polygon_norm: Sequence[PointNorm] | None,
    boxes_norm: Sequence[BoxNorm],
    label: str,
    mask_polygons_norm: Sequence[Sequence[PointNorm]] = (),
    quality: int = 80,
    privacy: SnapshotPrivacy | None = None,
) -> bytes:
    """Draw the zone outline, the counted boxes and ``label`` on a copy of the frame; return JPEG.

    Coordinates are normalized (0..1) like the rest of the pipeline, so the snapshot can come
    from the main stream while detection ran on the sub-stream. ``mask_polygons_norm`` are
    privacy masks, filled solid before drawing. ``label`` may hold several lines (``\\n``).
    The input array is not modified. ``privacy`` is embedded for :meth:`SnapshotStore.put`
    (see :func:`embed_privacy`), with the label bands as its ``keep`` regions.
    """
    if image_bgr.ndim != 3 or image_bgr.shape[2] != 3 or image_bgr.dtype != np.uint8:
        raise ValueError(
            f"expected an H×W×3 uint8 BGR image, got {image_bgr.shape} {image_bgr.dtype}"
        )
    img = np.ascontiguousarray(image_bgr).copy()
    h, w = img.shape[:2]
    thick = max(2, round(min(w, h) / 240))

    for poly in mask_polygons_norm:
        if len(poly) >= 3:
            cv2.fillPoly(img, [_to_pixels(poly, w, h)], (0, 0, 0))

    if zone_polygon_norm is not None and len(zone_polygon_norm) >= 2:
        cv2.polylines(
            img,
            [_to_pixels(zone_polygon_norm, w, h)],
            isClosed=True,
            color=ZONE_COLOR,
            thickness=thick,
            lineType=cv2.LINE_AA,
        )

    for box in boxes_norm:
        (x1, y1), (x2, y2) = _to_pixels([box[:2], box[2:]], w, h).reshape(2, 2).tolist()
        cv2.rectangle(img, (x1, y1), (x2, y2), BOX_COLOR, thick, cv2.LINE_AA)

    bands = _draw_label(img, label, thick)

    ok, buf = cv2.imencode(".jpg", img, [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)])
    if not ok:
        raise RuntimeError("OpenCV could not encode the snapshot as JPEG")
    jpeg = bytes(buf.tobytes())
    if privacy is None:
        return jpeg
    keep = tuple((x1 / w, y1 / h, x2 / w, y2 / h) for x1, y1, x2, y2 in bands)
    return embed_privacy(
        jpeg, SnapshotPrivacy(people=privacy.people, whole=privacy.whole, keep=keep)
    )


def _draw_label(
    img: npt.NDArray[np.uint8], label: str, thick: int
) -> list[tuple[int, int, int, int]]:
    """White text on a black band at the top left: readable on any scene, phone-sized too.
    Returns the bands (pixel x1, y1, x2, y2, end exclusive): they hold no scene pixels."""
    lines = [ln for ln in label.splitlines() if ln.strip()]
    bands: list[tuple[int, int, int, int]] = []
    if not lines:
        return bands
    h, w = img.shape[:2]
    font = cv2.FONT_HERSHEY_SIMPLEX
    scale = max(0.4, min(w, h) / 900)
    text_thick = max(1, thick // 2)
    pad = max(4, round(6 * scale))
    y = 0
    for line in lines:
        (tw, th), base = cv2.getTextSize(line, font, scale, text_thick)
        band_h = th + base + 2 * pad
        x2 = min(w - 1, tw + 2 * pad)
        cv2.rectangle(img, (0, y), (x2, y + band_h), LABEL_BG, cv2.FILLED)
        cv2.putText(img, line, (pad, y + pad + th), font, scale, LABEL_FG, text_thick, cv2.LINE_AA)
        bands.append((0, y, x2 + 1, min(h, y + band_h + 1)))
        y += band_h
    return bands


class SnapshotStore:
    """Snapshots in the ``gw_snapshots`` JetStream object store.

    A thin layer over nats.py's :class:`ObjectStore` that fixes the content type, checks that
    what is stored is a JPEG, bounds every operation with a timeout (nats.py's object ``get``
    has none), and turns "not found" into one exception type.
    """

    def __init__(
        self, objects: ObjectStore, *, bucket: str = SNAPSHOT_BUCKET, op_timeout: float = 10.0
    ) -> None:
        self._objects = objects
        self.bucket = bucket
        self.op_timeout = op_timeout
        """Seconds any one put or get may take."""

    @classmethod
    async def open(
        cls, js: JetStreamContext, *, bucket: str = SNAPSHOT_BUCKET, op_timeout: float = 10.0
    ) -> SnapshotStore:
        """Bind to an existing bucket (made by ``streams.ensure_alert_infra``)."""
        return cls(await js.object_store(bucket), bucket=bucket, op_timeout=op_timeout)

    async def put(self, name: str, jpeg: bytes, *, headers: Mapping[str, str] | None = None) -> str:
        """Store ``jpeg`` under ``name`` (overwriting: puts are retried); return the name.

        ``headers`` go into the object's metadata: the publisher records the grid and the
        counted boxes there (:func:`snapshot_headers`), so the snapshot service can check a
        requester's grid and blur people without reading the alert stream. A privacy record
        embedded by :func:`render_snapshot` is taken out of the picture and stored there too
        (``Gw-Blur``, ``Gw-People``, ``Gw-Keep``)."""
        if not name or name.startswith("/"):
            raise ValueError(f"bad snapshot name {name!r}")
        if not jpeg.startswith(JPEG_MAGIC):
            raise ValueError("snapshot data is not a JPEG")
        jpeg, privacy = split_privacy(jpeg)
        if privacy is not None:
            headers = {**(headers or {}), **privacy.headers()}
        meta = js_api.ObjectMeta(
            name=name,
            description="gridwatch alert snapshot",
            # Go clients expect header values as lists.
            headers={
                "Content-Type": ["image/jpeg"],
                **{k: [v] for k, v in (headers or {}).items()},
            },
        )
        info = await asyncio.wait_for(self._objects.put(name, jpeg, meta=meta), self.op_timeout)
        log.debug("stored snapshot %s (%d bytes, %s chunks)", name, len(jpeg), info.chunks)
        return name

    async def get(self, name: str) -> bytes:
        """The JPEG stored under ``name``; :class:`SnapshotNotFoundError` if there is none."""
        try:
            result = await asyncio.wait_for(self._objects.get(name), self.op_timeout)
        except NotFoundError as e:
            raise SnapshotNotFoundError(f"no snapshot {name!r} in {self.bucket}") from e
        return bytes(result.data or b"")

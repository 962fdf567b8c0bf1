"""Helpers for the clip service tests: real evidence clips cut from the demo video the way the
worker cuts them (its H.264 packets remuxed by :func:`gridwatch.alerts.clips.remux_mp4`, no
re-encode), stored in ``gw_clips`` with the worker's headers; a secured nats-server whose
identities are the real ones (a worker, the snapshots service, people of two grids); and what
"a person is shown" means (the worker's detector). Imported by the tests that use it."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import io
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt
from av.bitstream import BitStreamFilterContext
from nats.aio.client import Client as NATS
from nats.js import api as js_api
from nats.js.object_store import ObjectStore

from gridwatch.alerts.clip_service import ClipService
from gridwatch.alerts.clips import remux_mp4
from gridwatch.bus.consumers import replay
from gridwatch.bus.infra import ensure_clip_store
from gridwatch.bus.names import AUDIT_STREAM
from gridwatch.config import GridwatchConfig, parse_config
from gridwatch.detectors.base import Detector
from gridwatch.geometry import iou_matrix
from gridwatch.ingest.packet_ring import RingPacket, StreamParams
from gridwatch.worker.clips import (
    CLIP_ALERT_HEADER,
    CLIP_CAMERA_HEADER,
    CLIP_GRID_HEADER,
    CLIP_MASKS_HEADER,
    CLIP_ONSET_HEADER,
    CLIP_PRE_ROLL_HEADER,
    clip_name,
)
from gridwatch_devtools.nats_server import NatsServer
from tests.plugins.dispatch import GRID_A, GRID_B, UserConnections, _hash, secured_server

Image = npt.NDArray[np.uint8]
MASK = [[0.84, 0.33], [1.0, 0.33], [1.0, 0.80], [0.84, 0.80]]  # a home's windows, say
YARD_MASK = [[0.0, 0.0], [0.3, 0.0], [0.3, 0.3], [0.0, 0.3]]
"""The config's mask of camera ``yard`` (none recorded with its clips)."""

PEOPLE = {
    "op-zhang": ("operator", None),
    "aux-li": ("responder", GRID_A),
    "lead-wang": ("grid_leader", GRID_A),
    "aux-zhao": ("responder", GRID_B),
    "admin": ("admin", None),
}
SERVICES = {"svc-snaps": "[cases, snapshots]", "svc-worker": "worker"}


def clip_config_text() -> str:
    """Grids A and B, their people, a worker and the snapshots identity (which runs the clip
    service), and cameras: ``gate`` (its clips record a mask), ``plain`` (no mask) and
    ``yard`` (a mask in the config only)."""
    lines = [
        f"grids: [{{id: {GRID_A}, name: Grid A}}, {{id: {GRID_B}, name: Grid B}}]",
        "nats: {user: svc-snaps}",
        "cameras:",
        f'  - {{id: gate, grid: {GRID_A}, url: "rtsp://127.0.0.1:9/g"}}',
        f'  - {{id: plain, grid: {GRID_A}, url: "rtsp://127.0.0.1:9/p"}}',
        f'  - {{id: yard, grid: {GRID_A}, url: "rtsp://127.0.0.1:9/y",',
        f"     privacy_masks: [{{id: shed, polygon: {YARD_MASK}}}]}}",
        "users:",
    ]
    for name, (role, grid) in PEOPLE.items():
        g = f", grid: {grid}" if grid else ""
        lines.append(f'  - {{name: {name}, role: {role}{g}, password_hash: "{_hash(name)}"}}')
    for name, kind in SERVICES.items():
        lines.append(
            f'  - {{name: {name}, role: service, service: {kind}, password_hash: "{_hash(name)}"}}'
        )
    return "\n".join(lines) + "\n"


def clip_config() -> GridwatchConfig:
    return parse_config(clip_config_text(), "clip-test.yaml")


@functools.cache
def demo_clip_mp4(path: Path, start_s: float, duration_s: float) -> bytes:
    """The demo video from the keyframe at or before ``start_s`` for ``duration_s`` seconds,
    as a worker stores a clip: the H.264 packets (Annex B, as RTSP delivers them) remuxed to a
    fragmented MP4, no re-encode."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        ctx = s.codec_context
        params = StreamParams("h264", ctx.width, ctx.height, b"", float(s.average_rate or 10))
        bsf = BitStreamFilterContext("h264_mp4toannexb", s)
        packets: list[RingPacket] = []
        for p in c.demux(s):
            if p.pts is None:
                continue
            t = float(p.pts * p.time_base)
            if t > start_s + duration_s:
                break
            for q in bsf.filter(p):
                if q.is_keyframe and t <= start_s:
                    packets = []
                packets.append(RingPacket(bytes(q), t, 1_790_000_000.0 + t, q.is_keyframe))
    return remux_mp4(packets, params)


async def put_clip(
    store: ObjectStore,
    camera: str,
    alert_id: str,
    mp4: bytes,
    *,
    grid: str = GRID_A,
    masks: Sequence[Sequence[Sequence[float]]] = (),
    pre_roll_s: float = 4.0,
) -> str:
    """Store ``mp4`` as the worker stores an alert's clip (name and headers); its name."""
    name = clip_name(camera, alert_id)
    headers = {
        CLIP_ALERT_HEADER: [alert_id],
        CLIP_GRID_HEADER: [grid],
        CLIP_CAMERA_HEADER: [camera],
        CLIP_ONSET_HEADER: ["1790000004.000"],
        CLIP_PRE_ROLL_HEADER: [f"{pre_roll_s:.3f}"],
        "Content-Type": ["video/mp4"],
    }
    if masks:
        headers[CLIP_MASKS_HEADER] = [json.dumps([[list(p) for p in m] for m in masks])]
    meta = js_api.ObjectMeta(
        name=name, description="gridwatch alert evidence clip", headers=headers
    )
    await store.put(name, mp4, meta=meta)
    return name


def frames_of(mp4: bytes) -> list[tuple[float, Image]]:
    """Every picture of an MP4: (seconds, BGR)."""
    out = []
    with av.open(io.BytesIO(mp4)) as c:
        for f in c.decode(c.streams.video[0]):
            t = float(f.time) if f.time is not None else len(out) / 10
            out.append((t, np.ascontiguousarray(f.to_ndarray(format="bgr24"), np.uint8)))
    return out


def mask_inside(image: Image, mask: Sequence[Sequence[float]] = MASK, inset: float = 0.02) -> Image:
    """The pixels well inside a rectangular mask (its edges are blurred by the encoder)."""
    h, w = image.shape[:2]
    xs, ys = [p[0] for p in mask], [p[1] for p in mask]
    x1, x2 = int((min(xs) + inset) * w), int((max(xs) - inset) * w)
    y1, y2 = int((min(ys) + inset) * h), int((max(ys) - inset) * h)
    return image[y1:y2, x1:x2]


def people_boxes(detector: Detector, image: Image) -> npt.NDArray[np.float32]:
    """Normalized xyxy boxes of the people the worker's detector finds on ``image``."""
    found = detector.detect(image)
    return np.asarray(
        found.select(np.isin(found.class_id, list(detector.person_class_ids))).xyxyn(), np.float32
    ).reshape(-1, 4)


def people(detector: Detector, image: Image) -> int:
    return len(people_boxes(detector, image))


def matched(real: npt.NDArray[np.float32], seen: npt.NDArray[np.float32], h: int, w: int) -> int:
    """How many ``seen`` boxes are people of ``real`` (IoU ≥ 0.3), of a ``w``×``h`` picture.
    Only ``real`` boxes taller than wide count: the demo video's parked cars at the top edge
    are now and then called people, in clear and blurred pictures alike."""
    real = real[(real[:, 3] - real[:, 1]) * h >= (real[:, 2] - real[:, 0]) * w]
    if len(real) == 0 or len(seen) == 0:
        return 0
    return int((iou_matrix(seen, real) >= 0.3).any(axis=1).sum())


@dataclass
class ClipStack:
    config: GridwatchConfig
    server: NatsServer
    users: UserConnections
    store: ObjectStore
    """``gw_clips`` as the worker identity sees it."""
    service: ClipService
    worker: NATS

    def violations(self, user: str) -> list[str]:
        return [e for e in self.users.errors.get(user, []) if "permission" in e.lower()]

    async def audit_records(self, what: str = "clip") -> list[dict[str, Any]]:
        """GW_AUDIT's records of the last hour with ``what`` (read as an admin)."""
        admin = await self.users.connect("admin")
        start = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
        msgs = await replay(admin.jetstream(), AUDIT_STREAM, "gw.v1.audit.>", start=start)
        records = [{"subject": m.subject, **json.loads(m.data)} for m in msgs]
        return [r for r in records if r.get("what") == what]


@contextlib.asynccontextmanager
async def clip_stack(tmp_path: Path, **service_options: Any) -> AsyncIterator[ClipStack]:
    """A secured nats-server (the generated permissions), ``gw_clips`` made by the worker
    identity, and the clip service running as the snapshots identity."""
    cfg = clip_config()
    async with secured_server(cfg, tmp_path) as server:
        users = UserConnections(server)
        service: ClipService | None = None
        try:
            worker = await users.connect("svc-worker")
            store = await asyncio.wait_for(
                ensure_clip_store(worker.jetstream(), ttl_s=86400.0, max_bytes=1024**3), 10
            )
            svc = await users.connect("svc-snaps")
            service = ClipService(svc, cfg, **service_options)
            await asyncio.wait_for(service.start(), 15)
            yield ClipStack(cfg, server, users, store, service, worker)
        finally:
            if service is not None:
                await service.stop()
            await users.close()

"""Read-only answers for people: which workers are there, what do they run, who owns a camera.

Used by ``gridwatch workers`` and ``gridwatch camera show``. A camera's owner is the session
its lease names *if that session is alive* (its worker key holds it); a lease naming an ended
session is reported as orphaned: the camera is free and a worker will claim it shortly.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from gridwatch.bus.kv_snapshot import snapshot_entries
from gridwatch.leases.kv import read_current, stream_of
from gridwatch.leases.records import LEASES_BUCKET, WORKERS_BUCKET, LeaseRecord, WorkerRecord

OwnerState = Literal["owned", "orphaned", "unassigned", "no-leases"]


def _age_s(stamp: str, now: dt.datetime) -> float | None:
    try:
        at = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    return round((now - at).total_seconds(), 1)


@dataclass(frozen=True)
class CameraOwner:
    """Who holds a camera's lease, and whether that worker reports running it."""

    state: OwnerState
    worker: str | None = None
    session: str | None = None
    since: str | None = None
    lease_revision: int = 0
    host: str | None = None
    running: bool | None = None
    heartbeat_age_s: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        if self.state == "no-leases":
            return "- (no gw_leases bucket: workers run without leases)"
        if self.state == "unassigned":
            return "nobody (unassigned: waiting for a worker with room)"
        if self.state == "orphaned":
            return (
                f"nobody (lease of ended session {self.session} of {self.worker}; "
                "a worker will claim it)"
            )
        run = "running" if self.running else "held, not running (start failed?)"
        age = (
            f", heartbeat {self.heartbeat_age_s:g}s ago" if self.heartbeat_age_s is not None else ""
        )
        return f"{self.worker} on {self.host or '?'} since {self.since} ({run}{age})"


async def _bucket_exists(js: JetStreamContext, bucket: str, wait_s: float) -> bool:
    try:
        await asyncio.wait_for(js.stream_info(stream_of(bucket)), wait_s)
    except NotFoundError:
        return False
    return True


async def camera_owner(js: JetStreamContext, camera_id: str, *, wait_s: float = 5.0) -> CameraOwner:
    """The owner of ``camera_id``, read at the stream leaders (not from a possibly stale watch)."""
    if not await _bucket_exists(js, LEASES_BUCKET, wait_s):
        return CameraOwner("no-leases")
    cur = await read_current(js, LEASES_BUCKET, camera_id, wait_s=wait_s)
    if cur.value is None:
        return CameraOwner("unassigned", lease_revision=cur.revision)
    try:
        lease = LeaseRecord.decode(cur.value)
    except ValueError:
        return CameraOwner("orphaned", lease_revision=cur.revision)
    worker = None
    if await _bucket_exists(js, WORKERS_BUCKET, wait_s):
        wcur = await read_current(js, WORKERS_BUCKET, lease.worker, wait_s=wait_s)
        if wcur.value is not None:
            with contextlib.suppress(ValueError):
                worker = WorkerRecord.decode(wcur.value)
    if worker is None or worker.session != lease.session:
        return CameraOwner(
            "orphaned", lease.worker, lease.session, lease.since, lease_revision=cur.revision
        )
    now = dt.datetime.now(dt.UTC)
    return CameraOwner(
        "owned",
        lease.worker,
        lease.session,
        lease.since,
        lease_revision=cur.revision,
        host=worker.host,
        running=camera_id in worker.cameras,
        heartbeat_age_s=_age_s(worker.at, now),
    )


@dataclass
class WorkerStatus:
    """One worker as ``gridwatch workers`` shows it."""

    worker: str
    host: str
    pid: int
    session: str
    capacity: int
    ready: bool
    running: list[str]
    leases: list[str]
    cpu_percent: float | None
    heartbeat_age_s: float | None
    started: str

    @property
    def load(self) -> float | None:
        """Leases held / capacity."""
        return round(len(self.leases) / self.capacity, 3) if self.capacity else None


@dataclass
class ClusterStatus:
    workers: list[WorkerStatus] = field(default_factory=list)
    owned: int = 0
    orphaned: list[str] = field(default_factory=list)
    registry_cameras: int | None = None
    unassigned: list[str] = field(default_factory=list)
    """Enabled registry cameras with no live owner (only known when the registry exists)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "workers": [{**asdict(w), "load": w.load} for w in self.workers],
            "cameras": {
                "owned": self.owned,
                "orphaned": self.orphaned,
                "registry": self.registry_cameras,
                "unassigned": self.unassigned,
            },
        }


async def _snapshot(js: JetStreamContext, bucket: str, wait_s: float) -> dict[str, bytes]:
    """Latest value of every present key (removals left out)."""
    if not await _bucket_exists(js, bucket, wait_s):
        return {}
    kv = await asyncio.wait_for(js.key_value(bucket), wait_s)
    watcher = await asyncio.wait_for(kv.watchall(ignore_deletes=True), wait_s)
    out: dict[str, bytes] = {}
    for item in await snapshot_entries(watcher, wait_s):
        if item.operation in (None, "PUT") and item.value is not None:
            out[item.key] = item.value
        else:  # removed in the settle window
            out.pop(item.key, None)
    return out


async def cluster_status(
    js: JetStreamContext, *, registry_bucket: str = "gw_cameras", wait_s: float = 10.0
) -> ClusterStatus:
    """Every worker with its running cameras and leases, and the cameras nobody owns."""
    workers_raw = await _snapshot(js, WORKERS_BUCKET, wait_s)
    leases_raw = await _snapshot(js, LEASES_BUCKET, wait_s)
    now = dt.datetime.now(dt.UTC)
    status = ClusterStatus()
    records: dict[str, WorkerRecord] = {}
    for key, raw in workers_raw.items():
        with contextlib.suppress(ValueError):
            records[key] = WorkerRecord.decode(raw)
    held: dict[str, list[str]] = {}
    for camera, raw in sorted(leases_raw.items()):
        try:
            lease = LeaseRecord.decode(raw)
        except ValueError:
            status.orphaned.append(camera)
            continue
        rec = records.get(lease.worker)
        if rec is None or rec.session != lease.session:
            status.orphaned.append(camera)
            continue
        held.setdefault(lease.worker, []).append(camera)
        status.owned += 1
    for key, rec in sorted(records.items()):
        status.workers.append(
            WorkerStatus(
                worker=key,
                host=rec.host,
                pid=rec.pid,
                session=rec.session,
                capacity=rec.capacity,
                ready=rec.ready,
                running=sorted(rec.cameras),
                leases=held.get(key, []),
                cpu_percent=rec.cpu_percent,
                heartbeat_age_s=_age_s(rec.at, now),
                started=rec.started,
            )
        )
    registry = await _snapshot(js, registry_bucket, wait_s)
    if registry or await _bucket_exists(js, registry_bucket, wait_s):
        from gridwatch.registry.store import decode_value

        enabled = []
        for cid, raw in registry.items():
            with contextlib.suppress(ValueError):
                if decode_value(raw).get("enabled", True):
                    enabled.append(cid)
        status.registry_cameras = len(enabled)
        owned = {c for w in status.workers for c in w.leases}
        status.unassigned = sorted(c for c in enabled if c not in owned)
    return status

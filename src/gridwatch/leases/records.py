"""What the lease buckets hold: one small JSON value per worker session and per camera lease.

``gw_workers``  key = worker id, value = :class:`WorkerRecord`, rewritten every ``renew_s`` (the
                session's renewal, compare-and-set on its revision).
``gw_leases``   key = camera id, value = :class:`LeaseRecord` naming the worker *and session*
                that holds the camera, written only when the camera changes hands.

A camera lease is valid while the session it names is alive, so one renewal per worker renews
all of its leases (the way etcd attaches keys to a lease); the lease key's revision is the
camera's fencing token: it changes every time the camera changes hands.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import secrets
import socket
from dataclasses import asdict, dataclass, field
from typing import Any

from gridwatch.bus.names import LEASES_KV, WORKERS_KV

LEASES_BUCKET = LEASES_KV
WORKERS_BUCKET = WORKERS_KV
SCHEMA = 1
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def default_worker_id() -> str:
    """``<host>-<pid>-<random>``: unique per start, readable in ``gridwatch workers``."""
    host = _UNSAFE.sub("-", socket.gethostname()).strip("-")[:40] or "worker"
    return f"{host}-{os.getpid()}-{secrets.token_hex(2)}"


def new_session() -> str:
    """A session id: never reused, so a lease naming an ended session can never revive."""
    return secrets.token_hex(8)


@dataclass(frozen=True)
class LeaseRecord:
    """The value of ``gw_leases.<camera>``: who holds the camera."""

    worker: str
    session: str
    since: str = field(default_factory=utc_now)

    def encode(self) -> bytes:
        doc = {"v": SCHEMA, **asdict(self)}
        return json.dumps(doc, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, raw: bytes) -> LeaseRecord:
        """Raises ``ValueError`` for anything that is not a lease of this schema."""
        doc = _object(raw)
        try:
            return cls(str(doc["worker"]), str(doc["session"]), str(doc.get("since", "")))
        except KeyError as exc:
            raise ValueError(f"lease value lacks {exc}") from None


@dataclass(frozen=True)
class WorkerRecord:
    """The value of ``gw_workers.<worker>``: the session's heartbeat and the worker's load."""

    worker: str
    session: str
    capacity: int
    ready: bool = False
    cameras: tuple[str, ...] = ()
    """Cameras the worker is running at the time of writing (what it actually runs)."""
    held: int = 0
    """Leases the session holds (a camera whose start failed is held but not running)."""
    cpu_percent: float | None = None
    host: str = ""
    pid: int = 0
    started: str = ""
    at: str = field(default_factory=utc_now)
    ttl_s: float = 0.0
    renew_s: float = 0.0

    def encode(self) -> bytes:
        doc = {"v": SCHEMA, **asdict(self)}
        doc["cameras"] = list(self.cameras)
        return json.dumps(doc, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, raw: bytes) -> WorkerRecord:
        doc = _object(raw)
        try:
            return cls(
                worker=str(doc["worker"]),
                session=str(doc["session"]),
                capacity=int(doc["capacity"]),
                ready=bool(doc.get("ready", False)),
                cameras=tuple(str(c) for c in doc.get("cameras", ())),
                held=int(doc.get("held", 0)),
                cpu_percent=None if doc.get("cpu_percent") is None else float(doc["cpu_percent"]),
                host=str(doc.get("host", "")),
                pid=int(doc.get("pid", 0)),
                started=str(doc.get("started", "")),
                at=str(doc.get("at", "")),
                ttl_s=float(doc.get("ttl_s", 0.0)),
                renew_s=float(doc.get("renew_s", 0.0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"worker value is malformed: {exc}") from None


def _object(raw: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")
    if doc.get("v") != SCHEMA:
        raise ValueError(f"unsupported schema {doc.get('v')!r}")
    return doc

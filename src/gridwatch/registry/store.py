"""The camera registry: one key per camera in the NATS KV bucket ``gw_cameras``.

Why NATS KV and not the YAML file or a database: workers already hold a NATS connection, a KV
watch pushes a change to every worker within milliseconds (hot reload without polling), and the
bucket keeps each camera's history (who changed the zone on Tuesday, and what it was before).
The YAML file remains the format for version control: ``camera import`` seeds the bucket from
it and ``camera export`` writes it back.

A value is a small JSON envelope around the camera as it appears in a config file::

    {"schema_version": 1, "camera": {...}, "changed_by": "ops@host",
     "changed_at": "2026-11-26T09:12:03Z", "change": "zone set gate-apron"}

**Credentials are kept apart.** Camera URLs carry passwords (``rtsp://admin:pw@cam/...``), and
the bucket keeps every revision: a password written once would stay readable in the history
long after it was changed. So a value holds its URLs with the password redacted
(``rtsp://admin:***@cam/...``) and names its credentials (``"credentials": "<ref>"``, a random
handle, not derived from the password); the clear URLs are in a second bucket,
``gw_camera_secrets``, that keeps one revision per key (``<camera id>.<ref>``)::

    {"schema_version": 1, "camera": {"url": "rtsp://admin:***@cam/1", ...},
     "credentials": "5f1c0e2a9b3d4c7e", ...}
    gw_camera_secrets  cam-1.5f1c0e2a9b3d4c7e = {"url": "rtsp://admin:pw@cam/1"}

A write stores the secret first (a new ref when the credentials changed, the same one when
they did not), then the camera (compare-and-set), then deletes the camera's other secrets; a
reader (the CLI, a worker's hot reload) puts the clear URLs back for the ref the value names,
so a watcher can never pair a camera revision with other credentials. ``camera history`` and
exports show no passwords. A value that names a secret that is missing is refused by workers
(the camera's last valid version keeps running). Values written before this (clear URLs, no
``credentials``) are still read as they are; their old revisions keep their passwords until
they leave the history (``gridwatch camera`` rewrites a camera's value without them; purge the
old revisions of ``KV_gw_cameras`` by hand to be rid of them at once).

Writes are compare-and-set on the key's last revision (:meth:`CameraRegistry.edit` retries on
a conflict), so two engineers editing one camera never silently overwrite each other; a
removal is a KV delete marker, so the history survives it. Nothing here validates grids or
schedules: callers validate with :func:`gridwatch.config.check_camera` against their config,
and workers validate again when they load a camera (see :mod:`gridwatch.registry.watcher`).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import getpass
import json
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from nats.js import JetStreamContext
from nats.js.errors import (
    BucketNotFoundError,
    KeyDeletedError,
    KeyNotFoundError,
    KeyWrongLastSequenceError,
)
from nats.js.kv import KeyValue

from gridwatch.bus.infra import camera_registry_kv, camera_secrets_kv, ensure_kv
from gridwatch.bus.kv_snapshot import snapshot_entries, watch_next, watch_stop
from gridwatch.bus.names import CAMERA_SECRETS_KV, CAMERAS_KV, kv_stream
from gridwatch.config import CameraConfig
from gridwatch.ingest.urls import redact_url

__all__ = [
    "BUCKET",
    "SCHEMA_VERSION",
    "SECRETS_BUCKET",
    "CameraExistsError",
    "CameraNotFoundError",
    "CameraRecord",
    "CameraRegistry",
    "ConcurrentUpdateError",
    "HistoryEntry",
    "RegistryError",
    "camera_document",
    "current_user",
    "decode_value",
    "watch_next",
    "watch_stop",
]

log = logging.getLogger(__name__)

BUCKET = CAMERAS_KV
SCHEMA_VERSION = 1
KV_STREAM = kv_stream(BUCKET)
SECRETS_BUCKET = CAMERA_SECRETS_KV
SECRET_FIELDS = ("url", "sub_url")
"""The camera fields that may carry credentials (kept in :data:`SECRETS_BUCKET`)."""
_T = TypeVar("_T")


class RegistryError(Exception):
    """A registry operation failed; the message says what to do about it."""


class CameraExistsError(RegistryError):
    pass


class CameraNotFoundError(RegistryError):
    pass


class ConcurrentUpdateError(RegistryError):
    pass


def current_user() -> str:
    """Who is making a change, for the history: ``$GW_USER`` or ``user@host``."""
    user = os.environ.get("GW_USER")
    if user:
        return user
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = "unknown"
    return f"{name}@{socket.gethostname()}"


def camera_document(camera: CameraConfig) -> dict[str, Any]:
    """The camera as it would be written in a config file: JSON types, defaults left out.

    Leaving defaults out records what an engineer actually set, so a later change of a
    default reaches cameras that never chose a value.
    """
    return camera.model_dump(mode="json", exclude_defaults=True)


def decode_value(raw: bytes) -> dict[str, Any]:
    """The camera mapping in a stored value (an envelope, or a bare camera written by hand).

    Raises ``ValueError`` when the value is not a JSON object of either shape.
    """
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"value is not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise ValueError("value is not a JSON object")
    if "camera" in doc and "schema_version" in doc:
        if doc["schema_version"] != SCHEMA_VERSION:
            raise ValueError(f"unsupported schema_version {doc['schema_version']!r}")
        camera = doc["camera"]
        if not isinstance(camera, dict):
            raise ValueError("'camera' is not a JSON object")
        return camera
    return doc


def split_credentials(camera: CameraConfig) -> tuple[CameraConfig, dict[str, str]]:
    """``camera`` with the passwords of its URLs redacted, and the clear URLs that had one."""
    clear: dict[str, str] = {}
    for name in SECRET_FIELDS:
        value = getattr(camera, name)
        if isinstance(value, str) and redact_url(value) != value:
            clear[name] = value
    if not clear:
        return camera, {}
    redacted = camera.model_copy(update={k: redact_url(v) for k, v in clear.items()})
    return redacted, clear


def credentials_ref(raw: bytes | None) -> str | None:
    """The secret a stored value names (None: its URLs are as stored)."""
    with contextlib.suppress(Exception):
        doc = json.loads(raw or b"")
        if isinstance(doc, dict) and isinstance(doc.get("credentials"), str):
            return str(doc["credentials"])
    return None


def _envelope(camera: CameraConfig, *, by: str, change: str, ref: str | None = None) -> bytes:
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    doc: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "camera": camera_document(camera),
        "changed_by": by,
        "changed_at": now,
        "change": change,
    }
    if ref is not None:
        doc["credentials"] = ref
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()


@dataclass(frozen=True)
class CameraRecord:
    """A camera as stored, with the revision to compare-and-set against."""

    camera: CameraConfig
    revision: int
    changed_by: str = ""
    changed_at: str = ""
    change: str = ""


@dataclass(frozen=True)
class HistoryEntry:
    """One revision of a camera's key; ``camera`` is None for a removal."""

    revision: int
    operation: Literal["put", "delete", "purge"]
    created: dt.datetime | None
    camera: dict[str, Any] | None
    changed_by: str
    change: str


def _meta(raw: bytes | None) -> tuple[str, str, str]:
    with contextlib.suppress(Exception):
        doc = json.loads(raw or b"")
        if isinstance(doc, dict):
            return (
                str(doc.get("changed_by", "")),
                str(doc.get("changed_at", "")),
                str(doc.get("change", "")),
            )
    return "", "", ""


def _created(entry: KeyValue.Entry) -> dt.datetime | None:
    created: Any = entry.created
    if isinstance(created, dt.datetime):
        return created
    if isinstance(created, int | float) and created > 0:
        return dt.datetime.fromtimestamp(created / 1e9, dt.UTC)
    return None


class CameraRegistry:
    """CRUD on ``gw_cameras`` with optimistic concurrency; every call has a timeout."""

    def __init__(
        self,
        js: JetStreamContext,
        kv: KeyValue,
        *,
        op_timeout: float = 10.0,
        secrets_kv: KeyValue | None = None,
    ) -> None:
        self.js = js
        self.kv = kv
        self.secrets_kv = secrets_kv
        self.op_timeout = op_timeout
        self._secrets: dict[str, dict[str, str]] = {}
        """``<camera id>.<ref>`` → the clear URLs (what :meth:`record` puts back)."""

    @classmethod
    async def open(
        cls,
        js: JetStreamContext,
        *,
        create: bool = True,
        history: int = 16,
        op_timeout: float = 10.0,
        replicas: int = 1,
    ) -> CameraRegistry:
        """Bind to the bucket, creating it (file storage, ``history`` revisions) if missing.

        Creating is idempotent and race-safe, like ``ensure_alert_infra``: every worker and
        CLI may call it; an existing bucket keeps its settings.
        """
        try:
            kv = await ensure_kv(
                js,
                camera_registry_kv(history=history, replicas=replicas),
                create=create,
                op_timeout=op_timeout,
            )
        except BucketNotFoundError:
            raise RegistryError(
                f"the camera registry (KV bucket {BUCKET}) does not exist yet: add a camera "
                "or import a config with `gridwatch camera import FILE`"
            ) from None
        secrets_kv = await cls._open_secrets(js, create, op_timeout, replicas)
        return cls(js, kv, op_timeout=op_timeout, secrets_kv=secrets_kv)

    @staticmethod
    async def _open_secrets(
        js: JetStreamContext, create: bool, op_timeout: float, replicas: int
    ) -> KeyValue | None:
        """The credentials bucket (history 1: a changed password is gone, not kept)."""
        try:
            return await ensure_kv(
                js, camera_secrets_kv(replicas=replicas), create=create, op_timeout=op_timeout
            )
        except BucketNotFoundError:
            return None

    # -- credentials -------------------------------------------------------------------------

    async def _secrets_bucket(self) -> KeyValue:
        if self.secrets_kv is None:
            self.secrets_kv = await self._open_secrets(self.js, True, self.op_timeout, 1)
        assert self.secrets_kv is not None
        return self.secrets_kv

    async def load_credentials(self, raws: list[bytes | None]) -> None:
        """Fetch the secrets these stored values name that are not cached yet."""
        wanted = set()
        for raw in raws:
            ref = credentials_ref(raw)
            if ref is None:
                continue
            with contextlib.suppress(ValueError):
                wanted.add(f"{decode_value(raw or b'').get('id')}.{ref}")
        missing = wanted - self._secrets.keys()
        if not missing:
            return
        if self.secrets_kv is None:  # perhaps created since this registry was opened
            self.secrets_kv = await self._open_secrets(self.js, False, self.op_timeout, 1)
            if self.secrets_kv is None:
                return
        for key in sorted(missing):
            try:
                entry = await self._timed(self.secrets_kv.get(key))
                clear = json.loads(entry.value or b"")
            except (KeyNotFoundError, KeyDeletedError, ValueError):
                continue
            if isinstance(clear, dict):
                self._secrets[key] = {k: str(v) for k, v in clear.items() if k in SECRET_FIELDS}

    def resolve(self, raw: bytes) -> dict[str, Any]:
        """The camera mapping in a stored value with its clear URLs put back (from the cache
        :meth:`load_credentials` fills). ``ValueError`` if the value names a secret that is
        not there, or whose URLs do not match the value's."""
        data = decode_value(raw)
        ref = credentials_ref(raw)
        if ref is None:
            return data
        clear = self._secrets.get(f"{data.get('id')}.{ref}")
        if clear is None:
            raise ValueError(
                f"its credentials ({SECRETS_BUCKET} key {data.get('id')}.{ref}) are missing"
            )
        out = dict(data)
        for name, url in clear.items():
            if redact_url(url) != out.get(name):
                raise ValueError(f"its credentials for {name} do not match its {name}")
            out[name] = url
        return out

    async def _store_credentials(
        self, camera: CameraConfig, clear: dict[str, str]
    ) -> tuple[str | None, bool]:
        """Store ``clear`` for ``camera``; (the ref, whether it was newly written)."""
        if not clear:
            return None, False
        prefix = f"{camera.id}."
        kv = await self._secrets_bucket()
        for key, known in list(self._secrets.items()):
            if key.startswith(prefix) and known == clear:
                with contextlib.suppress(KeyNotFoundError, KeyDeletedError):
                    await self._timed(kv.get(key))  # still there (not dropped by another)
                    return key[len(prefix) :], False  # unchanged credentials: same secret
                self._secrets.pop(key, None)
        ref = secrets.token_hex(8)
        await self._timed(kv.put(prefix + ref, json.dumps(clear).encode()))
        self._secrets[prefix + ref] = dict(clear)
        return ref, True

    async def _drop_credentials(self, camera_id: str, keep: str | None = None) -> None:
        """Delete the camera's stored secrets except ``keep`` (after a write or a removal)."""
        if self.secrets_kv is None:
            return
        prefix = f"{camera_id}."
        watcher = await self._timed(
            self.secrets_kv.watch(f"{prefix}*", ignore_deletes=True, meta_only=True)
        )
        # settle 0: one call per camera written (an import of 500); a key missed here stays
        # until the camera's next write
        keys = [e.key for e in await snapshot_entries(watcher, self.op_timeout, settle_s=0)]
        for key in keys:
            if key != f"{prefix}{keep}":
                with contextlib.suppress(KeyNotFoundError, KeyDeletedError):
                    await self._timed(self.secrets_kv.purge(key))
                self._secrets.pop(key, None)

    async def _timed(self, aw: Awaitable[_T]) -> _T:
        return await asyncio.wait_for(aw, self.op_timeout)

    async def get(self, camera_id: str) -> CameraRecord:
        """The camera's current value; :class:`CameraNotFoundError` if absent or removed."""
        try:
            entry = await self._timed(self.kv.get(camera_id))
        except (KeyNotFoundError, KeyDeletedError):
            raise CameraNotFoundError(
                f"no camera {camera_id!r} in the registry (`gridwatch camera list` shows them)"
            ) from None
        await self.load_credentials([entry.value])
        return self.record(entry)

    def record(self, entry: KeyValue.Entry) -> CameraRecord:
        """Decode a raw entry (from :meth:`entries`, which loads the credentials it names);
        raises if it holds no valid camera."""
        data = self.resolve(entry.value or b"")
        camera = CameraConfig.model_validate(data)
        by, at, change = _meta(entry.value)
        return CameraRecord(camera, int(entry.revision or 0), by, at, change)

    async def entries(self) -> dict[str, KeyValue.Entry]:
        """The latest value of every present key (removed ones left out), raw."""
        watcher = await self._timed(self.kv.watchall(ignore_deletes=True))
        out: dict[str, KeyValue.Entry] = {}
        for entry in await snapshot_entries(watcher, self.op_timeout):
            if entry.operation in (None, "PUT"):
                out[entry.key] = entry
            else:  # removed in the settle window
                out.pop(entry.key, None)
        await self.load_credentials([e.value for e in out.values()])
        return out

    async def cameras(self) -> list[CameraRecord]:
        """Every camera, sorted by id. A value that does not parse is logged and skipped."""
        records = []
        for key, entry in sorted((await self.entries()).items()):
            try:
                records.append(self.record(entry))
            except Exception as exc:  # one bad value must not hide the other cameras
                log.error("registry key %s does not hold a valid camera: %s", key, exc)
        return records

    async def create(
        self, camera: CameraConfig, *, by: str | None = None, change: str = "add"
    ) -> int:
        """Add a new camera; :class:`CameraExistsError` if the id is taken. Returns the revision."""
        try:
            return await self._write(camera, 0, by=by, change=change)
        except KeyWrongLastSequenceError:
            raise CameraExistsError(
                f"duplicate id: camera {camera.id!r} already exists; pick another id, or change "
                f"it with `gridwatch camera zone set|rule add|enable|disable {camera.id}` "
                f"(`gridwatch camera show {camera.id}` shows it)"
            ) from None

    async def put(
        self,
        camera: CameraConfig,
        *,
        expect_revision: int | None = None,
        by: str | None = None,
        change: str = "put",
    ) -> int:
        """Write ``camera``: unconditionally, or only if its key is still at ``expect_revision``
        (0: only if absent). :class:`ConcurrentUpdateError` when someone else got there first."""
        try:
            return await self._write(camera, expect_revision, by=by, change=change)
        except KeyWrongLastSequenceError:
            raise ConcurrentUpdateError(
                f"camera {camera.id!r} was changed by someone else meanwhile; run the command again"
            ) from None

    async def _write(
        self, camera: CameraConfig, expect_revision: int | None, *, by: str | None, change: str
    ) -> int:
        """Credentials first, then the camera (compare-and-set unless ``expect_revision`` is
        None; 0: only if absent), then the camera's other secrets go."""
        redacted, clear = split_credentials(camera)
        ref, fresh = await self._store_credentials(camera, clear)
        value = _envelope(redacted, by=by or current_user(), change=change, ref=ref)
        try:
            if expect_revision is None:
                rev = await self._timed(self.kv.put(camera.id, value))
            elif expect_revision == 0:
                rev = await self._timed(self.kv.create(camera.id, value))
            else:
                rev = await self._timed(self.kv.update(camera.id, value, last=expect_revision))
        except Exception:
            if fresh and ref is not None:  # nobody names it: do not leave a password behind
                with contextlib.suppress(Exception):
                    await self._timed((await self._secrets_bucket()).purge(f"{camera.id}.{ref}"))
                self._secrets.pop(f"{camera.id}.{ref}", None)
            raise
        await self._drop_credentials(camera.id, keep=ref)
        return rev

    async def edit(
        self,
        camera_id: str,
        change_fn: Callable[[CameraConfig], CameraConfig],
        *,
        change: str,
        by: str | None = None,
        retries: int = 5,
    ) -> CameraRecord:
        """Read, apply ``change_fn``, write back if nobody wrote in between; retry otherwise.

        ``change_fn`` validates (it may raise ``ConfigError``); it is re-run on the fresh value
        after a conflict, so a concurrent edit of another field is kept, not overwritten.
        """
        for _ in range(retries):
            current = await self.get(camera_id)
            updated = change_fn(current.camera)
            if updated.id != camera_id:
                raise RegistryError("a camera's id cannot be changed; add it anew and remove this")
            try:
                rev = await self.put(
                    updated, expect_revision=current.revision, by=by, change=change
                )
            except ConcurrentUpdateError:
                continue
            return CameraRecord(updated, rev, by or current_user(), "", change)
        raise ConcurrentUpdateError(
            f"camera {camera_id!r} kept changing under us ({retries} tries); try again"
        )

    async def remove(self, camera_id: str) -> None:
        """Remove a camera (a delete marker: its history is kept)."""
        current = await self.get(camera_id)
        try:
            await self._timed(self.kv.delete(camera_id, last=current.revision))
        except KeyWrongLastSequenceError:
            raise ConcurrentUpdateError(
                f"camera {camera_id!r} was changed meanwhile; look at it again and retry"
            ) from None
        await self._drop_credentials(camera_id)

    async def history(self, camera_id: str) -> list[HistoryEntry]:
        """Every kept revision of one camera, oldest first (removals included)."""
        watcher = await self._timed(self.kv.watch(camera_id, include_history=True))
        out: list[HistoryEntry] = []
        for entry in await snapshot_entries(watcher, self.op_timeout):
            op: Literal["put", "delete", "purge"] = (
                "delete" if entry.operation == "DEL" else
                "purge" if entry.operation == "PURGE" else "put"
            )  # fmt: skip
            camera = None
            if op == "put":
                with contextlib.suppress(ValueError):
                    camera = decode_value(entry.value or b"")
            by, _, change = _meta(entry.value)
            out.append(
                HistoryEntry(int(entry.revision or 0), op, _created(entry), camera, by, change)
            )
        if not out:
            raise CameraNotFoundError(f"the registry has never held a camera {camera_id!r}")
        return out

    async def last_sequence(self) -> int:
        """The bucket stream's last sequence: a cheap way to tell whether anything was written."""
        info = await self._timed(self.js.stream_info(KV_STREAM))
        return int(info.state.last_seq or 0)

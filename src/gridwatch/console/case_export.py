"""Case bundles: ``POST /api/cases/<grid>/<id>/export`` answers one case's evidence as a zip.

The bundle (format in :mod:`gridwatch.cases.bundle`) holds the alert messages, the full
snapshots and clips, the case history and the audit records of who viewed the case. It is
assembled here, by the console, for the logged-in person, because the console's service
identity is the one that may read everything a bundle needs while NATS permissions still
hold for people:

* GW_AUDIT is readable by the console only (people never read it; the case and snapshot
  services only write to it);
* alert messages (GW_ALERTS) and case events (GW_CASES) are read with the console's own
  consumers, filtered to the case's grid and subject;
* snapshots are never read from the object store: they are asked of the snapshot service as
  the person (``gw.v1.snapshot-get.<grid>.<person>``, variant ``full``), which checks the grid
  and role and audits each full view before it answers; clips likewise go through the clip
  service as the person (:func:`gridwatch.alerts.clip_service.request_clip`). A clip or
  snapshot that cannot be fetched is listed under ``missing`` in the manifest, with why.

Only roles that may see full pictures (``notify.full_snapshot_roles``, the same rule as full
snapshots) may export; anyone else is refused (403) and the refusal is audited. The export is
audited (``gw.v1.audit.export.<grid>``, ``what: case-export`` with the manifest's and the
zip's SHA-256) and the bundle is handed out only once that record is stored: no record, no
bundle. ``gridwatch cases export`` goes through this same endpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import importlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import nats.errors
import nats.js.errors
from aiohttp import web
from nats.aio.msg import Msg

from gridwatch.alerts.snapshot_service import SnapshotRequestError
from gridwatch.alerts.subjects import TOKEN_RE
from gridwatch.auth.models import UserConfig
from gridwatch.cases.bundle import (
    BundleFile,
    Missing,
    build_bundle,
    json_bytes,
    member_path,
    sha256,
)
from gridwatch.cases.client import CaseRequestError
from gridwatch.cases.model import Case
from gridwatch.config import GridwatchConfig
from gridwatch.console.api import CASE_ERROR_STATUS
from gridwatch.console.audit import AuditError, AuditLog
from gridwatch.console.backend import ConsoleBackend
from gridwatch.console.context import client_of, console_of, scope_of, session_of, user_of

log = logging.getLogger(__name__)

EXPORT_KIND = "export"
EXPORT_WHAT = "case-export"
AUDIT_SCAN_LIMIT = 1_000_000
"""Audit records of the case's grid read at most per export, from the case's first message on
(``audit_scan.truncated`` says when the limit cut the read short)."""
FETCHES_AT_ONCE = 4
CLIP_TIMEOUT_S = 180.0
"""A full clip of a camera with privacy masks is re-encoded first: that may take minutes."""
_IDENTITY_KEYS = frozenset(
    {"kind", "what", "user", "role", "grid", "at", "client", "session", "result"}
)
"""Fields of an audit record that say who and when, not what it is about."""

ClipRequest = Callable[..., Awaitable[Any]]


class ExportError(RuntimeError):
    """No bundle: ``code`` forbidden, not_found, audit or unavailable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class CaseBundle:
    data: bytes
    manifest: dict[str, Any]
    manifest_sha256: str
    sha256: str

    @property
    def filename(self) -> str:
        return f"case-{self.manifest['grid']}-{self.manifest['case_id']}.zip"


def may_export(user: UserConfig, config: GridwatchConfig) -> bool:
    """Whether ``user``'s role may see full pictures, and so export cases."""
    return user.role in config.notify.full_snapshot_roles


def _clip_requester() -> ClipRequest | str:
    """The clip service's client, or why there is none (loaded when used: the clip service is
    newer than this module and the console runs without it)."""
    try:
        mod = importlib.import_module("gridwatch.alerts.clip_service")
    except ImportError as e:
        return f"this console has no clip service client ({e})"
    # the whole reply says which variant was served; the bare MP4 does not
    fn = getattr(mod, "request_clip_reply", None) or getattr(mod, "request_clip", None)
    if not callable(fn):
        return "gridwatch.alerts.clip_service has no request_clip"
    return fn  # type: ignore[no-any-return]


def _clip_answer(result: Any) -> tuple[bytes, str | None]:
    """(MP4, variant served or None) from what ``request_clip`` returned: the bytes, a
    (bytes, variant) pair, or a reply with ``data`` and a variant or ``Gw-Variant`` header."""
    if isinstance(result, bytes | bytearray):
        return bytes(result), None
    if isinstance(result, tuple) and result and isinstance(result[0], bytes | bytearray):
        variant = result[1] if len(result) > 1 and isinstance(result[1], str) else None
        return bytes(result[0]), variant
    data = getattr(result, "data", None)
    if isinstance(data, bytes | bytearray):
        variant = getattr(result, "variant", None)
        headers = getattr(result, "headers", None)
        if variant is None and isinstance(headers, Mapping):
            variant = headers.get("Gw-Variant")
        return bytes(data), variant if isinstance(variant, str) else None
    raise TypeError(f"unexpected answer from request_clip: {type(result).__name__}")


def _unique(names: list[str | None]) -> list[str]:
    return list(dict.fromkeys(n for n in names if n))


def _place(folder: str, name: str, used: set[str], suffix: str = "") -> str:
    """A path for object ``name`` under ``folder`` no other file of the bundle has (names made
    safe may meet: ``a/../b`` and ``a/_/b``), ending in ``suffix``.

    >>> used: set[str] = set()
    >>> _place("snapshots", "a/../b.jpg", used), _place("snapshots", "a/_/b.jpg", used)
    ('snapshots/a/_/b.jpg', 'snapshots/a/_/b-2.jpg')
    """
    path = member_path(folder, name)
    if suffix and not path.lower().endswith(suffix):
        path += suffix
    folder_part, _, file_name = path.rpartition("/")
    stem, dot, ext = file_name.rpartition(".")
    n, base = 1, path
    while path in used:
        n += 1
        path = f"{folder_part}/{stem}-{n}.{ext}" if dot else f"{base}-{n}"
    used.add(path)
    return path


def _reason(e: BaseException) -> str:
    code = getattr(e, "code", None)
    text = str(e) or type(e).__name__
    return f"{code}: {text}" if isinstance(code, str) else f"{type(e).__name__}: {text}"


class CaseExporter:
    """Builds one case's bundle for one person (see the module docstring)."""

    def __init__(
        self,
        backend: ConsoleBackend,
        audit: AuditLog,
        config: GridwatchConfig,
        *,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.backend = backend
        self.audit = audit
        self.config = config
        self.clock = clock

    async def export(
        self, user: UserConfig, grid: str, case_id: str, **audit_fields: Any
    ) -> CaseBundle:
        """The bundle of case ``case_id`` of ``grid`` as ``user`` may have it, once the audit
        record of the export is stored. ``audit_fields`` (client, session) go into every
        record. Raises :class:`ExportError` or :class:`CaseRequestError` (both audited)."""
        fields = {"user": user.name, "role": user.role, "case": case_id, **audit_fields}
        try:
            if not may_export(user, self.config):
                raise ExportError(
                    "forbidden",
                    f"a {user.role} may not see full pictures, so may not export cases "
                    "(notify.full_snapshot_roles)",
                )
            if not user.may_see_grid(grid):
                raise ExportError("not_found", f"no case {case_id!r} in grid {grid}")
            case = await self.backend.get_case(user, grid, case_id)
            if case is None:
                raise ExportError("not_found", f"no case {case_id!r} in grid {grid}")
            data, manifest = await self._build(user, case)
        except (ExportError, CaseRequestError) as e:
            with contextlib.suppress(AuditError):  # (logged by the audit log)
                await self.audit.record(EXPORT_KIND, EXPORT_WHAT, grid, result=e.code, **fields)
            raise
        bundle = CaseBundle(data, manifest, sha256(json_bytes(manifest)), sha256(data))
        try:
            await self.audit.record(
                EXPORT_KIND,
                EXPORT_WHAT,
                grid,
                result="ok",
                manifest_sha256=bundle.manifest_sha256,
                bundle_sha256=bundle.sha256,
                bytes=len(data),
                files=len(manifest["files"]),
                missing=[m["path"] for m in manifest["missing"]],
                **fields,
            )
        except AuditError as e:
            raise ExportError("audit", "the export could not be audited, so it is not given") from e
        return bundle

    async def _build(self, user: UserConfig, case: Case) -> tuple[bytes, dict[str, Any]]:
        grid = case.grid_id
        records = await self.backend.alert_records(grid, case.id, case)
        history = await self.backend.history_records(grid, case.id)
        files: list[BundleFile] = [
            BundleFile("case.json", json_bytes(case.model_dump(mode="json")))
        ]
        missing: list[Missing] = []
        alerts_index = []
        seen: set[str] = set()
        for msg, alert in records:
            if alert.message_id in seen:
                continue  # a spooled message stored twice
            seen.add(alert.message_id)
            path = f"alerts/{alert.sequence:04d}-{alert.state.value}.json"
            files.append(BundleFile(path, bytes(msg.data)))
            alerts_index.append(
                {
                    "path": path,
                    "message_id": alert.message_id,
                    "subject": msg.subject,
                    "stream_seq": msg.metadata.sequence.stream,
                    "stored_at": msg.metadata.timestamp.isoformat(),
                }
            )
        alerts = [a for _, a in records]
        snapshots = _unique([a.snapshot for a in alerts] + [case.snapshot])
        clips = _unique([a.clip for a in alerts])
        # pictures first: the services' audit records of these very views are then in audit.json
        gate = asyncio.Semaphore(FETCHES_AT_ONCE)
        used = {f.path for f in files}
        fetched = await asyncio.gather(
            *(self._snapshot(gate, user, grid, n, _place("snapshots", n, used)) for n in snapshots),
            *(self._clip(gate, user, grid, n, _place("clips", n, used, ".mp4")) for n in clips),
        )
        files += [f for f in fetched if isinstance(f, BundleFile)]
        missing += [m for m in fetched if isinstance(m, Missing)]
        files.append(
            BundleFile(
                "history.json",
                json_bytes(
                    [
                        {
                            "seq": msg.metadata.sequence.stream,
                            "stored_at": msg.metadata.timestamp.isoformat(),
                            **ev.model_dump(mode="json", exclude_none=True),
                        }
                        for msg, ev in history
                    ]
                ),
            )
        )
        stored = [m.metadata.timestamp for m, _ in records] + [
            m.metadata.timestamp for m, _ in history
        ]
        start = (min(stored) if stored else case.opened_at) - dt.timedelta(minutes=1)
        audit, scanned = await self._audit(case, start, {*snapshots, *clips})
        files.append(BundleFile("audit.json", json_bytes(audit)))
        now = self.clock()
        header = {
            "case_id": case.id,
            "grid": grid,
            "exported_at": now.isoformat(),
            "exported_by": user.name,
            "exported_by_role": user.role,
            "case_state": case.state.value,
            "alerts": alerts_index,
            "audit_scan": {
                "from": start.isoformat(),
                "records_read": scanned,
                "truncated": scanned >= AUDIT_SCAN_LIMIT,
            },
        }
        return await asyncio.to_thread(build_bundle, header, files, missing=missing, at=now)

    async def _snapshot(
        self, gate: asyncio.Semaphore, user: UserConfig, grid: str, name: str, path: str
    ) -> BundleFile | Missing:
        async with gate:
            try:
                data, served = await self.backend.snapshot(user, grid, name, full=True)
            except (SnapshotRequestError, ValueError) as e:
                return Missing("snapshot", name, path, _reason(e))
        if served != "full":
            return Missing("snapshot", name, path, f"only the {served} picture was served")
        return BundleFile(path, data)

    async def _clip(
        self, gate: asyncio.Semaphore, user: UserConfig, grid: str, name: str, path: str
    ) -> BundleFile | Missing:
        request_clip = _clip_requester()
        if isinstance(request_clip, str):
            return Missing("clip", name, path, request_clip)
        async with gate:
            try:
                answer = await asyncio.wait_for(
                    request_clip(
                        self.backend.nc, name=name, grid=grid, user=user.name, variant="full"
                    ),
                    CLIP_TIMEOUT_S,
                )
                data, variant = _clip_answer(answer)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # whatever the clip service raises: listed, never dropped
                return Missing("clip", name, path, _reason(e))
        if variant not in (None, "full"):
            return Missing("clip", name, path, f"only the {variant} clip was served")
        if not data:
            return Missing("clip", name, path, "the clip service answered an empty clip")
        return BundleFile(path, data)

    async def _audit(
        self, case: Case, start: dt.datetime, names: set[str]
    ) -> tuple[list[dict[str, Any]], int]:
        """The grid's audit records since ``start`` that are about this case: its id, its
        snapshots or clips (any object of ``<camera>/<case id>``); and how many were read."""
        prefix = f"{case.camera_id}/{case.id}"

        def about_case(msg: Msg) -> bool:
            try:
                record = json.loads(msg.data)
            except ValueError:
                return False
            if not isinstance(record, dict):
                return False
            about = [
                v for k, v in record.items() if k not in _IDENTITY_KEYS and isinstance(v, str) and v
            ]
            return any(v == case.id or v in names or v.startswith(prefix) for v in about)

        kept, read = await self.backend.scan_audit(
            case.grid_id, start, about_case, limit=AUDIT_SCAN_LIMIT
        )
        out = [
            {
                "seq": msg.metadata.sequence.stream,
                "subject": msg.subject,
                "stored_at": msg.metadata.timestamp.isoformat(),
                "record": json.loads(msg.data),
            }
            for msg in kept
        ]
        return out, read


# -- HTTP --------------------------------------------------------------------------------------


def _error(status: int, message: str, code: str) -> web.Response:
    return web.json_response({"error": message, "code": code}, status=status)


async def export_case(request: web.Request) -> web.StreamResponse:
    """``POST /api/cases/<grid>/<id>/export``: the case bundle as a zip attachment."""
    c = console_of(request)
    user = user_of(request)
    grid = scope_of(request).require(request.match_info["grid"])
    case_id = request.match_info["alert_id"]
    if not TOKEN_RE.fullmatch(case_id):
        raise web.HTTPNotFound(text="not found")
    who = f"export:{user.name}"
    wait = c.alert_lookups.acquire(who)  # an export replays streams: the look-ups' budget
    if wait > 0:
        return web.json_response(
            {"error": "too many exports; try again shortly", "code": "busy"},
            status=429,
            headers={"Retry-After": str(int(wait) + 1)},
        )
    session = session_of(request)
    exporter = CaseExporter(c.backend, c.audit, c.config)
    try:
        bundle = await exporter.export(
            user, grid, case_id, client=client_of(request), session=session.short_id
        )
    except ExportError as e:
        if e.code == "not_found":
            raise web.HTTPNotFound(text="not found") from None
        status = {"forbidden": 403, "audit": 503}.get(e.code, 503)
        return _error(status, str(e), e.code)
    except CaseRequestError as e:
        if e.code in ("not_found", "forbidden"):
            raise web.HTTPNotFound(text="not found") from None
        return _error(CASE_ERROR_STATUS.get(e.code, 502), str(e), e.code)
    except (nats.errors.Error, nats.js.errors.Error, TimeoutError) as e:
        log.warning("export of case %s for %s failed: %s", case_id, user.name, e)
        return _error(503, "the case's records cannot be read right now", "unavailable")
    finally:
        c.alert_lookups.release(who)
        c.alert_lookups.failed(who)  # (the window counts every export)
    log.info(
        "case %s exported by %s: %d files, %d missing, %d bytes",
        case_id,
        user.name,
        len(bundle.manifest["files"]),
        len(bundle.manifest["missing"]),
        len(bundle.data),
    )
    return web.Response(
        body=bundle.data,
        content_type="application/zip",
        headers={
            "Content-Disposition": f'attachment; filename="{bundle.filename}"',
            "Cache-Control": "no-store, private",
            "X-Gw-Manifest-Sha256": bundle.manifest_sha256,
            "X-Gw-Bundle-Sha256": bundle.sha256,
        },
    )


def register(app: web.Application) -> None:
    """Add the export route. Before :func:`gridwatch.console.api.register`: its
    ``/api/cases/{grid}/{alert_id}/{op}`` would otherwise take ``export`` as an op."""
    app.router.add_post("/api/cases/{grid}/{alert_id}/export", export_case)

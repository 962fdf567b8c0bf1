"""The audit trail: stream ``GW_AUDIT`` on ``gw.v1.audit.<kind>.<grid>``.

Who looked at an unblurred picture of people, and who moved which case, must be answerable
months later and must not depend on a log file on one machine. So every such record is a
JetStream message, published with an acknowledgement: the console serves a full snapshot only
after its audit record is stored (no record, no picture).

The stream takes every subject under ``gw.v1.audit.>``, so the snapshot service's own records
(``gw.v1.audit.snapshot.<grid>``, published without an ack, see
:mod:`gridwatch.notify.snapshots`) are kept in it too once the stream exists. Kinds the console
writes:

* ``view``: a full (unblurred) snapshot was served (``what: snapshot_full``);
* ``case``: a case action (``what: acknowledge|dispatch|on_scene|resolve``, with the outcome);
* ``login``: logins, failed and refused logins and logouts (grid ``_all`` for names that are
  not users).

Each record: ``kind``, ``what``, ``user``, ``role``, ``grid``, ``at`` (UTC ISO-8601), ``client``
(address), ``session`` (a short non-secret handle) and what it is about.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable
from typing import Any

from nats.js import JetStreamContext
from nats.js import api as js_api

from gridwatch.alerts.streams import converge_stream
from gridwatch.auth.subjects import ALL_GRIDS, AUDIT_PREFIX, audit_subject

log = logging.getLogger(__name__)

AUDIT_STREAM = "GW_AUDIT"
DAY_S = 86400.0


async def ensure_audit_stream(js: JetStreamContext, *, retention_days: float = 365.0) -> None:
    """Create stream GW_AUDIT (file storage, ``retention_days``) or converge its max age."""
    max_age = retention_days * DAY_S
    cfg = js_api.StreamConfig(
        name=AUDIT_STREAM,
        description="gridwatch audit: gw.v1.audit.<kind>.<grid> (who viewed, who acted)",
        subjects=[f"{AUDIT_PREFIX}.>"],
        retention=js_api.RetentionPolicy.LIMITS,
        storage=js_api.StorageType.FILE,
        discard=js_api.DiscardPolicy.OLD,
        max_age=max_age,
        num_replicas=1,
    )
    await converge_stream(js, AUDIT_STREAM, {"max_age": max_age}, create=cfg)


class AuditError(RuntimeError):
    """An audit record could not be stored (what it guards must not happen)."""


class AuditLog:
    """Writes audit records to GW_AUDIT, each acknowledged by the server."""

    def __init__(
        self,
        js: JetStreamContext,
        *,
        timeout: float = 5.0,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.js = js
        self.timeout = timeout
        self.clock = clock
        self.written = 0
        self.failed = 0

    async def record(self, kind: str, what: str, grid: str | None, **fields: Any) -> None:
        """Store one record; :class:`AuditError` when the server did not acknowledge it."""
        body = {
            "kind": kind,
            "what": what,
            "grid": grid or ALL_GRIDS,
            "at": self.clock().isoformat(),
            **fields,
        }
        subject = audit_subject(kind, grid or ALL_GRIDS)
        try:
            await self.js.publish(
                subject,
                json.dumps(body, ensure_ascii=False, default=str).encode(),
                stream=AUDIT_STREAM,
                timeout=self.timeout,
            )
        except Exception as e:
            self.failed += 1
            log.error("AUDIT record not stored (%s): %s", e, body)
            raise AuditError(f"audit record not stored: {e}") from e
        self.written += 1
        log.info("AUDIT %s %s by %s (%s)", kind, what, fields.get("user"), body["grid"])

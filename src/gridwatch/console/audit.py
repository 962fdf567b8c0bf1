"""The audit trail: stream ``GW_AUDIT`` on ``gw.v1.audit.<kind>.<grid>``.

Who looked at an unblurred picture of people, and who moved which case, must be answerable
months later and must not depend on a log file on one machine. So every such record is a
JetStream message, published with an acknowledgement: the console serves a full snapshot only
after its audit record is stored (no record, no picture), and so does the snapshot service for
its own record (``gw.v1.audit.snapshot.<grid>``, see :mod:`gridwatch.alerts.snapshot_service`).

Kinds the console writes:

* ``view``: a full (unblurred) snapshot was served (``what: snapshot_full``);
* ``case``: a case action (``what: acknowledge|dispatch|on_scene|resolve``, with the outcome);
* ``login``: logins, failed and refused logins and logouts (grid ``_all`` for names that are
  not users).

Each record: ``kind``, ``what``, ``user``, ``role``, ``grid``, ``at`` (UTC ISO-8601), ``client``
(address), ``session`` (a short non-secret handle) and what it is about.

**Integrity.** The stream is created (and an existing one converged) with ``deny_delete`` and
``deny_purge`` (no message delete or purge through the JetStream API; nats-server accepts
setting both on an update and refuses to clear them again), roll-up headers off, and limits
on age, bytes and records. Converging never shortens history: an existing stream that keeps
records longer or allows more bytes/records than this console's config keeps its limits, with
a warning; a size cap is only added to an uncapped stream when what it holds already fits.
Who may publish on ``gw.v1.audit.>`` or manage the stream is decided by the NATS permissions
(:mod:`gridwatch.auth.natsconf`), not here.

**Floods.** Failed and refused logins cost an attacker nothing, so they are not one record
each: per (what, name, address) and window (``console.audit_login_window_s``) the first is
written at once (``count: 1``) and the rest are counted and written as one record
(``aggregated: true``, ``count``, ``first_at``, ``last_at``) when the window ends. At most
``console.audit_login_max_keys`` pairs are tracked per window; failures beyond them are
counted under one overflow record (``user``/``client`` ``*``). So a window writes at most
``2 * max_keys + 2`` login-failure records whatever the flood, and memory stays bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from nats.js import JetStreamContext

from gridwatch.auth.subjects import ALL_GRIDS, audit_subject
from gridwatch.bus.infra import ensure_audit_stream as ensure_audit_stream
from gridwatch.bus.names import AUDIT_STREAM as AUDIT_STREAM

log = logging.getLogger(__name__)

DAY_S = 86400.0
AGGREGATED = frozenset({("login", "login_failed"), ("login", "login_refused")})
"""(kind, what) of the records that are aggregated per window (see the module docstring)."""
OVERFLOW = "*"


class AuditError(RuntimeError):
    """An audit record could not be stored (what it guards must not happen)."""


@dataclass
class _Tally:
    grid: str | None
    fields: dict[str, Any]
    first_at: str
    last_at: str
    pending: int = 0
    total: int = 1


@dataclass
class _Window:
    started: float
    tallies: dict[tuple[str, str, str], _Tally] = field(default_factory=dict)


class AuditLog:
    """Writes audit records to GW_AUDIT, each acknowledged by the server; failed and refused
    logins aggregated per window (module docstring). :meth:`close` writes what is counted."""

    def __init__(
        self,
        js: JetStreamContext,
        *,
        timeout: float = 5.0,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        login_window_s: float = 300.0,
        login_max_keys: int = 256,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.js = js
        self.timeout = timeout
        self.clock = clock
        self.login_window_s = login_window_s
        self.login_max_keys = login_max_keys
        self.monotonic = monotonic
        self.written = 0
        self.failed = 0
        self.aggregated = 0
        """Failures counted into an aggregate instead of a record of their own."""
        self._window: _Window | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._pending_writes: set[asyncio.Task[None]] = set()

    async def record(self, kind: str, what: str, grid: str | None, **fields: Any) -> None:
        """Store one record; :class:`AuditError` when the server did not acknowledge it.

        Failed and refused logins may be counted into a later record instead (returns at once).
        """
        if (kind, what) in AGGREGATED:
            await self._aggregate(kind, what, grid, fields)
            return
        await self._write(kind, what, grid, fields)

    async def _write(self, kind: str, what: str, grid: str | None, fields: dict[str, Any]) -> None:
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

    # -- aggregation of failed and refused logins -------------------------------------------

    async def _aggregate(
        self, kind: str, what: str, grid: str | None, fields: dict[str, Any]
    ) -> None:
        now = self.monotonic()
        window = self._window
        if window is None or now - window.started >= self.login_window_s:
            if window is not None and window.tallies:
                self._schedule(window)  # ended; its counts are written in the background
            window = self._window = _Window(now)
        at = self.clock().isoformat()
        key = (what, str(fields.get("user")), str(fields.get("client")))
        tally = window.tallies.get(key)
        if tally is None and len(window.tallies) >= self.login_max_keys:
            key = (what, OVERFLOW, OVERFLOW)
            tally = window.tallies.get(key)
            if tally is None:
                grid = None
                fields = {**fields, "user": OVERFLOW, "client": OVERFLOW, "overflow": True}
        if tally is not None:
            tally.pending += 1
            tally.total += 1
            tally.last_at = at
            self.aggregated += 1
            self._ensure_flusher()
            return
        window.tallies[key] = _Tally(grid, dict(fields), at, at)
        self._ensure_flusher()
        await self._write(kind, what, grid, {**fields, "count": 1, "window_s": self.login_window_s})

    def _ensure_flusher(self) -> None:
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_loop(), name="audit-login-flush")

    def _schedule(self, window: _Window) -> None:
        task = asyncio.create_task(self._write_window(window), name="audit-login-window")
        self._pending_writes.add(task)
        task.add_done_callback(self._pending_writes.discard)

    async def _flush_loop(self) -> None:
        while (window := self._window) is not None:
            delay = window.started + self.login_window_s - self.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
                continue
            self._window = None
            await self._write_window(window)

    async def _write_window(self, window: _Window) -> None:
        for (what, _, _), t in list(window.tallies.items()):
            if t.pending <= 0:
                continue
            fields = {
                **t.fields,
                "count": t.pending,
                "aggregated": True,
                "first_at": t.first_at,
                "last_at": t.last_at,
                "window_s": self.login_window_s,
            }
            with contextlib.suppress(AuditError):  # logged by _write, counted in failed
                await self._write("login", what, t.grid, fields)

    async def flush(self) -> None:
        """Write the counts of the current window now and start a new one."""
        window, self._window = self._window, None
        if window is not None:
            await self._write_window(window)
        for task in list(self._pending_writes):
            with contextlib.suppress(Exception):
                await task

    async def close(self) -> None:
        """Stop the background flusher and write what is still counted."""
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(BaseException):
                await self._flusher
            self._flusher = None
        await self.flush()

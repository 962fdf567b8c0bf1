"""The case service: opens a case per alert, answers case commands, escalates missed deadlines.

Three loops share one in-memory view of the cases (rebuilt from GW_CASES at start):

* **opener**: a durable pull consumer on GW_ALERTS (explicit acks). A raised alert opens its
  case, a cleared alert is noted on it. The message is acked only once the case event is
  stored, so a crash re-delivers it and the deterministic event id keeps it single.
* **commands**: request/reply on ``gw.v1.case-cmd.>`` (queue group, so several instances can
  share the load). A person sends on ``gw.v1.case-cmd.<grid>.<their name>``, and nats-server
  only lets them publish under their own name, so the subject *is* the authentication; the
  service then checks the role and the grid (no resolve before acknowledge, no action outside
  the grid) and replies ``{"ok": true, "case": ...}`` or ``{"ok": false, "code", "error"}``.
  Service accounts may use the bare ``gw.v1.case-cmd.<grid>`` with ``actor`` in the body (the
  console, having authenticated its user).
* **deadlines**: every ``check_interval_s`` each open case is checked against its severity's
  deadlines and escalated (grid leader, then command centre), each escalation an event.

A reply is sent only after the event is stored in JetStream, so every transition a client saw
acknowledged survives a server crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import api as js_api
from nats.js.kv import KeyValue
from pydantic import ValidationError

from gridwatch.alerts.subjects import ALERTS_STREAM, alert_filter
from gridwatch.alerts.tail import parse_alert
from gridwatch.auth.models import UserConfig
from gridwatch.auth.subjects import (
    ALL_GRIDS,
    CASE_CMD_PREFIX,
    CASE_OPENER_DURABLE,
    case_key,
)
from gridwatch.bus.consumers import pull_loop
from gridwatch.bus.messages import CaseReply
from gridwatch.bus.names import CASE_SERVICE_QUEUE
from gridwatch.bus.service import Service
from gridwatch.cases.model import (
    Case,
    CaseCommand,
    CaseError,
    CaseEvent,
    CaseEventType,
    CaseState,
    decide,
    due_escalation,
    opened_event,
)
from gridwatch.cases.store import (
    ConflictError,
    append_event,
    cache_case,
    ensure_case_infra,
    load_all,
    load_case,
)
from gridwatch.config import GridwatchConfig
from gridwatch.model import Alert, IncidentState

log = logging.getLogger(__name__)

QUEUE_GROUP = CASE_SERVICE_QUEUE
OPEN_LOOKBACK = dt.timedelta(hours=24)
"""On first start (no durable consumer yet) older raised alerts do not open cases."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _reply(ok: bool, **fields: Any) -> bytes:
    """The wire reply (:class:`gridwatch.bus.messages.CaseReply`)."""
    return CaseReply(ok=ok, **fields).to_json()


class CaseService(Service):
    """See the module docstring. ``clock`` is injectable for deadline tests."""

    def __init__(
        self,
        nc: NATS,
        config: GridwatchConfig,
        *,
        clock: Callable[[], dt.datetime] = _now,
        op_timeout: float = 5.0,
    ) -> None:
        super().__init__(nc, name="case service")
        self.js = nc.jetstream()
        self.config = config
        self.users: dict[str, UserConfig] = {u.name: u for u in config.users}
        self.clock = clock
        self.op_timeout = op_timeout
        self.cases: dict[str, Case] = {}
        self._by_id: dict[str, str] = {}
        self._kv: KeyValue | None = None
        self._lock = asyncio.Lock()
        self.ready = asyncio.Event()
        self.on_event: list[Callable[[CaseEvent, Case], None]] = []
        """Called after each stored event (tests and metrics)."""

    # -- lifecycle ---------------------------------------------------------------------------

    async def _on_start(self) -> None:
        self._kv = await ensure_case_infra(
            self.js,
            retention_days=self.config.cases.retention_days,
            replicas=self.config.nats.replicas,
        )
        t0 = time.perf_counter()
        self.cases = await load_all(self.js)
        self._by_id = {c.id: k for k, c in self.cases.items()}
        log.info(
            "case service: %d cases (%d open) replayed in %.0f ms",
            len(self.cases),
            sum(c.is_open for c in self.cases.values()),
            (time.perf_counter() - t0) * 1000,
        )
        await self.subscribe(f"{CASE_CMD_PREFIX}.>", queue=QUEUE_GROUP, cb=self._on_command)
        self.spawn(self._open_cases(), name="case-opener")
        self.spawn(self._deadlines(), name="case-deadlines")
        await self.nc.flush(timeout=max(1, round(self.op_timeout)))
        self.ready.set()

    # -- recording ---------------------------------------------------------------------------

    async def _record(self, case: Case | None, event: CaseEvent) -> Case:
        new = await append_event(self.js, case, event, ack_timeout=self.op_timeout)
        key = case_key(new.grid_id, new.id)
        self.cases[key] = new
        self._by_id[new.id] = key
        if self._kv is not None:
            await cache_case(self._kv, new)
        log.info(
            "case %s (%s): %s by %s -> %s",
            new.id,
            new.grid_id,
            event.type.value,
            event.actor,
            new.state.value,
        )
        for cb in self.on_event:
            cb(event, new)
        return new

    async def _reload(self, grid_id: str, case_id: str) -> Case | None:
        case = await load_case(self.js, grid_id, case_id)
        if case is not None:
            self.cases[case_key(grid_id, case_id)] = case
            self._by_id[case_id] = case_key(grid_id, case_id)
        return case

    # -- opener --------------------------------------------------------------------------------

    async def _open_cases(self) -> None:
        cfg = js_api.ConsumerConfig(
            durable_name=CASE_OPENER_DURABLE,
            ack_policy=js_api.AckPolicy.EXPLICIT,
            deliver_policy=js_api.DeliverPolicy.BY_START_TIME,
            opt_start_time=(_now() - OPEN_LOOKBACK).isoformat(),  # type: ignore[arg-type]
            ack_wait=30.0,
            max_ack_pending=256,
        )
        await self._open_loop(cfg)

    async def _open_loop(self, cfg: js_api.ConsumerConfig) -> None:
        async def subscribe() -> Any:
            psub = await self.js.pull_subscribe(
                alert_filter(), durable=CASE_OPENER_DURABLE, stream=ALERTS_STREAM, config=cfg
            )
            self.track(psub)  # no waiting pull request may take the next alert
            return psub

        async def handle(msg: Msg) -> None:
            alert = parse_alert(msg)
            if alert is not None:
                await self._on_alert(alert)

        await pull_loop(
            subscribe, handle, stopping=lambda: self.stopping, name="case opener", batch=16
        )

    async def _on_alert(self, alert: Alert) -> None:
        async with self._lock:
            key = case_key(alert.grid_id, alert.id)
            case = self.cases.get(key)
            if alert.state is IncidentState.CLEARED:
                if case is not None and case.is_open and case.alert_cleared_at is None:
                    ev = CaseEvent(
                        case_id=case.id,
                        grid_id=case.grid_id,
                        version=case.version + 1,
                        type=CaseEventType.ALERT_CLEARED,
                        at=alert.observed_at,
                        actor="system",
                    )
                    await self._record_retrying(case, ev)
                return
            if case is not None:
                return
            ev = opened_event(
                case_id=alert.id,
                grid_id=alert.grid_id,
                at=alert.started_at if alert.state is IncidentState.RAISED else alert.observed_at,
                type=alert.type,
                camera_id=alert.camera_id,
                camera_name=alert.camera_name,
                severity=alert.severity,
                count=alert.count,
                zone_id=alert.zone_id,
                snapshot=alert.snapshot,
            )
            # the deadlines run from the moment the alert was raised, not from when the
            # condition began (min_duration_s earlier)
            ev = ev.model_copy(update={"at": alert.observed_at})
            await self._record_retrying(None, ev)

    async def _record_retrying(self, case: Case | None, ev: CaseEvent) -> Case | None:
        """For system events: on a conflict, reload and drop the event if the case moved on."""
        try:
            return await self._record(case, ev)
        except ConflictError:
            fresh = await self._reload(ev.grid_id, ev.case_id)
            log.info(
                "case %s changed under us; reloaded (version %s)",
                ev.case_id,
                fresh and fresh.version,
            )
            return None

    # -- deadlines ------------------------------------------------------------------------------

    async def _deadlines(self) -> None:
        chain = list(self.config.cases.escalation)
        while not self.stopping:
            await asyncio.sleep(self.config.cases.check_interval_s)
            try:
                await self.check_deadlines(chain)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("deadline check failed (%s); next round retries", e)

    async def check_deadlines(self, chain: Sequence[str] | None = None) -> list[CaseEvent]:
        """Escalate every case whose deadline is missed now; return the events stored."""
        chain = list(chain or self.config.cases.escalation)
        now = self.clock()
        done: list[CaseEvent] = []
        async with self._lock:
            for case in [c for c in self.cases.values() if c.is_open]:
                ev = due_escalation(case, self.config.cases.deadline(case.severity), chain, now)
                if ev is not None and await self._record_retrying(case, ev) is not None:
                    done.append(ev)
        return done

    # -- commands -------------------------------------------------------------------------------

    def _find(self, grid: str, case_id: str, actor: UserConfig) -> Case:
        if grid == ALL_GRIDS:
            key = self._by_id.get(case_id)
            case = self.cases.get(key) if key else None
        else:
            case = self.cases.get(case_key(grid, case_id))
        if case is None or not actor.may_see_grid(case.grid_id):
            raise CaseError(
                "not_found",
                f"no case {case_id!r}" + ("" if grid == ALL_GRIDS else f" in grid {grid}"),
            )
        return case

    def _actor(self, msg: Msg, cmd: CaseCommand) -> tuple[str, UserConfig]:
        parts = msg.subject.split(".")
        if len(parts) == 5:
            grid, name = parts[3], parts[4]
            if cmd.actor is not None and cmd.actor != name:
                raise CaseError("forbidden", "actor does not match the sender")
        elif len(parts) == 4:
            grid, name = parts[3], cmd.actor or ""
            if not name:
                raise CaseError("invalid", "commands on the grid subject need an actor")
        else:
            raise CaseError("invalid", f"bad command subject {msg.subject}")
        actor = self.users.get(name)
        if actor is None:
            raise CaseError("forbidden", f"unknown user {name!r}")
        if grid == ALL_GRIDS:
            if actor.role not in ("operator", "admin"):
                raise CaseError("forbidden", f"a {actor.role} must name their grid")
        elif not actor.may_see_grid(grid):
            raise CaseError("forbidden", f"{name} is not in grid {grid}")
        return grid, actor

    async def _on_command(self, msg: Msg) -> None:
        try:
            try:
                cmd = CaseCommand.model_validate_json(msg.data)
            except ValidationError as e:
                raise CaseError("invalid", f"bad command: {e.errors()[0]['msg']}") from e
            grid, actor = self._actor(msg, cmd)
            body = await self.execute(grid, actor, cmd)
        except CaseError as e:
            body = _reply(False, code=e.code, error=str(e))
        except Exception as e:
            log.exception("case command on %s failed", msg.subject)
            body = _reply(False, code="unavailable", error=f"{type(e).__name__}: {e}")
        if msg.reply:
            with contextlib.suppress(Exception):
                await msg.respond(body)

    async def execute(self, grid: str, actor: UserConfig, cmd: CaseCommand) -> bytes:
        """Run an authenticated command; the JSON reply."""
        if cmd.op == "list":
            cases = [
                c
                for c in self.cases.values()
                if actor.may_see_grid(c.grid_id)
                and (grid == ALL_GRIDS or c.grid_id == grid)
                and (cmd.states is None or c.state in cmd.states)
            ]
            cases.sort(key=lambda c: c.opened_at, reverse=True)
            return _reply(True, cases=[c.model_dump(mode="json") for c in cases[: cmd.limit]])
        if not cmd.case_id:
            raise CaseError("invalid", f"{cmd.op} needs a case_id")
        if grid == ALL_GRIDS and cmd.op != "get":
            # a change is made (and recorded) in the case's own grid, never through "_all"
            raise CaseError("invalid", f"{cmd.op}: name the case's grid, not {ALL_GRIDS}")
        if cmd.op == "get":
            return _reply(True, case=self._find(grid, cmd.case_id, actor).model_dump(mode="json"))
        async with self._lock:
            for _ in range(3):
                case = self._find(grid, cmd.case_id, actor)
                ev = decide(case, cmd, actor, self.users, self.clock())
                if ev is None:
                    return _reply(True, case=case.model_dump(mode="json"), unchanged=True)
                try:
                    new = await self._record(case, ev)
                    return _reply(True, case=new.model_dump(mode="json"))
                except ConflictError:
                    await self._reload(case.grid_id, case.id)
            raise CaseError("conflict", f"case {cmd.case_id} keeps changing; try again")

    # -- queries for status -----------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {s.value: 0 for s in CaseState}
        for c in self.cases.values():
            out[c.state.value] += 1
        return out

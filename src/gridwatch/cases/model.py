"""The case lifecycle, as pure functions: events in, state out; commands checked into events.

A case is keyed by the alert's incident id. Its history is a list of :class:`CaseEvent`
(published on ``gw.v1.cases.<grid>.<alert id>``), and its current :class:`Case` is
``fold(apply, events)``, so the state of every case can be rebuilt by replaying stream
``GW_CASES``. Nothing here talks to NATS: the rules (who may do what, in which order, when a
case escalates) are tested without a server.

States: ``open`` → ``acknowledged`` → ``dispatched`` → ``on_scene`` → ``resolved``
(outcome ``handled`` or ``false_alarm``). Dispatch may be repeated (to someone else), a case
may be resolved from acknowledged, dispatched or on scene, never before it was acknowledged.

>>> import datetime as dt
>>> t0 = dt.datetime(2026, 11, 26, 8, 0, tzinfo=dt.UTC)
>>> c = apply(None, opened_event(case_id="c1", grid_id="g1", at=t0, type="crowding",
...                              camera_id="cam", camera_name="Gate", severity="warning"))
>>> c.state.value, c.version
('open', 1)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from gridwatch.auth.models import UserConfig
from gridwatch.cases.settings import DeadlineConfig

CASE_SCHEMA_VERSION: Literal[1] = 1
SYSTEM_ACTOR = "system"


class CaseState(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    DISPATCHED = "dispatched"
    ON_SCENE = "on_scene"
    RESOLVED = "resolved"


class CaseEventType(StrEnum):
    OPENED = "opened"
    ACKNOWLEDGED = "acknowledged"
    DISPATCHED = "dispatched"
    ON_SCENE = "on_scene"
    RESOLVED = "resolved"
    ESCALATED = "escalated"
    ALERT_CLEARED = "alert_cleared"


class Outcome(StrEnum):
    HANDLED = "handled"
    FALSE_ALARM = "false_alarm"


class CaseEvent(BaseModel):
    """One transition of a case, with who and when. ``version`` numbers a case's events from 1,
    so ``<case id>.v<version>`` is a unique, deterministic ``Nats-Msg-Id``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = Field(default=CASE_SCHEMA_VERSION, description="Layout version.")
    case_id: str = Field(description="The alert's incident id.")
    grid_id: str
    version: int = Field(ge=1, description="1 for opened, then +1 per event.")
    type: CaseEventType
    at: dt.datetime = Field(description="When it happened (UTC).")
    actor: str = Field(description="User name, or 'system' for opening and escalation.")
    responder: str | None = Field(default=None, description="dispatched: who was sent.")
    outcome: Outcome | None = Field(default=None, description="resolved: handled | false_alarm.")
    note: str = Field(default="", max_length=2000, description="resolved: what happened.")
    level: int | None = Field(default=None, description="escalated: the new level, from 1.")
    target: str | None = Field(default=None, description="escalated: grid_leader | ...")
    deadline: str | None = Field(default=None, description="escalated: the deadline missed.")
    alert: dict[str, Any] | None = Field(
        default=None, description="opened: type, camera, severity, count, snapshot of the alert."
    )

    @property
    def message_id(self) -> str:
        return f"{self.case_id}.v{self.version}"


class Escalation(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    level: int
    target: str
    deadline: str
    at: dt.datetime


class Case(BaseModel):
    """The current state of a case (what the KV bucket ``gw_cases`` holds)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = CASE_SCHEMA_VERSION
    id: str
    grid_id: str
    type: str = ""
    camera_id: str = ""
    camera_name: str = ""
    zone_id: str | None = None
    severity: str = "warning"
    count: int = 0
    snapshot: str | None = None
    state: CaseState = CaseState.OPEN
    opened_at: dt.datetime
    acknowledged_at: dt.datetime | None = None
    acknowledged_by: str | None = None
    dispatched_at: dt.datetime | None = None
    dispatched_by: str | None = None
    dispatched_to: str | None = None
    on_scene_at: dt.datetime | None = None
    on_scene_by: str | None = None
    resolved_at: dt.datetime | None = None
    resolved_by: str | None = None
    outcome: Outcome | None = None
    note: str = ""
    alert_cleared_at: dt.datetime | None = None
    escalation_level: int = 0
    escalations: list[Escalation] = Field(default_factory=list)
    version: int = 0
    last_seq: int = Field(default=0, description="Stream sequence of the last event applied.")
    updated_at: dt.datetime | None = None

    @property
    def is_open(self) -> bool:
        return self.state is not CaseState.RESOLVED


class CaseError(Exception):
    """A command that cannot be applied; ``code`` is machine-readable."""

    def __init__(
        self,
        code: Literal["invalid", "forbidden", "not_found", "conflict", "unavailable"],
        message: str,
    ) -> None:
        super().__init__(message)
        self.code = code


def opened_event(
    *,
    case_id: str,
    grid_id: str,
    at: dt.datetime,
    type: str,
    camera_id: str,
    camera_name: str,
    severity: str,
    count: int = 0,
    zone_id: str | None = None,
    snapshot: str | None = None,
) -> CaseEvent:
    return CaseEvent(
        case_id=case_id,
        grid_id=grid_id,
        version=1,
        type=CaseEventType.OPENED,
        at=at,
        actor=SYSTEM_ACTOR,
        alert={
            "type": type,
            "camera_id": camera_id,
            "camera_name": camera_name,
            "severity": severity,
            "count": count,
            "zone_id": zone_id,
            "snapshot": snapshot,
        },
    )


def apply(case: Case | None, ev: CaseEvent) -> Case:
    """The state after ``ev``. Events are facts already validated: this never refuses one."""
    if case is None:
        a = ev.alert or {}
        case = Case(
            id=ev.case_id,
            grid_id=ev.grid_id,
            type=str(a.get("type", "")),
            camera_id=str(a.get("camera_id", "")),
            camera_name=str(a.get("camera_name", "")),
            zone_id=a.get("zone_id"),
            severity=str(a.get("severity", "warning")),
            count=int(a.get("count", 0)),
            snapshot=a.get("snapshot"),
            opened_at=ev.at,
        )
    u: dict[str, Any] = {"version": ev.version, "updated_at": ev.at}
    t = ev.type
    if t is CaseEventType.ACKNOWLEDGED:
        u |= {
            "state": CaseState.ACKNOWLEDGED,
            "acknowledged_at": ev.at,
            "acknowledged_by": ev.actor,
        }
    elif t is CaseEventType.DISPATCHED:
        u |= {
            "state": CaseState.DISPATCHED,
            "dispatched_at": ev.at,
            "dispatched_by": ev.actor,
            "dispatched_to": ev.responder,
        }
    elif t is CaseEventType.ON_SCENE:
        u |= {"state": CaseState.ON_SCENE, "on_scene_at": ev.at, "on_scene_by": ev.actor}
    elif t is CaseEventType.RESOLVED:
        u |= {
            "state": CaseState.RESOLVED,
            "resolved_at": ev.at,
            "resolved_by": ev.actor,
            "outcome": ev.outcome,
            "note": ev.note,
        }
    elif t is CaseEventType.ESCALATED:
        esc = Escalation(
            level=ev.level or case.escalation_level + 1,
            target=ev.target or "",
            deadline=ev.deadline or "",
            at=ev.at,
        )
        u |= {"escalation_level": esc.level, "escalations": [*case.escalations, esc]}
    elif t is CaseEventType.ALERT_CLEARED:
        u |= {"alert_cleared_at": ev.at}
    return case.model_copy(update=u)


# -- commands ---------------------------------------------------------------------------------

Op = Literal["acknowledge", "dispatch", "on_scene", "resolve"]


class CaseCommand(BaseModel):
    """A request to the case service (JSON body on ``gw.v1.case-cmd.<grid>[.<user>]``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    op: Literal["acknowledge", "dispatch", "on_scene", "resolve", "get", "list"]
    case_id: str | None = Field(default=None, description="The alert id (all ops but list).")
    responder: str | None = Field(default=None, description="dispatch: who to send.")
    outcome: Outcome | None = Field(default=None, description="resolve: handled | false_alarm.")
    note: str = Field(default="", max_length=2000, description="resolve: what happened.")
    actor: str | None = Field(
        default=None, description="Only from service accounts (bare grid subject): on whose behalf."
    )
    states: list[CaseState] | None = Field(default=None, description="list: only these states.")
    limit: int = Field(default=100, ge=1, le=1000, description="list: at most this many.")


def _may_act_in_grid(actor: UserConfig, grid_id: str) -> bool:
    return actor.role == "operator" or (actor.grid_scoped and actor.grid == grid_id)


def decide(
    case: Case,
    cmd: CaseCommand,
    actor: UserConfig,
    users: dict[str, UserConfig],
    now: dt.datetime,
) -> CaseEvent | None:
    """The event ``cmd`` by ``actor`` produces on ``case``; None when it was already done by the
    same actor (a retried request is answered with the current state, not an error). Raises
    :class:`CaseError` when the command is not allowed."""
    if not actor.is_person:
        raise CaseError("forbidden", f"a {actor.role} account cannot act on cases")
    if not _may_act_in_grid(actor, case.grid_id):
        raise CaseError("forbidden", f"{actor.name} may not act on cases of grid {case.grid_id}")
    st = case.state
    if st is CaseState.RESOLVED:
        if cmd.op == "resolve" and case.resolved_by == actor.name:
            return None
        raise CaseError("conflict", f"case {case.id} is already resolved ({case.outcome})")
    base = {"case_id": case.id, "grid_id": case.grid_id, "version": case.version + 1, "at": now}
    if cmd.op == "acknowledge":
        if st is not CaseState.OPEN:
            if case.acknowledged_by == actor.name:
                return None
            raise CaseError(
                "conflict", f"case {case.id} was already acknowledged by {case.acknowledged_by}"
            )
        return CaseEvent(type=CaseEventType.ACKNOWLEDGED, actor=actor.name, **base)
    if cmd.op == "dispatch":
        if st is CaseState.OPEN:
            raise CaseError("conflict", "acknowledge the case before dispatching")
        if st is CaseState.ON_SCENE:
            raise CaseError("conflict", f"{case.on_scene_by} is already on scene")
        target_name = cmd.responder or actor.name
        target = users.get(target_name)
        if target is None or not target.grid_scoped or target.grid != case.grid_id:
            raise CaseError("invalid", f"{target_name!r} is not a responder of grid {case.grid_id}")
        if actor.role == "responder" and target_name != actor.name:
            raise CaseError("forbidden", "a responder can dispatch only themselves")
        if st is CaseState.DISPATCHED and case.dispatched_to == target_name:
            return None
        return CaseEvent(
            type=CaseEventType.DISPATCHED, actor=actor.name, responder=target_name, **base
        )
    if cmd.op == "on_scene":
        if st is not CaseState.DISPATCHED:
            raise CaseError("conflict", f"case {case.id} is {st.value}, not dispatched")
        if actor.role == "responder" and case.dispatched_to != actor.name:
            raise CaseError("forbidden", f"case {case.id} was dispatched to {case.dispatched_to}")
        return CaseEvent(type=CaseEventType.ON_SCENE, actor=actor.name, **base)
    if cmd.op == "resolve":
        if st is CaseState.OPEN:
            raise CaseError("conflict", "a case cannot be resolved before it is acknowledged")
        if cmd.outcome is None:
            raise CaseError("invalid", "resolve needs an outcome: handled or false_alarm")
        if (
            actor.role == "responder"
            and case.dispatched_to is not None
            and case.dispatched_to != actor.name
        ):
            raise CaseError("forbidden", f"case {case.id} was dispatched to {case.dispatched_to}")
        return CaseEvent(
            type=CaseEventType.RESOLVED,
            actor=actor.name,
            outcome=cmd.outcome,
            note=cmd.note,
            **base,
        )
    raise CaseError("invalid", f"{cmd.op} is not a transition")


# -- deadlines ----------------------------------------------------------------------------------


def missed_deadline(case: Case, deadlines: DeadlineConfig, now: dt.datetime) -> str | None:
    """``acknowledge`` or ``on_scene`` when that deadline has passed unmet, else None."""
    if not case.is_open:
        return None
    age = (now - case.opened_at).total_seconds()
    if case.state is CaseState.OPEN and age >= deadlines.acknowledge_s:
        return "acknowledge"
    if (
        deadlines.on_scene_s is not None
        and case.state in (CaseState.OPEN, CaseState.ACKNOWLEDGED, CaseState.DISPATCHED)
        and age >= deadlines.on_scene_s
    ):
        return "on_scene"
    return None


def due_escalation(
    case: Case, deadlines: DeadlineConfig, chain: Sequence[str], now: dt.datetime
) -> CaseEvent | None:
    """The escalation event due at ``now``, if any.

    A deadline missed for the first time escalates one level at once; while it stays missed,
    each further ``escalation_interval_s`` goes one level up, until the end of ``chain``.
    Computed from the case alone (its events carry the times), so it is restart-safe: a case
    service that was down escalates what fell due meanwhile, once.
    """
    missed = missed_deadline(case, deadlines, now)
    if missed is None or case.escalation_level >= len(chain):
        return None
    done_for = {e.deadline for e in case.escalations}
    if missed in done_for:
        last = case.escalations[-1].at
        if (now - last).total_seconds() < deadlines.escalation_interval_s:
            return None
    level = case.escalation_level + 1
    return CaseEvent(
        case_id=case.id,
        grid_id=case.grid_id,
        version=case.version + 1,
        type=CaseEventType.ESCALATED,
        at=now,
        actor=SYSTEM_ACTOR,
        level=level,
        target=chain[level - 1],
        deadline=missed,
    )

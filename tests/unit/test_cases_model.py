"""The case lifecycle rules, without a server: transitions, roles, grids, escalation."""

from __future__ import annotations

import datetime as dt

import pytest

from gridwatch.auth.models import UserConfig
from gridwatch.cases.model import (
    Case,
    CaseCommand,
    CaseError,
    CaseState,
    apply,
    decide,
    due_escalation,
    opened_event,
)
from gridwatch.cases.settings import CasesConfig, DeadlineConfig

T0 = dt.datetime(2026, 11, 26, 8, 0, tzinfo=dt.UTC)
H = "$2b$04$" + "a" * 53


def user(name: str, role: str, grid: str | None = None) -> UserConfig:
    return UserConfig(name=name, role=role, grid=grid, password_hash=H)  # type: ignore[arg-type]


USERS = {
    u.name: u
    for u in [
        user("op", "operator"),
        user("li", "responder", "a"),
        user("ma", "responder", "a"),
        user("wang", "grid_leader", "a"),
        user("zhao", "responder", "b"),
        user("svc", "service"),
    ]
}


def new_case(severity: str = "warning") -> Case:
    return apply(
        None,
        opened_event(
            case_id="c1",
            grid_id="a",
            at=T0,
            type="crowding",
            camera_id="cam",
            camera_name="Gate",
            severity=severity,
        ),
    )


def run(case: Case, actor: str, op: str, **kw: object) -> Case:
    ev = decide(
        case,
        CaseCommand(op=op, case_id=case.id, **kw),
        USERS[actor],
        USERS,  # type: ignore[arg-type]
        T0 + dt.timedelta(seconds=case.version),
    )
    assert ev is not None
    assert ev.message_id == f"c1.v{case.version + 1}"
    return apply(case, ev)


def test_full_lifecycle_records_who_and_when() -> None:
    c = run(new_case(), "li", "acknowledge")
    c = run(c, "wang", "dispatch", responder="ma")
    c = run(c, "ma", "on_scene")
    c = run(c, "ma", "resolve", outcome="handled", note="crowd dispersed")
    assert c.state is CaseState.RESOLVED
    assert (c.acknowledged_by, c.dispatched_by, c.dispatched_to, c.on_scene_by) == (
        "li",
        "wang",
        "ma",
        "ma",
    )
    assert c.outcome == "handled"
    assert c.note == "crowd dispersed"
    assert c.version == 5


@pytest.mark.parametrize(
    ("steps", "actor", "op", "kw", "code"),
    [
        ([], "li", "resolve", {"outcome": "handled"}, "conflict"),  # before acknowledge
        ([], "li", "dispatch", {}, "conflict"),
        ([], "zhao", "acknowledge", {}, "forbidden"),  # other grid
        ([], "svc", "acknowledge", {}, "forbidden"),  # services are not people
        ([("li", "acknowledge", {})], "ma", "acknowledge", {}, "conflict"),
        ([("li", "acknowledge", {})], "li", "dispatch", {"responder": "ma"}, "forbidden"),
        ([("li", "acknowledge", {})], "wang", "dispatch", {"responder": "zhao"}, "invalid"),
        ([("li", "acknowledge", {})], "li", "resolve", {}, "invalid"),  # no outcome
        ([("li", "acknowledge", {})], "li", "on_scene", {}, "conflict"),
        (
            [("li", "acknowledge", {}), ("wang", "dispatch", {"responder": "ma"})],
            "li",
            "on_scene",
            {},
            "forbidden",
        ),
        (
            [("op", "acknowledge", {}), ("op", "resolve", {"outcome": "false_alarm"})],
            "li",
            "acknowledge",
            {},
            "conflict",
        ),
    ],
)
def test_refused_commands(
    steps: list[tuple[str, str, dict[str, object]]],
    actor: str,
    op: str,
    kw: dict[str, object],
    code: str,
) -> None:
    c = new_case()
    for a, o, k in steps:
        c = run(c, a, o, **k)
    with pytest.raises(CaseError) as e:
        decide(c, CaseCommand(op=op, case_id="c1", **kw), USERS[actor], USERS, T0)  # type: ignore[arg-type]
    assert e.value.code == code


def test_repeated_command_by_same_actor_is_not_an_error() -> None:
    c = run(new_case(), "li", "acknowledge")
    assert decide(c, CaseCommand(op="acknowledge", case_id="c1"), USERS["li"], USERS, T0) is None


def test_operator_acts_in_any_grid_and_responder_takes_case_themselves() -> None:
    c = run(new_case(), "op", "acknowledge")
    c = run(c, "li", "dispatch")  # no responder named: themselves
    assert c.dispatched_to == "li"


def test_escalation_levels_and_interval() -> None:
    d = DeadlineConfig(acknowledge_s=60, on_scene_s=600, escalation_interval_s=120)
    chain = ["grid_leader", "command_centre"]
    c = new_case()
    assert due_escalation(c, d, chain, T0 + dt.timedelta(seconds=59)) is None
    ev = due_escalation(c, d, chain, T0 + dt.timedelta(seconds=60))
    assert ev is not None
    assert (ev.level, ev.target, ev.deadline) == (
        1,
        "grid_leader",
        "acknowledge",
    )
    c = apply(c, ev)
    assert due_escalation(c, d, chain, T0 + dt.timedelta(seconds=179)) is None
    ev = due_escalation(c, d, chain, T0 + dt.timedelta(seconds=180))
    assert ev is not None
    assert (ev.level, ev.target) == (2, "command_centre")
    c = apply(c, ev)
    assert due_escalation(c, d, chain, T0 + dt.timedelta(hours=5)) is None  # end of chain


def test_on_scene_deadline_escalates_an_acknowledged_case() -> None:
    d = DeadlineConfig(acknowledge_s=60, on_scene_s=600, escalation_interval_s=120)
    c = run(new_case(), "li", "acknowledge")
    assert due_escalation(c, d, ["grid_leader"], T0 + dt.timedelta(seconds=599)) is None
    ev = due_escalation(c, d, ["grid_leader"], T0 + dt.timedelta(seconds=600))
    assert ev is not None
    assert ev.deadline == "on_scene"
    resolved = run(c, "li", "resolve", outcome="handled")
    assert due_escalation(resolved, d, ["grid_leader"], T0 + dt.timedelta(hours=1)) is None


def test_deadline_per_severity_falls_back_to_warning() -> None:
    cfg = CasesConfig()
    assert cfg.deadline("critical").acknowledge_s == 30
    assert cfg.deadline("nonsense") == cfg.deadline("warning")

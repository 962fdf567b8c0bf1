"""What the wall shows: alerts and case events folded into items, deadlines, scope (pure)."""

from __future__ import annotations

import datetime as dt

import pytest

from gridwatch.auth.models import UserConfig
from gridwatch.cases.model import CaseEvent, CaseEventType, CaseState, apply, opened_event
from gridwatch.cases.settings import CasesConfig
from gridwatch.console.scope import Scope
from gridwatch.console.wall import Wall, deadline_of
from tests.plugins.dispatch import make_alert

T0 = dt.datetime(2026, 11, 26, 8, 0, tzinfo=dt.UTC)
HASH = "$2b$04$" + "a" * 53


def opened(
    alert_id: str, grid: str = "g1", at: dt.datetime = T0, severity: str = "warning"
) -> CaseEvent:
    return opened_event(
        case_id=alert_id, grid_id=grid, at=at, type="crowding", camera_id="cam",
        camera_name="Gate", severity=severity,
    )  # fmt: skip


def event(case_id: str, version: int, type_: CaseEventType, actor: str, **kw: object) -> CaseEvent:
    return CaseEvent(
        case_id=case_id, grid_id="g1", version=version, type=type_,
        at=T0 + dt.timedelta(seconds=version), actor=actor, **kw,  # type: ignore[arg-type]
    )  # fmt: skip


def test_alert_then_case_events_fold_into_one_item() -> None:
    wall = Wall(CasesConfig())
    raised = make_alert("g1", "cam", 1, snapshot=True)
    stored = dt.datetime(2026, 11, 26, 8, 0, 1, tzinfo=dt.UTC)
    item = wall.fold_alert(raised, stored)
    assert item is not None
    assert (item.state, item.alert_state, item.stored_at) == (CaseState.OPEN, "raised", stored)
    assert item.deadline is not None
    assert item.deadline.kind == "acknowledge"
    assert item.deadline.at == raised.observed_at + dt.timedelta(seconds=60)  # warning
    assert item.snapshot == raised.snapshot

    item = wall.fold_case(opened(raised.id, at=raised.observed_at))
    assert item is not None
    assert item.case is not None
    ack = event(raised.id, 2, CaseEventType.ACKNOWLEDGED, "op")
    item = wall.fold_case(ack)
    assert item is not None
    assert item.state is CaseState.ACKNOWLEDGED
    assert item.deadline is not None
    assert item.deadline.kind == "on_scene"
    assert wall.fold_case(ack) is None  # the same event twice is applied once

    update = make_alert("g1", "cam", 1, state="updated", sequence=1, snapshot=True, count=9)
    item = wall.fold_alert(update)
    assert item is not None
    assert (item.count, item.peak_count, item.alert_state) == (9, 9, "updated")
    assert item.snapshot == raised.snapshot  # the raised picture stays the item's picture
    assert item.latest_snapshot == update.snapshot
    assert item.state is CaseState.ACKNOWLEDGED  # an alert update does not reopen the case
    assert len(wall.items) == 1


def test_seeded_case_is_not_applied_twice() -> None:
    wall = Wall(CasesConfig())
    ev1 = opened("c1")
    ev2 = event("c1", 2, CaseEventType.ACKNOWLEDGED, "op")
    case = apply(apply(None, ev1), ev2)
    wall.seed_case(case)
    assert wall.fold_case(ev1) is None
    assert wall.fold_case(ev2) is None
    item = wall.fold_case(event("c1", 3, CaseEventType.DISPATCHED, "op", responder="aux"))
    assert item is not None
    assert item.state is CaseState.DISPATCHED
    # an event of a case opened before the window (not seeded) is skipped
    assert wall.fold_case(event("old", 4, CaseEventType.ACKNOWLEDGED, "op")) is None


@pytest.mark.parametrize(
    ("severity", "events", "kind", "after_s"),
    [
        ("critical", [], "acknowledge", 30),
        ("info", [], "acknowledge", 300),
        ("warning", [CaseEventType.ACKNOWLEDGED], "on_scene", 900),
        ("info", [CaseEventType.ACKNOWLEDGED], None, None),  # info: no on-scene deadline
        ("warning", [CaseEventType.ACKNOWLEDGED, CaseEventType.ON_SCENE], None, None),
    ],
)
def test_deadline_of(
    severity: str, events: list[CaseEventType], kind: str | None, after_s: float | None
) -> None:
    case = apply(None, opened("c1", severity=severity))
    for i, t in enumerate(events, start=2):
        case = apply(case, event("c1", i, t, "op"))
    d = deadline_of(case, CasesConfig())
    if kind is None:
        assert d is None
    else:
        assert d is not None
        assert (d.kind, d.at) == (kind, T0 + dt.timedelta(seconds=after_s or 0))


def test_wall_is_bounded_and_newest_first() -> None:
    wall = Wall(CasesConfig(), max_items=3)
    for n in range(5):
        assert wall.fold_alert(make_alert("g1", "cam", n)) is not None
    ordered = wall.newest_first()
    assert len(ordered) == 3
    assert [i.raised_at for i in ordered] == sorted((i.raised_at for i in ordered), reverse=True)
    assert wall.fold_alert(make_alert("g1", "cam", -10)) is None  # older than all kept


def test_scope() -> None:
    li = Scope.of(UserConfig(name="aux-li", role="responder", grid="g1", password_hash=HASH))
    assert li.alert_filter() == "gw.v1.alerts.g1.*.*"
    assert li.case_filter() == "gw.v1.cases.g1.*"
    assert li.grids(["g1", "g2"]) == ["g1"]
    assert li.keep([{"grid_id": "g1"}, {"grid_id": "g2"}, {"grid": "g1"}]) == [
        {"grid_id": "g1"},
        {"grid": "g1"},
    ]
    from aiohttp import web

    with pytest.raises(web.HTTPNotFound):
        li.require("g2")
    with pytest.raises(web.HTTPNotFound):
        li.require("g1.>")
    op = Scope.of(UserConfig(name="op", role="operator", password_hash=HASH))
    assert op.all_grids
    assert op.case_filter() == "gw.v1.cases.>"
    assert op.require("g2") == "g2"
    with pytest.raises(web.HTTPNotFound):
        op.require("*")  # a wildcard is no grid

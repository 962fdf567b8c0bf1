"""Who the notifier pushes to (pure planning, no server): the on-duty people of the alert's
grid, grid leaders and operators on escalation, the dispatched responder; webhooks by event
and grid; one idempotency key per message and recipient."""

from __future__ import annotations

import datetime as dt
from typing import Any

from gridwatch.cases.model import CaseEvent, CaseEventType
from gridwatch.config import parse_config
from gridwatch.notify.notifier import Notifier, delivery_key
from tests.plugins.dispatch import make_alert

H = "$2b$04$" + "a" * 53
CONFIG = parse_config(
    f"""
timezone: UTC
schedules: {{nights: [{{between: ["20:00", "08:00"]}}]}}
grids: [{{id: g1}}, {{id: g2}}]
users:
  - {{name: op, role: operator, password_hash: "{H}"}}
  - {{name: li, role: responder, grid: g1, password_hash: "{H}"}}
  - {{name: resting, role: responder, grid: g1, on_duty: false, password_hash: "{H}"}}
  - {{name: night, role: responder, grid: g1, duty_schedule: nights, password_hash: "{H}"}}
  - {{name: wang, role: grid_leader, grid: g1, password_hash: "{H}"}}
  - {{name: zhao, role: responder, grid: g2, password_hash: "{H}"}}
notify:
  webhooks:
    - {{name: h1, url: "https://h.example/1", secret: s, events: [alert.raised], grids: [g2]}}
    - {{name: h2, url: "https://h.example/2", secret: s, events: [case.escalated]}}
"""
)
NOON = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC).timestamp()


class _NoNats:
    def jetstream(self) -> None:
        return None


def notifier() -> Notifier:
    n = Notifier(_NoNats(), CONFIG, clock=lambda: NOON)  # type: ignore[arg-type]
    sub: dict[str, Any] = {"endpoint": "https://push.example/x", "keys": {}}
    n.subscriptions = {u.name: {f"{u.name}.k": sub} for u in CONFIG.users}
    return n


def test_alert_goes_to_on_duty_people_of_its_grid() -> None:
    alert = make_alert("g1", "cam", 1, snapshot=True)
    plan = notifier().plan_alert(alert)
    assert sorted(d.recipient for d in plan) == ["li", "wang"]  # not off duty, not nights
    assert all(d.channel == "push" for d in plan)
    assert plan[0].key == delivery_key(alert.message_id, "push", f"{plan[0].recipient}.k")
    assert plan[0].payload["snapshot_url"].endswith("?variant=blurred")
    g2 = notifier().plan_alert(make_alert("g2", "cam", 2))
    assert sorted(d.recipient for d in g2) == ["h1", "zhao"]  # grid-limited webhook
    cleared = notifier().plan_alert(make_alert("g1", "cam", 1, state="cleared", sequence=3))
    assert cleared == []


def _event(**kw: Any) -> CaseEvent:
    base: dict[str, Any] = {
        "case_id": "c1",
        "grid_id": "g1",
        "version": 3,
        "at": dt.datetime.now(dt.UTC),
        "actor": "system",
    }
    return CaseEvent(**(base | kw))


def test_escalations_and_dispatch() -> None:
    n = notifier()
    lead = n.plan_case(_event(type=CaseEventType.ESCALATED, level=1, target="grid_leader"))
    assert sorted(d.recipient for d in lead) == ["h2", "wang"]
    centre = n.plan_case(_event(type=CaseEventType.ESCALATED, level=2, target="command_centre"))
    assert sorted(d.recipient for d in centre) == ["h2", "op"]
    sent = n.plan_case(_event(type=CaseEventType.DISPATCHED, actor="wang", responder="li"))
    assert [d.recipient for d in sent] == ["li"]
    assert n.plan_case(_event(type=CaseEventType.ACKNOWLEDGED, actor="li")) == []

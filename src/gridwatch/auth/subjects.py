"""NATS names the dispatch features add (cases, commands, snapshots on request, push).

In one module so the permission generator (:mod:`gridwatch.auth.natsconf`) and the services
that use these names cannot disagree: a subject renamed here is renamed in the permissions too.

>>> case_subject("kdl-01", "ab12")
'gw.v1.cases.kdl-01.ab12'
>>> case_cmd_subject("kdl-01", "aux-li"), case_cmd_subject("kdl-01")
('gw.v1.case-cmd.kdl-01.aux-li', 'gw.v1.case-cmd.kdl-01')
>>> inbox_prefix("aux-li")
'_INBOX.aux-li'
"""

from __future__ import annotations

from gridwatch.alerts.subjects import check_token

CASES_STREAM = "GW_CASES"
CASES_PREFIX = "gw.v1.cases"
CASES_KV = "gw_cases"
"""Current state of every case, key ``<grid>.<alert id>`` (a cache: the stream is the truth)."""

CASE_CMD_PREFIX = "gw.v1.case-cmd"
"""Requests to the case service. ``gw.v1.case-cmd.<grid>.<user>`` from people (NATS lets each
person publish only under their own name, which is how the service knows who is asking);
``gw.v1.case-cmd.<grid>`` from service accounts acting for a user they authenticated."""

ALL_GRIDS = "_all"
"""Grid token of a command about any grid (operators): ``gw.v1.case-cmd._all.<user>``."""

SNAPSHOT_REQ_PREFIX = "gw.v1.snapshot-get"
"""``gw.v1.snapshot-get.<grid>.<user>``: ask the snapshot service for a (blurred) snapshot."""

AUDIT_PREFIX = "gw.v1.audit"
PUSH_SUBS_KV = "gw_push_subs"
"""Web Push subscriptions, key ``<user>.<subscription hash>``."""
NOTIFY_SENT_KV = "gw_notify_sent"
"""Idempotency records of the notifier: one key per (message, recipient) delivered."""

NOTIFIER_DURABLE = "gw_notifier"
NOTIFIER_CASES_DURABLE = "gw_notifier_cases"
CASE_OPENER_DURABLE = "gw_case_opener"

SERVICE_CONSUMERS: dict[str, tuple[str, ...]] = {
    CASE_OPENER_DURABLE: ("GW_ALERTS", "cases"),
    NOTIFIER_DURABLE: ("GW_ALERTS", "notifier"),
    NOTIFIER_CASES_DURABLE: (CASES_STREAM, "notifier"),
}
"""The services' durable consumers: name -> (stream, service kind that owns it). Nobody else may
create, update, read the info of, pull from or delete them (the permission generator denies
these names to every other identity)."""

AUDIT_STREAM = "GW_AUDIT"
"""The audit stream (created by the console, :mod:`gridwatch.console.audit`)."""


def case_subject(grid_id: str, alert_id: str) -> str:
    """``gw.v1.cases.<grid>.<alert id>``: the events of one case."""
    return f"{CASES_PREFIX}.{check_token(grid_id, 'grid id')}.{check_token(alert_id, 'alert id')}"


def case_filter(grid_id: str | None = None) -> str:
    return f"{CASES_PREFIX}.{check_token(grid_id, 'grid id')}.*" if grid_id else f"{CASES_PREFIX}.>"


def case_key(grid_id: str, alert_id: str) -> str:
    """Key of a case in the ``gw_cases`` KV bucket."""
    return f"{check_token(grid_id, 'grid id')}.{check_token(alert_id, 'alert id')}"


def case_cmd_subject(grid_id: str, user: str | None = None) -> str:
    base = f"{CASE_CMD_PREFIX}.{check_token(grid_id, 'grid id')}"
    return base if user is None else f"{base}.{check_token(user, 'user name')}"


def snapshot_request_subject(grid_id: str, user: str) -> str:
    return f"{SNAPSHOT_REQ_PREFIX}.{check_token(grid_id, 'grid id')}.{check_token(user, 'user')}"


def audit_subject(kind: str, grid_id: str) -> str:
    return f"{AUDIT_PREFIX}.{check_token(kind, 'audit kind')}.{check_token(grid_id, 'grid id')}"


def inbox_prefix(user: str) -> str:
    """Per-user reply inbox prefix: NATS lets a user subscribe to their own inbox only, so no
    one can read the replies (case states, snapshots) meant for somebody else."""
    return f"_INBOX.{check_token(user, 'user name')}"

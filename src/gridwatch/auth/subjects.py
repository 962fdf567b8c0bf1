"""NATS names the dispatch features add (cases, commands, snapshots and clips on request, push,
audit):
re-exported from :mod:`gridwatch.bus.names`, where every NATS name lives, so the permission
generator (:mod:`gridwatch.auth.natsconf`) and the services cannot disagree.

>>> case_cmd_subject("kdl-01", "aux-li")
'gw.v1.case-cmd.kdl-01.aux-li'
"""

from __future__ import annotations

from gridwatch.bus.names import (
    ALL_GRIDS,
    AUDIT_PREFIX,
    AUDIT_STREAM,
    CASE_CMD_PREFIX,
    CASE_OPENER_DURABLE,
    CASES_KV,
    CASES_PREFIX,
    CASES_STREAM,
    CLIP_REQ_PREFIX,
    NOTIFIER_CASES_DURABLE,
    NOTIFIER_DURABLE,
    NOTIFY_SENT_KV,
    PUSH_SUBS_KV,
    SERVICE_CONSUMERS,
    SNAPSHOT_REQ_PREFIX,
    audit_subject,
    case_cmd_subject,
    case_filter,
    case_key,
    case_subject,
    clip_request_subject,
    inbox_prefix,
    snapshot_request_subject,
)

__all__ = [
    "ALL_GRIDS",
    "AUDIT_PREFIX",
    "AUDIT_STREAM",
    "CASES_KV",
    "CASES_PREFIX",
    "CASES_STREAM",
    "CASE_CMD_PREFIX",
    "CASE_OPENER_DURABLE",
    "CLIP_REQ_PREFIX",
    "NOTIFIER_CASES_DURABLE",
    "NOTIFIER_DURABLE",
    "NOTIFY_SENT_KV",
    "PUSH_SUBS_KV",
    "SERVICE_CONSUMERS",
    "SNAPSHOT_REQ_PREFIX",
    "audit_subject",
    "case_cmd_subject",
    "case_filter",
    "case_key",
    "case_subject",
    "clip_request_subject",
    "inbox_prefix",
    "snapshot_request_subject",
]

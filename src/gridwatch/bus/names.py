"""Every NATS name gridwatch uses: subject prefixes, streams, KV buckets, object stores,
durable consumers and queue groups, in one module.

The permission generator (:mod:`gridwatch.auth.natsconf`), the services and the CLI all read
their names from here, so they cannot disagree: a subject renamed here is renamed everywhere.
These strings are the wire contract; old and new processes interoperate only while they stay
exactly as they are.

Subjects carry the grid so NATS permissions can give a grid's responders their grid only.

>>> alert_subject("kdl-01", "gate-9", "crowding")
'gw.v1.alerts.kdl-01.gate-9.crowding'
>>> alert_filter(grid="kdl-01")
'gw.v1.alerts.kdl-01.*.*'
>>> alert_filter()
'gw.v1.alerts.>'
>>> case_subject("kdl-01", "ab12")
'gw.v1.cases.kdl-01.ab12'
>>> case_cmd_subject("kdl-01", "aux-li"), case_cmd_subject("kdl-01")
('gw.v1.case-cmd.kdl-01.aux-li', 'gw.v1.case-cmd.kdl-01')
>>> clip_request_subject("kdl-01", "aux-li")
'gw.v1.clip-get.kdl-01.aux-li'
>>> stats_subject("kdl-01", "gate-9", "minute"), stats_filter("hour", grid="kdl-01")
('gw.v1.stats.kdl-01.gate-9.minute', 'gw.v1.stats.kdl-01.*.hour')
>>> inbox_prefix("aux-li")
'_INBOX.aux-li'
>>> kv_stream(CASES_KV), object_store_stream(SNAPSHOT_BUCKET)
('KV_gw_cases', 'OBJ_gw_snapshots')
"""

from __future__ import annotations

import re

# -- alerts and health ---------------------------------------------------------------------

ALERTS_STREAM = "GW_ALERTS"
ALERTS_PREFIX = "gw.v1.alerts"
SNAPSHOT_BUCKET = "gw_snapshots"
"""Object store of annotated alert snapshots."""
CLIP_BUCKET = "gw_clips"
"""Object store of alerts' evidence clips (MP4 remuxed from the camera's packets)."""
HEALTH_PREFIX = "gw.v1.health"
"""``gw.v1.health.<camera>``: the workers' periodic camera health reports (core NATS)."""

# -- people-flow statistics ----------------------------------------------------------------

STATS_STREAM = "GW_STATS"
STATS_PREFIX = "gw.v1.stats"
"""``gw.v1.stats.<grid>.<camera>.<period>``: per-minute occupancy and crossings, and their
quarter, hour and day rollups (:mod:`gridwatch.stats`)."""
STATS_PERIODS = ("minute", "quarter", "hour", "day")
STATS_CONSUMER_PREFIX = "gw_stats"
"""``gw_stats_<random>``: the ephemeral readers of :func:`gridwatch.stats.query.read_stats`."""

# -- cases, commands, snapshots on request, audit, push -------------------------------------

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
CLIP_REQ_PREFIX = "gw.v1.clip-get"
"""``gw.v1.clip-get.<grid>.<user>``: ask the clip service for an alert's (blurred) clip."""

AUDIT_STREAM = "GW_AUDIT"
"""The audit stream (converged by :func:`gridwatch.bus.infra.ensure_audit_stream`)."""
AUDIT_PREFIX = "gw.v1.audit"
PUSH_SUBS_KV = "gw_push_subs"
"""Web Push subscriptions, key ``<user>.<subscription hash>``."""
NOTIFY_SENT_KV = "gw_notify_sent"
"""Idempotency records of the notifier: one key per (message, recipient) delivered."""
GB28181_KV = "gw_gb28181"
"""The GB/T 28181 cascade's state: the guard (armed or not, persists across restarts) and the
service's last status report (``gridwatch status``)."""
GB28181_SENT_KV = "gw_gb28181_sent"
"""Alarm ids the superior platform acknowledged (200 to the MESSAGE): never sent twice."""

# -- cameras and leases ---------------------------------------------------------------------

CAMERAS_KV = "gw_cameras"
"""The camera registry: one key per camera."""
CAMERA_SECRETS_KV = "gw_camera_secrets"
"""Camera URLs with credentials: ``<camera id>.<ref>``, one revision."""
LEASES_KV = "gw_leases"
"""Camera leases: camera id -> holding worker session."""
WORKERS_KV = "gw_workers"
"""Worker sessions: heartbeat, capacity, running cameras."""

# -- durable consumers, queue groups, ephemeral consumer prefixes --------------------------

NOTIFIER_DURABLE = "gw_notifier"
NOTIFIER_CASES_DURABLE = "gw_notifier_cases"
CASE_OPENER_DURABLE = "gw_case_opener"
GB28181_DURABLE = "gw_gb28181"

SERVICE_CONSUMERS: dict[str, tuple[str, ...]] = {
    CASE_OPENER_DURABLE: (ALERTS_STREAM, "cases"),
    NOTIFIER_DURABLE: (ALERTS_STREAM, "notifier"),
    NOTIFIER_CASES_DURABLE: (CASES_STREAM, "notifier"),
    GB28181_DURABLE: (ALERTS_STREAM, "gb28181"),
}
"""The services' durable consumers: name -> (stream, service kind that owns it). Nobody else may
create, update, read the info of, pull from or delete them (the permission generator denies
these names to every other identity)."""

CASE_SERVICE_QUEUE = "gw-case-service"
SNAPSHOT_SERVICE_QUEUE = "gw-snapshot-service"
CLIP_SERVICE_QUEUE = "gw-clip-service"
TAIL_CONSUMER_PREFIX = "gw_tail"
"""``gw_tail_<random>``: the ephemeral consumers of ``gridwatch alerts tail``."""
CONSOLE_CONSUMER_PREFIX = "gw_console"
CONSOLE_REPLAY_CONSUMER_PREFIX = "gw_console_replay"

# -- tokens and subject builders ------------------------------------------------------------

TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]+$")
"""What a grid, camera or rule type id may contain: one NATS subject token, no wildcards."""


def check_token(value: str, what: str = "token") -> str:
    if not TOKEN_RE.fullmatch(value):
        raise ValueError(
            f"{what} {value!r} must be letters, digits, '-' or '_' "
            "(it becomes a NATS subject token)"
        )
    return value


def alert_subject(grid_id: str, camera_id: str, alert_type: str) -> str:
    for v, what in ((grid_id, "grid id"), (camera_id, "camera id"), (alert_type, "alert type")):
        check_token(v, what)
    return f"{ALERTS_PREFIX}.{grid_id}.{camera_id}.{alert_type}"


def alert_filter(grid: str | None = None, camera: str | None = None) -> str:
    """The subject filter for alerts of one grid and/or camera (any when None)."""
    if grid is None and camera is None:
        return f"{ALERTS_PREFIX}.>"
    g = check_token(grid, "grid id") if grid else "*"
    c = check_token(camera, "camera id") if camera else "*"
    return f"{ALERTS_PREFIX}.{g}.{c}.*"


def stats_subject(grid_id: str, camera_id: str, period: str) -> str:
    """``gw.v1.stats.<grid>.<camera>.<period>``: one camera's records of one period length."""
    check_token(camera_id, "camera id")
    return stats_filter(period, grid=check_token(grid_id, "grid id"), camera=camera_id)


def stats_filter(period: str, grid: str | None = None, camera: str | None = None) -> str:
    """The subject filter for one period's records of a grid and/or camera (any when None)."""
    if period not in STATS_PERIODS:
        raise ValueError(f"period {period!r} is not one of {', '.join(STATS_PERIODS)}")
    g = check_token(grid, "grid id") if grid else "*"
    c = check_token(camera, "camera id") if camera else "*"
    return f"{STATS_PREFIX}.{g}.{c}.{period}"


def health_subject(camera_id: str) -> str:
    return f"{HEALTH_PREFIX}.{check_token(camera_id, 'camera id')}"


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


def clip_request_subject(grid_id: str, user: str) -> str:
    return f"{CLIP_REQ_PREFIX}.{check_token(grid_id, 'grid id')}.{check_token(user, 'user')}"


def audit_subject(kind: str, grid_id: str) -> str:
    return f"{AUDIT_PREFIX}.{check_token(kind, 'audit kind')}.{check_token(grid_id, 'grid id')}"


def inbox_prefix(user: str) -> str:
    """Per-user reply inbox prefix: NATS lets a user subscribe to their own inbox only, so no
    one can read the replies (case states, snapshots) meant for somebody else."""
    return f"_INBOX.{check_token(user, 'user name')}"


def kv_stream(bucket: str) -> str:
    """The stream behind a KV bucket (``KV_<bucket>``, fixed by the NATS ADR)."""
    return f"KV_{bucket}"


def kv_subject(bucket: str, key: str) -> str:
    """The subject a KV key is stored on (``$KV.<bucket>.<key>``)."""
    return f"$KV.{bucket}.{key}"


def object_store_stream(bucket: str) -> str:
    """The stream behind an object store bucket (``OBJ_<bucket>``, fixed by the NATS ADR)."""
    return f"OBJ_{bucket}"

"""NATS names: subjects, streams and buckets, in one place.

Subjects carry the grid so NATS permissions can give a grid's responders their grid only.

>>> alert_subject("kdl-01", "gate-9", "crowding")
'gw.v1.alerts.kdl-01.gate-9.crowding'
>>> alert_filter(grid="kdl-01")
'gw.v1.alerts.kdl-01.*.*'
>>> alert_filter()
'gw.v1.alerts.>'
"""

from __future__ import annotations

import re

ALERTS_STREAM = "GW_ALERTS"
ALERTS_PREFIX = "gw.v1.alerts"
SNAPSHOT_BUCKET = "gw_snapshots"
HEALTH_PREFIX = "gw.v1.health"

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


def health_subject(camera_id: str) -> str:
    return f"{HEALTH_PREFIX}.{check_token(camera_id, 'camera id')}"

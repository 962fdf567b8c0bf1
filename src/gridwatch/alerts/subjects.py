"""NATS names of alerts and health: re-exported from :mod:`gridwatch.bus.names`, where every
NATS name lives.

>>> alert_subject("kdl-01", "gate-9", "crowding")
'gw.v1.alerts.kdl-01.gate-9.crowding'
"""

from __future__ import annotations

from gridwatch.bus.names import (
    ALERTS_PREFIX,
    ALERTS_STREAM,
    HEALTH_PREFIX,
    SNAPSHOT_BUCKET,
    TOKEN_RE,
    alert_filter,
    alert_subject,
    check_token,
    health_subject,
)

__all__ = [
    "ALERTS_PREFIX",
    "ALERTS_STREAM",
    "HEALTH_PREFIX",
    "SNAPSHOT_BUCKET",
    "TOKEN_RE",
    "alert_filter",
    "alert_subject",
    "check_token",
    "health_subject",
]

"""The JetStream objects alerts need: stream ``GW_ALERTS`` and object store ``gw_snapshots``.

Declared and converged in :mod:`gridwatch.bus.infra` (every stream, bucket and object store is,
in one place); re-exported here for the callers that import them from alerts.

Retention is a privacy setting as much as a storage one (DESIGN.md, principle 8): snapshots
show people, so the bucket's TTL makes them expire even if nobody cleans up.
"""

from __future__ import annotations

from gridwatch.bus.infra import (
    DAY_S,
    DEFAULT_ALERT_MAX_AGE_S,
    DEFAULT_DUPLICATE_WINDOW_S,
    STREAM_EXISTS_ERR_CODE,
    AlertInfra,
    converge_stream,
    ensure_alert_infra,
)
from gridwatch.bus.names import SNAPSHOT_BUCKET, object_store_stream

__all__ = [
    "DAY_S",
    "DEFAULT_ALERT_MAX_AGE_S",
    "DEFAULT_DUPLICATE_WINDOW_S",
    "STREAM_EXISTS_ERR_CODE",
    "AlertInfra",
    "converge_stream",
    "ensure_alert_infra",
    "snapshot_stream_name",
]


def snapshot_stream_name(bucket: str = SNAPSHOT_BUCKET) -> str:
    """The stream behind an object store bucket (``OBJ_<bucket>``, fixed by the NATS ADR)."""
    return object_store_stream(bucket)

"""Every stream, KV bucket and object store gridwatch owns, declared once as data.

Each object is a spec (:class:`StreamSpec`, :class:`KVSpec`, :class:`ObjectStoreSpec`) built
by one function from the settings config decides (:class:`InfraSettings`: retention, limits,
replicas, history). :mod:`gridwatch.bus.infra` converges them; nothing here talks to a server.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from nats.js import api as js_api

from gridwatch.bus.names import (
    ALERTS_PREFIX,
    ALERTS_STREAM,
    AUDIT_PREFIX,
    AUDIT_STREAM,
    CAMERA_SECRETS_KV,
    CAMERAS_KV,
    CASES_KV,
    CASES_PREFIX,
    CASES_STREAM,
    CLIP_BUCKET,
    GB28181_KV,
    GB28181_SENT_KV,
    LEASES_KV,
    NOTIFY_SENT_KV,
    PUSH_SUBS_KV,
    SNAPSHOT_BUCKET,
    STATS_PREFIX,
    STATS_STREAM,
    WORKERS_KV,
)

if TYPE_CHECKING:
    from gridwatch.config import GridwatchConfig

DAY_S = 24 * 3600.0

DEFAULT_ALERT_MAX_AGE_S = 30 * DAY_S
DEFAULT_DUPLICATE_WINDOW_S = 120.0
CASES_DUPLICATE_WINDOW_S = 120.0
DEFAULT_CASE_RETENTION_DAYS = 180.0
DEFAULT_AUDIT_RETENTION_DAYS = 365.0
DEFAULT_AUDIT_MAX_BYTES = 8 * 1024**3
DEFAULT_AUDIT_MAX_MSGS = 50_000_000
DEFAULT_SUBSCRIPTION_TTL_S = 90 * DAY_S
NOTIFY_SENT_TTL_S = 7 * DAY_S
DEFAULT_STATS_RETENTION_DAYS = 365.0
STATS_DUPLICATE_WINDOW_S = 120.0
WORKERS_MAX_AGE_S = 3600.0
"""Garbage collection of worker keys nobody fenced (every worker gone): an hour."""


# -- specs ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StreamSpec:
    """A stream: how to create it, and which settings (``owns``) are converged when it exists."""

    name: str
    subjects: tuple[str, ...]
    description: str
    max_age_s: float
    replicas: int = 1
    duplicate_window_s: float | None = None
    max_bytes: int | None = None
    max_msgs: int | None = None
    deny_delete: bool | None = None
    deny_purge: bool | None = None
    allow_rollup_hdrs: bool | None = None
    allow_msg_ttl: bool | None = None
    """Per-message TTLs (``Nats-TTL``; nats-server 2.11+; cannot be turned off again)."""
    owns: tuple[str, ...] = ("subjects", "max_age", "num_replicas")
    """``StreamConfig`` field names converged on an existing stream."""

    def config(self) -> js_api.StreamConfig:
        optional: dict[str, object] = {
            "max_bytes": self.max_bytes,
            "max_msgs": self.max_msgs,
            "duplicate_window": self.duplicate_window_s,
            "deny_delete": self.deny_delete,
            "deny_purge": self.deny_purge,
            "allow_rollup_hdrs": self.allow_rollup_hdrs,
            "allow_msg_ttl": self.allow_msg_ttl,
        }
        return js_api.StreamConfig(
            name=self.name,
            description=self.description,
            subjects=list(self.subjects),
            retention=js_api.RetentionPolicy.LIMITS,
            storage=js_api.StorageType.FILE,
            discard=js_api.DiscardPolicy.OLD,
            max_age=self.max_age_s,
            num_replicas=self.replicas,
            **{k: v for k, v in optional.items() if v is not None},  # type: ignore[arg-type]
        )

    def owned(self) -> dict[str, object]:
        values: dict[str, object] = {
            "subjects": list(self.subjects),
            "max_age": float(self.max_age_s),
            "duplicate_window": self.duplicate_window_s,
            "num_replicas": self.replicas,
            "max_bytes": self.max_bytes,
            "max_msgs": self.max_msgs,
            "deny_delete": self.deny_delete,
            "deny_purge": self.deny_purge,
            "allow_rollup_hdrs": self.allow_rollup_hdrs,
            "allow_msg_ttl": self.allow_msg_ttl,
        }
        return {k: values[k] for k in self.owns}


@dataclass(frozen=True, slots=True)
class KVSpec:
    """A KV bucket (file storage). ``converge_ttl``: an existing bucket's TTL is set to
    ``ttl_s``; ``on_replicas``: what an existing bucket with another replica count gets
    (``keep`` silently, ``warn`` in the log)."""

    bucket: str
    description: str
    history: int = 1
    ttl_s: float | None = None
    replicas: int = 1
    converge_ttl: bool = False
    on_replicas: Literal["keep", "warn"] = "keep"

    def config(self) -> js_api.KeyValueConfig:
        return js_api.KeyValueConfig(
            bucket=self.bucket,
            description=self.description,
            history=self.history,
            ttl=self.ttl_s,
            storage=js_api.StorageType.FILE,
            replicas=self.replicas,
        )


@dataclass(frozen=True, slots=True)
class ObjectStoreSpec:
    """An object store; its TTL and replicas are converged on the stream behind it."""

    bucket: str
    description: str
    ttl_s: float
    replicas: int = 1
    max_bytes: int | None = None
    """Size limit of the whole store (None: none); the oldest objects go first."""


@dataclass(frozen=True, slots=True)
class InfraSettings:
    """What config decides about the objects: retention, limits, replicas, history."""

    replicas: int = 1
    alert_max_age_s: float = DEFAULT_ALERT_MAX_AGE_S
    duplicate_window_s: float = DEFAULT_DUPLICATE_WINDOW_S
    snapshot_ttl_s: float | None = None
    case_retention_days: float = DEFAULT_CASE_RETENTION_DAYS
    audit_retention_days: float = DEFAULT_AUDIT_RETENTION_DAYS
    audit_max_bytes: int = DEFAULT_AUDIT_MAX_BYTES
    audit_max_msgs: int = DEFAULT_AUDIT_MAX_MSGS
    push_subscription_ttl_s: float | None = None
    registry_history: int = 16
    clip_ttl_s: float = 7 * DAY_S
    clip_max_bytes: int = 8 * 1024**3
    stats_max_age_s: float = DEFAULT_STATS_RETENTION_DAYS * DAY_S

    @classmethod
    def from_config(cls, config: GridwatchConfig) -> InfraSettings:
        a, cs = config.alerts, config.console
        return cls(
            replicas=config.nats.replicas,
            alert_max_age_s=a.retention_days * DAY_S,
            duplicate_window_s=a.duplicate_window_s,
            snapshot_ttl_s=None
            if a.snapshot_retention_days is None
            else a.snapshot_retention_days * DAY_S,
            case_retention_days=config.cases.retention_days,
            audit_retention_days=cs.audit_retention_days,
            audit_max_bytes=cs.audit_max_bytes,
            audit_max_msgs=cs.audit_max_msgs,
            push_subscription_ttl_s=config.notify.push_subscription_ttl_days * DAY_S,
            registry_history=config.registry.history,
            clip_ttl_s=a.clips.retention_days * DAY_S,
            clip_max_bytes=a.clips.max_bytes,
            stats_max_age_s=config.stats.retention_days * DAY_S,
        )


# -- the catalogue: every object, declared once -------------------------------------------


def alerts_stream(
    *,
    max_age_s: float = DEFAULT_ALERT_MAX_AGE_S,
    duplicate_window_s: float = DEFAULT_DUPLICATE_WINDOW_S,
    replicas: int = 1,
) -> StreamSpec:
    """``GW_ALERTS``. ``duplicate_window_s`` bounds how late a retried publish is still
    recognised as the same message (``Nats-Msg-Id``)."""
    if duplicate_window_s > max_age_s:
        raise ValueError("duplicate_window_s cannot exceed max_age_s")
    return StreamSpec(
        name=ALERTS_STREAM,
        subjects=(f"{ALERTS_PREFIX}.>",),
        description="gridwatch alerts: gw.v1.alerts.<grid>.<camera>.<type>",
        max_age_s=max_age_s,
        duplicate_window_s=duplicate_window_s,
        replicas=replicas,
        owns=("subjects", "max_age", "duplicate_window", "num_replicas"),
    )


def clips_store(*, ttl_s: float, max_bytes: int, replicas: int = 1) -> ObjectStoreSpec:
    """``gw_clips``: its own age and size limits, apart from the snapshots' (video is ~100×
    a snapshot's size; a deployment keeps clips for days, snapshots as long as alerts)."""
    return ObjectStoreSpec(
        bucket=CLIP_BUCKET,
        description="gridwatch alert evidence clips (MP4 of the camera's own packets)",
        ttl_s=ttl_s,
        replicas=replicas,
        max_bytes=max_bytes,
    )


def snapshots_store(*, ttl_s: float, replicas: int = 1) -> ObjectStoreSpec:
    return ObjectStoreSpec(
        bucket=SNAPSHOT_BUCKET,
        description="gridwatch alert snapshots (annotated JPEG)",
        ttl_s=ttl_s,
        replicas=replicas,
    )


def cases_stream(
    *, retention_days: float = DEFAULT_CASE_RETENTION_DAYS, replicas: int = 1
) -> StreamSpec:
    return StreamSpec(
        name=CASES_STREAM,
        subjects=(f"{CASES_PREFIX}.>",),
        description="gridwatch case lifecycle: gw.v1.cases.<grid>.<alert id>",
        max_age_s=retention_days * DAY_S,
        duplicate_window_s=CASES_DUPLICATE_WINDOW_S,
        replicas=replicas,
        owns=("max_age", "num_replicas"),
    )


def cases_kv(*, retention_days: float = DEFAULT_CASE_RETENTION_DAYS, replicas: int = 1) -> KVSpec:
    return KVSpec(
        bucket=CASES_KV,
        description="gridwatch case states (derived from GW_CASES)",
        ttl_s=retention_days * DAY_S,
        replicas=replicas,
        converge_ttl=True,
    )


def audit_stream(
    *,
    retention_days: float = DEFAULT_AUDIT_RETENTION_DAYS,
    max_bytes: int = DEFAULT_AUDIT_MAX_BYTES,
    max_msgs: int = DEFAULT_AUDIT_MAX_MSGS,
    replicas: int = 1,
) -> StreamSpec:
    """``GW_AUDIT``: no delete, no purge, no rollup; limits only grow (see
    :func:`ensure_audit_stream`)."""
    return StreamSpec(
        name=AUDIT_STREAM,
        subjects=(f"{AUDIT_PREFIX}.>",),
        description="gridwatch audit: gw.v1.audit.<kind>.<grid> (who viewed, who acted)",
        max_age_s=retention_days * DAY_S,
        max_bytes=max_bytes,
        max_msgs=max_msgs,
        deny_delete=True,
        deny_purge=True,
        allow_rollup_hdrs=False,
        replicas=replicas,
        owns=("deny_delete", "deny_purge", "allow_rollup_hdrs"),
    )


def stats_stream(
    *, max_age_s: float = DEFAULT_STATS_RETENTION_DAYS * DAY_S, replicas: int = 1
) -> StreamSpec:
    """``GW_STATS``: people-flow records (:mod:`gridwatch.stats`). Minute records carry a
    per-message TTL (``allow_msg_ttl``); the rollups live ``max_age_s``. A record's
    ``Nats-Msg-Id`` makes a repeated publish (a retry, a rollup made twice) a no-op."""
    return StreamSpec(
        name=STATS_STREAM,
        subjects=(f"{STATS_PREFIX}.>",),
        description="gridwatch people-flow statistics: gw.v1.stats.<grid>.<camera>.<period>",
        max_age_s=max_age_s,
        duplicate_window_s=STATS_DUPLICATE_WINDOW_S,
        allow_msg_ttl=True,
        replicas=replicas,
        owns=("subjects", "max_age", "num_replicas", "allow_msg_ttl"),
    )


def push_subs_kv(*, ttl_s: float | None = None) -> KVSpec:
    """``gw_push_subs``; with ``ttl_s`` an existing bucket's TTL is converged on it."""
    return KVSpec(
        bucket=PUSH_SUBS_KV,
        description="gridwatch Web Push subscriptions, <user>.<endpoint hash>",
        ttl_s=float(ttl_s or DEFAULT_SUBSCRIPTION_TTL_S),
        converge_ttl=ttl_s is not None,
    )


def notify_sent_kv() -> KVSpec:
    return KVSpec(
        bucket=NOTIFY_SENT_KV,
        description="gridwatch notifier idempotency records",
        ttl_s=NOTIFY_SENT_TTL_S,
    )


GB28181_SENT_TTL_S = 7 * DAY_S
"""How long the GB/T 28181 cascade remembers an alarm it sent; alarms older than this are never
sent (the service caps ``max_alarm_age_s`` by it), so an expired record cannot let one through
twice."""


def gb28181_kv(*, replicas: int = 1) -> KVSpec:
    """``gw_gb28181``: the cascade's guard state (kept until changed) and status report."""
    return KVSpec(
        bucket=GB28181_KV,
        description="gridwatch GB/T 28181 cascade: guard state and status",
        replicas=replicas,
    )


def gb28181_sent_kv(*, replicas: int = 1) -> KVSpec:
    """``gw_gb28181_sent``: one key per alarm the superior platform acknowledged."""
    return KVSpec(
        bucket=GB28181_SENT_KV,
        description="gridwatch GB/T 28181 cascade: alarms the superior acknowledged",
        ttl_s=GB28181_SENT_TTL_S,
        replicas=replicas,
    )


def camera_registry_kv(*, history: int = 16, replicas: int = 1) -> KVSpec:
    return KVSpec(
        bucket=CAMERAS_KV,
        description="gridwatch camera registry: one key per camera",
        history=history,
        replicas=replicas,
    )


def camera_secrets_kv(*, replicas: int = 1) -> KVSpec:
    """History 1: a changed password is gone, not kept."""
    return KVSpec(
        bucket=CAMERA_SECRETS_KV,
        description="gridwatch camera URLs with credentials: <camera id>.<ref>, 1 revision",
        replicas=replicas,
    )


def leases_kv(*, replicas: int = 1) -> KVSpec:
    return KVSpec(
        bucket=LEASES_KV,
        description="gridwatch camera leases: camera id -> holding worker session",
        replicas=replicas,
        on_replicas="warn",
    )


def workers_kv(*, replicas: int = 1) -> KVSpec:
    return KVSpec(
        bucket=WORKERS_KV,
        description="gridwatch worker sessions: heartbeat, capacity, running cameras",
        replicas=replicas,
        ttl_s=WORKERS_MAX_AGE_S,
        on_replicas="warn",
    )

"""Streams, KV buckets and object stores: declared once as data, converged in one place.

Every JetStream object gridwatch owns is described by a spec (:class:`StreamSpec`,
:class:`KVSpec`, :class:`ObjectStoreSpec`) built by one function below from the settings it
takes from config (retention, limits, replicas). The ``ensure_*`` functions create an object
when it is missing and otherwise change only the settings the spec *owns* (everything an
operator tuned by hand survives a restart). All of them are idempotent and race-safe: several
processes may run them at once; a create that loses a race to a different configuration is
turned into a bind (KV, object store) or an update (stream).

Special rules kept here, each with its object:

* ``GW_AUDIT`` denies delete and purge and never shortens its history: retention and limits
  only grow; a shorter configured one is logged and ignored (:func:`ensure_audit_stream`).
* KV TTLs: ``gw_cases`` and ``gw_push_subs`` converge their TTL on an existing bucket;
  ``gw_workers`` expires stale sessions after an hour; the others keep what they have.
* History: the camera registry keeps ``registry.history`` revisions, the others one.
* Object store ``gw_snapshots``: its TTL defaults to the alerts' retention, so an alert never
  names a snapshot that expired first.
* ``GW_STATS`` allows per-message TTLs (``allow_msg_ttl``, converged on an existing stream):
  minute records expire long before the rollups (:mod:`gridwatch.stats`).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar

import nats.errors
from nats.js import JetStreamContext
from nats.js import api as js_api
from nats.js.errors import APIError, BucketNotFoundError, NotFoundError
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore

from gridwatch.bus.catalog import (
    CASES_DUPLICATE_WINDOW_S,
    DAY_S,
    DEFAULT_ALERT_MAX_AGE_S,
    DEFAULT_AUDIT_MAX_BYTES,
    DEFAULT_AUDIT_MAX_MSGS,
    DEFAULT_AUDIT_RETENTION_DAYS,
    DEFAULT_CASE_RETENTION_DAYS,
    DEFAULT_DUPLICATE_WINDOW_S,
    DEFAULT_SUBSCRIPTION_TTL_S,
    NOTIFY_SENT_TTL_S,
    WORKERS_MAX_AGE_S,
    InfraSettings,
    KVSpec,
    ObjectStoreSpec,
    StreamSpec,
    alerts_stream,
    audit_stream,
    camera_registry_kv,
    camera_secrets_kv,
    cases_kv,
    cases_stream,
    clips_store,
    leases_kv,
    notify_sent_kv,
    push_subs_kv,
    snapshots_store,
    stats_stream,
    workers_kv,
)
from gridwatch.bus.names import AUDIT_STREAM, kv_stream, object_store_stream

__all__ = [
    "CASES_DUPLICATE_WINDOW_S",
    "DAY_S",
    "DEFAULT_ALERT_MAX_AGE_S",
    "DEFAULT_AUDIT_MAX_BYTES",
    "DEFAULT_AUDIT_MAX_MSGS",
    "DEFAULT_AUDIT_RETENTION_DAYS",
    "DEFAULT_CASE_RETENTION_DAYS",
    "DEFAULT_DUPLICATE_WINDOW_S",
    "DEFAULT_SUBSCRIPTION_TTL_S",
    "NOTIFY_SENT_TTL_S",
    "STREAM_EXISTS_ERR_CODE",
    "WORKERS_MAX_AGE_S",
    "AlertInfra",
    "InfraSettings",
    "KVSpec",
    "ObjectStoreSpec",
    "StreamSpec",
    "alerts_stream",
    "audit_stream",
    "camera_registry_kv",
    "camera_secrets_kv",
    "cases_kv",
    "cases_stream",
    "clips_store",
    "converge_stream",
    "ensure_alert_infra",
    "ensure_all",
    "ensure_audit_stream",
    "ensure_case_infra",
    "ensure_clip_store",
    "ensure_kv",
    "ensure_lease_buckets",
    "ensure_object_store",
    "ensure_push_bucket",
    "ensure_stats_stream",
    "ensure_stream",
    "leases_kv",
    "notify_sent_kv",
    "push_subs_kv",
    "snapshots_store",
    "stats_stream",
    "workers_kv",
]

log = logging.getLogger(__name__)

_T = TypeVar("_T")

STREAM_EXISTS_ERR_CODE = 10058
"""``JSStreamNameExistErr``: "stream name already in use with a different configuration"."""


# -- convergence ----------------------------------------------------------------------------


def _same_seconds(a: float | None, b: float | None) -> bool:
    """Durations come back from the server in nanoseconds: compare to the microsecond."""
    return math.isclose(a or 0.0, b or 0.0, abs_tol=1e-6)


def _equal(key: str, have: object, want: object) -> bool:
    if key in ("max_age", "duplicate_window"):
        assert isinstance(want, float | int)
        assert have is None or isinstance(have, float | int)
        return _same_seconds(float(have) if have is not None else None, float(want))
    if key == "subjects":
        assert isinstance(want, list)
        return isinstance(have, list) and set(want) <= set(have)
    return have == want


def _merged(key: str, have: object, want: object) -> object:
    if key == "subjects" and isinstance(have, list) and isinstance(want, list):
        return have + [s for s in want if s not in have]
    return want


def _describe(changes: dict[str, object], current: js_api.StreamConfig) -> str:
    return ", ".join(f"{k} {getattr(current, k)!r} -> {v!r}" for k, v in changes.items())


async def converge_stream(
    js: JetStreamContext,
    name: str,
    owned: dict[str, object],
    create: js_api.StreamConfig | None,
) -> js_api.StreamInfo:
    """Create the stream from ``create``; if it exists, update only the ``owned`` fields that
    differ (everything else the operator may have tuned is kept; subjects are added to, never
    replaced)."""
    for _ in range(3):
        try:
            info = await js.stream_info(name)
        except NotFoundError:
            if create is None:
                raise
            try:
                info = await js.add_stream(create)
                log.info("created stream %s", name)
                return info
            except APIError as e:
                if e.err_code != STREAM_EXISTS_ERR_CODE:
                    raise
                # Another process created it a moment ago, differently: converge below.
                continue
        current = info.config
        changes = {
            key: _merged(key, getattr(current, key), value)
            for key, value in owned.items()
            if not _equal(key, getattr(current, key), value)
        }
        if not changes:
            return info
        log.info("updating stream %s: %s", name, _describe(changes, current))
        return await js.update_stream(current.evolve(**changes))
    raise RuntimeError(f"stream {name} kept changing while it was being ensured")


async def ensure_stream(js: JetStreamContext, spec: StreamSpec) -> js_api.StreamInfo:
    """Create ``spec``'s stream, or converge the settings it owns."""
    return await converge_stream(js, spec.name, spec.owned(), create=spec.config())


async def _timed(aw: Awaitable[_T], limit_s: float | None) -> _T:
    return await (aw if limit_s is None else asyncio.wait_for(aw, limit_s))


async def ensure_kv(
    js: JetStreamContext,
    spec: KVSpec,
    *,
    create: bool = True,
    op_timeout: float | None = None,
    within_s: float = 0.0,
) -> KeyValue:
    """Bind to ``spec``'s bucket, creating it when missing (``create``; else
    :class:`BucketNotFoundError`), then converge what the spec owns.

    ``op_timeout`` bounds each server call; with ``within_s``, timeouts and missing responders
    are retried that long (a freshly started cluster can time out the first replicated create
    while its peers catch up).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    delay = 0.2
    while True:
        try:
            return await _ensure_kv_once(js, spec, create, op_timeout)
        except (nats.errors.TimeoutError, TimeoutError, nats.errors.NoRespondersError) as exc:
            if loop.time() + delay > deadline:
                raise
            log.info("KV bucket %s not ready (%s); retrying", spec.bucket, type(exc).__name__)
            await asyncio.sleep(delay)
            delay = min(2.0, delay * 2)


async def _ensure_kv_once(
    js: JetStreamContext, spec: KVSpec, create: bool, op_timeout: float | None
) -> KeyValue:
    try:
        kv = await _timed(js.key_value(spec.bucket), op_timeout)
    except BucketNotFoundError:
        if not create:
            raise
        try:
            kv = await _timed(js.create_key_value(spec.config()), op_timeout)
            log.info(
                "created KV bucket %s (history %d, replicas %d)",
                spec.bucket,
                spec.history,
                spec.replicas,
            )
            return kv
        except APIError as exc:
            # another client created it first, perhaps with other settings: bind to theirs
            try:
                kv = await _timed(js.key_value(spec.bucket), op_timeout)
            except BucketNotFoundError:
                raise exc from None
    if spec.converge_ttl and spec.ttl_s is not None:
        await _timed(
            converge_stream(js, kv_stream(spec.bucket), {"max_age": float(spec.ttl_s)}, None),
            op_timeout,
        )
    if spec.on_replicas == "warn":
        status = await _timed(kv.status(), op_timeout)
        have = status.stream_info.config.num_replicas or 1
        if have != spec.replicas:
            log.warning(
                "KV bucket %s has %d replicas, the config asks for %d (left as it is)",
                spec.bucket,
                have,
                spec.replicas,
            )
    return kv


async def ensure_object_store(js: JetStreamContext, spec: ObjectStoreSpec) -> ObjectStore:
    """Create ``spec``'s object store, or converge what we own of it (TTL, replicas, and for a
    store with a size limit that limit) on the stream behind it.

    The stream is created here with the layout nats-py's ``create_object_store`` gives it,
    but in one step with everything we own, so workers starting together on a fresh cluster
    meet an existing stream that already has its final settings (creating it and then
    updating it raced: three workers updating one stream at once timed out in CI). A store
    with a size limit discards the oldest chunks when full (nats-py's default refuses new
    puts, which would lose the newest evidence instead)."""
    stream = object_store_stream(spec.bucket)
    discard = js_api.DiscardPolicy.OLD if spec.max_bytes is not None else js_api.DiscardPolicy.NEW
    owned: dict[str, Any] = {"max_age": float(spec.ttl_s), "num_replicas": spec.replicas}
    if spec.max_bytes is not None:
        owned.update(max_bytes=spec.max_bytes, discard=discard)
    create = js_api.StreamConfig(
        name=stream,
        description=spec.description,
        subjects=[f"$O.{spec.bucket}.C.>", f"$O.{spec.bucket}.M.>"],
        max_age=float(spec.ttl_s),
        max_bytes=spec.max_bytes if spec.max_bytes is not None else -1,
        storage=js_api.StorageType.FILE,
        num_replicas=spec.replicas,
        discard=discard,
        allow_rollup_hdrs=True,
        allow_direct=True,
    )
    await converge_stream(js, stream, owned, create=create)
    return await js.object_store(spec.bucket)


# -- the objects, by owner ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AlertInfra:
    """What :func:`ensure_alert_infra` leaves in place, so callers need no second lookup."""

    stream: js_api.StreamInfo
    snapshots: ObjectStore


async def ensure_alert_infra(
    js: JetStreamContext,
    *,
    max_age_s: float = DEFAULT_ALERT_MAX_AGE_S,
    duplicate_window_s: float = DEFAULT_DUPLICATE_WINDOW_S,
    replicas: int = 1,
    snapshot_ttl_s: float | None = None,
) -> AlertInfra:
    """Create or update stream ``GW_ALERTS`` and object store ``gw_snapshots``.

    ``duplicate_window_s`` must cover the publisher's whole retry budget and the local spool's
    replay delay. ``snapshot_ttl_s`` defaults to ``max_age_s`` so an alert never names a
    snapshot that has already expired.
    """
    spec = alerts_stream(
        max_age_s=max_age_s, duplicate_window_s=duplicate_window_s, replicas=replicas
    )
    stream = await ensure_stream(js, spec)
    ttl = float(snapshot_ttl_s if snapshot_ttl_s is not None else max_age_s)
    snapshots = await ensure_object_store(js, snapshots_store(ttl_s=ttl, replicas=replicas))
    return AlertInfra(stream=stream, snapshots=snapshots)


async def ensure_case_infra(
    js: JetStreamContext,
    *,
    retention_days: float = DEFAULT_CASE_RETENTION_DAYS,
    replicas: int = 1,
) -> KeyValue:
    """Create (or converge the retention of) stream GW_CASES and KV bucket gw_cases."""
    await ensure_stream(js, cases_stream(retention_days=retention_days, replicas=replicas))
    return await ensure_kv(js, cases_kv(retention_days=retention_days, replicas=replicas))


def _unlimited(v: float | int | None) -> bool:
    return v is None or v <= 0


async def ensure_audit_stream(
    js: JetStreamContext,
    *,
    retention_days: float = DEFAULT_AUDIT_RETENTION_DAYS,
    max_bytes: int = DEFAULT_AUDIT_MAX_BYTES,
    max_msgs: int = DEFAULT_AUDIT_MAX_MSGS,
    replicas: int = 1,
) -> js_api.StreamInfo:
    """Create stream GW_AUDIT or converge it, never shortening its history: a longer retention
    or larger limit found on the stream is kept (logged); a cap is put on an uncapped stream
    only when it does not cut into what the stream holds."""
    spec = audit_stream(
        retention_days=retention_days, max_bytes=max_bytes, max_msgs=max_msgs, replicas=replicas
    )
    max_age = spec.max_age_s
    owned = spec.owned()
    try:
        info = await js.stream_info(AUDIT_STREAM)
    except NotFoundError:
        info = None
    if info is None:
        owned.update(max_age=max_age, max_bytes=max_bytes, max_msgs=max_msgs)
    else:
        have = info.config
        held_bytes, held_msgs = int(info.state.bytes or 0), int(info.state.messages or 0)
        if not _unlimited(have.max_age) and float(have.max_age or 0) < max_age - 1e-6:
            owned["max_age"] = max_age  # longer: fine
        elif _unlimited(have.max_age) or float(have.max_age or 0) > max_age + 1e-6:
            log.warning(
                "stream %s keeps audit records %s; this config asks for %.4g days: the longer "
                "retention is kept (shorten it by hand if that is really wanted)",
                AUDIT_STREAM,
                "forever"
                if _unlimited(have.max_age)
                else f"{(have.max_age or 0) / DAY_S:.4g} days",
                retention_days,
            )
        for key, want, held in (
            ("max_bytes", max_bytes, held_bytes),
            ("max_msgs", max_msgs, held_msgs),
        ):
            cur = getattr(have, key)
            if _unlimited(cur):
                if held <= want:
                    owned[key] = want  # a cap on a stream it does not cut into yet
                else:
                    log.warning(
                        "stream %s holds %d (%s), more than this config's cap %d: left "
                        "uncapped so no record is dropped",
                        AUDIT_STREAM, held, key, want,
                    )  # fmt: skip
            elif cur < want:
                owned[key] = want
            elif cur > want:
                log.warning(
                    "stream %s has %s %d, larger than this config's %d: kept",
                    AUDIT_STREAM, key, cur, want,
                )  # fmt: skip
    return await converge_stream(js, AUDIT_STREAM, owned, create=spec.config())


async def ensure_push_bucket(js: JetStreamContext, *, ttl_s: float | None = None) -> KeyValue:
    """Bind to ``gw_push_subs``, creating it (history 1, TTL ``ttl_s`` or the default) when
    missing. With ``ttl_s`` an existing bucket's TTL is converged on it, so a bucket made
    before TTLs existed gets one; without, it is left as is."""
    return await ensure_kv(js, push_subs_kv(ttl_s=ttl_s))


async def ensure_lease_buckets(
    js: JetStreamContext, *, replicas: int = 1, within_s: float = 30.0
) -> tuple[KeyValue, KeyValue]:
    """``gw_leases`` and ``gw_workers``, created with ``replicas`` if missing."""
    leases = await ensure_kv(js, leases_kv(replicas=replicas), within_s=within_s)
    workers = await ensure_kv(js, workers_kv(replicas=replicas), within_s=within_s)
    return leases, workers


async def ensure_clip_store(
    js: JetStreamContext, *, ttl_s: float, max_bytes: int, replicas: int = 1
) -> ObjectStore:
    """``gw_clips``, its TTL and size limit converged (the workers that store clips)."""
    return await ensure_object_store(
        js, clips_store(ttl_s=ttl_s, max_bytes=max_bytes, replicas=replicas)
    )


async def ensure_stats_stream(
    js: JetStreamContext, *, max_age_s: float, replicas: int = 1
) -> js_api.StreamInfo:
    """``GW_STATS`` (the workers that publish statistics), its retention converged."""
    return await ensure_stream(js, stats_stream(max_age_s=max_age_s, replicas=replicas))


async def ensure_all(js: JetStreamContext, settings: InfraSettings) -> None:
    """Converge every object gridwatch owns on ``settings`` (``gridwatch`` admin tools; each
    service ensures only the objects it uses)."""
    await ensure_alert_infra(
        js,
        max_age_s=settings.alert_max_age_s,
        duplicate_window_s=settings.duplicate_window_s,
        replicas=settings.replicas,
        snapshot_ttl_s=settings.snapshot_ttl_s,
    )
    await ensure_case_infra(
        js, retention_days=settings.case_retention_days, replicas=settings.replicas
    )
    await ensure_audit_stream(
        js,
        retention_days=settings.audit_retention_days,
        max_bytes=settings.audit_max_bytes,
        max_msgs=settings.audit_max_msgs,
        replicas=settings.replicas,
    )
    await ensure_push_bucket(js, ttl_s=settings.push_subscription_ttl_s)
    await ensure_kv(js, notify_sent_kv())
    await ensure_kv(
        js,
        camera_registry_kv(history=settings.registry_history, replicas=settings.replicas),
    )
    await ensure_kv(js, camera_secrets_kv(replicas=settings.replicas))
    await ensure_lease_buckets(js, replicas=settings.replicas)
    await ensure_clip_store(
        js,
        ttl_s=settings.clip_ttl_s,
        max_bytes=settings.clip_max_bytes,
        replicas=settings.replicas,
    )
    await ensure_stats_stream(js, max_age_s=settings.stats_max_age_s, replicas=settings.replicas)

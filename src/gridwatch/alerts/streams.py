"""Create or converge the JetStream objects alerts need: stream ``GW_ALERTS`` and object store
``gw_snapshots``.

Every worker calls :func:`ensure_alert_infra` at start-up, so it has to be idempotent and safe
when several workers run it at the same moment: the server accepts a create whose configuration
equals the existing one, and a create that loses a race to a different configuration is turned
into an update. An existing stream is only updated when one of the settings this module owns
differs, and then only those settings change: limits an operator set by hand (``max_bytes``,
say) survive a worker restart.

Retention is a privacy setting as much as a storage one (DESIGN.md, principle 8): snapshots
show people, so the bucket's TTL makes them expire even if nobody cleans up.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from nats.js import JetStreamContext
from nats.js import api as js_api
from nats.js.errors import APIError, NotFoundError
from nats.js.object_store import ObjectStore

from gridwatch.alerts.subjects import ALERTS_PREFIX, ALERTS_STREAM, SNAPSHOT_BUCKET

log = logging.getLogger(__name__)

DAY_S = 24 * 3600.0
DEFAULT_ALERT_MAX_AGE_S = 30 * DAY_S
DEFAULT_DUPLICATE_WINDOW_S = 120.0
STREAM_EXISTS_ERR_CODE = 10058
"""``JSStreamNameExistErr``: "stream name already in use with a different configuration"."""


@dataclass(frozen=True, slots=True)
class AlertInfra:
    """What :func:`ensure_alert_infra` leaves in place, so callers need no second lookup."""

    stream: js_api.StreamInfo
    snapshots: ObjectStore


def snapshot_stream_name(bucket: str = SNAPSHOT_BUCKET) -> str:
    """The stream behind an object store bucket (``OBJ_<bucket>``, fixed by the NATS ADR)."""
    return f"OBJ_{bucket}"


def _same_seconds(a: float | None, b: float | None) -> bool:
    """Durations come back from the server in nanoseconds: compare to the microsecond."""
    return math.isclose(a or 0.0, b or 0.0, abs_tol=1e-6)


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
                # Another worker created it a moment ago, differently: converge below.
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


async def ensure_alert_infra(
    js: JetStreamContext,
    *,
    max_age_s: float = DEFAULT_ALERT_MAX_AGE_S,
    duplicate_window_s: float = DEFAULT_DUPLICATE_WINDOW_S,
    replicas: int = 1,
    snapshot_ttl_s: float | None = None,
) -> AlertInfra:
    """Create or update stream ``GW_ALERTS`` and object store ``gw_snapshots``.

    ``duplicate_window_s`` bounds how late a retried publish is still recognised as the same
    message (``Nats-Msg-Id``); it must cover the publisher's whole retry budget and the local
    spool's replay delay. ``snapshot_ttl_s`` defaults to ``max_age_s`` so an alert never names a
    snapshot that has already expired.
    """
    if duplicate_window_s > max_age_s:
        raise ValueError("duplicate_window_s cannot exceed max_age_s")
    subjects = [f"{ALERTS_PREFIX}.>"]
    stream_cfg = js_api.StreamConfig(
        name=ALERTS_STREAM,
        description="gridwatch alerts: gw.v1.alerts.<grid>.<camera>.<type>",
        subjects=subjects,
        retention=js_api.RetentionPolicy.LIMITS,
        storage=js_api.StorageType.FILE,
        discard=js_api.DiscardPolicy.OLD,
        max_age=max_age_s,
        duplicate_window=duplicate_window_s,
        num_replicas=replicas,
    )
    stream = await converge_stream(
        js,
        ALERTS_STREAM,
        {
            "subjects": subjects,
            "max_age": float(max_age_s),
            "duplicate_window": float(duplicate_window_s),
            "num_replicas": replicas,
        },
        create=stream_cfg,
    )
    ttl = float(snapshot_ttl_s if snapshot_ttl_s is not None else max_age_s)
    obj_stream = snapshot_stream_name()
    try:
        await js.stream_info(obj_stream)
    except NotFoundError:
        try:
            obs = await js.create_object_store(
                SNAPSHOT_BUCKET,
                config=js_api.ObjectStoreConfig(
                    description="gridwatch alert snapshots (annotated JPEG)",
                    ttl=ttl,
                    storage=js_api.StorageType.FILE,
                    replicas=replicas,
                ),
            )
            log.info("created object store %s (ttl %.0fs)", SNAPSHOT_BUCKET, ttl)
            return AlertInfra(stream=stream, snapshots=obs)
        except APIError as e:
            if e.err_code != STREAM_EXISTS_ERR_CODE:
                raise
    # The bucket exists (or a concurrent creator made it differently): converge its TTL and
    # replicas on the underlying stream, the only settings an object store config carries that
    # we own.
    await converge_stream(js, obj_stream, {"max_age": ttl, "num_replicas": replicas}, create=None)
    return AlertInfra(stream=stream, snapshots=await js.object_store(SNAPSHOT_BUCKET))

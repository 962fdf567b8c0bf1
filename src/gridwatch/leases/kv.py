"""The two lease buckets and the only writes the lease protocol makes: compare-and-set.

Every write names the revision it expects the key to be at
(``Nats-Expected-Last-Subject-Sequence``); the server refuses it if anyone wrote the key in
between. That is the whole consistency story: two workers racing for a camera, or a worker
renewing while another fences it, are decided by the stream leader, one winner, no clocks.

Reads that decide a claim go to the stream leader (``STREAM.MSG.GET``, not a watch or a direct
get from a replica), so a worker never claims a camera on the word of a stale view.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import nats.errors
from nats.js import JetStreamContext
from nats.js import api as js_api
from nats.js.errors import APIError, BucketNotFoundError, NotFoundError
from nats.js.kv import KeyValue

from gridwatch.leases.records import LEASES_BUCKET, WORKERS_BUCKET

log = logging.getLogger(__name__)

WRONG_LAST_SEQUENCE = frozenset({10071, 10164})
STREAM_EXISTS = 10058
WORKERS_MAX_AGE_S = 3600.0
"""Garbage collection of worker keys nobody fenced (every worker gone): an hour."""


class CasConflict(Exception):
    """The key is no longer at the expected revision: someone else wrote it first."""


@dataclass(frozen=True)
class Current:
    """A key's latest message as the stream leader has it: ``value`` None when removed."""

    revision: int
    value: bytes | None


def stream_of(bucket: str) -> str:
    return f"KV_{bucket}"


def subject_of(bucket: str, key: str) -> str:
    return f"$KV.{bucket}.{key}"


async def ensure_bucket(
    js: JetStreamContext,
    bucket: str,
    *,
    description: str,
    replicas: int = 1,
    max_age_s: float | None = None,
    within_s: float = 30.0,
) -> KeyValue:
    """Bind to ``bucket``, creating it (file storage, one revision per key) if missing.

    Idempotent and race-safe (every worker calls it at start). Retried for ``within_s``: a
    freshly started cluster can time out the first replicated create while its peers catch up.
    An existing bucket keeps its settings; a different replica count is only logged.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    delay = 0.2
    while True:
        try:
            try:
                kv = await js.key_value(bucket)
            except BucketNotFoundError:
                cfg = js_api.KeyValueConfig(
                    bucket=bucket,
                    description=description,
                    history=1,
                    storage=js_api.StorageType.FILE,
                    replicas=replicas,
                    ttl=max_age_s,
                )
                try:
                    kv = await js.create_key_value(cfg)
                    log.info("created KV bucket %s (replicas %d)", bucket, replicas)
                except APIError as exc:
                    if exc.err_code != STREAM_EXISTS:
                        raise
                    kv = await js.key_value(bucket)
            status = await kv.status()
            have = status.stream_info.config.num_replicas or 1
            if have != replicas:
                log.warning(
                    "KV bucket %s has %d replicas, the config asks for %d (left as it is)",
                    bucket,
                    have,
                    replicas,
                )
            return kv
        except (nats.errors.TimeoutError, TimeoutError, nats.errors.NoRespondersError) as exc:
            if loop.time() + delay > deadline:
                raise
            log.info("KV bucket %s not ready (%s); retrying", bucket, type(exc).__name__)
            await asyncio.sleep(delay)
            delay = min(2.0, delay * 2)


async def ensure_lease_buckets(
    js: JetStreamContext, *, replicas: int = 1
) -> tuple[KeyValue, KeyValue]:
    """``gw_leases`` and ``gw_workers``, created with ``replicas`` if missing."""
    leases = await ensure_bucket(
        js,
        LEASES_BUCKET,
        description="gridwatch camera leases: camera id -> holding worker session",
        replicas=replicas,
    )
    workers = await ensure_bucket(
        js,
        WORKERS_BUCKET,
        description="gridwatch worker sessions: heartbeat, capacity, running cameras",
        replicas=replicas,
        max_age_s=WORKERS_MAX_AGE_S,
    )
    return leases, workers


async def cas_put(
    js: JetStreamContext, bucket: str, key: str, value: bytes, last: int, *, wait_s: float
) -> int:
    """Write ``value`` if ``key`` is still at revision ``last`` (0: never written or removed
    by max-age). Returns the new revision; :class:`CasConflict` if someone wrote first. Any
    other failure (timeout, no leader) leaves the outcome unknown: the caller reads back."""
    headers = {"Nats-Expected-Last-Subject-Sequence": str(last)}
    try:
        ack = await js.publish(subject_of(bucket, key), value, timeout=wait_s, headers=headers)
    except APIError as exc:
        if exc.err_code in WRONG_LAST_SEQUENCE:
            raise CasConflict(f"{bucket}.{key} moved past revision {last}") from None
        raise
    return int(ack.seq)


async def cas_delete(
    js: JetStreamContext, bucket: str, key: str, last: int, *, wait_s: float
) -> int:
    """Put a delete marker on ``key`` if it is still at revision ``last``; its revision."""
    headers = {"KV-Operation": "DEL", "Nats-Expected-Last-Subject-Sequence": str(last)}
    try:
        ack = await js.publish(subject_of(bucket, key), b"", timeout=wait_s, headers=headers)
    except APIError as exc:
        if exc.err_code in WRONG_LAST_SEQUENCE:
            raise CasConflict(f"{bucket}.{key} moved past revision {last}") from None
        raise
    return int(ack.seq)


async def read_current(js: JetStreamContext, bucket: str, key: str, *, wait_s: float) -> Current:
    """The key's latest message from the stream leader (revision 0 when it has none)."""
    try:
        msg = await asyncio.wait_for(
            js.get_msg(stream_of(bucket), subject=subject_of(bucket, key)), wait_s
        )
    except NotFoundError:
        return Current(0, None)
    headers = msg.headers or {}
    removed = headers.get("KV-Operation") in ("DEL", "PURGE") or "Nats-Marker-Reason" in headers
    return Current(int(msg.seq or 0), None if removed else (msg.data or b""))

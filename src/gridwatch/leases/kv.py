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

from nats.js import JetStreamContext
from nats.js.errors import APIError, NotFoundError
from nats.js.kv import KeyValue

from gridwatch.bus.infra import WORKERS_MAX_AGE_S as WORKERS_MAX_AGE_S
from gridwatch.bus.infra import KVSpec, ensure_kv
from gridwatch.bus.infra import ensure_lease_buckets as ensure_lease_buckets
from gridwatch.bus.names import kv_stream, kv_subject

log = logging.getLogger(__name__)

WRONG_LAST_SEQUENCE = frozenset({10071, 10164})
STREAM_EXISTS = 10058


class CasConflict(Exception):
    """The key is no longer at the expected revision: someone else wrote it first."""


@dataclass(frozen=True)
class Current:
    """A key's latest message as the stream leader has it: ``value`` None when removed."""

    revision: int
    value: bytes | None


def stream_of(bucket: str) -> str:
    return kv_stream(bucket)


def subject_of(bucket: str, key: str) -> str:
    return kv_subject(bucket, key)


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

    Idempotent and race-safe; retried for ``within_s`` (see :func:`gridwatch.bus.infra.ensure_kv`).
    An existing bucket keeps its settings; a different replica count is only logged.
    """
    spec = KVSpec(
        bucket=bucket,
        description=description,
        replicas=replicas,
        ttl_s=max_age_s,
        on_replicas="warn",
    )
    return await ensure_kv(js, spec, within_s=within_s)


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

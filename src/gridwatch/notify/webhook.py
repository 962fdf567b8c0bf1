"""Signed webhooks: JSON POSTs to integrations (a 12345 hotline system, an IM gateway).

The receiver must be able to trust that a POST came from gridwatch and is not a replay, so
each carries ``X-Gridwatch-Signature: t=<unix time>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``
(the timestamp is signed with the body: an old request cannot be re-sent later), plus
``X-Gridwatch-Event`` and ``X-Gridwatch-Delivery``, the idempotency key, the same on every
retry of one delivery so the receiver can drop a repeat. Transient failures (network, 429,
5xx) are retried with capped, jittered exponential backoff.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import random
import time
from dataclasses import dataclass

import aiohttp

from gridwatch.notify.settings import WebhookConfig

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Gridwatch-Signature"
EVENT_HEADER = "X-Gridwatch-Event"
DELIVERY_HEADER = "X-Gridwatch-Delivery"


def sign(secret: bytes, body: bytes, ts: int | None = None) -> str:
    t = int(time.time()) if ts is None else ts
    mac = hmac.new(secret, f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify(secret: bytes, header: str, body: bytes, *, tolerance_s: float = 300.0) -> bool:
    """What a receiver does: recompute the HMAC and check the timestamp is recent."""
    try:
        parts = dict(p.split("=", 1) for p in header.split(","))
        t = int(parts["t"])
        given = parts["v1"]
    except (ValueError, KeyError):
        return False
    if abs(time.time() - t) > tolerance_s:
        return False
    want = hmac.new(secret, f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(want, given)


@dataclass(frozen=True)
class WebhookOutcome:
    ok: bool
    status: int | None
    attempts: int
    detail: str = ""


async def post_webhook(
    session: aiohttp.ClientSession,
    hook: WebhookConfig,
    event: str,
    body: bytes,
    delivery_id: str,
) -> WebhookOutcome:
    secret = hook.resolved_secret()
    status: int | None = None
    detail = ""
    for attempt in range(1, hook.max_attempts + 1):
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(secret, body),
            EVENT_HEADER: event,
            DELIVERY_HEADER: delivery_id,
        }
        try:
            async with session.post(
                hook.url, data=body, headers=headers, timeout=aiohttp.ClientTimeout(hook.timeout_s)
            ) as resp:
                status = resp.status
                detail = (await resp.text())[:200]
        except (aiohttp.ClientError, TimeoutError) as e:
            status, detail = None, f"{type(e).__name__}: {e}"
        if status is not None and 200 <= status < 300:
            return WebhookOutcome(True, status, attempt)
        if status is not None and 400 <= status < 500 and status not in (408, 429):
            break  # the receiver refuses it: retrying will not help
        if attempt < hook.max_attempts:
            delay = min(hook.backoff_max_s, hook.backoff_initial_s * 2 ** (attempt - 1))
            delay *= random.uniform(0.5, 1.0)
            log.info(
                "webhook %s: %s (%s); retry %d in %.2fs",
                hook.name,
                status,
                detail[:80],
                attempt + 1,
                delay,
            )
            await asyncio.sleep(delay)
    log.error(
        "webhook %s gave up on %s after %d attempt(s): %s %s",
        hook.name,
        delivery_id,
        attempt,
        status,
        detail[:120],
    )
    return WebhookOutcome(False, status, attempt, detail)

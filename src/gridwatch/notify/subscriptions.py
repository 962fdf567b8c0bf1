"""Web Push subscriptions, per user, in KV bucket ``gw_push_subs``.

Key ``<user>.<hash of the endpoint>``: a user can hold several (phone and tablet), one
registration per browser is idempotent (same endpoint, same key), and NATS permissions let
each person write only keys under their own name (``$KV.gw_push_subs.<user>.>``).
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

import nats.js.errors
from nats.js import JetStreamContext
from nats.js import api as js_api
from nats.js.kv import KeyValue

from gridwatch.alerts.subjects import check_token
from gridwatch.auth.subjects import PUSH_SUBS_KV

log = logging.getLogger(__name__)


def subscription_key(user: str, subscription: dict[str, Any]) -> str:
    digest = hashlib.sha256(str(subscription["endpoint"]).encode()).hexdigest()[:24]
    return f"{check_token(user, 'user')}.{digest}"


def validate_subscription(subscription: dict[str, Any]) -> dict[str, Any]:
    """The fields of a browser ``PushSubscription.toJSON()`` that pushing needs."""
    endpoint = subscription.get("endpoint")
    keys = subscription.get("keys") or {}
    if not isinstance(endpoint, str) or not endpoint.startswith(("https://", "http://")):
        raise ValueError("subscription endpoint must be an http(s) URL")
    if not keys.get("p256dh") or not keys.get("auth"):
        raise ValueError("subscription needs keys.p256dh and keys.auth")
    return {"endpoint": endpoint, "keys": {"p256dh": keys["p256dh"], "auth": keys["auth"]}}


async def ensure_push_bucket(js: JetStreamContext) -> KeyValue:
    try:
        return await js.key_value(PUSH_SUBS_KV)
    except nats.js.errors.BucketNotFoundError:
        return await js.create_key_value(
            js_api.KeyValueConfig(
                bucket=PUSH_SUBS_KV,
                description="gridwatch Web Push subscriptions, <user>.<endpoint hash>",
                history=1,
                storage=js_api.StorageType.FILE,
            )
        )


async def register_subscription(
    js: JetStreamContext, user: str, subscription: dict[str, Any]
) -> str:
    """Store ``subscription`` for ``user`` (as that user, or as a service); return its key."""
    sub = validate_subscription(subscription)
    kv = await js.key_value(PUSH_SUBS_KV)
    key = subscription_key(user, sub)
    await kv.put(key, json.dumps({"user": user, **sub}).encode())
    return key

"""Web Push subscriptions, per user, in KV bucket ``gw_push_subs``.

Key ``<user>.<hash of the endpoint>``: a user can hold several (phone and tablet), one
registration per browser is idempotent (same endpoint, same key), and NATS permissions let
each person write only keys under their own name (``$KV.gw_push_subs.<user>.>``).

An endpoint is a URL the notifier will POST to, so it is checked as untrusted input (a blind
SSRF otherwise): https only, a host that is not (and does not resolve to) a loopback, private,
link-local, multicast or reserved address, IPv6 and IPv4-mapped forms included. Only origins
listed in ``notify.push_allow_endpoints`` (a local push service in tests and demos) skip
that. A name that does not resolve when it is registered is kept: the notifier connects only
through a resolver that refuses non-public addresses (:mod:`.webpush`), so a name that later
resolves inward is refused at that point. Each user holds at most
``notify.push_max_subscriptions`` subscriptions; a new one beyond that replaces their oldest.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import json
import logging
import socket
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from gridwatch.alerts.subjects import check_token
from gridwatch.auth.subjects import PUSH_SUBS_KV
from gridwatch.bus.infra import DEFAULT_SUBSCRIPTION_TTL_S as DEFAULT_SUBSCRIPTION_TTL_S
from gridwatch.bus.infra import ensure_push_bucket as ensure_push_bucket

log = logging.getLogger(__name__)


def subscription_key(user: str, subscription: dict[str, Any]) -> str:
    digest = hashlib.sha256(str(subscription["endpoint"]).encode()).hexdigest()[:24]
    return f"{check_token(user, 'user')}.{digest}"


MAX_ENDPOINT_LEN = 2048
MAX_KEY_LEN = 256
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def validate_subscription(subscription: Any) -> dict[str, Any]:
    """The fields of a browser ``PushSubscription.toJSON()`` that pushing needs; ValueError
    for anything else (not an object, no http(s) endpoint, ``keys`` not an object with the
    ``p256dh`` and ``auth`` strings). Where the endpoint may point is :func:`check_endpoint`'s.
    """
    if not isinstance(subscription, dict):
        raise ValueError("a subscription is a JSON object")
    endpoint = subscription.get("endpoint")
    keys = subscription.get("keys")
    if (
        not isinstance(endpoint, str)
        or not endpoint.startswith(("https://", "http://"))
        or len(endpoint) > MAX_ENDPOINT_LEN
    ):
        raise ValueError("subscription endpoint must be an http(s) URL")
    if not isinstance(keys, dict):
        raise ValueError("subscription keys must be an object with p256dh and auth")
    p256dh, auth = keys.get("p256dh"), keys.get("auth")
    for name, value in (("p256dh", p256dh), ("auth", auth)):
        if not isinstance(value, str) or not value or len(value) > MAX_KEY_LEN:
            raise ValueError(f"subscription needs keys.{name} (a string)")
    return {"endpoint": endpoint, "keys": {"p256dh": p256dh, "auth": auth}}


def is_public_address(ip: IPAddress) -> bool:
    """Whether ``ip`` is a public unicast address (not loopback, private, link-local,
    multicast, reserved or unspecified), looking through IPv4-mapped, NAT64, 6to4 and Teredo
    IPv6 forms at the IPv4 address inside.

    >>> [is_public_address(ipaddress.ip_address(a)) for a in (
    ...     "93.184.215.14", "127.0.0.1", "10.1.2.3", "169.254.169.254", "::1",
    ...     "::ffff:127.0.0.1", "fe80::1", "fd00::1", "224.0.0.1", "2606:4700::1111")]
    [True, False, False, False, False, False, False, False, False, True]
    """
    if isinstance(ip, ipaddress.IPv6Address):
        inner: ipaddress.IPv4Address | None = ip.ipv4_mapped or ip.sixtofour
        if inner is None and ip.teredo is not None:
            inner = ip.teredo[1]
        if inner is None and ip in _NAT64:
            inner = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if inner is not None:
            return is_public_address(inner)
    if (
        ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    ):
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local:
        return False
    return ip.is_global


def endpoint_allowed(endpoint: str, allow: Iterable[str]) -> bool:
    """Whether ``endpoint`` is on one of the ``allow`` origins (``scheme://host[:port]``; an
    origin without a port allows every port of that host)."""
    try:
        u = urlsplit(endpoint)
        port = u.port
    except ValueError:
        return False
    for origin in allow:
        a = urlsplit(origin)
        if (a.scheme, a.hostname) == (u.scheme, u.hostname) and a.port in (None, port):
            return True
    return False


def check_endpoint_url(endpoint: str, allow: Iterable[str] = ()) -> str:
    """``endpoint``'s host name if it may be pushed to, before any name is resolved: an
    allowed origin, or https with a host that is a public address or a name (not
    ``localhost``); ValueError otherwise."""
    try:
        u = urlsplit(endpoint)
        u.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ValueError("the push endpoint is not a valid URL") from None
    host = u.hostname or ""
    if endpoint_allowed(endpoint, allow):
        return host
    if u.scheme != "https":
        raise ValueError("the push endpoint must be https")
    if not host or u.username is not None or u.password is not None:
        raise ValueError("the push endpoint must name a host (and no user)")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        name = host.rstrip(".").lower()
        if name == "localhost" or name.endswith((".localhost", ".local")) or "." not in name:
            raise ValueError("the push endpoint must be a public host") from None
        return host
    if not is_public_address(ip):
        raise ValueError("the push endpoint must be a public address")
    return host


async def check_endpoint(
    endpoint: str, allow: Iterable[str] = (), *, resolve_timeout_s: float = 2.0
) -> None:
    """:func:`check_endpoint_url`, then the name resolved: ValueError when it resolves to
    any address that is not public. A name that does not resolve now is let through (the
    notifier's resolver checks again when it connects)."""
    allow = list(allow)
    host = check_endpoint_url(endpoint, allow)
    if endpoint_allowed(endpoint, allow):
        return
    try:
        ipaddress.ip_address(host)
        return  # a literal address, checked above
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, 443, type=socket.SOCK_STREAM), resolve_timeout_s
        )
    except (OSError, TimeoutError) as e:
        log.info("push endpoint host %s does not resolve now (%s); kept", host, e)
        return
    for info in infos:
        addr = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if not is_public_address(addr):
            raise ValueError("the push endpoint's host resolves to a non-public address")


async def user_subscription_keys(kv: KeyValue, user: str) -> list[str]:
    """The keys of ``user``'s stored subscriptions, oldest (least recently stored) first."""
    watcher = await kv.watch(f"{check_token(user, 'user')}.>", ignore_deletes=True, meta_only=True)
    found: list[tuple[int, str]] = []
    try:
        async for entry in watcher:
            if entry is None:
                break
            if entry.operation is None:  # a put (deletes and purges are skipped)
                found.append((entry.revision or 0, entry.key))
    finally:
        await watcher.stop()  # type: ignore[no-untyped-call]
    return [k for _, k in sorted(found)]


async def register_subscription(
    js: JetStreamContext,
    user: str,
    subscription: dict[str, Any],
    *,
    max_per_user: int | None = None,
) -> str:
    """Store ``subscription`` for ``user`` (as that user, or as a service); return its key.
    With ``max_per_user``, the user's oldest subscriptions are removed to make room."""
    sub = validate_subscription(subscription)
    key = subscription_key(user, sub)
    if max_per_user is None:
        # a person may only put their own keys (no stream info, no watch): put directly
        kv = KeyValue(
            name=PUSH_SUBS_KV,
            stream=f"KV_{PUSH_SUBS_KV}",
            pre=f"$KV.{PUSH_SUBS_KV}.",
            js=js,
            direct=False,
        )
    else:
        kv = await js.key_value(PUSH_SUBS_KV)
    if max_per_user is not None:
        others = [k for k in await user_subscription_keys(kv, user) if k != key]
        for old in others[: max(0, len(others) - (max_per_user - 1))]:
            log.info("push subscription %s of %s replaced (at most %d)", old, user, max_per_user)
            await kv.delete(old)
    await kv.put(key, json.dumps({"user": user, **sub}).encode())
    return key

"""Web Push (RFC 8030) with VAPID (RFC 8292) and aes128gcm payload encryption (RFC 8291).

The push service (FCM, Mozilla, Apple, or a local one in tests) stores and forwards; the
payload is encrypted for the phone's browser, so the push service never reads the alert. The
encryption and the VAPID signature are pywebpush's; this module adds what a dispatch service
needs around it: one key pair per deployment (``gridwatch keys vapid``), a signature cached per
push-service origin, the ``Topic`` header (a push for the same alert replaces an undelivered
earlier one at the push service), ``Urgency`` by severity, retries on 429/5xx, and a clear
"gone" result for subscriptions the browser has dropped (404/410), so they can be removed.

Endpoints come from browsers, so pushing is guarded against server-side request forgery: an
endpoint must pass :func:`~gridwatch.notify.subscriptions.check_endpoint_url` (https, no
literal non-public address) unless its origin is allowed by config, the session made by
:func:`push_session` connects only to public addresses (:class:`PublicResolver` checks what a
name resolves to at connection time, so a name that later resolves inward is refused), and
redirects are never followed (a 3xx is a failure). At most 200 bytes of an answer are read.
"""

from __future__ import annotations

import asyncio
import base64
import enum
import ipaddress
import logging
import random
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02
from pywebpush import WebPusher

from gridwatch.notify.subscriptions import check_endpoint_url, is_public_address

log = logging.getLogger(__name__)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class VapidKey:
    """The deployment's VAPID key pair (ECDSA P-256)."""

    private_key: ec.EllipticCurvePrivateKey

    @classmethod
    def generate(cls) -> VapidKey:
        return cls(ec.generate_private_key(ec.SECP256R1()))

    @classmethod
    def load(cls, path: str | Path) -> VapidKey:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{path}: not an EC private key")
        return cls(key)

    def save(self, path: str | Path) -> Path:
        p = Path(path)
        pem = self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(p.name + ".tmp")
        tmp.write_bytes(pem)
        tmp.chmod(0o600)
        tmp.replace(p)
        return p

    @property
    def application_server_key(self) -> str:
        """The public key, base64url uncompressed point: what the PWA passes to
        ``pushManager.subscribe({applicationServerKey})``."""
        raw = self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return b64url(raw)


class RefusedAddress(OSError):
    """A push endpoint's host resolved to an address pushes may not go to."""


class PublicResolver(AbstractResolver):
    """Resolves like aiohttp's default resolver, but refuses a name with any non-public
    address (loopback, private, link-local, multicast, reserved; IPv4-mapped included),
    except the ``allow_hosts`` (the hosts of ``notify.push_allow_endpoints``)."""

    def __init__(self, allow_hosts: Iterable[str] = ()) -> None:
        self._inner = DefaultResolver()
        self._allow = {h.lower() for h in allow_hosts}

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if host.lower() in self._allow:
            return results
        for r in results:
            if not is_public_address(ipaddress.ip_address(r["host"].split("%", 1)[0])):
                raise RefusedAddress(f"{host} resolves to a non-public address")
        return results

    async def close(self) -> None:
        await self._inner.close()


def push_session(allow_endpoints: Iterable[str] = ()) -> aiohttp.ClientSession:
    """An HTTP session for pushes that connects to public addresses only (and the hosts of
    ``allow_endpoints``)."""
    hosts = [urlparse(o).hostname or "" for o in allow_endpoints]
    connector = aiohttp.TCPConnector(resolver=PublicResolver(hosts), limit=64)
    return aiohttp.ClientSession(connector=connector)


class PushResult(enum.Enum):
    DELIVERED = "delivered"
    GONE = "gone"
    """The subscription no longer exists (404/410): remove it."""
    FAILED = "failed"


@dataclass(frozen=True)
class PushOutcome:
    result: PushResult
    status: int | None
    attempts: int
    detail: str = ""


class WebPushSender:
    """Sends encrypted, VAPID-signed pushes over one aiohttp session."""

    def __init__(
        self,
        key: VapidKey,
        *,
        subject: str,
        session: aiohttp.ClientSession,
        timeout_s: float = 5.0,
        max_attempts: int = 4,
        backoff_initial_s: float = 0.25,
        allow_endpoints: Iterable[str] = (),
    ) -> None:
        self.key = key
        self.allow_endpoints = list(allow_endpoints)
        self.subject = subject
        self.session = session
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        self.backoff_initial_s = backoff_initial_s
        self._vapid = Vapid02(private_key=key.private_key)
        self._signed: dict[str, tuple[float, dict[str, str]]] = {}

    def vapid_headers(self, endpoint: str) -> dict[str, str]:
        """``Authorization: vapid t=<JWT>,k=<key>`` for the endpoint's origin, re-signed when
        less than an hour of its 12 h validity is left (signing costs ~1 ms: not per push)."""
        u = urlparse(endpoint)
        aud = f"{u.scheme}://{u.netloc}"
        now = time.time()
        cached = self._signed.get(aud)
        if cached is not None and cached[0] - now > 3600:
            return cached[1]
        exp = int(now) + 12 * 3600
        headers: dict[str, str] = self._vapid.sign({"aud": aud, "exp": exp, "sub": self.subject})
        self._signed[aud] = (float(exp), headers)
        return headers

    async def send(
        self,
        subscription: dict[str, Any],
        payload: bytes,
        *,
        ttl_s: int = 300,
        topic: str | None = None,
        urgency: str = "normal",
    ) -> PushOutcome:
        """Encrypt ``payload`` for ``subscription`` (``{endpoint, keys: {p256dh, auth}}``) and
        POST it, retrying 429/5xx and network errors with jittered backoff. An endpoint pushes
        may not go to fails at once (no request, no retry); a redirect is not followed."""
        endpoint = str(subscription["endpoint"])
        try:
            check_endpoint_url(endpoint, self.allow_endpoints)
        except ValueError as e:
            log.warning("push to %s refused: %s", urlparse(endpoint).netloc[:80], e)
            return PushOutcome(PushResult.FAILED, None, 0, f"refused: {e}")
        pusher = WebPusher(subscription, aiohttp_session=self.session)
        status: int | None = None
        detail = ""
        for attempt in range(1, self.max_attempts + 1):
            headers = {**self.vapid_headers(endpoint), "Urgency": urgency}
            if topic:
                headers["Topic"] = topic
            try:
                # pywebpush encrypts and builds the headers; the POST is ours, so that it
                # never follows a redirect and reads a bounded answer
                params = pusher._prepare_send_data(
                    payload, headers, ttl=ttl_s, content_encoding="aes128gcm"
                )
                async with self.session.post(
                    endpoint,
                    data=params["data"],
                    headers=params["headers"],
                    timeout=aiohttp.ClientTimeout(total=self.timeout_s),
                    allow_redirects=False,
                ) as resp:
                    status = resp.status
                    detail = (await resp.content.read(200)).decode("utf-8", "replace")
            except aiohttp.ClientConnectorError as e:
                if isinstance(e.os_error, RefusedAddress):
                    log.warning("push to %s refused: %s", urlparse(endpoint).netloc, e.os_error)
                    return PushOutcome(PushResult.FAILED, None, attempt, f"refused: {e.os_error}")
                status, detail = None, f"{type(e).__name__}: {e}"
            except (aiohttp.ClientError, TimeoutError) as e:
                status, detail = None, f"{type(e).__name__}: {e}"
            if status is not None and 200 <= status < 300:
                return PushOutcome(PushResult.DELIVERED, status, attempt)
            if status in (404, 410):
                return PushOutcome(PushResult.GONE, status, attempt, detail)
            if status is not None and status < 500 and status != 429:
                return PushOutcome(PushResult.FAILED, status, attempt, detail)
            if attempt < self.max_attempts:
                delay = self.backoff_initial_s * 2 ** (attempt - 1) * random.uniform(0.5, 1.0)
                log.info(
                    "push to %s: %s (%s); retry in %.2fs",
                    urlparse(endpoint).netloc,
                    status,
                    detail[:80],
                    delay,
                )
                await asyncio.sleep(delay)
        return PushOutcome(PushResult.FAILED, status, self.max_attempts, detail)

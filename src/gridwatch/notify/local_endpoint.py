"""A local Web Push service that decrypts like a browser, and a local webhook receiver.

For tests, the latency bench and demos on a machine without Internet: pushes are checked the
way the real parties check them, with code independent of the sender's library:

* :class:`LocalPushService` plays the push service *and* the subscribed browser. It hands out
  subscriptions (an endpoint URL plus the browser's P-256 public key and auth secret), accepts
  POSTs only with a valid VAPID JWT (ES256 signed by the application server key the
  subscription was made with, ``aud`` = the endpoint's origin, ``exp`` in the next 24 h, a
  ``sub`` contact) and decrypts the aes128gcm body per RFC 8291 / RFC 8188 with the browser's
  private key, as the browser would. It can fail requests on purpose (503, 410) to test
  retries and expired subscriptions.
* :class:`WebhookReceiver` checks ``X-Gridwatch-Signature`` (HMAC-SHA256) and records what
  arrived, optionally failing the first requests.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import struct
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF, HKDFExpand
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from gridwatch.notify.webhook import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, verify
from gridwatch.notify.webpush import b64url, b64url_decode


class PushRejected(Exception):
    """What the push service answers 4xx for."""


def _p256_public(raw: bytes) -> ec.EllipticCurvePublicKey:
    return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)


def decrypt_aes128gcm(
    body: bytes, ua_private: ec.EllipticCurvePrivateKey, auth_secret: bytes
) -> bytes:
    """RFC 8291 §3.4 / RFC 8188 decryption of a Web Push message, as a user agent does it."""
    if len(body) < 21:
        raise PushRejected("body too short for an aes128gcm header")
    salt, rs, idlen = body[:16], struct.unpack("!I", body[16:20])[0], body[20]
    as_public_raw = body[21 : 21 + idlen]
    if idlen != 65 or rs < 18:
        raise PushRejected(f"bad aes128gcm header (idlen {idlen}, rs {rs})")
    ua_public_raw = ua_private.public_key().public_bytes(
        Encoding.X962, PublicFormat.UncompressedPoint
    )
    ecdh_secret = ua_private.exchange(ec.ECDH(), _p256_public(as_public_raw))
    key_info = b"WebPush: info\x00" + ua_public_raw + as_public_raw
    ikm = HKDF(hashes.SHA256(), 32, salt=auth_secret, info=key_info).derive(ecdh_secret)
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()  # HKDF-Extract
    cek = HKDFExpand(hashes.SHA256(), 16, info=b"Content-Encoding: aes128gcm\x00").derive(prk)
    base_nonce = HKDFExpand(hashes.SHA256(), 12, info=b"Content-Encoding: nonce\x00").derive(prk)
    data = body[21 + idlen :]
    out = b""
    aes = AESGCM(cek)
    records = [data[i : i + rs] for i in range(0, len(data), rs)]
    for seq, record in enumerate(records):
        nonce = (int.from_bytes(base_nonce, "big") ^ seq).to_bytes(12, "big")
        try:
            plain = aes.decrypt(nonce, record, None)
        except InvalidTag as e:
            raise PushRejected("aes128gcm decryption failed") from e
        stripped = plain.rstrip(b"\x00")
        last = seq == len(records) - 1
        delimiter = stripped[-1:] if stripped else b""
        if delimiter != (b"\x02" if last else b"\x01"):
            raise PushRejected("bad record padding delimiter")
        out += stripped[:-1]
    return out


def verify_vapid(authorization: str, *, audience: str, expected_key: str | None) -> dict[str, Any]:
    """Check ``Authorization: vapid t=<jwt>, k=<key>`` (RFC 8292); return the JWT claims."""
    scheme, _, params = authorization.partition(" ")
    if scheme.lower() != "vapid":
        raise PushRejected(f"authorization scheme {scheme!r} is not vapid")
    parts = dict(p.strip().split("=", 1) for p in params.split(",") if "=" in p)
    token, key = parts.get("t", ""), parts.get("k", "")
    if expected_key is not None and key != expected_key:
        raise PushRejected("VAPID key differs from the subscription's applicationServerKey")
    try:
        header_b64, claims_b64, sig_b64 = token.split(".")
        header = json.loads(b64url_decode(header_b64))
        claims: dict[str, Any] = json.loads(b64url_decode(claims_b64))
        sig = b64url_decode(sig_b64)
    except ValueError as e:
        raise PushRejected("malformed VAPID JWT") from e
    if header.get("alg") != "ES256" or len(sig) != 64:
        raise PushRejected("VAPID JWT must be ES256")
    der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
    try:
        _p256_public(b64url_decode(key)).verify(
            der, f"{header_b64}.{claims_b64}".encode(), ec.ECDSA(hashes.SHA256())
        )
    except (InvalidSignature, ValueError) as e:
        raise PushRejected("VAPID signature does not verify") from e
    now = time.time()
    if claims.get("aud") != audience:
        raise PushRejected(f"VAPID aud {claims.get('aud')!r} is not {audience!r}")
    if not now < float(claims.get("exp", 0)) <= now + 24 * 3600:
        raise PushRejected("VAPID exp is not within the next 24 hours")
    if not str(claims.get("sub", "")).startswith(("mailto:", "https:")):
        raise PushRejected("VAPID sub must be a mailto: or https: contact")
    return claims


@dataclass
class ReceivedPush:
    subscription_id: str
    payload: dict[str, Any]
    received_at: float
    topic: str | None
    urgency: str | None
    ttl: str | None
    claims: dict[str, Any]


@dataclass
class _Browser:
    private_key: ec.EllipticCurvePrivateKey
    auth: bytes
    application_server_key: str | None
    gone: bool = False


@dataclass
class LocalPushService:
    """See the module docstring. ``async with LocalPushService() as push: ...``."""

    host: str = "127.0.0.1"
    fail_next: int = 0
    """Answer this many of the next pushes with 503 (then count down)."""
    received: list[ReceivedPush] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    _browsers: dict[str, _Browser] = field(default_factory=dict)
    _runner: web.AppRunner | None = None
    port: int = 0

    @property
    def origin(self) -> str:
        return f"http://{self.host}:{self.port}"

    def subscribe(self, application_server_key: str | None = None) -> dict[str, Any]:
        """A new browser subscription, shaped like ``PushSubscription.toJSON()``."""
        sid = b64url(os.urandom(12))
        key = ec.generate_private_key(ec.SECP256R1())
        auth = os.urandom(16)
        self._browsers[sid] = _Browser(key, auth, application_server_key)
        public = key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        return {
            "endpoint": f"{self.origin}/push/{sid}",
            "keys": {"p256dh": b64url(public), "auth": b64url(auth)},
        }

    def expire(self, subscription: dict[str, Any]) -> None:
        """The browser dropped this subscription: further pushes get 410 Gone."""
        self._browsers[str(subscription["endpoint"]).rsplit("/", 1)[1]].gone = True

    async def _handle(self, request: web.Request) -> web.Response:
        sid = request.match_info["sid"]
        browser = self._browsers.get(sid)
        if browser is None or browser.gone:
            return web.Response(status=410, text="subscription expired")
        if self.fail_next > 0:
            self.fail_next -= 1
            return web.Response(status=503, text="try later")
        body = await request.read()
        try:
            if request.headers.get("Content-Encoding") != "aes128gcm":
                raise PushRejected("Content-Encoding must be aes128gcm")
            if "TTL" not in request.headers:
                raise PushRejected("TTL header is required")
            claims = verify_vapid(
                request.headers.get("Authorization", ""),
                audience=self.origin,
                expected_key=browser.application_server_key,
            )
            plain = decrypt_aes128gcm(body, browser.private_key, browser.auth)
            payload = json.loads(plain)
        except (PushRejected, ValueError) as e:
            self.rejected.append(str(e))
            return web.Response(status=400 if not isinstance(e, PushRejected) else 403, text=str(e))
        self.received.append(
            ReceivedPush(
                sid,
                payload,
                time.time(),
                request.headers.get("Topic"),
                request.headers.get("Urgency"),
                request.headers.get("TTL"),
                claims,
            )
        )
        return web.Response(status=201)

    async def start(self) -> LocalPushService:
        app = web.Application()
        app.router.add_post("/push/{sid}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = int(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            with contextlib.suppress(Exception):
                await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> LocalPushService:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


@dataclass
class ReceivedWebhook:
    event: str
    delivery: str
    body: dict[str, Any]
    received_at: float


@dataclass
class WebhookReceiver:
    """A webhook endpoint that accepts only correctly signed requests."""

    secret: bytes
    host: str = "127.0.0.1"
    fail_next: int = 0
    received: list[ReceivedWebhook] = field(default_factory=list)
    bad_signatures: int = 0
    attempts: int = 0
    _runner: web.AppRunner | None = None
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/hook"

    async def _handle(self, request: web.Request) -> web.Response:
        self.attempts += 1
        body = await request.read()
        if not verify(self.secret, request.headers.get(SIGNATURE_HEADER, ""), body):
            self.bad_signatures += 1
            return web.Response(status=401, text="bad signature")
        if self.fail_next > 0:
            self.fail_next -= 1
            return web.Response(status=500, text="temporary failure")
        self.received.append(
            ReceivedWebhook(
                request.headers.get(EVENT_HEADER, ""),
                request.headers.get(DELIVERY_HEADER, ""),
                json.loads(body),
                time.time(),
            )
        )
        return web.Response(status=204)

    async def __aenter__(self) -> WebhookReceiver:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = int(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            with contextlib.suppress(Exception):
                await self._runner.cleanup()
            self._runner = None

"""Registration with the superior platform, as a lower platform: REGISTER with MD5 digest,
refresh, keepalive, back-off, un-register.

The state machine (:class:`RegState`)::

    unregistered ──► registering ──► registered ──► refreshing ──► registered ...
         ▲               │  (fail: back-off)            │ (fail, or keepalives unanswered)
         └───────────────┴──────────────────────────────┘

* REGISTER carries our 20-digit id as user and digest username; a 401/407 is answered once
  (again only for ``stale=true``: the nonce expired); a second challenge otherwise means the
  password is wrong: back off instead of hammering the platform.
* The refresh goes at 80 % of the *granted* expiry (the 200's Contact ``expires`` or
  ``Expires``), with the same Call-ID and the next CSeq, as RFC 3261 §10.2.4 asks; the last
  challenge is answered pre-emptively so a refresh usually needs one round trip.
* Keepalive MESSAGEs go every ``keepalive_s``; after ``keepalive_timeout_count`` unanswered
  in a row the registration is taken as lost (the platform restarted, say) and is done again
  from scratch, with a new Call-ID.
* Failures back off exponentially (base × 2ⁿ, capped, with jitter so that a city's lower
  platforms do not all come back in the same second after the superior restarts).
* :meth:`Registration.stop` un-registers (``Expires: 0``) with a short timeout.

>>> backoff_s(0, base_s=1.0, cap_s=60.0, jitter=0.0), backoff_s(10, base_s=1.0, cap_s=60.0,
...     jitter=0.0)
(1.0, 60.0)
>>> granted_expires("<sip:a@b:5060>;expires=120", "3600", asked=3600)
120
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from gridwatch.gb28181.digest import Challenge, DigestError, authorization, parse_challenge
from gridwatch.gb28181.sip import SipMessage, build_request, new_call_id, new_tag
from gridwatch.gb28181.transport import SipEndpoint, SipTimeout, SipTransportError

log = logging.getLogger(__name__)

MANSCDP_TYPE = "Application/MANSCDP+xml"
_EXPIRES_RE = re.compile(r";\s*expires\s*=\s*(\d+)", re.IGNORECASE)


class RegState(StrEnum):
    UNREGISTERED = "unregistered"
    REGISTERING = "registering"
    REGISTERED = "registered"
    REFRESHING = "refreshing"


def backoff_s(failures: int, *, base_s: float, cap_s: float, jitter: float = 0.5) -> float:
    """Delay before retry number ``failures`` (0-based): ``base × 2ⁿ`` capped, minus up to
    ``jitter`` of it at random."""
    delay: float = min(cap_s, base_s * (2 ** min(failures, 30)))
    return delay * (1.0 - jitter * random.random())


def granted_expires(contact: str | None, expires: str | None, *, asked: int) -> int:
    """The expiry the registrar granted: our Contact's ``expires`` parameter, else the
    ``Expires`` header, else what we asked for."""
    if contact:
        m = _EXPIRES_RE.search(contact)
        if m:
            return int(m.group(1))
    if expires and expires.strip().isdigit():
        return int(expires.strip())
    return asked


@dataclass(frozen=True, slots=True)
class Identity:
    """Who we are and who the superior is, as SIP URIs need them."""

    device_id: str
    password: str
    superior_id: str
    superior_domain: str
    transport: Literal["udp", "tcp"]
    local_host: str
    """The address the superior reaches us at (Via, Contact)."""
    version: str = "2016"

    @property
    def our_uri(self) -> str:
        return f"sip:{self.device_id}@{self.superior_domain}"

    @property
    def superior_uri(self) -> str:
        return f"sip:{self.superior_id}@{self.superior_domain}"

    def extra_headers(self) -> tuple[tuple[str, str], ...]:
        """GB/T 28181-2022 platforms expect ``X-GB-ver: 3.0`` (2016: none)."""
        return (("X-GB-ver", "3.0"),) if self.version == "2022" else ()


@dataclass(slots=True)
class RegistrationStatus:
    """What ``gridwatch status`` and the metrics show."""

    state: RegState = RegState.UNREGISTERED
    registered_since: float | None = None
    granted_expires_s: int | None = None
    registrations: int = 0
    refreshes: int = 0
    failures: int = 0
    last_error: str = ""
    last_keepalive_ok: float | None = None
    keepalives_sent: int = 0
    keepalives_unanswered: int = 0
    lost: int = 0
    call_id: str = ""
    cseqs: list[int] = field(default_factory=list)
    """CSeq of the last REGISTERs sent (at most 8): the refresh contract, visible to tests."""


class Registration:
    """Keeps us registered with the superior over ``endpoint`` until :meth:`stop`."""

    def __init__(
        self,
        endpoint: SipEndpoint,
        identity: Identity,
        *,
        expires_s: int = 3600,
        keepalive_s: float = 60.0,
        keepalive_timeout_count: int = 3,
        backoff_base_s: float = 1.0,
        backoff_cap_s: float = 60.0,
        keepalive_body: Callable[[int], bytes] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.endpoint = endpoint
        self.identity = identity
        self.expires_s = expires_s
        self.keepalive_s = keepalive_s
        self.keepalive_timeout_count = keepalive_timeout_count
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self.keepalive_body = keepalive_body
        self.clock = clock
        self.status = RegistrationStatus()
        self.registered = asyncio.Event()
        """Set while registered (refreshing included): alarms may go."""
        self._call_id = ""
        self._from_tag = ""
        self._cseq = 0
        self._challenge: Challenge | None = None
        self._auth_header = "Authorization"
        self._nc = 0
        self._sn = 0
        self._lost = asyncio.Event()

    # -- requests ----------------------------------------------------------------------------

    def next_sn(self) -> int:
        """The next MANSCDP ``SN`` (shared by keepalives, alarms and answers)."""
        self._sn += 1
        return self._sn

    def message(self, body: bytes, *, call_id: str | None = None) -> SipMessage:
        """A MESSAGE to the superior carrying a MANSCDP body (its own Call-ID)."""
        i = self.identity
        return build_request(
            "MESSAGE",
            i.superior_uri,
            from_uri=i.our_uri,
            from_tag=new_tag(),
            to_uri=i.superior_uri,
            call_id=call_id or new_call_id(i.local_host),
            cseq=1,
            via_host=i.local_host,
            via_port=self.endpoint.via_port,
            transport=i.transport,
            body=body,
            content_type=MANSCDP_TYPE,
            extra=i.extra_headers(),
        )

    def _register_request(self, expires: int) -> SipMessage:
        i = self.identity
        self._cseq += 1
        extra = list(i.extra_headers())
        if self._challenge is not None:
            self._nc += 1
            extra.append(
                (
                    self._auth_header,
                    authorization(
                        self._challenge,
                        method="REGISTER",
                        uri=i.superior_uri,
                        username=i.device_id,
                        password=i.password,
                        nc=self._nc,
                    ),
                )
            )
        req = build_request(
            "REGISTER",
            i.superior_uri,
            from_uri=i.our_uri,
            from_tag=self._from_tag,
            to_uri=i.our_uri,
            call_id=self._call_id,
            cseq=self._cseq,
            via_host=i.local_host,
            via_port=self.endpoint.via_port,
            transport=i.transport,
            contact=f"sip:{i.device_id}@{i.local_host}:{self.endpoint.via_port}",
            expires=expires,
            extra=extra,
        )
        self.status.cseqs = [*self.status.cseqs[-7:], self._cseq]
        return req

    async def _register_once(self, expires: int, timeout_s: float | None = None) -> SipMessage:
        """REGISTER (answering at most one challenge per nonce); the final response."""
        tried: set[str] = set()
        answered = 0
        while True:
            await self.endpoint.connect()
            resp = await self.endpoint.request(self._register_request(expires), timeout_s=timeout_s)
            if resp.status not in (401, 407):
                return resp
            name = "WWW-Authenticate" if resp.status == 401 else "Proxy-Authenticate"
            raw = resp.headers.get(name)
            if raw is None:
                return resp
            try:
                challenge = parse_challenge(raw)
            except DigestError as e:
                self.status.last_error = str(e)
                return resp
            if challenge.nonce in tried or (answered and not challenge.stale) or answered > 2:
                # challenged again after our answer (a new nonce without stale=true, as
                # Kamailio does, or the same one): the password is wrong, back off
                return resp
            tried.add(challenge.nonce)
            answered += 1
            self._challenge, self._nc = challenge, 0
            self._auth_header = "Authorization" if resp.status == 401 else "Proxy-Authorization"

    def _fresh_dialog(self) -> None:
        self._call_id = new_call_id(self.identity.local_host)
        self._from_tag = new_tag()
        self._cseq = 0
        self._challenge = None
        self.status.call_id = self._call_id

    # -- the loop ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Register, keep alive, refresh, re-register: until cancelled."""
        failures = 0
        self._fresh_dialog()
        while True:
            refreshing = self.status.state is RegState.REGISTERED
            self.status.state = RegState.REFRESHING if refreshing else RegState.REGISTERING
            granted = await self._attempt()
            if granted is None:
                self._set_unregistered()
                delay = backoff_s(failures, base_s=self.backoff_base_s, cap_s=self.backoff_cap_s)
                failures += 1
                log.info(
                    "registration failed (%s); retrying in %.1f s", self.status.last_error, delay
                )
                await asyncio.sleep(delay)
                continue
            failures = 0
            if refreshing:
                self.status.refreshes += 1
            else:
                self.status.registrations += 1
                self.status.registered_since = self.clock()
                log.info("registered with %s for %d s", self.identity.superior_uri, granted)
            self.status.state = RegState.REGISTERED
            self.status.granted_expires_s = granted
            self.registered.set()
            if not await self._keep_alive_for(0.8 * granted):
                self.status.lost += 1
                log.warning(
                    "registration lost: %d keepalives unanswered", self.keepalive_timeout_count
                )
                self._set_unregistered()
                self._fresh_dialog()

    async def _attempt(self) -> int | None:
        """One REGISTER exchange: the granted expiry, or None (reason in ``last_error``)."""
        try:
            resp = await self._register_once(self.expires_s)
        except (SipTimeout, SipTransportError) as e:
            self.status.failures += 1
            self.status.last_error = f"{type(e).__name__}: {e}"
            return None
        if resp.status is None or not 200 <= resp.status < 300:
            self.status.failures += 1
            self.status.last_error = f"{resp.status} {resp.reason}"
            if resp.status in (401, 403, 407):
                self._challenge = None  # start the next attempt without stale credentials
            return None
        return max(
            1,
            granted_expires(
                resp.headers.get("contact"), resp.headers.get("expires"), asked=self.expires_s
            ),
        )

    def _set_unregistered(self) -> None:
        self.status.state = RegState.UNREGISTERED
        self.status.registered_since = None
        self.registered.clear()

    def report_lost(self) -> None:
        """Somebody else saw that the superior no longer knows us (e.g. it answered an alarm
        with 403/404 "not registered"): re-register at once."""
        self._lost.set()

    async def _keep_alive_for(self, seconds: float) -> bool:
        """Send keepalives until ``seconds`` pass (True) or the registration is lost (False)."""
        end = time.monotonic() + seconds
        unanswered = 0
        self._lost.clear()
        next_ka = time.monotonic() + (self.keepalive_s if self.keepalive_body else seconds)
        while True:
            now = time.monotonic()
            wake = min(end, next_ka)
            if wake > now:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._lost.wait(), wake - now)
            if self._lost.is_set():
                return False
            if time.monotonic() >= end:
                return True
            if self.keepalive_body is None:
                continue
            next_ka = time.monotonic() + self.keepalive_s
            if await self._keepalive():
                unanswered = 0
            else:
                unanswered += 1
                self.status.keepalives_unanswered += 1
                if unanswered >= self.keepalive_timeout_count:
                    return False

    async def _keepalive(self) -> bool:
        assert self.keepalive_body is not None
        self.status.keepalives_sent += 1
        try:
            await self.endpoint.connect()
            req = self.message(self.keepalive_body(self.next_sn()))
            resp = await self.endpoint.request(
                req, timeout_s=min(self.endpoint.timeout_s, self.keepalive_s)
            )
        except (SipTimeout, SipTransportError) as e:
            log.debug("keepalive unanswered: %s", e)
            return False
        if resp.status is not None and 200 <= resp.status < 300:
            self.status.last_keepalive_ok = self.clock()
            return True
        log.info("keepalive answered %s %s", resp.status, resp.reason)
        return False

    async def stop(self, timeout_s: float = 2.0) -> None:
        """Un-register (``Expires: 0``) if registered; bounded by ``timeout_s``."""
        was = self.status.state in (RegState.REGISTERED, RegState.REFRESHING)
        self._set_unregistered()
        if not was or not self._call_id:
            return
        try:
            resp = await self._register_once(0, timeout_s=timeout_s)
            log.info("un-registered: %s %s", resp.status, resp.reason)
        except (SipTimeout, SipTransportError) as e:
            log.info("un-register not answered: %s", e)

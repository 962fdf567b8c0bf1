"""What the console's handlers share: the :class:`Console` kept on the app, the request keys
the auth middleware sets, who the client is, and how an audit record is written.

Its own module so that the JSON API (:mod:`.api`), the live view (:mod:`.live`) and the app
(:mod:`.app`) all import it, and nothing imports the app back (it was a cycle).
"""

from __future__ import annotations

import asyncio
import ipaddress
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import web
from nats.aio.client import Client as NATS

from gridwatch.auth.models import UserConfig
from gridwatch.config import GridwatchConfig
from gridwatch.console.audit import AuditError, AuditLog
from gridwatch.console.backend import ConsoleBackend
from gridwatch.console.cameras import CameraDirectory, HealthMonitor
from gridwatch.console.feed import FeedStats, LiveFeed
from gridwatch.console.scope import CONSOLE_ROLES, Scope
from gridwatch.console.sessions import LoginLimiter, Session, SessionStore, UserShares

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class LiveHubLike(Protocol):
    """What the console needs of :class:`gridwatch.console.live.LiveHub` (built elsewhere)."""

    async def close(self) -> None: ...

    async def hangup(self, session_id: str) -> bool: ...

    def session_ids(self, camera_id: str | None = None) -> list[str]: ...


@dataclass
class Console:
    """Everything the handlers share, kept on the app (no module globals)."""

    config: GridwatchConfig
    nc: NATS
    backend: ConsoleBackend
    audit: AuditLog
    cameras: CameraDirectory
    health: HealthMonitor
    sessions: SessionStore
    limiter: LoginLimiter
    users: dict[str, UserConfig]
    dummy_hash: str
    stats: FeedStats = field(default_factory=FeedStats)
    feeds: set[LiveFeed] = field(default_factory=set)
    """The live feeds open now (ended at shutdown, so it does not wait on heartbeats)."""
    vapid_public_key: str | None = None
    live_hub: LiveHubLike | None = None
    started: bool = False
    trusted_proxies: list[IPNetwork] = field(default_factory=list)
    streams: UserShares[LiveFeed] = field(default_factory=lambda: UserShares(4))
    """Open live feeds (/api/events) per user and session."""
    live_views: UserShares[object] = field(default_factory=lambda: UserShares(4))
    """Live video sessions (their hub ids, or a placeholder while one is set up) per user."""
    alert_lookups: LoginLimiter = field(
        default_factory=lambda: LoginLimiter(max_failures=30, window_s=60.0)
    )
    """Alert look-ups that replay the stream, per user (a sliding window, like logins)."""
    unknown_alerts: dict[tuple[str, str], float] = field(default_factory=dict)
    """(grid, alert id) looked up and not found -> monotonic time it stops being remembered."""
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def user_of(self, session: Session | None) -> UserConfig | None:
        if session is None:
            return None
        user = self.users.get(session.user)
        return user if user is not None and user.role in CONSOLE_ROLES else None


CONSOLE: web.AppKey[Console] = web.AppKey("gridwatch_console", Console)
USER: web.RequestKey[UserConfig] = web.RequestKey("gw_user", UserConfig)
SCOPE: web.RequestKey[Scope] = web.RequestKey("gw_scope", Scope)
SESSION: web.RequestKey[Session] = web.RequestKey("gw_session", Session)


def console_of(request: web.Request) -> Console:
    return request.app[CONSOLE]


def user_of(request: web.Request) -> UserConfig:
    return request[USER]


def scope_of(request: web.Request) -> Scope:
    return request[SCOPE]


def session_of(request: web.Request) -> Session:
    return request[SESSION]


def client_of(request: web.Request) -> str:
    """The client's address: the peer's, or, when the peer is one of ``trusted_proxies``, the
    nearest address in its forwarding header that is not itself a trusted proxy (a client
    cannot choose it: what it writes in the header lies left of what the proxy appends)."""
    peer = request.remote or ""
    c = request.app.get(CONSOLE)
    if c is None or not c.trusted_proxies:
        return peer
    peer_ip = _parse_address(peer)
    if peer_ip is None or not _trusted(peer_ip, c.trusted_proxies):
        return peer
    if c.config.console.trusted_proxy_header == "Forwarded":
        chain = [str(hop.get("for", "")) for hop in request.forwarded]
    else:
        chain = [
            part
            for value in request.headers.getall("X-Forwarded-For", [])
            for part in value.split(",")
        ]
    client = peer
    for raw in reversed(chain):
        ip = _parse_address(raw)
        if ip is None:
            break
        client = str(ip)
        if not _trusted(ip, c.trusted_proxies):
            break
    return client


def _parse_address(raw: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An address from a header value: ``1.2.3.4``, ``1.2.3.4:5678``, ``[2001:db8::1]:443``,
    ``"[2001:db8::1]"`` or ``2001:db8::1``; None for anything else (``unknown``, garbage)."""
    v = raw.strip().strip('"')
    if v.startswith("["):
        v = v[1 : v.find("]")] if "]" in v else ""
    elif v.count(":") == 1:
        v = v.split(":", 1)[0]
    try:
        return ipaddress.ip_address(v)
    except ValueError:
        return None


def _trusted(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, nets: list[IPNetwork]) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip.version == n.version and ip in n for n in nets)


async def audit_or_log(
    request: web.Request, kind: str, what: str, grid: str | None, **fields: Any
) -> bool:
    """Write an audit record about ``request``'s user; False (logged) when it failed."""
    c = console_of(request)
    user = request.get(USER)
    session = request.get(SESSION)
    base: dict[str, Any] = {
        "user": user.name if user else fields.pop("user", None),
        "role": user.role if user else None,
        "client": client_of(request),
        "session": session.short_id if session else None,
    }
    try:
        await c.audit.record(kind, what, grid, **base, **fields)
        return True
    except AuditError:
        return False

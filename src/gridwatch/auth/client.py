"""Connecting to NATS as a configured user.

Every person's connection uses the per-user inbox prefix their permissions allow
(``_INBOX.<user>``); without it, nats.py's default ``_INBOX.<random>`` replies would be refused
by the server and every request would time out.
"""

from __future__ import annotations

import logging
import os
import ssl
from typing import Any

import nats
from nats.aio.client import Client as NATS

from gridwatch.auth.subjects import inbox_prefix

log = logging.getLogger(__name__)

USER_ENV = "GW_NATS_USER"
PASSWORD_ENV = "GW_NATS_PASSWORD"
TLS_CA_ENV = "GW_NATS_TLS_CA"


def tls_context(ca_file: str | None = None) -> ssl.SSLContext | None:
    """A client TLS context trusting ``ca_file`` (else ``$GW_NATS_TLS_CA``); None without one
    (then TLS is still used, with the system's CAs, when a server requires it)."""
    ca = ca_file or os.environ.get(TLS_CA_ENV)
    if not ca:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def resolve_credentials(
    user: str | None,
    password: str | None,
    *,
    config_user: str | None = None,
    config_password: str | None = None,
) -> tuple[str | None, str | None]:
    """Explicit values first, then ``$GW_NATS_USER``/``$GW_NATS_PASSWORD``, then the config."""
    u = user or os.environ.get(USER_ENV) or config_user
    p = password or os.environ.get(PASSWORD_ENV) or config_password
    return u, p


async def connect_as(
    url: str,
    *,
    user: str | None,
    password: str | None,
    name: str,
    connect_timeout: float = 5.0,
    max_reconnect_attempts: int = -1,
    reconnect_time_wait: float = 1.0,
    tls_ca_file: str | None = None,
    **options: Any,
) -> NATS:
    """Connect (and flush once) as ``user``; anonymous when ``user`` is None. With a CA
    (``tls_ca_file`` or ``$GW_NATS_TLS_CA``) the connection is TLS, the server verified."""

    async def on_error(exc: Exception) -> None:
        log.warning("nats (%s): %s", name, exc)

    async def on_disconnect() -> None:
        log.info("nats (%s): disconnected", name)

    async def on_reconnect() -> None:
        log.info("nats (%s): reconnected", name)

    opts: dict[str, Any] = {
        "servers": [u.strip() for u in url.split(",")],
        "name": name,
        "connect_timeout": connect_timeout,
        "max_reconnect_attempts": max_reconnect_attempts,
        "reconnect_time_wait": reconnect_time_wait,
        "error_cb": on_error,
        "disconnected_cb": on_disconnect,
        "reconnected_cb": on_reconnect,
    }
    if user is not None:
        opts.update(user=user, password=password or "", inbox_prefix=inbox_prefix(user))
    ctx = tls_context(tls_ca_file)
    if ctx is not None:
        opts["tls"] = ctx
    opts.update(options)
    nc = await nats.connect(**opts)
    await nc.flush(timeout=max(1, round(connect_timeout)))
    return nc

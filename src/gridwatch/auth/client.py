"""A NATS user's credentials and TLS trust, as :func:`gridwatch.bus.connect.connect` uses them."""

from __future__ import annotations

import os
import ssl

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

"""One ``connect()`` for every process: services, the console, the CLI and the demo.

* Credentials: explicit ``user``/``password`` first, then ``$GW_NATS_USER``/
  ``$GW_NATS_PASSWORD``, then the config's (:func:`gridwatch.auth.client.resolve_credentials`).
* A logged-in connection uses the per-user inbox prefix (``_INBOX.<user>``): the only replies a
  restricted account may read (:mod:`gridwatch.auth.natsconf`); nats.py's default random inbox
  would be refused and every request would time out.
* TLS with ``tls_ca_file`` (else ``$GW_NATS_TLS_CA``), the server verified.
* Services reconnect forever (``reconnects=-1``, the default); a CLI passes ``fail_fast=True``
  (no reconnects, errors logged at debug only) so it says at once when NATS is down.
"""

from __future__ import annotations

import logging
from typing import Any

import nats
from nats.aio.client import Client as NATS

from gridwatch.auth.client import resolve_credentials, tls_context
from gridwatch.auth.subjects import inbox_prefix

log = logging.getLogger(__name__)

FOREVER = -1
"""``reconnects``: a service outlives NATS restarts."""


async def connect(
    url: str,
    *,
    name: str,
    user: str | None = None,
    password: str | None = None,
    config_user: str | None = None,
    config_password: str | None = None,
    tls_ca_file: str | None = None,
    connect_timeout: float = 5.0,
    reconnects: int = FOREVER,
    reconnect_wait: float = 1.0,
    fail_fast: bool = False,
    flush: bool = True,
    **options: Any,
) -> NATS:
    """Connect to ``url`` (comma-separated servers) as ``name``; see the module doc.

    ``options`` go to :func:`nats.connect` last (a test's own ``error_cb``, say). With
    ``flush`` the connection is flushed once, so a refused login fails here."""
    user, password = resolve_credentials(
        user, password, config_user=config_user, config_password=config_password
    )
    client: list[NATS] = []

    async def on_error(exc: Exception) -> None:
        log.log(logging.DEBUG if fail_fast else logging.WARNING, "nats (%s): %s", name, exc)

    async def on_disconnect() -> None:
        closing = bool(client) and (client[0].is_draining or client[0].is_closed)
        log.log(logging.DEBUG if closing else logging.WARNING, "nats (%s): disconnected", name)

    async def on_reconnect() -> None:
        log.info("nats (%s): reconnected", name)

    opts: dict[str, Any] = {
        "servers": [u.strip() for u in url.split(",")],
        "name": name,
        "connect_timeout": connect_timeout,
        "max_reconnect_attempts": 0 if fail_fast else reconnects,
        "reconnect_time_wait": reconnect_wait,
        "allow_reconnect": not fail_fast,
        "error_cb": on_error,
    }
    if not fail_fast:
        opts.update(disconnected_cb=on_disconnect, reconnected_cb=on_reconnect)
    if user:
        opts.update(user=user, password=password or "", inbox_prefix=inbox_prefix(user))
    ctx = tls_context(tls_ca_file)
    if ctx is not None:
        opts["tls"] = ctx
    opts.update(options)
    nc = await nats.connect(**opts)
    client.append(nc)
    if flush:
        await nc.flush(timeout=max(1, round(connect_timeout)))
    return nc

"""Running the console: connect to NATS as the config's service account, serve until a signal.

``gridwatch console --config FILE`` calls :func:`run_console`. The live view
(:mod:`gridwatch.console.live`, WebRTC over aiortc) is added when that module is installed;
its camera URLs come from the same :class:`~.cameras.CameraDirectory` the pages use.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import ssl
from typing import Any

from aiohttp import web

from gridwatch.bus.connect import connect
from gridwatch.config import GridwatchConfig
from gridwatch.console.app import create_app
from gridwatch.console.cameras import CameraDirectory

log = logging.getLogger(__name__)


def make_live_hub(cameras: CameraDirectory, ice_host: str | None = None) -> Any | None:
    """A LiveHub resolving camera ids through ``cameras``; None when the live view module is
    not available (the pages then say so on the Live button)."""
    try:
        live = importlib.import_module("gridwatch.console.live")
    except ImportError as e:
        log.warning("live video is not available: %s", e)
        return None

    def masks(camera_id: str) -> list[list[tuple[float, float]]]:
        cam = cameras.get(camera_id)
        return [list(m.polygon) for m in cam.privacy_masks] if cam is not None else []

    return live.LiveHub(
        cameras.live_url, ice_host=ice_host, camera_grid=cameras.grid_of, camera_masks=masks
    )


async def run_console(
    config: GridwatchConfig,
    stop: asyncio.Event,
    *,
    host: str | None = None,
    port: int | None = None,
    nats_url: str | None = None,
    live: bool = True,
    started: asyncio.Future[int] | None = None,
) -> None:
    """Serve the console until ``stop`` is set. ``started`` receives the bound port."""
    s = config.console
    nc = await connect(
        nats_url or config.nats.url,
        config_user=config.nats.user,
        config_password=config.nats.password,
        name="gridwatch-console",
        connect_timeout=config.nats.connect_timeout_s,
        tls_ca_file=config.nats.tls_ca_file,
    )
    cameras = CameraDirectory(config, nc, live_sub_stream=s.live_sub_stream)
    hub = make_live_hub(cameras, s.live_ice_host) if live else None
    app = create_app(config, nc, live_hub=hub, cameras=cameras)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    ssl_ctx = None
    if s.tls_cert_file and s.tls_key_file:
        ssl_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_ctx.load_cert_chain(s.tls_cert_file, s.tls_key_file)
    site = web.TCPSite(
        runner, host or s.host, s.port if port is None else port, ssl_context=ssl_ctx
    )
    try:
        await site.start()
        bound = _bound_port(site)
        scheme = "https" if ssl_ctx else "http"
        log.info("console listening on %s://%s:%d", scheme, host or s.host, bound)
        if started is not None and not started.done():
            started.set_result(bound)
        await stop.wait()
    finally:
        await runner.cleanup()
        await nc.drain()


def _bound_port(site: web.TCPSite) -> int:
    server = site._server  # aiohttp keeps the asyncio server here
    sockets = getattr(server, "sockets", None) or []
    for sock in sockets:
        return int(sock.getsockname()[1])
    return 0

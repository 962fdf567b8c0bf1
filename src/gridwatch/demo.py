"""``gridwatch demo``: the whole path on one machine, with nothing to set up.

Starts an embedded JetStream ``nats-server``, serves the real pedestrian video (vtest from
Debian's opencv-doc, converted once to H.264) as a looping RTSP camera, runs a worker on the
demo config and prints each alert as it arrives *from JetStream* (so what you see went through
the same stream the command centre reads). Ctrl-C stops everything it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import sys
import time
from collections.abc import Callable
from urllib.parse import urlparse

from gridwatch.alerts.tail import format_alert_line, iter_alerts
from gridwatch.config import GridwatchConfig
from gridwatch.embedded.media import demo_video
from gridwatch.embedded.nats_server import NatsServer
from gridwatch.embedded.rtsp_server import RtspServer
from gridwatch.worker import Worker

log = logging.getLogger(__name__)


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def _preferred_port(url: str, default: int) -> int | None:
    port = urlparse(url).port or default
    return port if port_free(port) else None


def demo_mounts(config: GridwatchConfig) -> dict[str, str]:
    """camera id → RTSP mount name, for the cameras the demo serves itself (127.0.0.1 RTSP)."""
    out = {}
    for cam in config.cameras:
        u = urlparse(cam.url)
        if u.scheme == "rtsp" and u.hostname in ("127.0.0.1", "localhost"):
            out[cam.id] = u.path.strip("/") or cam.id
    return out


async def run_demo(
    config: GridwatchConfig,
    *,
    duration_s: float | None = None,
    out: Callable[[str], None] | None = None,
) -> None:
    say = out or (lambda line: print(line, flush=True))
    t0 = time.monotonic()
    say("gridwatch demo: preparing the demo video (converted once, then cached)…")
    video = await asyncio.to_thread(demo_video)
    mounts = demo_mounts(config)
    rtsp_port = _preferred_port(next(iter(config.cameras)).url, 8554) if mounts else None
    nats_port = _preferred_port(config.nats.url, 4222)
    with contextlib.ExitStack() as stack:
        nats_server = stack.enter_context(NatsServer(port=nats_port))
        cameras = list(config.cameras)
        if mounts:
            rtsp = stack.enter_context(
                RtspServer(
                    {name: video for name in set(mounts.values())}, loop=True, port=rtsp_port
                )
            )
            cameras = [
                c.model_copy(update={"url": rtsp.url(mounts[c.id])}) if c.id in mounts else c
                for c in cameras
            ]
        cfg = config.model_copy(
            update={
                "cameras": cameras,
                "nats": config.nats.model_copy(update={"url": nats_server.url}),
            }
        )
        say(f"  NATS (JetStream):  {nats_server.url}")
        for c in cfg.cameras:
            say(f"  camera {c.id}: {c.url}")
        say(
            f"  in another terminal:  .venv/bin/gridwatch alerts tail --nats {nats_server.url}\n"
            "  loading the model and waiting for the first crowd (Ctrl-C stops)…"
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        worker = Worker(cfg)
        worker_task = asyncio.create_task(worker.run(stop), name="worker")
        worker_task.add_done_callback(lambda _: stop.set())  # a failed worker ends the demo
        first_alert: list[float] = []

        async def print_alerts() -> None:
            async for alert in iter_alerts(nats_server.url, since=None, stop=stop):
                if not first_alert:
                    first_alert.append(time.monotonic() - t0)
                    say(f"  (first alert {first_alert[0]:.1f} s after start)")
                say(format_alert_line(alert))
                if alert.snapshot and nats_server.port != 4222:
                    say(
                        f"      snapshot: .venv/bin/gridwatch snapshot get {alert.snapshot} "
                        f"--nats {nats_server.url}"
                    )

        # the worker creates the alert stream: follow it once the worker is up (or gone)
        ready = asyncio.create_task(worker.ready.wait())
        await asyncio.wait({ready, worker_task}, return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        printer = asyncio.create_task(print_alerts(), name="printer")
        try:
            if duration_s is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), duration_s)
            else:
                await stop.wait()
        finally:
            stop.set()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(worker_task, 20)
            printer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await printer
        say("gridwatch demo: stopped")
    if worker_task.done() and not worker_task.cancelled() and worker_task.exception():
        print(f"worker failed: {worker_task.exception()}", file=sys.stderr)

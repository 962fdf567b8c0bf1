"""``gridwatch demo``: the whole path on one machine, with nothing to set up.

Starts an embedded JetStream ``nats-server``, serves the real pedestrian video (vtest from
Debian's opencv-doc, converted once to H.264) as a looping RTSP camera, runs a worker on the
demo config, the case and snapshot services and the console (alert wall, live video, case
actions), and prints each alert as it arrives *from JetStream* (so what you see went through
the same stream the command centre reads). Ctrl-C stops everything it started.

The console needs people to log in: the demo adds an operator and a responder of the demo's
grid at start, each with a fresh random password hashed with bcrypt (nothing is stored; the
passwords are printed and die with the process).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from nats.aio.client import Client as NATS

from gridwatch.alerts.clip_service import ClipService
from gridwatch.alerts.snapshot_service import SnapshotService
from gridwatch.alerts.tail import format_alert_line, iter_alerts
from gridwatch.auth.models import Role, UserConfig
from gridwatch.auth.passwords import hash_password
from gridwatch.bus.connect import connect
from gridwatch.cases.service import CaseService
from gridwatch.config import GridwatchConfig
from gridwatch.console.server import run_console
from gridwatch.worker import Worker
from gridwatch_devtools.media import demo_video
from gridwatch_devtools.nats_server import NatsServer
from gridwatch_devtools.rtsp_server import RtspServer

log = logging.getLogger(__name__)

ANY_ADDRESS = ("0.0.0.0", "::", "")


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
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


@dataclass(frozen=True)
class DemoLogin:
    """A console login the demo made for this run (the password is printed, never stored)."""

    name: str
    role: str
    grid: str | None
    password: str


def demo_logins(config: GridwatchConfig) -> list[tuple[UserConfig, DemoLogin]]:
    """An operator, and a responder of the first grid, with new random passwords (bcrypt at
    the default cost: this takes about a second, so call it in a thread). Names already in the
    config are left alone."""
    grid = config.grids[0].id if config.grids else None
    wanted: list[tuple[str, Role, str | None]] = [("operator", "operator", None)]
    if grid is not None:
        wanted.append(("responder", "responder", grid))
    taken = {u.name for u in config.users}
    out = []
    for name, role, g in wanted:
        if name in taken:
            continue
        secret = secrets.token_urlsafe(12)
        user = UserConfig(name=name, role=role, grid=g, password_hash=hash_password(secret))
        out.append((user, DemoLogin(name, role, g, secret)))
    return out


def console_urls(host: str, port: int) -> list[str]:
    """Where a browser opens the console: every address of this machine when it listens on
    all of them (the live view offers the same addresses to the browser)."""
    if host not in ANY_ADDRESS:
        shown = f"[{host}]" if ":" in host else host
        return [f"http://{shown}:{port}/"]
    from aioice.ice import get_host_addresses  # the addresses WebRTC offers (aiortc's ICE)

    addresses = ["127.0.0.1", *get_host_addresses(use_ipv4=True, use_ipv6=False)]
    return [f"http://{a}:{port}/" for a in addresses]


class DemoConsole:
    """The console with the case and snapshot services it needs for case state and actions,
    on the demo's NATS, in this process."""

    def __init__(self, config: GridwatchConfig, nats_url: str) -> None:
        self.config = config
        self.nats_url = nats_url
        self.host = config.console.host
        self.port = 0
        self.port_note = ""
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._nc: NATS | None = None
        self._cases: CaseService | None = None
        self._snapshots: SnapshotService | None = None
        self._clips: ClipService | None = None

    async def start(self) -> None:
        """Serve the console (on its configured port, else a free one), then start the
        services (the console creates the streams they use)."""
        want = self.config.console.port or 8080
        port = want if port_free(want, self.host or "0.0.0.0") else 0
        started: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(
            run_console(
                self.config, self._stop, host=self.host, port=port, nats_url=self.nats_url,
                started=started,
            ),
            name="console",
        )  # fmt: skip
        either: set[asyncio.Future[Any]] = {started, self._task}
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        if not started.done():  # the console ended first: raise its error
            started.cancel()
            await self._task
            raise RuntimeError("the console stopped while starting")
        self.port = started.result()
        if port != want:
            self.port_note = f"port {want} is taken: using {self.port}"
        self._nc = await connect(self.nats_url, name="gridwatch-demo-cases")
        self._cases = CaseService(self._nc, self.config)
        await self._cases.start()
        self._snapshots = SnapshotService(self._nc, self.config)
        await self._snapshots.start()
        self._clips = ClipService(self._nc, self.config)
        await self._clips.start()

    async def close(self) -> None:
        """Stop the console (it hangs up live viewers), then the services."""
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._task, 20)
        if self._clips is not None:
            await self._clips.stop()
        if self._snapshots is not None:
            await self._snapshots.stop()
        if self._cases is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._cases.stop(), 10)
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._nc.drain(), 5)


def _console_lines(console: DemoConsole, logins: list[DemoLogin]) -> list[str]:
    urls = console_urls(console.host, console.port)
    lines = [f"  console:  {urls[0]}" + (f"  ({console.port_note})" if console.port_note else "")]
    lines += [f"            {u}" for u in urls[1:]]
    for login in logins:
        what = (
            "alert wall, live video, acknowledge / resolve"
            if login.grid is None
            else f"grid {login.grid}: the phone view /m/"
        )
        lines.append(f"    log in as {login.name:<9}  password {login.password}   ({what})")
    if logins:
        lines.append("    (new passwords every run; they are not stored anywhere)")
    return lines


async def run_demo(
    config: GridwatchConfig,
    *,
    duration_s: float | None = None,
    out: Callable[[str], None] | None = None,
) -> None:
    say = out or (lambda line: print(line, flush=True))
    t0 = time.monotonic()
    say("gridwatch demo: preparing the demo video (converted once, then cached)…")
    logins = asyncio.create_task(asyncio.to_thread(demo_logins, config))  # bcrypt: ~1 s
    video = await asyncio.to_thread(demo_video)
    made = await logins
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
                "users": [*config.users, *(user for user, _ in made)],
            }
        )
        say(f"  NATS (JetStream):  {nats_server.url}")
        for c in cfg.cameras:
            say(f"  camera {c.id}: {c.url}")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        console: DemoConsole | None = None
        starting = DemoConsole(cfg, nats_server.url)
        try:
            await starting.start()
            console = starting
            for line in _console_lines(console, [login for _, login in made]):
                say(line)
        except Exception as e:  # the demo still prints alerts in the terminal
            log.warning("the console did not start", exc_info=True)
            say(f"  console: not started ({type(e).__name__}: {e})")
            await starting.close()
        say(
            f"  in another terminal:  .venv/bin/gridwatch alerts tail --nats {nats_server.url}\n"
            "  loading the model and waiting for the first crowd (Ctrl-C stops)…"
        )
        worker = Worker(cfg)
        worker_task = asyncio.create_task(worker.run(stop), name="worker")
        worker_task.add_done_callback(lambda _: stop.set())  # a failed worker ends the demo
        first_alert: list[float] = []
        base_url = console_urls(console.host, console.port)[0] if console else None

        async def print_alerts() -> None:
            async for alert in iter_alerts(nats_server.url, since=None, stop=stop):
                if not first_alert:
                    first_alert.append(time.monotonic() - t0)
                    say(f"  (first alert {first_alert[0]:.1f} s after start)")
                say(format_alert_line(alert))
                if base_url is not None and alert.state.value == "raised":
                    say(f"      console: {base_url}alerts/{alert.grid_id}/{alert.id}")
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
            if console is not None:
                await console.close()
        say("gridwatch demo: stopped")
    if worker_task.done() and not worker_task.cancelled() and worker_task.exception():
        print(f"worker failed: {worker_task.exception()}", file=sys.stderr)

"""A real console stack for the console tests: a secured nats-server (the permissions
``gridwatch nats-config`` generates), the case and snapshot services, and the console served
by aiohttp on a random port, plus helpers to log in as a configured person and to read the live
feed. Imported by the tests that use it (not a pytest plugin)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from nats.aio.client import Client as NATS

from gridwatch.alerts.publisher import AlertPublisher
from gridwatch.alerts.snapshot_service import SnapshotService
from gridwatch.alerts.snapshots import SnapshotStore
from gridwatch.alerts.streams import ensure_alert_infra
from gridwatch.bus.consumers import replay
from gridwatch.cases.service import CaseService
from gridwatch.config import GridwatchConfig, parse_config
from gridwatch.console.app import create_app
from gridwatch.console.audit import AUDIT_STREAM
from gridwatch.console.cameras import CameraDirectory
from gridwatch.console.context import CONSOLE, Console
from gridwatch.console.server import make_live_hub
from gridwatch_devtools.nats_server import NatsServer
from tests.plugins.dispatch import (
    GRID_A,
    GRID_B,
    UserConnections,
    dispatch_config_text,
    password,
    secured_server,
)

CAMERAS_YAML = f"""
cameras:
  - {{id: cam-a, name: Gate A, grid: {GRID_A}, url: "rtsp://127.0.0.1:9/a",
     lat: 40.650, lon: 109.840}}
  - {{id: cam-a2, name: Square A, grid: {GRID_A}, url: "rtsp://127.0.0.1:9/a2",
     lat: 40.652, lon: 109.846}}
  - {{id: cam-b, name: Station B, grid: {GRID_B}, url: "rtsp://127.0.0.1:9/b",
     lat: 40.660, lon: 109.852}}
"""


def console_config_text(
    console_yaml: str = "", extra: str = "", cameras_yaml: str = CAMERAS_YAML
) -> str:
    """The dispatch test config (grids A and B, their people) with cameras and ``console:``."""
    section = f"console: {{{console_yaml}}}" if console_yaml else ""
    return dispatch_config_text(cameras_yaml + section + "\n" + extra)


def console_config(
    console_yaml: str = "", extra: str = "", cameras_yaml: str = CAMERAS_YAML
) -> GridwatchConfig:
    return parse_config(console_config_text(console_yaml, extra, cameras_yaml), "console.yaml")


@dataclass
class Stack:
    config: GridwatchConfig
    server: NatsServer
    users: UserConnections
    svc: NATS
    cases: CaseService
    publisher: AlertPublisher
    app: web.Application
    url: str
    sessions: list[aiohttp.ClientSession] = field(default_factory=list)

    @property
    def console(self) -> Console:
        return self.app[CONSOLE]

    def client(self) -> aiohttp.ClientSession:
        """A browser-like HTTP client with its own cookie jar (closed with the stack)."""
        s = aiohttp.ClientSession(
            base_url=self.url,
            cookie_jar=aiohttp.CookieJar(unsafe=True),  # cookies for 127.0.0.1
            timeout=aiohttp.ClientTimeout(total=30),
        )
        self.sessions.append(s)
        return s

    async def login(self, user: str) -> tuple[aiohttp.ClientSession, dict[str, str]]:
        """A client logged in as ``user``; its CSRF header."""
        s = self.client()
        async with s.post("/login", json={"name": user, "password": password(user)}) as r:
            assert r.status == 200, await r.text()
            body = await r.json()
        return s, {"X-CSRF-Token": body["csrf"]}

    async def audit_records(self) -> list[dict[str, Any]]:
        start = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
        msgs = await replay(self.svc.jetstream(), AUDIT_STREAM, "gw.v1.audit.>", start=start)
        return [{"subject": m.subject, **json.loads(m.data)} for m in msgs]


@contextlib.asynccontextmanager
async def console_stack(
    tmp_path: Path,
    console_yaml: str = "",
    extra: str = "",
    cameras_yaml: str = CAMERAS_YAML,
    *,
    live: bool = False,
) -> AsyncIterator[Stack]:
    """The stack; ``live``: with the live view's routes (a LiveHub over the console's camera
    directory, as ``gridwatch console`` builds it)."""
    cfg = console_config(console_yaml, extra, cameras_yaml)
    async with secured_server(cfg, tmp_path) as server:
        users = UserConnections(server)
        runner: web.AppRunner | None = None
        stack: Stack | None = None
        cases: CaseService | None = None
        snaps: SnapshotService | None = None
        try:
            svc = await users.connect("svc")
            infra = await asyncio.wait_for(ensure_alert_infra(svc.jetstream()), 10)
            cases = CaseService(svc, cfg)
            await asyncio.wait_for(cases.start(), 15)
            snaps = SnapshotService(svc, cfg)
            await snaps.start()
            console_nc = await users.connect("svc")
            cameras = CameraDirectory(cfg, console_nc)
            hub = make_live_hub(cameras, "127.0.0.1") if live else None
            assert hub is not None or not live
            app = create_app(cfg, console_nc, live_hub=hub, cameras=cameras)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            stack = Stack(
                config=cfg,
                server=server,
                users=users,
                svc=svc,
                cases=cases,
                publisher=AlertPublisher(svc, snapshots=SnapshotStore(infra.snapshots)),
                app=app,
                url=f"http://127.0.0.1:{port}",
            )
            yield stack
        finally:
            if stack is not None:
                for s in stack.sessions:
                    await s.close()
            if runner is not None:
                await runner.cleanup()
            if snaps is not None:
                await snaps.stop()
            if cases is not None:
                await cases.stop()
            await users.close()


class SseReader:
    """Reads ``/api/events`` of one logged-in client in the background."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session
        self.events: list[tuple[str, Any]] = []
        self.snapshot: asyncio.Event = asyncio.Event()
        self.status = 0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> SseReader:
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self.snapshot.wait(), 20)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def _run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        async with self.session.get("/api/events", timeout=timeout) as r:
            self.status = r.status
            if r.status != 200:
                self.snapshot.set()
                return
            event, data = "message", ""
            async for raw in r.content:
                line = raw.decode().rstrip("\n")
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data += line[5:].strip()
                elif not line and data:
                    self.events.append((event, json.loads(data)))
                    if event == "snapshot":
                        self.snapshot.set()
                    event, data = "message", ""

    def items(self) -> list[dict[str, Any]]:
        """Every item seen: the snapshot's and those sent after it."""
        out: list[dict[str, Any]] = []
        for event, data in self.events:
            if event == "snapshot":
                out.extend(data["items"])
            elif event == "item":
                out.append(data)
        return out

    def ids(self) -> set[str]:
        return {i["id"] for i in self.items()}

    def latest(self, item_id: str) -> dict[str, Any] | None:
        found = [i for i in self.items() if i["id"] == item_id]
        return found[-1] if found else None

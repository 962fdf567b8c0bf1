"""Helpers for the dispatch tests (cases, grid isolation, push, spool): a config with people in
two grids, and a real nats-server started with the configuration ``gridwatch nats-config``
generates from it. Imported by the tests that use it (not a pytest plugin)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from nats.aio.client import Client as NATS

from gridwatch.auth.natsconf import write_nats_config
from gridwatch.auth.passwords import hash_password
from gridwatch.bus.connect import connect as bus_connect
from gridwatch.config import GridwatchConfig, parse_config
from gridwatch_devtools.nats_server import NatsServer

log = logging.getLogger(__name__)

GRID_A = "grid-a"
GRID_B = "grid-b"
PEOPLE = {
    "op-zhang": ("operator", None),
    "aux-li": ("responder", GRID_A),
    "lead-wang": ("grid_leader", GRID_A),
    "aux-zhao": ("responder", GRID_B),
    "lead-sun": ("grid_leader", GRID_B),
    "svc": ("service", None),
}


def password(user: str) -> str:
    return f"pw-{user}-secret"


@functools.cache
def _hash(user: str) -> str:
    return hash_password(password(user), rounds=4)  # low cost: nats-server pays it per connect


def users_yaml() -> str:
    lines = ["users:"]
    for name, (role, grid) in PEOPLE.items():
        g = f", grid: {grid}" if grid else ""
        lines.append(f'  - {{name: {name}, role: {role}{g}, password_hash: "{_hash(name)}"}}')
    return "\n".join(lines)


def dispatch_config_text(extra: str = "") -> str:
    return f"""
grids: [{{id: {GRID_A}, name: Grid A}}, {{id: {GRID_B}, name: Grid B}}]
nats: {{user: svc}}
{users_yaml()}
{extra}
"""


def dispatch_config(extra: str = "") -> GridwatchConfig:
    return parse_config(dispatch_config_text(extra), "dispatch-test.yaml")


@contextlib.asynccontextmanager
async def secured_server(
    config: GridwatchConfig, tmp_path: Path, *, store_dir: Path | None = None
) -> AsyncIterator[NatsServer]:
    conf = write_nats_config(config, tmp_path / "nats.conf")
    server = NatsServer(config_file=conf, store_dir=store_dir or tmp_path / "store")
    async with server:
        yield server


class UserConnections:
    """Connections as configured users, each recording the async errors the server sends
    (permission violations arrive that way); all closed at the end."""

    def __init__(self, server: NatsServer) -> None:
        self.server = server
        self.clients: list[NATS] = []
        self.errors: dict[str, list[str]] = {}

    async def connect(self, user: str, **options: Any) -> NATS:
        errors = self.errors.setdefault(user, [])

        async def on_error(e: Exception) -> None:
            errors.append(str(e))

        opts: dict[str, Any] = {
            "connect_timeout": 3.0,
            "reconnect_time_wait": 0.1,
            "max_reconnect_attempts": 300,
            "error_cb": on_error,
        }
        opts.update(options)
        nc = await asyncio.wait_for(
            bus_connect(
                self.server.url, user=user, password=password(user), name=f"test-{user}", **opts
            ),
            10,
        )
        self.clients.append(nc)
        return nc

    async def close(self) -> None:
        for nc in reversed(self.clients):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(nc.close(), 5)


def tiny_jpeg(w: int = 64, h: int = 48, value: int = 200) -> bytes:
    img = np.full((h, w, 3), value, np.uint8)
    ok, buf = cv2.imencode(".jpg", img)
    assert ok
    return bytes(buf.tobytes())


def make_alert(
    grid: str,
    camera: str,
    n: int,
    *,
    state: str = "raised",
    sequence: int = 0,
    severity: str = "warning",
    started_at: float = 1_790_000_000.0,
    snapshot: bool = False,
    count: int = 7,
) -> Any:
    """A real :class:`Alert` as a rule would produce it (incident n of ``camera``)."""
    from gridwatch.alerts.snapshots import snapshot_name
    from gridwatch.model import Alert, IncidentEvent, IncidentState

    st = IncidentState(state)
    ev = IncidentEvent(
        rule_key=f"crowding/z{n}",
        type="crowding",
        state=st,
        zone_id=f"z{n}",
        started_at=started_at + n,
        observed_at=started_at + n + sequence,
        count=count,
        peak_count=count,
        boxes=((0.1, 0.2, 0.3, 0.9), (0.5, 0.2, 0.7, 0.9)),
        sequence=sequence,
    )
    alert_id = ev.incident_id(camera)
    return Alert.from_event(
        ev,
        camera_id=camera,
        camera_name=f"Camera {camera}",
        grid_id=grid,
        snapshot=snapshot_name(camera, alert_id, st, sequence) if snapshot else None,
        severity=severity,
    )


async def wait_until(pred: Any, within: float = 10.0, step: float = 0.02) -> None:
    """Poll ``pred()`` until true; AssertionError after ``within`` seconds."""
    for _ in range(max(1, int(within / step))):
        if pred():
            return
        await asyncio.sleep(step)
    if not pred():
        raise AssertionError(f"condition not met within {within}s")

"""Helpers for the GB/T 28181 cascade tests: real, independently written SIP peers (SIPp as
the superior platform, Kamailio as a registrar), a config with the cascade's own NATS identity,
and a secured nats-server started from the permissions ``gridwatch nats-config`` generates.
Imported by the tests that use it (not a pytest plugin)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nats.aio.client import Client as NATS

from gridwatch.auth.natsconf import write_nats_config
from gridwatch.auth.passwords import hash_password
from gridwatch.bus.connect import connect as bus_connect
from gridwatch.config import GridwatchConfig, parse_config
from gridwatch.gb28181.sip import SipMessage, parse
from gridwatch_devtools.nats_server import NatsServer

SIPP = shutil.which("sipp") or "/usr/bin/sipp"
KAMAILIO = shutil.which("kamailio") or "/usr/sbin/kamailio"
SCENARIOS = Path(__file__).parent / "sipp"

OUR_ID = "34020000002000000001"
SUPERIOR_ID = "34020000002000000002"
GB_PASSWORD = "gb-Secret-42"
CHANNELS = {
    "cam-a": "34020000001320000001",
    "cam-b": "34020000001320000002",
    "cam-c": "34020000001320000003",
}
USERS = {"svc": None, "gb": "gb28181"}
"""NATS users: ``svc`` unrestricted (makes streams, publishes alerts and health), ``gb`` the
cascade's own least-privilege identity."""


def nats_password(user: str) -> str:
    return f"pw-{user}-nats"


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cascade_config(sip_port: int, **kw: Any) -> GridwatchConfig:
    """The test deployment: three cameras in two grids, the cascade towards ``sip_port``."""
    return parse_config(cascade_config_text(sip_port, **kw), "gb28181-test.yaml")


def cascade_config_text(
    sip_port: int,
    *,
    transport: str = "udp",
    keepalive_s: int = 5,
    expires_s: int = 3600,
    page_size: int = 10,
    extra: str = "",
) -> str:
    users = "\n".join(
        f"  - {{name: {u}, role: service{', service: ' + k if k else ''}, "
        f'password_hash: "{hash_password(nats_password(u), rounds=4)}"}}'
        for u, k in USERS.items()
    )
    text = f"""
nats: {{user: gb}}
grids: [{{id: grid-a, name: 北区网格}}, {{id: grid-b, name: Grid B}}]
cameras:
  - {{id: cam-a, name: 校门口, grid: grid-a, url: a.mp4, lat: 31.2304, lon: 121.4737,
      gb28181_id: "{CHANNELS["cam-a"]}",
      zones: [{{id: z1, polygon: [[0, 0], [1, 0], [1, 1]]}}]}}
  - {{id: cam-b, name: Square, grid: grid-a, url: b.mp4, gb28181_id: "{CHANNELS["cam-b"]}"}}
  - {{id: cam-c, name: Station, grid: grid-b, url: c.mp4, lat: 31.0, lon: 121.0,
      gb28181_id: "{CHANNELS["cam-c"]}"}}
users:
{users}
gb28181:
  enabled: true
  device_id: "{OUR_ID}"
  password: {GB_PASSWORD}
  superior: {{id: "{SUPERIOR_ID}", host: 127.0.0.1, port: {sip_port}, transport: {transport}}}
  local_host: 127.0.0.1
  expires_s: {expires_s}
  keepalive_s: {keepalive_s}
  catalog_page_size: {page_size}
{extra}
"""
    return text


@contextlib.asynccontextmanager
async def secured_nats(config: GridwatchConfig, tmp_path: Path) -> AsyncIterator[NatsServer]:
    conf = write_nats_config(config, tmp_path / "nats.conf")
    server = NatsServer(config_file=conf, store_dir=tmp_path / "store")
    async with server:
        yield server


async def connect_as(server: NatsServer, user: str, errors: list[str] | None = None) -> NATS:
    async def on_error(e: Exception) -> None:
        if errors is not None:
            errors.append(str(e))

    return await asyncio.wait_for(
        bus_connect(
            server.url,
            user=user,
            password=nats_password(user),
            name=f"test-{user}",
            connect_timeout=3.0,
            reconnect_time_wait=0.1,
            max_reconnect_attempts=300,
            error_cb=on_error,
        ),
        10,
    )


# -- SIPp -------------------------------------------------------------------------------------


@dataclass
class Sipp:
    """One SIPp process running ``scenario`` as a UAS on 127.0.0.1:``port``."""

    scenario: str
    port: int
    workdir: Path
    variables: dict[str, str] = field(default_factory=dict)
    transport: str = "u1"
    proc: subprocess.Popen[bytes] | None = None
    runs: int = 0

    @property
    def message_log(self) -> Path:
        return self.workdir / f"sipp-{self.port}-{self.runs}-messages.log"

    @property
    def error_log(self) -> Path:
        return self.workdir / f"sipp-{self.port}-{self.runs}-errors.log"

    def start(self) -> None:
        self.runs += 1
        args = [
            SIPP,
            "-sf",
            str(SCENARIOS / self.scenario),
            "-i",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-t",
            self.transport,
            "-nostdin",
            "-deadcall_wait",
            "0",
            "-trace_msg",
            "-message_file",
            str(self.message_log),
            "-trace_err",
            "-error_file",
            str(self.error_log),
        ]
        for k, v in self.variables.items():
            args += ["-set", k, v]
        out = open(self.workdir / f"sipp-{self.port}-{self.runs}.out", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=self.workdir)
        out.close()

    async def wait_listening(self, within: float = 5.0) -> None:
        """Until SIPp wrote its message log's first line or answers: a short settle."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"sipp exited early: {self.output()}")
            await asyncio.sleep(0.2)
            return

    def stop(self, timeout: float = 10.0) -> int:
        """Graceful stop (SIGUSR1: no new calls, finish the running ones); the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGUSR1)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                raise AssertionError("sipp did not stop on SIGUSR1") from None
        return int(self.proc.returncode)

    def kill(self) -> None:
        """SIGKILL: the superior's process dies mid-stream."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def output(self) -> str:
        p = self.workdir / f"sipp-{self.port}-{self.runs}.out"
        text = p.read_text(errors="replace")[-2000:] if p.exists() else ""
        if self.error_log.exists():
            text += "\n" + self.error_log.read_text(errors="replace")[-3000:]
        return text


_BLOCK_RE = re.compile(rb"^-{20,} [^\n]*\n(UDP|TCP) message (received|sent)[^\n]*\n\n", re.M)


def sipp_messages(log: Path, direction: str = "received") -> list[SipMessage]:
    """The SIP messages SIPp logged (``-trace_msg``) in one direction, parsed."""
    if not log.exists():
        return []
    data = log.read_bytes()
    out = []
    marks = list(_BLOCK_RE.finditer(data))
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(data)
        if m.group(2).decode() != direction:
            continue
        with contextlib.suppress(Exception):  # the log's own blank lines follow the body
            out.append(parse(data[m.end() : end]))
    return out


def manscdp_text(msg: SipMessage) -> str:
    return msg.body.decode("gb18030")


async def wait_for(pred: Any, within: float = 10.0, step: float = 0.05) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if pred():
            return
        await asyncio.sleep(step)
    assert pred(), f"condition not met within {within}s"


def env_ok() -> bool:
    return os.access(SIPP, os.X_OK) and os.access(KAMAILIO, os.X_OK)

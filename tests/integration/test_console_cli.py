"""``gridwatch console`` as an operator runs it: a real process logging in to a secured
nats-server as the config's service account, serving the console (with the live view's routes),
stopping on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

import aiohttp
import pytest

from gridwatch.config import parse_config
from tests.plugins.console_stack import console_config_text
from tests.plugins.dispatch import password, secured_server

pytestmark = pytest.mark.timeout(90)

EXE = str(Path(sys.executable).with_name("gridwatch"))
LISTENING = re.compile(r"console listening on (http://\S+)")


async def test_console_command_serves_and_stops(tmp_path: Path) -> None:
    text = console_config_text()
    cfg_file = tmp_path / "site.yaml"
    cfg_file.write_text(text)
    cfg = parse_config(text, str(cfg_file))
    async with secured_server(cfg, tmp_path) as server:
        proc = await asyncio.create_subprocess_exec(
            EXE,
            "console",
            "--config",
            str(cfg_file),
            "--nats",
            server.url,
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            env={**os.environ, "GW_NATS_PASSWORD": password("svc")},
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        try:
            assert proc.stderr is not None
            url = ""
            lines: list[str] = []
            async with asyncio.timeout(45):
                while not url:
                    line = (await proc.stderr.readline()).decode()
                    if not line:
                        pytest.fail("console exited early:\n" + "".join(lines))
                    lines.append(line)
                    if m := LISTENING.search(line):
                        url = m.group(1)
            async with aiohttp.ClientSession(
                base_url=url, cookie_jar=aiohttp.CookieJar(unsafe=True)
            ) as s:
                async with s.get("/login") as r:
                    assert r.status == 200
                async with s.post(
                    "/login", json={"name": "op-zhang", "password": password("op-zhang")}
                ) as r:
                    assert r.status == 200
                    csrf = {"X-CSRF-Token": (await r.json())["csrf"]}
                # the live view is wired in: its route answers (a bad offer, refused)
                async with s.post("/api/live/cam-a/offer", json={}, headers=csrf) as r:
                    assert r.status == 400
                async with s.get("/api/cameras") as r:
                    assert len((await r.json())["cameras"]) == 3
                async with s.get("/static/console.css") as r:
                    assert r.status == 200  # static assets ship with the package
            os.killpg(proc.pid, signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), 15) == 0
        finally:
            if proc.returncode is None:
                os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()

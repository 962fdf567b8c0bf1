"""The dispatch CLI as an operator or responder uses it: hash a password, generate the
nats-server config, run a real server with it, and list / acknowledge / resolve cases and read
the status, each command a real ``gridwatch`` process logging in as a configured user."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

from gridwatch.alerts.publisher import AlertPublisher
from gridwatch.alerts.streams import ensure_alert_infra
from gridwatch.auth.passwords import verify_password
from gridwatch.cases.service import CaseService
from gridwatch.config import parse_config
from gridwatch_devtools.nats_server import NatsServer
from tests.plugins.dispatch import (
    GRID_A,
    UserConnections,
    dispatch_config_text,
    make_alert,
    password,
    wait_until,
)

pytestmark = pytest.mark.timeout(120)
GRIDWATCH = str(Path(sys.executable).parent / "gridwatch")


async def gw(*args: str, user: str | None = None, stdin: bytes | None = None) -> tuple[int, str]:
    env = {**os.environ}
    env.pop("GW_NATS_USER", None)
    if user:
        env["GW_NATS_USER"], env["GW_NATS_PASSWORD"] = user, password(user)
    proc = await asyncio.create_subprocess_exec(
        GRIDWATCH,
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
    )
    out, _ = await asyncio.wait_for(proc.communicate(stdin), 60)
    return proc.returncode or 0, out.decode()


async def test_cli_end_to_end(tmp_path: Path) -> None:
    code, out = await gw("users", "hash-password", "--rounds", "4", stdin=b"s3cret pass\n")
    assert code == 0
    assert verify_password("s3cret pass", out.strip())

    cfg_file = tmp_path / "gridwatch.yaml"
    cfg_file.write_text(dispatch_config_text("cases: {retention_days: 90}"), encoding="utf-8")
    cfg = parse_config(cfg_file.read_text(), str(cfg_file))
    code, out = await gw(
        "nats-config", "--config", str(cfg_file), "--out", str(tmp_path / "n.conf")
    )
    assert (code, "1 operator" in out) == (0, True), out

    async with NatsServer(config_file=tmp_path / "n.conf", store_dir=tmp_path / "js") as server:
        users = UserConnections(server)
        try:
            svc = await users.connect("svc")
            await ensure_alert_infra(svc.jetstream())
            service = CaseService(svc, cfg)
            await service.start()
            alert = make_alert(GRID_A, "cam-a", 1)
            await AlertPublisher(svc).publish(alert)
            await wait_until(lambda: bool(service.cases))
            url = ["--nats", server.url]

            code, out = await gw("cases", "list", *url, "--grid", GRID_A, "--json", user="aux-li")
            assert code == 0, out
            assert [c["id"] for c in json.loads(out)] == [alert.id]
            code, out = await gw(
                "cases", "resolve", alert.id, *url, "--grid", GRID_A, user="aux-li"
            )
            assert code == 1
            assert "conflict" in out
            code, out = await gw(
                "cases", "ack", alert.id, *url, "-c", str(cfg_file), user="aux-li"
            )  # grid from the config's users
            assert (code, "acknowledged" in out) == (0, True), out
            code, out = await gw(
                "cases",
                "resolve",
                alert.id,
                *url,
                "--outcome",
                "false_alarm",
                "--note",
                "bus queue",
                user="op-zhang",
            )
            assert (code, "resolved" in out) == (0, True), out
            code, out = await gw("status", "-c", str(cfg_file), *url, "--json", user="svc")
            assert code == 0, out
            status = json.loads(out)
            assert status["retention_configured_days"]["cases"] == 90
            assert status["streams"]["GW_CASES"]["max_age_days"] == 90
            assert status["cases"] == {"resolved": 1}
            await service.stop()
        finally:
            await users.close()

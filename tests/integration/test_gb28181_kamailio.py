"""The cascade's registration against Kamailio (an independent SIP registrar): digest with
qop=auth checked by Kamailio's auth module, refresh at 80 % of the granted expiry with the same
Call-ID and the next CSeq, and re-registration after Kamailio is killed and started again
(its location table lives in memory: a restarted registrar knows nobody).

Kamailio logs each REGISTER it receives and each binding it saved (``xlog``); the test reads
that log, so what it asserts is what the registrar saw, not what we believe we sent."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.request import urlopen

import pytest

from gridwatch.alerts.streams import ensure_alert_infra
from gridwatch.gb28181.service import Gb28181Service
from tests.integration.gb28181_peers import (
    GB_PASSWORD,
    KAMAILIO,
    cascade_config,
    cascade_config_text,
    connect_as,
    env_ok,
    free_port,
    nats_password,
    secured_nats,
    wait_for,
)

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(not env_ok(), reason="sipp/kamailio not installed (./run installs them)"),
]

GRANTED_S = 4
MODULES = "/usr/lib/x86_64-linux-gnu/kamailio/modules/"

KAMAILIO_CFG = """#!KAMAILIO
debug=2
log_stderror=yes
children=1
listen=udp:127.0.0.1:{port}
mpath="{modules}"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "xlog.so"
loadmodule "textops.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "auth.so"
modparam("usrloc", "db_mode", 0)
modparam("registrar", "min_expires", 1)
modparam("registrar", "default_expires", {granted})
modparam("registrar", "max_expires", {granted})
request_route {{
    if (is_method("REGISTER")) {{
        xlog("L_NOTICE", "GWREG ci=$ci cs=$cs expires=$hdr(Expires)\\n");
        if (!pv_www_authenticate("3402000000", "{password}", "0")) {{
            www_challenge("3402000000", "1");
            exit;
        }}
        if (save("location")) {{
            xlog("L_NOTICE", "GWSAVED ci=$ci cs=$cs expires=$hdr(Expires)\\n");
        }}
        exit;
    }}
    if (is_method("MESSAGE")) {{
        xlog("L_NOTICE", "GWMSG ci=$ci\\n");
        sl_send_reply("200", "OK");
        exit;
    }}
    sl_send_reply("405", "Method Not Allowed");
}}
"""

_SAVED_RE = re.compile(r"GWSAVED ci=(\S+) cs=(\d+) expires=(\S+)")


class Kamailio:
    def __init__(self, workdir: Path, port: int, password: str = GB_PASSWORD) -> None:
        self.workdir = workdir
        self.port = port
        self.cfg = workdir / "kamailio.cfg"
        self.cfg.write_text(
            KAMAILIO_CFG.format(port=port, modules=MODULES, granted=GRANTED_S, password=password)
        )
        self.runs = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.workdir / f"kamailio-{self.runs}.log"

    def start(self) -> None:
        self.runs += 1
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [KAMAILIO, "-f", str(self.cfg), "-DD", "-E", "-n", "1", "-m", "64", "-M", "8"],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                start_new_session=True,  # its children die with it (killpg)
            )

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            self.proc.wait(10)

    def saved(self, run: int) -> list[tuple[str, int, str]]:
        path = self.workdir / f"kamailio-{run}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return [(m[1], int(m[2]), m[3]) for m in _SAVED_RE.finditer(text)]

    async def wait_ready(self) -> None:
        """Until it says which sockets it listens on and its workers run (a short settle)."""
        await wait_for(lambda: b"SO_RCVBUF is finally" in self.log.read_bytes(), 5)
        await asyncio.sleep(0.2)


async def test_refresh_and_reregistration_after_registrar_restart(tmp_path: Path) -> None:
    port = free_port()
    kam = Kamailio(tmp_path, port)
    kam.start()
    cfg = cascade_config(port, keepalive_s=60, expires_s=60)
    try:
        await kam.wait_ready()
        async with secured_nats(cfg, tmp_path) as server:
            svc = await connect_as(server, "svc")
            gb = await connect_as(server, "gb")
            try:
                await ensure_alert_infra(svc.jetstream())
                service = Gb28181Service(
                    gb, cfg, timeout_s=1.0, backoff_base_s=0.2, backoff_cap_s=0.5
                )
                await service.start()
                reg = service.registration
                try:
                    # registered, then refreshed at 80 % of the 4 s Kamailio granted
                    await wait_for(lambda: reg.status.refreshes >= 1, 8)
                    assert reg.status.granted_expires_s == GRANTED_S
                    first = kam.saved(1)
                    assert len(first) >= 2, first
                    (ci1, cs1, _), (ci2, cs2, _) = first[:2]
                    assert ci1 == ci2
                    assert cs2 == cs1 + 1
                    # the registrar dies; we notice (refresh fails) and stop claiming it
                    kam.kill()
                    t_kill = time.monotonic()
                    await wait_for(lambda: not reg.registered.is_set(), GRANTED_S + 3)
                    assert service.status().state in ("unregistered", "registering")
                    kam.start()  # back, with an empty location table
                    await kam.wait_ready()
                    await wait_for(lambda: kam.saved(2), 10)
                    await wait_for(lambda: reg.registered.is_set(), 5)
                    assert time.monotonic() - t_kill < 15
                    _ci, _cs, expires = kam.saved(2)[0]
                    assert expires == "60"  # a binding, asked for expires_s
                    assert service.status().state == "registered"
                finally:
                    await service.stop()
                # un-registered on stop: the registrar saw Expires: 0 and removed the binding
                assert kam.saved(2)[-1][2] == "0"
            finally:
                await svc.drain()
                await gb.drain()
    finally:
        kam.kill(signal.SIGTERM)


async def test_wrong_password_backs_off(tmp_path: Path) -> None:
    """Kamailio challenges every REGISTER with a fresh nonce: with a wrong password we answer
    one challenge per attempt and back off, rather than looping on new nonces."""
    port = free_port()
    kam = Kamailio(tmp_path, port, password="not-" + GB_PASSWORD)
    kam.start()
    cfg = cascade_config(port, keepalive_s=60, expires_s=60)
    try:
        await kam.wait_ready()
        async with secured_nats(cfg, tmp_path) as server:
            svc = await connect_as(server, "svc")
            gb = await connect_as(server, "gb")
            try:
                await ensure_alert_infra(svc.jetstream())
                service = Gb28181Service(
                    gb, cfg, timeout_s=1.0, backoff_base_s=0.2, backoff_cap_s=0.4
                )
                await service.start()
                try:
                    await asyncio.sleep(2.5)
                    st = service.registration.status
                    assert not service.registration.registered.is_set()
                    assert st.failures >= 3
                    assert st.last_error.startswith("401")
                finally:
                    await service.stop()
            finally:
                await svc.drain()
                await gb.drain()
        registers = kam.log.read_text(errors="replace").count("GWREG")
        assert registers <= 2 * (st.failures + 1), (registers, st.failures)
        assert not kam.saved(1)
    finally:
        kam.kill(signal.SIGTERM)


async def test_cli_serve_and_status(tmp_path: Path) -> None:
    """``gridwatch gb28181 serve`` registers as its own NATS identity, ``gridwatch status``
    shows the cascade, and SIGTERM un-registers (Kamailio removes the binding)."""
    port = free_port()
    kam = Kamailio(tmp_path, port)
    kam.start()
    text = cascade_config_text(port, keepalive_s=60, expires_s=60)
    cfg_file = tmp_path / "gridwatch.yaml"
    cfg_file.write_text(text)
    cfg = cascade_config(port, keepalive_s=60, expires_s=60)
    gw = str(Path(sys.executable).with_name("gridwatch"))
    try:
        await kam.wait_ready()
        async with secured_nats(cfg, tmp_path) as server:
            svc = await connect_as(server, "svc")
            try:
                await ensure_alert_infra(svc.jetstream())
            finally:
                await svc.drain()
            env = {**os.environ, "GW_NATS_PASSWORD": nats_password("gb")}
            metrics_port = free_port(socket.SOCK_STREAM)
            serve = await asyncio.create_subprocess_exec(
                gw,
                "gb28181",
                "serve",
                "--config",
                str(cfg_file),
                "--nats",
                server.url,
                "--metrics-port",
                str(metrics_port),
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            try:
                await wait_for(lambda: kam.saved(1), 15)
                status_env = {**os.environ, "GW_NATS_PASSWORD": nats_password("svc")}

                def status() -> dict[str, Any]:
                    out = subprocess.run(
                        [
                            gw,
                            "status",
                            "--config",
                            str(cfg_file),
                            "--nats",
                            server.url,
                            "--user",
                            "svc",
                            "--json",
                        ],
                        env=status_env,
                        capture_output=True,
                        text=True,
                        timeout=30,
                        check=True,
                    )
                    return dict(json.loads(out.stdout)["gb28181"])

                deadline = time.monotonic() + 15
                while (s := status()).get("state") != "registered":
                    assert time.monotonic() < deadline, s
                    await asyncio.sleep(0.5)
                assert s["superior"] == "sip:34020000002000000002@3402000000"
                assert (s["sent"], s["failed"], s["channels"]) == (0, 0, 3)
                url = f"http://127.0.0.1:{metrics_port}/metrics"
                metrics = await asyncio.to_thread(lambda: urlopen(url, timeout=5).read())
                assert b'gridwatch_gb28181_registration_state{state="registered"} 1.0' in metrics
            finally:
                serve.send_signal(signal.SIGTERM)
                out, _ = await asyncio.wait_for(serve.communicate(), 20)
            assert serve.returncode == 0, out.decode(errors="replace")[-2000:]
            assert kam.saved(1)[-1][2] == "0"  # un-registered on stop
            assert status()["state"] == "unregistered"
    finally:
        kam.kill(signal.SIGTERM)

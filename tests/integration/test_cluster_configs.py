"""The compose cluster (docker-compose.yml, configs/nats-cluster/) is secure by default, and what
the tests run is what it ships: ``gridwatch nats-cluster-init`` makes the certificates, one
password per identity and the three node configs (``nats-config`` of one users file, so the
permissions are docs/security.md's matrix); those configs, with host names, ports and paths
made local, start as a 3-node JetStream cluster with the real nats-server, whose client port
takes only TLS clients that log in, whose routes are TLS with both ends verified, and where the
worker's identity publishes alerts into replicated streams. The compose file wires the nodes,
their own certificates, the generated configs and a scalable worker that needs its password."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import nats
import nats.js.errors
import pytest
import yaml
from typer.testing import CliRunner

from gridwatch.alerts.publisher import AlertPublisher
from gridwatch.alerts.streams import ensure_alert_infra
from gridwatch.auth.cluster import IDENTITIES, NODES, read_env_file
from gridwatch.auth.models import UserConfig
from gridwatch.auth.natsconf import permissions_for
from gridwatch.bus.connect import connect as bus_connect
from gridwatch.cli.main import app
from gridwatch.config import load_config
from gridwatch.leases.kv import ensure_lease_buckets
from gridwatch_devtools.nats_cluster import _free_port
from gridwatch_devtools.nats_server import NatsServer
from tests.plugins.dispatch import make_alert

pytestmark = pytest.mark.timeout(90)

REPO = Path(__file__).resolve().parents[2]
EXE = str(Path(sys.executable).with_name("gridwatch"))
CLUSTER_DIR = REPO / "configs" / "nats-cluster"
GENERATED = ["certs/ca.pem", "certs/nats-key.pem", "secrets.env", "users.yaml", "nats-1.conf"]


def init(out: Path, **env: str) -> Any:
    result = CliRunner().invoke(app, ["nats-cluster-init", "--out", str(out)], env=env or None)
    assert result.exit_code == 0, result.output
    return result


def passwords(out: Path) -> dict[str, str]:
    env = read_env_file(out / "secrets.env")
    return {i.name: env[i.env] for i in IDENTITIES}


def test_cluster_init_writes_secrets_only_where_they_belong(tmp_path: Path) -> None:
    """Every node config has the same users (bcrypt hashes, the worker confined exactly as
    ``nats-config`` confines a ``service: worker``), TLS on the client port, verified TLS on
    routes to all three nodes; no password appears in any config; the secret files are 0600
    and gitignored; re-running keeps passwords and certificates, a password given in the
    environment wins."""
    out = tmp_path / "nats-cluster"
    init(out)
    pw = passwords(out)
    assert len(set(pw.values())) == len(IDENTITIES)
    confs = [json.loads((out / f"nats-{i}.conf").read_text()) for i in (1, 2, 3)]
    worker = UserConfig(
        name="gw-worker", role="service", service="worker", password_hash="$2b$04$" + "a" * 53
    )
    for i, conf in enumerate(confs, start=1):
        assert conf["server_name"] == f"nats-{i}"
        users = {u["user"]: u for u in conf["authorization"]["users"]}
        assert set(users) == {i.name for i in IDENTITIES}
        assert all(u["password"].startswith("$2b$12$") for u in users.values())
        assert users["gw-worker"]["permissions"] == permissions_for(worker)
        assert "permissions" not in users["gw-admin"]
        assert conf["tls"]["ca_file"] == "/etc/nats/tls/ca.pem"
        cluster = conf["cluster"]
        assert cluster["tls"]["verify"] is True
        assert cluster["routes"] == [f"tls://{h}:6222" for h in NODES]
        assert conf["http"].startswith("127.0.0.1:")  # the monitor stays inside the container
    for f in out.rglob("*"):
        if f.is_file():
            text = f.read_text(errors="replace")
            if f.name != "secrets.env":
                assert not any(p in text for p in pw.values()), f
            if f.name.endswith("-key.pem") or f.suffix in (".conf", ".env", ".yaml"):
                assert f.stat().st_mode & 0o077 == 0, f

    before = (out / "certs" / "nats.pem").read_bytes()
    init(out, GW_ADMIN_NATS_PASSWORD="from-the-secret-store")
    again = passwords(out)
    assert again["gw-worker"] == pw["gw-worker"]
    assert again["gw-admin"] == "from-the-secret-store"
    assert (out / "certs" / "nats.pem").read_bytes() == before

    if shutil.which("git") and (REPO / ".git").exists():
        paths = [str(CLUSTER_DIR / p) for p in GENERATED]
        check = subprocess.run(
            ["git", "check-ignore", "--no-index", *paths],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=False,
        )
        assert check.stdout.split() == paths, check.stdout


def localised(conf_file: Path, i: int, route_ports: list[int], out: Path, tmp: Path) -> Path:
    """Node ``i``'s generated config with the compose host names, ports and container paths
    made local (what the compose file mounts at /etc/nats/tls, from its own certificate)."""
    conf = json.loads(conf_file.read_text())
    host = NODES[i]
    tls = {
        "cert_file": str(out / "certs" / f"{host}.pem"),
        "key_file": str(out / "certs" / f"{host}-key.pem"),
        "ca_file": str(out / "certs" / "ca.pem"),
    }
    conf["tls"].update(tls)
    conf["cluster"]["tls"].update(tls)
    conf["cluster"]["listen"] = f"127.0.0.1:{route_ports[i]}"
    conf["cluster"]["routes"] = [f"tls://127.0.0.1:{p}" for p in route_ports]
    conf["jetstream"]["store_dir"] = str(tmp / f"store-{i}")
    path = tmp / f"local-{conf_file.name}"
    path.write_text(json.dumps(conf))
    return path


def plain_route_peer(port: int) -> bytes:
    """Talk plain text to a route port as a peer would without TLS; what comes back."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b'CONNECT {"verbose":false}\r\nPING\r\n')
        try:
            return s.recv(4096)
        except OSError:
            return b""


def tls_route_peer(port: int, ca: Path, cert: tuple[Path, Path] | None) -> str:
    """A TLS handshake with the route port (showing ``cert`` or no certificate) and the first
    line the node sends over it; ``error: ...`` if the node refuses."""
    ctx = ssl.create_default_context(cafile=str(ca))
    ctx.check_hostname = False
    if cert is not None:
        ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
            ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s,
        ):
            s.settimeout(5)
            return s.makefile("rb").readline().decode(errors="replace")
    except (OSError, ssl.SSLError) as e:
        return f"error: {type(e).__name__}: {e}"


async def _quiet(_e: Exception) -> None:
    return None


def test_the_generated_cluster_is_tls_and_authorized(tmp_path: Path) -> None:
    """Attacks on the compose cluster, against the generated configs on three real nodes: a
    plain-text client (refused: TLS required), an unknown user and a wrong password (refused:
    authorization), a node that shows no certificate on the route port (refused: routes verify
    both ends). Meanwhile the nodes' routes are up over TLS and the worker's identity creates
    replicated streams and buckets and publishes an alert, which another identity reads."""
    out = tmp_path / "nats-cluster"
    init(out)
    pw = passwords(out)
    ca = out / "certs" / "ca.pem"
    ports = [_free_port("127.0.0.1") for _ in NODES]
    nodes = [
        # JetStream and its store come from the file (as in compose), not from -js/-sd flags
        NatsServer(
            config_file=localised(out / f"nats-{i + 1}.conf", i, ports, out, tmp_path),
            jetstream=False,
            startup_timeout=30,
        )
        for i in range(len(NODES))
    ]
    try:
        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            for f in [pool.submit(n.start) for n in nodes]:
                f.result()
        urls = ",".join(n.url.replace("nats://", "tls://") for n in nodes)

        # the routes: all up, over TLS only, and only for peers with a certificate of the CA
        for n in nodes:
            with urllib.request.urlopen(f"{n.monitor_url}/routez", timeout=5) as r:
                routez = json.load(r)
            assert routez["num_routes"] >= 2, routez
            assert {rt["remote_name"] for rt in routez["routes"]} == {
                f"nats-{j + 1}" for j in range(3) if nodes[j] is not n
            }
        certs = out / "certs"
        assert b"PONG" not in plain_route_peer(ports[0])  # no plain-text route
        refused = tls_route_peer(ports[0], ca, None)  # TLS, but no certificate to show
        assert not refused.startswith("INFO"), refused
        accepted = tls_route_peer(ports[0], ca, (certs / "nats-2.pem", certs / "nats-2-key.pem"))
        assert accepted.startswith("INFO"), accepted  # a node with a certificate of the CA
        logs = [n.log_file.read_text(errors="replace") if n.log_file else "" for n in nodes]
        assert all("TLS required for client connections" in text for text in logs)
        # the node's own account of the two refused peers: plain text, then no certificate
        assert logs[0].count("Router connection closed: TLS Handshake Failure") == 2, logs[0]
        assert "didn't provide a certificate" in logs[0]

        async def attacks_and_work() -> None:
            # plain text: the client port requires TLS
            with pytest.raises(Exception):  # noqa: B017, PT011 - any error: it never connects
                await asyncio.wait_for(
                    nats.connect(
                        nodes[0].url, user="gw-worker", password=pw["gw-worker"],
                        allow_reconnect=False, max_reconnect_attempts=0, connect_timeout=2,
                        error_cb=_quiet,
                    ),
                    10,
                )  # fmt: skip
            # an unknown user, and a known one with a wrong password, over proper TLS
            for user, secret in (("mallory", "guess"), ("gw-worker", "wrong-password")):
                with pytest.raises(Exception, match=r"(?i)authorization"):
                    await asyncio.wait_for(
                        bus_connect(
                            urls, user=user, password=secret, name="attacker",
                            tls_ca_file=str(ca), max_reconnect_attempts=0,
                            allow_reconnect=False, error_cb=_quiet, connect_timeout=3,
                        ),
                        15,
                    )  # fmt: skip
            # the worker's identity: replicated streams and buckets, an alert published
            errors: list[str] = []

            async def record(e: Exception) -> None:
                errors.append(str(e))

            worker = await bus_connect(
                urls, user="gw-worker", password=pw["gw-worker"], name="gw-worker",
                tls_ca_file=str(ca), error_cb=record,
            )  # fmt: skip
            admin = await bus_connect(
                urls, user="gw-admin", password=pw["gw-admin"], name="gw-admin",
                tls_ca_file=str(ca), error_cb=_quiet,
            )  # fmt: skip
            try:
                js = worker.jetstream(timeout=20)
                # /healthz is ok once the meta group has a leader; a node may join it as a
                # JetStream peer a moment later ("no suitable peers for placement")
                for attempt in range(40):
                    try:
                        await ensure_alert_infra(js, replicas=3)
                        break
                    except nats.js.errors.BadRequestError as e:
                        if e.err_code != 10005 or attempt == 39:
                            raise
                        await asyncio.sleep(0.5)
                leases, _ = await ensure_lease_buckets(js, replicas=3)
                status = await leases.status()
                assert status.stream_info.config.num_replicas == 3
                alert = make_alert("kdl-shaoxian-01", "school-09-south-gate", 1)
                await AlertPublisher(worker).publish(alert)
                msg = await admin.jetstream(timeout=10).get_last_msg(
                    "GW_ALERTS", "gw.v1.alerts.kdl-shaoxian-01.school-09-south-gate.>"
                )
                assert alert.id in (msg.data or b"").decode()
                # ... and its identity is confined: no forging of case events
                await worker.publish("gw.v1.cases.kdl-shaoxian-01.x", b"forged")
                await worker.flush(timeout=5)
                await asyncio.sleep(0.3)
                assert any("permissions violation" in e.lower() for e in errors), errors
                assert worker.connected_url is not None
                assert worker.connected_url.scheme == "tls"
                # what the compose header documents: `gridwatch workers` in a worker container
                env = {
                    **os.environ,
                    "GW_NATS_USER": "gw-worker",
                    "GW_NATS_PASSWORD": pw["gw-worker"],
                    "GW_NATS_TLS_CA": str(ca),
                }
                cli = await asyncio.to_thread(
                    subprocess.run,
                    [EXE, "workers", "--json", "--nats", urls],
                    capture_output=True, text=True, timeout=60, check=False, env=env,
                )  # fmt: skip
                assert cli.returncode == 0, cli.stderr
                assert json.loads(cli.stdout)["workers"] == []
            finally:
                await worker.close()
                await admin.close()

        asyncio.run(attacks_and_work())
    finally:
        for n in nodes:
            n.close()


def test_compose_runs_a_secured_cluster_and_a_scalable_worker(tmp_path: Path) -> None:
    """docker-compose.yml: three nodes, each with its generated config, the CA and only its
    own certificate and key, no monitor port on the host; a scalable worker logging in as
    gw-worker over TLS, whose password must come from secrets.env (``docker-compose config``
    fails without it, where docker-compose is installed)."""
    doc = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = doc["services"]
    for i, name in enumerate(NODES, start=1):
        node = services[name]
        mounts = node["volumes"]
        assert f"./configs/nats-cluster/nats-{i}.conf:/etc/nats/nats.conf:ro" in mounts
        assert f"./configs/nats-cluster/certs/{name}.pem:/etc/nats/tls/cert.pem:ro" in mounts
        assert f"./configs/nats-cluster/certs/{name}-key.pem:/etc/nats/tls/key.pem:ro" in mounts
        assert "./configs/nats-cluster/certs/ca.pem:/etc/nats/tls/ca.pem:ro" in mounts
        keys = [m for m in mounts if "-key.pem" in m]
        assert len(keys) == 1  # its own key only; never the CA's
        assert "/data" in " ".join(mounts)
        assert not any("8222" in p for p in node.get("ports", []))
    worker = services["worker"]
    assert "ports" not in worker  # replicas would fight over host ports
    assert "container_name" not in worker
    assert {"nats", "nats-2", "nats-3"} <= set(worker["depends_on"])
    env = worker["environment"]
    assert env["GW_NATS_USER"] == "gw-worker"
    assert env["GW_NATS_PASSWORD"].startswith("${GW_WORKER_NATS_PASSWORD:?")
    assert "ca.pem:/etc/gridwatch/nats-ca.pem:ro" in " ".join(worker["volumes"])
    assert not any("key" in v for v in worker["volumes"])
    cfg = load_config(REPO / "configs" / "compose.yaml")
    assert cfg.leases.enabled
    assert cfg.nats.replicas == 3
    assert cfg.nats.url.split(",") == [f"tls://{h}:4222" for h in NODES]
    assert cfg.nats.password is None  # from the environment only

    compose = shutil.which("docker-compose")
    if compose is None:
        # CI installs it (./run setup): there a missing one is a failure, not a skip
        message = "docker-compose is not installed (./run setup installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    out = tmp_path / "nats-cluster"
    init(out)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GW_")}
    bare = subprocess.run(
        [compose, "-f", "docker-compose.yml", "config"],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=False, env=clean,
    )  # fmt: skip
    assert bare.returncode != 0
    assert "nats-cluster-init" in bare.stderr
    ok = subprocess.run(
        [compose, "--env-file", str(out / "secrets.env"), "-f", "docker-compose.yml", "config"],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=False, env=clean,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    resolved = yaml.safe_load(ok.stdout)["services"]["worker"]["environment"]
    assert resolved["GW_NATS_PASSWORD"] == passwords(out)["gw-worker"]

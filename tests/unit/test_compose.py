"""docker-compose.yml must validate (no Docker engine runs here, so only `config`)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def _compose_cmd() -> list[str]:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    assert probe.returncode == 0, (
        "neither docker-compose nor the docker compose plugin is installed "
        "(./run setup installs docker-compose)"
    )
    return ["docker", "compose"]


def test_compose_file_refuses_to_run_without_its_secrets() -> None:
    """Secure by default: without configs/nats-cluster/secrets.env (made by `gridwatch
    nats-cluster-init`) the worker has no password and `config` fails, naming the command.
    (tests/integration/test_cluster_configs.py validates it with the secrets and runs the
    generated cluster.)"""
    result = subprocess.run(
        [*_compose_cmd(), "-f", str(REPO / "docker-compose.yml"), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin:/usr/local/bin"},
    )
    assert result.returncode != 0
    assert "nats-cluster-init" in result.stderr


def test_compose_has_nats_camera_and_worker_with_a_valid_config() -> None:
    doc = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = doc["services"]
    assert {"nats", "nats-2", "nats-3", "camera", "worker"} <= set(services)
    # JetStream, TLS and users come from each node's generated config, not from flags
    assert services["nats"]["command"] == ["-c", "/etc/nats/nats.conf"]
    assert any("nats-data" in v for v in services["nats"]["volumes"])
    from gridwatch.config import load_config

    cfg = load_config(REPO / "configs" / "compose.yaml")
    assert cfg.cameras[0].url == "rtsp://camera:8554/gate"
    assert cfg.nats.url.startswith("tls://")

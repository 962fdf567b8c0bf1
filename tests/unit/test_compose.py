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


def test_compose_file_validates() -> None:
    result = subprocess.run(
        [*_compose_cmd(), "-f", str(REPO / "docker-compose.yml"), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_compose_has_nats_camera_and_worker_with_a_valid_config() -> None:
    doc = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = doc["services"]
    assert {"nats", "camera", "worker"} <= set(services)
    assert "-js" in services["nats"]["command"]
    assert any("nats-data" in v for v in services["nats"]["volumes"])
    from gridwatch.config import load_config

    cfg = load_config(REPO / "configs" / "compose.yaml")
    assert cfg.cameras[0].url == "rtsp://camera:8554/gate"

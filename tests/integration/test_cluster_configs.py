"""The shipped 3-node cluster (configs/nats-cluster/, docker-compose.yml) is what the tests run:
the node configs parse with the pinned nats-server, form a JetStream cluster that takes
replicated KV buckets (once host names and ports are made local), and the compose file wires
three nodes, their configs and volumes, and a worker service that can be scaled."""

from __future__ import annotations

import asyncio
import concurrent.futures
import re
import subprocess
from pathlib import Path

import nats
import yaml

from gridwatch.config import load_config
from gridwatch.embedded.nats_cluster import _free_port
from gridwatch.embedded.nats_server import NatsServer, find_nats_server
from gridwatch.leases.kv import ensure_lease_buckets

REPO = Path(__file__).resolve().parents[2]
CONFS = [REPO / "configs" / "nats-cluster" / f"nats-{i}.conf" for i in (1, 2, 3)]
HOSTS = ["nats", "nats-2", "nats-3"]


def test_node_configs_parse() -> None:
    for conf in CONFS:
        result = subprocess.run(
            [str(find_nats_server()), "-c", str(conf), "-t"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        text = conf.read_text()
        assert "jetstream" in text
        for host in HOSTS:  # every node routes to every node
            assert f"nats-route://{host}:6222" in text


def localised(conf: Path, ports: list[int], me: int, store: Path) -> str:
    """The node config with the compose host names and fixed ports made local."""
    text = conf.read_text()
    for host, port in sorted(zip(HOSTS, ports, strict=True), key=lambda hp: -len(hp[0])):
        text = text.replace(f"nats-route://{host}:6222", f"nats-route://127.0.0.1:{port}")
    text = text.replace("listen: 0.0.0.0:6222", f"listen: 127.0.0.1:{ports[me]}")
    text = re.sub(r"store_dir: \S+", f'store_dir: "{store}"', text)
    return text


def test_the_shipped_node_configs_form_a_replicated_cluster(tmp_path: Path) -> None:
    ports = [_free_port("127.0.0.1") for _ in CONFS]
    nodes = []
    for i, conf in enumerate(CONFS):
        local = tmp_path / conf.name
        local.write_text(localised(conf, ports, i, tmp_path / f"store-{i}"))
        # JetStream and its store come from the file (as in compose), not from -js/-sd flags
        nodes.append(NatsServer(config_file=local, jetstream=False))
    try:
        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            for f in [pool.submit(n.start) for n in nodes]:
                f.result()

        async def replicated() -> int:
            nc = await nats.connect(servers=[n.url for n in nodes])
            try:
                leases, _ = await ensure_lease_buckets(nc.jetstream(timeout=20), replicas=3)
                status = await leases.status()
                return int(status.stream_info.config.num_replicas or 0)
            finally:
                await nc.close()

        assert asyncio.run(replicated()) == 3
    finally:
        for n in nodes:
            n.close()


def test_compose_runs_three_nodes_and_a_scalable_worker() -> None:
    doc = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = doc["services"]
    for i, name in enumerate(HOSTS, start=1):
        node = services[name]
        assert "-js" in node["command"]
        mounts = " ".join(node["volumes"])
        assert f"configs/nats-cluster/nats-{i}.conf:/etc/nats/nats.conf" in mounts
        assert "/data" in mounts
    worker = services["worker"]
    assert "ports" not in worker  # replicas would fight over host ports
    assert "container_name" not in worker
    assert {"nats", "nats-2", "nats-3"} <= set(worker["depends_on"])
    cfg = load_config(REPO / "configs" / "compose.yaml")
    assert cfg.leases.enabled
    assert cfg.nats.replicas == 3
    assert cfg.nats.url.split(",") == [f"nats://{h}:4222" for h in HOSTS]

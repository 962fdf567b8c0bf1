"""pytest fixture for a real 3-node ``nats-server`` cluster with JetStream on loopback ports.

Loaded through ``pytest_plugins`` in the root conftest. Each node is a child process with its
own store under the test's tmp_path; route ports are picked free, client and monitor ports by
the servers (see :mod:`gridwatch_devtools.nats_cluster`). Every node is stopped at teardown,
also when the test fails or killed a node itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gridwatch_devtools.nats_cluster import NatsCluster


@pytest.fixture
def nats_cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    """Three clustered JetStream nodes, all up and with a meta leader."""
    cluster = NatsCluster(3, base_dir=tmp_path / "nats-cluster")
    with cluster:
        yield cluster

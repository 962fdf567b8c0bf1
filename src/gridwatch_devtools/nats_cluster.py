"""A real 3-node (or N-node) ``nats-server`` cluster with JetStream, as child processes on
loopback: for the cluster tests, the city-scale simulation and single-box trials.

Why real processes: what the scale-out design relies on (R3 streams and KV buckets surviving a
node, clients failing over to the other nodes, leader elections) is server behaviour that only
the server can show. Each node is a :class:`~gridwatch_devtools.nats_server.NatsServer`, so
client and monitor ports are chosen by the server and read back from its ports file; only the
cluster (route) ports must be known before the nodes start, because every node's config names
every other node's route. They are picked by binding port 0 and closing it, and the whole start
is retried with fresh ports if a node fails to bind (the only racy step, and a rare one).

All nodes start at once (in threads): a clustered JetStream node reports ``/healthz`` ok only
once the meta group has a leader, which needs a quorum of nodes up.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import shutil
import socket
import tempfile
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

from gridwatch_devtools.nats_server import NatsServer, NatsServerError

log = logging.getLogger(__name__)

CLUSTER_NAME = "gridwatch"


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def node_config(name: str, cluster_port: int, peer_ports: list[int], host: str) -> str:
    """The config file of one node: its name, the cluster listen address and routes to peers."""
    routes = ", ".join(f'"nats-route://{host}:{p}"' for p in peer_ports)
    return (
        f'server_name: "{name}"\n'
        f"cluster {{\n"
        f'  name: "{CLUSTER_NAME}"\n'
        f'  listen: "{host}:{cluster_port}"\n'
        f"  routes: [{routes}]\n"
        f"}}\n"
    )


class NatsCluster:
    """``size`` JetStream nodes clustered over loopback routes; always stopped on exit.

    ``nodes[i]`` is a :class:`NatsServer`: ``stop()`` kills one node gracefully,
    :meth:`kill` kills it with SIGKILL, ``start()`` brings it back on the same ports and store.
    """

    def __init__(
        self,
        size: int = 3,
        *,
        host: str = "127.0.0.1",
        base_dir: str | Path | None = None,
        startup_timeout: float = 30.0,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        if size < 1:
            raise ValueError("a cluster needs at least one node")
        self.size = size
        self.host = host
        self.startup_timeout = startup_timeout
        self.extra_args = extra_args
        self._own_dir = base_dir is None
        self.base_dir = Path(base_dir) if base_dir is not None else None
        self.nodes: list[NatsServer] = []

    # -- addresses -------------------------------------------------------------------------

    @property
    def urls(self) -> list[str]:
        """Client URLs of every node, in node order."""
        return [n.url for n in self.nodes]

    @property
    def url(self) -> str:
        """All client URLs comma separated: the form ``nats.url`` and ``--nats`` take."""
        return ",".join(self.urls)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> NatsCluster:
        last: Exception | None = None
        for attempt in range(3):
            try:
                self._start_once()
                return self
            except NatsServerError as exc:  # most likely a route port taken meanwhile
                last = exc
                log.warning("cluster start attempt %d failed: %s", attempt + 1, exc)
                self.close()
        raise NatsServerError(f"the {self.size}-node cluster did not start: {last}")

    def _start_once(self) -> None:
        if self.base_dir is None or (self._own_dir and not self.base_dir.exists()):
            self.base_dir = Path(tempfile.mkdtemp(prefix="gridwatch-nats-cluster-"))
        ports = [_free_port(self.host) for _ in range(self.size)]
        self.nodes = []
        for i in range(self.size):
            name = f"n{i + 1}"
            node_dir = self.base_dir / name
            node_dir.mkdir(parents=True, exist_ok=True)
            conf = node_dir / "node.conf"
            peers = [p for j, p in enumerate(ports) if j != i]
            conf.write_text(node_config(name, ports[i], peers, self.host))
            self.nodes.append(
                NatsServer(
                    host=self.host,
                    config_file=conf,
                    store_dir=node_dir / "store",
                    startup_timeout=self.startup_timeout,
                    extra_args=self.extra_args,
                )
            )
        with concurrent.futures.ThreadPoolExecutor(self.size) as pool:
            futures = [pool.submit(n.start) for n in self.nodes]
            for f in futures:
                f.result()
        t0 = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(1) as pool:  # a loop of its own
            pool.submit(asyncio.run, self._probe_replicated()).result()
        log.info(
            "nats cluster of %d up: %s (replicated writes ok after %.2fs)",
            self.size,
            self.url,
            time.perf_counter() - t0,
        )

    async def _probe_replicated(self) -> None:
        """Wait until a stream replicated on every node can be created and written.

        ``/healthz`` says ok once the meta group has a leader; the first replicated stream can
        still take seconds to form its own group (longer than a client's 5 s API timeout on a
        loaded machine), so the cluster is only handed out once one has.
        """
        import nats
        import nats.errors
        import nats.js.errors
        from nats.js import api as js_api

        nc = await nats.connect(servers=self.urls, connect_timeout=2)
        try:
            js = nc.jetstream(timeout=self.startup_timeout)
            name = "GRIDWATCH_CLUSTER_PROBE"
            await js.add_stream(
                js_api.StreamConfig(
                    name=name,
                    subjects=["_gridwatch.probe"],
                    storage=js_api.StorageType.MEMORY,
                    num_replicas=self.size,
                )
            )
            # the stream exists before its group has a leader: until then a publish finds no
            # responder at once (NoStreamResponseError), which failed this setup once in CI
            deadline = time.monotonic() + self.startup_timeout
            while True:
                try:
                    await js.publish("_gridwatch.probe", b"ok", timeout=5)
                    break
                except (nats.js.errors.NoStreamResponseError, nats.errors.TimeoutError):
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.2)
            await js.delete_stream(name)
        finally:
            await nc.close()

    def kill(self, index: int) -> None:
        """SIGKILL node ``index`` (a crash: no lame duck, no clean JetStream shutdown)."""
        node = self.nodes[index]
        pid = node.pid
        if pid is not None:
            import os
            import signal

            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        node.stop()

    def varz(self, index: int) -> dict[str, Any]:
        """The node's ``/varz`` monitoring document (message and byte counters, connections)."""
        with urllib.request.urlopen(f"{self.nodes[index].monitor_url}/varz", timeout=5) as r:
            doc: dict[str, Any] = json.loads(r.read())
        return doc

    def close(self) -> None:
        """Stop every node and remove the directory this object created."""
        for node in self.nodes:
            with contextlib.suppress(Exception):
                node.close()
        if self._own_dir and self.base_dir is not None:
            shutil.rmtree(self.base_dir, ignore_errors=True)
            self.base_dir = None

    def __enter__(self) -> NatsCluster:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        up = sum(1 for n in self.nodes if n.running)
        return f"<NatsCluster {up}/{self.size} up: {self.url if self.nodes else '-'}>"

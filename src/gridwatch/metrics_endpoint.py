"""A Prometheus ``/metrics`` endpoint on a background thread, for any service's registry.

The worker and the GB/T 28181 cascade both export their figures this way; one class keeps
how the server is started and stopped (and its port, useful with port 0) in one place.

>>> from prometheus_client import CollectorRegistry
>>> endpoint = MetricsEndpoint(CollectorRegistry(), "example")
>>> port = endpoint.serve("127.0.0.1", 0)
>>> port > 0
True
>>> endpoint.close()
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server

log = logging.getLogger(__name__)


class MetricsEndpoint:
    """Serves ``registry`` at ``http://host:port/metrics`` until :meth:`close`."""

    def __init__(self, registry: CollectorRegistry, what: str = "metrics") -> None:
        self.registry = registry
        self.what = what
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.port: int | None = None

    def serve(self, host: str = "127.0.0.1", port: int = 9108) -> int:
        """Serve ``/metrics`` on a background thread; returns the port (useful with 0)."""
        server, thread = start_http_server(port, addr=host, registry=self.registry)
        self._server, self._thread = server, thread
        self.port = int(server.server_port)
        log.info("%s at http://%s:%d/metrics", self.what, host, self.port)
        return self.port

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

"""The cascade's figures: one status report (KV ``gw_gb28181``, key ``status``, read by
``gridwatch status``) and the Prometheus metrics built from the same report, so the two can
never disagree.

>>> s = CascadeStatus(state="registered", sent=3)
>>> CascadeStatus.model_validate_json(s.model_dump_json()).sent
3
>>> b"gridwatch_gb28181_alarms_total" in render(s)
True
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from pydantic import BaseModel, ConfigDict, Field

from gridwatch.metrics_endpoint import MetricsEndpoint

log = logging.getLogger(__name__)

STATUS_KEY = "status"
GUARD_KEY = "guard"
STATES = ("unregistered", "registering", "registered", "refreshing")


class CascadeStatus(BaseModel):
    """One report of the cascade service (published every few seconds)."""

    model_config = ConfigDict(extra="ignore")

    device_id: str = Field(default="", description="Our 20-digit id.")
    superior: str = Field(default="", description="sip:<id>@<domain> of the superior.")
    transport: str = Field(default="udp", description="udp | tcp")
    state: str = Field(default="unregistered", description="Registration state.")
    registered_since: float | None = Field(default=None, description="Unix seconds.")
    granted_expires_s: int | None = Field(default=None, description="Expiry the superior gave.")
    last_keepalive_ok: float | None = Field(default=None, description="Unix seconds.")
    keepalives_sent: int = 0
    keepalives_unanswered: int = 0
    registrations: int = 0
    refreshes: int = 0
    registration_failures: int = 0
    last_error: str = ""
    guard_on: bool = True
    channels: int = 0
    sent: int = Field(default=0, description="Alarms the superior acknowledged.")
    pending: int = Field(default=0, description="Alerts not yet handled by the cascade.")
    failed: int = Field(default=0, description="Alarms the superior refused for good.")
    duplicates: int = 0
    expired: int = 0
    gated: int = 0
    retries: int = 0
    last_alarm_at: float | None = None
    queries: dict[str, int] = Field(default_factory=dict, description="Requests answered.")
    updated_at: float = 0.0


async def read_status(js: Any) -> CascadeStatus | None:
    """The cascade's last report from KV ``gw_gb28181`` (None: it has not run yet). Raises
    the NATS error when the bucket cannot be read (no permission, no server)."""
    import nats.js.errors

    from gridwatch.bus.names import GB28181_KV

    try:
        kv = await js.key_value(GB28181_KV)
        entry = await kv.get(STATUS_KEY)
    except (nats.js.errors.BucketNotFoundError, nats.js.errors.KeyNotFoundError):
        return None
    return CascadeStatus.model_validate_json(entry.value or b"{}")


class _Collector(Collector):
    def __init__(self, status: Callable[[], CascadeStatus]) -> None:
        self.status = status

    def collect(self) -> Iterator[Any]:
        s = self.status()
        state = GaugeMetricFamily(
            "gridwatch_gb28181_registration_state",
            "1 for the current registration state with the superior platform.",
            labels=["state"],
        )
        for name in STATES:
            state.add_metric([name], 1.0 if s.state == name else 0.0)
        yield state
        yield GaugeMetricFamily(
            "gridwatch_gb28181_last_keepalive_timestamp_seconds",
            "When the superior last answered a keepalive (0: never).",
            value=s.last_keepalive_ok or 0.0,
        )
        alarms = CounterMetricFamily(
            "gridwatch_gb28181_alarms",
            "Alerts handled by the cascade, by outcome.",
            labels=["outcome"],
        )
        for outcome in ("sent", "failed", "duplicates", "expired", "gated"):
            alarms.add_metric([outcome], float(getattr(s, outcome)))
        yield alarms
        yield GaugeMetricFamily(
            "gridwatch_gb28181_alarms_pending",
            "Alerts in GW_ALERTS the cascade has not finished yet.",
            value=s.pending,
        )
        yield CounterMetricFamily(
            "gridwatch_gb28181_alarm_retries",
            "Alarm MESSAGE attempts that got no 2xx and were retried.",
            value=s.retries,
        )
        yield CounterMetricFamily(
            "gridwatch_gb28181_keepalives_unanswered",
            "Keepalive MESSAGEs the superior did not answer with 2xx.",
            value=s.keepalives_unanswered,
        )
        yield CounterMetricFamily(
            "gridwatch_gb28181_registration_failures",
            "REGISTER exchanges that failed (timeout, refused, wrong password).",
            value=s.registration_failures,
        )
        yield GaugeMetricFamily(
            "gridwatch_gb28181_guard_on", "1 while armed (alarms go).", value=float(s.guard_on)
        )
        queries = CounterMetricFamily(
            "gridwatch_gb28181_queries", "Requests from the superior answered.", labels=["cmd"]
        )
        for cmd, n in sorted(s.queries.items()):
            queries.add_metric([cmd], float(n))
        yield queries


def registry_for(status: Callable[[], CascadeStatus]) -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=True)
    reg.register(_Collector(status))
    return reg


def render(status: CascadeStatus) -> bytes:
    """The exposition text of one report."""
    return generate_latest(registry_for(lambda: status))


class MetricsServer(MetricsEndpoint):
    """``/metrics`` on a background thread (as the worker serves its own)."""

    def __init__(self, status: Callable[[], CascadeStatus]) -> None:
        super().__init__(registry_for(status), "gb28181 metrics")

"""The ``console:`` section of the config: where the console listens, sessions, logins, the
live wall's bounds and audit retention.

Kept apart from :mod:`gridwatch.config` (which includes it) so the console's knobs sit next to
the code that uses them; like the rest of the config every field is titled and documented and
unknown keys are errors.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from gridwatch.strict import Strict as _Strict


class ConsoleConfig(_Strict):
    host: str = Field(
        default="127.0.0.1",
        title="Listen address",
        description="Interface the console listens on (0.0.0.0: every interface).",
    )
    port: int = Field(default=8080, ge=0, le=65535, title="Port", description="TCP port.")
    tls_cert_file: str | None = Field(
        default=None,
        title="TLS certificate",
        description="PEM certificate (chain) to serve HTTPS directly; none: plain HTTP (put a "
        "TLS proxy in front: phones need HTTPS for service workers and Web Push).",
    )
    tls_key_file: str | None = Field(
        default=None, title="TLS key", description="PEM private key of tls_cert_file."
    )
    cookie_secure: Literal["auto", "always", "never"] = Field(
        default="auto",
        title="Secure cookie",
        description="Mark the session cookie Secure: auto (when the request came over HTTPS), "
        "always (behind a TLS proxy), never (plain HTTP tests only).",
    )
    session_idle_s: float = Field(
        default=7200.0,
        gt=0,
        title="Session idle timeout",
        description="Seconds without a request (an open wall counts) after which a session ends.",
    )
    session_max_s: float = Field(
        default=43200.0,
        gt=0,
        title="Session lifetime",
        description="Seconds after login a session ends however active it is (one shift).",
    )
    max_sessions: int = Field(
        default=10000,
        ge=1,
        title="Most sessions",
        description="Sessions kept at most; past it the least recently used one ends.",
    )
    login_max_failures: int = Field(
        default=5,
        ge=1,
        title="Failed logins allowed",
        description="Failed logins per user name, and per client address, within "
        "login_window_s before further attempts are refused without checking (HTTP 429).",
    )
    login_window_s: float = Field(
        default=300.0,
        gt=0,
        title="Failed login window",
        description="Seconds failed logins are remembered for the limit.",
    )
    sse_queue_size: int = Field(
        default=256,
        ge=1,
        title="Live queue per client",
        description="Wall updates buffered per browser; a client that falls this far behind "
        "is disconnected (it reconnects and reloads), so it never slows anyone else.",
    )
    sse_write_timeout_s: float = Field(
        default=10.0,
        gt=0,
        title="Live write timeout",
        description="Seconds one write to a browser may take before it counts as stuck and "
        "is disconnected.",
    )
    sse_heartbeat_s: float = Field(
        default=15.0,
        gt=0,
        title="Live heartbeat",
        description="Seconds between keep-alive comments on the live feed (proxies close "
        "silent connections); the session is re-checked at each.",
    )
    wall_lookback_s: float = Field(
        default=86400.0,
        gt=0,
        title="Wall look-back",
        description="Alerts and case events stored this long ago or later fill a freshly "
        "opened wall; cases still open from before are added from the case service.",
    )
    wall_max_items: int = Field(
        default=500,
        ge=1,
        title="Wall size",
        description="Alerts kept on one wall at most (the oldest leave first).",
    )
    health_stale_s: float = Field(
        default=35.0,
        gt=0,
        title="Health staleness",
        description="A camera whose last health report is older than this shows offline "
        "(workers report every 10 s).",
    )
    live_sub_stream: bool = Field(
        default=True,
        title="Live from the sub-stream",
        description="Live video from a camera's sub_url when it has one (cheaper to relay "
        "and re-encode); false: always the main url.",
    )
    live_ice_host: str | None = Field(
        default=None,
        title="Live ICE address",
        description="The one local address browsers reach for live video (WebRTC host "
        "candidates); none: every interface's. Set it on servers with several networks.",
    )
    audit_retention_days: float = Field(
        default=365.0,
        gt=0,
        title="Audit retention",
        description="Days audit records (stream GW_AUDIT) are kept.",
    )
    request_timeout_s: float = Field(
        default=5.0,
        gt=0,
        title="Service timeout",
        description="Seconds to wait for the case and snapshot services per request.",
    )

    @model_validator(mode="after")
    def _check(self) -> ConsoleConfig:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("give both tls_cert_file and tls_key_file, or neither")
        if self.session_max_s < self.session_idle_s:
            raise ValueError("session_max_s cannot be shorter than session_idle_s")
        return self

"""The ``console:`` section of the config: where the console listens, sessions, logins, the
live wall's bounds and audit retention.

Kept apart from :mod:`gridwatch.config` (which includes it) so the console's knobs sit next to
the code that uses them; like the rest of the config every field is titled and documented and
unknown keys are errors.
"""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import Field, field_validator, model_validator

from gridwatch.config.strict import Strict as _Strict


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
    trusted_proxies: list[str] = Field(
        default_factory=list,
        title="Trusted proxies",
        description="Addresses or networks (e.g. 127.0.0.1, 10.0.0.0/8) of the TLS proxies in "
        "front of the console. Only a request from one of them has its client address taken "
        "from X-Forwarded-For (or Forwarded): the nearest address in it that is not itself a "
        "trusted proxy. From anyone else those headers are ignored. Used for the failed-login "
        "limit per address and in audit records.",
    )
    trusted_proxy_header: Literal["X-Forwarded-For", "Forwarded"] = Field(
        default="X-Forwarded-For",
        title="Proxy header",
        description="The header the trusted proxies append the client's address to (the "
        "other one is ignored, so a client cannot choose its address through it).",
    )
    max_streams_per_user: int = Field(
        default=4,
        ge=1,
        title="Live walls per user",
        description="Live feeds (/api/events: two JetStream consumers and a look-back replay "
        "each) one user may hold open at once; more are refused with HTTP 429 (the page "
        "retries). A logout ends the session's feeds.",
    )
    max_live_per_user: int = Field(
        default=4,
        ge=1,
        title="Live videos per user",
        description="Live video (WebRTC) sessions one user may hold at once, a share of the "
        "console's total; more are refused with HTTP 429. A logout or an expired session "
        "hangs up the session's videos.",
    )
    alert_lookups_per_minute: int = Field(
        default=30,
        ge=1,
        title="Alert look-ups per user",
        description="Alert details without a case (each replays the grid's stored alerts of "
        "the look-back) one user may ask for per minute; more answer HTTP 429. Ids found "
        "unknown are remembered for alert_unknown_cache_s and answer 404 without a replay.",
    )
    alert_unknown_cache_s: float = Field(
        default=30.0,
        ge=0,
        title="Unknown alert cache",
        description="Seconds an alert id that was looked up and not found answers 404 "
        "without another replay (0: not remembered).",
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
    live_blurred_roles: Literal["blur", "refuse"] = Field(
        default="blur",
        title="Live view for blurred roles",
        description="What the live view does for roles that get blurred snapshots (those not "
        "in notify.full_snapshot_roles, e.g. responders): blur (people pixelated by a person "
        "detector in the console; the whole picture while it has no fresh result) or refuse "
        "(HTTP 403). Privacy masks are painted and every view is audited either way.",
    )
    audit_retention_days: float = Field(
        default=365.0,
        gt=0,
        title="Audit retention",
        description="Days audit records (stream GW_AUDIT) are kept. An existing stream that "
        "keeps them longer is never shortened (a warning says so).",
    )
    audit_max_bytes: int = Field(
        default=8 * 1024**3,
        ge=1024 * 1024,
        title="Audit size cap",
        description="Bytes GW_AUDIT may hold; past it the oldest records go. Failed logins are "
        "aggregated, so a flood cannot fill it fast. Never shrinks an existing larger cap.",
    )
    audit_max_msgs: int = Field(
        default=50_000_000,
        ge=1000,
        title="Audit record cap",
        description="Records GW_AUDIT may hold; past it the oldest go. Never shrinks an "
        "existing larger cap.",
    )
    audit_login_window_s: float = Field(
        default=300.0,
        gt=0,
        title="Failed login audit window",
        description="Failed and refused logins are audited as one record per (name, address) "
        "and window: the first at once, the rest as a count when the window ends.",
    )
    audit_login_max_keys: int = Field(
        default=256,
        ge=1,
        title="Failed login audit keys",
        description="(name, address) pairs tracked per window; failures beyond them are "
        "counted together in one overflow record (bounded memory and records per window).",
    )
    request_timeout_s: float = Field(
        default=5.0,
        gt=0,
        title="Service timeout",
        description="Seconds to wait for the case and snapshot services per request.",
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, v: list[str]) -> list[str]:
        for item in v:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or network") from None
        return v

    @model_validator(mode="after")
    def _check(self) -> ConsoleConfig:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("give both tls_cert_file and tls_key_file, or neither")
        if self.session_max_s < self.session_idle_s:
            raise ValueError("session_max_s cannot be shorter than session_idle_s")
        return self

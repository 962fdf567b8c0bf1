"""The ``notify:`` section of the config: Web Push (VAPID), webhooks, snapshot privacy."""

from __future__ import annotations

import os
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from gridwatch.alerts.subjects import TOKEN_RE
from gridwatch.auth.models import Role
from gridwatch.config.strict import Strict as _Strict

NotifyEvent = Literal[
    "alert.raised",
    "alert.updated",
    "alert.cleared",
    "case.opened",
    "case.acknowledged",
    "case.dispatched",
    "case.on_scene",
    "case.resolved",
    "case.escalated",
    "case.alert_cleared",
]


def _default_events() -> list[NotifyEvent]:
    return ["alert.raised", "case.escalated"]


def _roles(*roles: Role) -> list[Role]:
    return list(roles)


class WebhookConfig(_Strict):
    name: str = Field(
        pattern=TOKEN_RE.pattern,
        max_length=64,
        title="Name",
        description="Identifies the endpoint in logs and idempotency keys.",
    )
    url: str = Field(title="URL", description="http(s) URL the JSON is POSTed to.")
    secret: str | None = Field(
        default=None,
        title="Secret",
        description="HMAC-SHA256 key for the signature header (prefer secret_env).",
    )
    secret_env: str | None = Field(
        default=None,
        title="Secret variable",
        description="Environment variable holding the HMAC key.",
    )
    events: list[NotifyEvent] = Field(
        default_factory=_default_events,
        min_length=1,
        title="Events",
        description="Which alert and case events are sent.",
    )
    grids: list[str] | None = Field(
        default=None, title="Grids", description="Only these grids; none: all grids."
    )
    max_attempts: int = Field(
        default=6, ge=1, le=20, title="Attempts", description="Tries per event, with backoff."
    )
    backoff_initial_s: float = Field(
        default=0.5, gt=0, title="First backoff", description="Seconds before the first retry."
    )
    backoff_max_s: float = Field(
        default=10.0, gt=0, title="Longest backoff", description="Cap of the doubling backoff."
    )
    timeout_s: float = Field(default=5.0, gt=0, title="Timeout", description="Seconds per POST.")

    @field_validator("url")
    @classmethod
    def _http(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("url must be http:// or https://")
        return v

    @model_validator(mode="after")
    def _one_secret(self) -> WebhookConfig:
        if (self.secret is None) == (self.secret_env is None):
            raise ValueError("give exactly one of secret and secret_env")
        return self

    def resolved_secret(self) -> bytes:
        if self.secret is not None:
            return self.secret.encode()
        assert self.secret_env is not None
        value = os.environ.get(self.secret_env)
        if not value:
            raise RuntimeError(f"webhook {self.name}: ${self.secret_env} is not set")
        return value.encode()


class NotifyConfig(_Strict):
    vapid_private_key_file: str | None = Field(
        default=None,
        title="VAPID private key",
        description="PEM file from `gridwatch keys vapid`; none: no Web Push.",
    )
    vapid_subject: str = Field(
        default="mailto:ops@gridwatch.invalid",
        title="VAPID subject",
        description="Contact (mailto: or https:) push services may use about our pushes.",
    )
    public_base_url: str = Field(
        default="http://127.0.0.1:8080",
        title="Public base URL",
        description="Where the console is reached from phones; pushes link below it.",
    )
    push_ttl_s: int = Field(
        default=300,
        ge=0,
        title="Push TTL",
        description="Seconds a push service keeps a push for an offline phone.",
    )
    push_timeout_s: float = Field(
        default=5.0, gt=0, title="Push timeout", description="Seconds per push request."
    )
    push_max_attempts: int = Field(
        default=4, ge=1, le=20, title="Push attempts", description="Tries per push on 429/5xx."
    )
    push_subscription_ttl_days: float = Field(
        default=90.0,
        gt=0,
        title="Push subscription lifetime",
        description="Days a stored Web Push subscription (KV gw_push_subs) lives unless its "
        "browser registers it again (the phone view does on every visit).",
    )
    push_max_subscriptions: int = Field(
        default=5,
        ge=1,
        le=100,
        title="Push subscriptions per user",
        description="Browsers one user may have subscribed at once; a new one beyond it "
        "replaces that user's oldest.",
    )
    push_allow_endpoints: list[str] = Field(
        default_factory=list,
        title="Allowed local push endpoints",
        description="Origins (scheme://host or scheme://host:port) of push services that may "
        "be plain http or on a loopback/private address: for tests and demos with a local "
        "push service only (e.g. http://127.0.0.1). Every other endpoint must be https on a "
        "public address; the notifier checks the address it connects to and never follows "
        "redirects.",
    )
    full_snapshot_roles: list[Role] = Field(
        default_factory=lambda: _roles("operator"),
        title="Full snapshot roles",
        description="Roles that may see unblurred snapshots (every such view is audited); "
        "everyone else gets people's regions blurred.",
    )
    notify_roles: list[Role] = Field(
        default_factory=lambda: _roles("responder", "grid_leader"),
        title="Pushed roles",
        description="Roles of a grid whose on-duty members get a push for each new alert.",
    )
    webhooks: list[WebhookConfig] = Field(
        default_factory=list, title="Webhooks", description="Signed JSON POSTs to integrations."
    )

    @field_validator("push_allow_endpoints")
    @classmethod
    def _origins(cls, v: list[str]) -> list[str]:
        for item in v:
            u = urlsplit(item)
            if u.scheme not in ("http", "https") or not u.hostname or u.path not in ("", "/"):
                raise ValueError(f"{item!r} is not an origin like http://127.0.0.1:8443")
        return v

    @field_validator("vapid_subject")
    @classmethod
    def _subject(cls, v: str) -> str:
        if not v.startswith(("mailto:", "https://")):
            raise ValueError("must start with mailto: or https://")
        return v

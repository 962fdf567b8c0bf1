"""Generate a nats-server configuration whose permissions enforce grid isolation.

One NATS user per configured user, logging in with the same name and password (the config's
bcrypt hash is handed to nats-server as is: it accepts bcrypt). Permissions are allow-lists:

* **responder / grid_leader** of grid G: subscribe to G's alerts and case events and to their
  own reply inbox (``_INBOX.<user>.>``: nobody reads anybody else's replies); publish case
  commands and snapshot requests *under their own name* (``gw.v1.case-cmd.G.<user>``, which is
  how the case service knows who is asking); read GW_ALERTS / GW_CASES through JetStream only
  with consumers whose filter is inside G (the consumer-create API subject carries the filter);
  register their own Web Push subscriptions. Nothing else: no object store, no other grid.
* **operator**: subscribe to everything under ``gw.v1.>``; publish commands and snapshot
  requests under their own name for any grid; consumers on any alert or case subject.
  Operators too read snapshots through the snapshot service only, so every unblurred view is
  audited.
* **admin** and **service**: no restrictions (infrastructure and gridwatch's own processes).

The output is JSON, which nats-server's configuration parser reads as is.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from gridwatch.alerts.subjects import ALERTS_PREFIX, ALERTS_STREAM
from gridwatch.auth.models import UserConfig
from gridwatch.auth.subjects import (
    CASE_CMD_PREFIX,
    CASES_PREFIX,
    CASES_STREAM,
    PUSH_SUBS_KV,
    SNAPSHOT_REQ_PREFIX,
    inbox_prefix,
)
from gridwatch.config import GridwatchConfig

JS_API = "$JS.API"
READ_STREAMS = (ALERTS_STREAM, CASES_STREAM)


def _common_publish(user: str) -> list[str]:
    """What every person needs to read alerts and cases through JetStream consumers."""
    allow = [f"{JS_API}.INFO"]
    for stream in READ_STREAMS:
        allow += [
            f"{JS_API}.STREAM.INFO.{stream}",
            f"{JS_API}.CONSUMER.INFO.{stream}.*",
            f"$JS.FC.{stream}.>",  # flow-control replies of push consumers
        ]
    allow += [f"{JS_API}.STREAM.INFO.KV_{PUSH_SUBS_KV}", f"$KV.{PUSH_SUBS_KV}.{user}.>"]
    return allow


def permissions_for(user: UserConfig) -> dict[str, Any] | None:
    """The nats-server ``permissions`` block of ``user``; None means unrestricted."""
    name = user.name
    inbox = f"{inbox_prefix(name)}.>"
    if user.role in ("admin", "service"):
        return None
    if user.role == "operator":
        publish = [
            f"{CASE_CMD_PREFIX}.*.{name}",
            f"{SNAPSHOT_REQ_PREFIX}.*.{name}",
            *_common_publish(name),
            f"{JS_API}.CONSUMER.CREATE.{ALERTS_STREAM}.>",
            f"{JS_API}.CONSUMER.CREATE.{CASES_STREAM}.>",
            f"{JS_API}.STREAM.MSG.GET.{ALERTS_STREAM}",
            f"{JS_API}.STREAM.MSG.GET.{CASES_STREAM}",
        ]
        subscribe = ["gw.v1.>", inbox]
    else:
        grid = user.grid
        assert grid is not None  # validated: grid roles have a grid
        publish = [
            f"{CASE_CMD_PREFIX}.{grid}.{name}",
            f"{SNAPSHOT_REQ_PREFIX}.{grid}.{name}",
            *_common_publish(name),
            # named consumers only, and only with a filter inside the grid
            f"{JS_API}.CONSUMER.CREATE.{ALERTS_STREAM}.*.{ALERTS_PREFIX}.{grid}.>",
            f"{JS_API}.CONSUMER.CREATE.{CASES_STREAM}.*.{CASES_PREFIX}.{grid}.>",
        ]
        subscribe = [f"{ALERTS_PREFIX}.{grid}.>", f"{CASES_PREFIX}.{grid}.>", inbox]
    return {"publish": {"allow": publish}, "subscribe": {"allow": subscribe}}


def _listen_from_url(url: str) -> str:
    first = url.split(",")[0].strip()
    parsed = urlparse(first)
    return f"{parsed.hostname or '0.0.0.0'}:{parsed.port or 4222}"


def build_nats_config(
    config: GridwatchConfig,
    *,
    store_dir: str | None = None,
    listen: str | None = None,
    monitor: str | None = None,
    server_name: str = "gridwatch",
) -> dict[str, Any]:
    """The nats-server configuration (a dict, see :func:`render_nats_config`)."""
    users: list[dict[str, Any]] = []
    for u in config.users:
        entry: dict[str, Any] = {"user": u.name, "password": u.password_hash}
        perms = permissions_for(u)
        if perms is not None:
            entry["permissions"] = perms
        users.append(entry)
    out: dict[str, Any] = {
        "server_name": server_name,
        "listen": listen or _listen_from_url(config.nats.url),
        # no store_dir: the server's -sd flag (or its default) decides
        "jetstream": {"store_dir": store_dir} if store_dir else {},
    }
    if monitor:
        out["http"] = monitor
    if users:
        out["authorization"] = {"users": users}
    return out


def render_nats_config(conf: dict[str, Any]) -> str:
    return json.dumps(conf, indent=2, ensure_ascii=False) + "\n"


def write_nats_config(config: GridwatchConfig, out: str | Path, **options: Any) -> Path:
    """Write :func:`build_nats_config` to ``out`` (mode 0600: it holds password hashes)."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = render_nats_config(build_nats_config(config, **options))
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.chmod(0o600)
    tmp.replace(path)
    return path


def people(
    config: GridwatchConfig, grid: str | None = None, roles: Sequence[str] = ()
) -> list[UserConfig]:
    """Users of ``grid`` (and all-grid roles when grid is None) with one of ``roles``."""
    return [
        u
        for u in config.users
        if (not roles or u.role in roles) and (grid is None or u.grid == grid)
    ]

"""Generate a nats-server configuration whose permissions enforce grid isolation and least
privilege.

One NATS user per configured user, logging in with the same name and password (the config's
bcrypt hash is handed to nats-server as is: it accepts bcrypt), each with the ``permissions``
block of its role (:mod:`gridwatch.auth.permissions` says who may do what;
:mod:`gridwatch.auth.permission_matrix` renders that as the table in docs/security.md). This
module only assembles and writes the file; the names of both are re-exported here for the
callers that import them from it.

The output is JSON, which nats-server's configuration parser reads as is. With ``tls`` options
the client port (and a cluster's routes) require TLS (:mod:`gridwatch.auth.certs` makes the
certificates).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from gridwatch.auth.models import UserConfig
from gridwatch.auth.permission_matrix import (
    CAPABILITIES,
    MATRIX_BEGIN,
    MATRIX_END,
    Capability,
    Identity,
    allowed,
    matrix_identities,
    permission_matrix,
    render_matrix,
    subject_matches,
)
from gridwatch.auth.permissions import (
    JS_API,
    OBJ_SNAPSHOTS,
    READ_STREAMS,
    SERVICE_RULES,
    Rules,
    permissions_for,
    rules_for,
)
from gridwatch.config import GridwatchConfig

__all__ = [
    "CAPABILITIES",
    "JS_API",
    "MATRIX_BEGIN",
    "MATRIX_END",
    "OBJ_SNAPSHOTS",
    "READ_STREAMS",
    "SERVICE_RULES",
    "Capability",
    "Identity",
    "Rules",
    "TlsFiles",
    "allowed",
    "build_nats_config",
    "matrix_identities",
    "people",
    "permission_matrix",
    "permissions_for",
    "render_matrix",
    "render_nats_config",
    "rules_for",
    "security_warnings",
    "subject_matches",
    "write_nats_config",
]


def security_warnings(config: GridwatchConfig) -> list[str]:
    """What ``gridwatch config check`` warns about: unrestricted service accounts."""
    return [
        f"user {u.name!r}: role service without 'service: worker|cases|snapshots|notifier|"
        "console' is unrestricted on NATS (deprecated); give each process its own account"
        for u in config.users
        if u.role == "service" and not u.service_kinds
    ]


# -- TLS ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TlsFiles:
    """PEM files of the server (or route) certificate, its key and the CA that signed them."""

    cert: str
    key: str
    ca: str

    def block(self, *, verify: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {"cert_file": self.cert, "key_file": self.key, "ca_file": self.ca}
        if verify:
            out["verify"] = True  # the peer must show a certificate of the same CA
        out["timeout"] = 5
        return out


# -- the configuration ---------------------------------------------------------------------------


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
    tls: TlsFiles | None = None,
    cluster_name: str | None = None,
    cluster_listen: str | None = None,
    routes: Sequence[str] = (),
    route_tls: TlsFiles | None = None,
    no_advertise: bool = False,
) -> dict[str, Any]:
    """The nats-server configuration (a dict, see :func:`render_nats_config`).

    ``tls``: clients must connect with TLS. ``cluster_name``/``cluster_listen``/``routes``: a
    cluster node (routes as ``nats://host:port``; with ``route_tls`` they are ``tls://`` and
    both ends verify each other's certificate against the CA). ``no_advertise``: the node does
    not tell clients the other nodes' addresses (clients list every node themselves; gossiped
    addresses are IPs, which the nodes' TLS certificates do not name)."""
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
    if tls is not None:
        out["tls"] = tls.block()
    if users:
        out["authorization"] = {"users": users}
    if cluster_name or cluster_listen or routes:
        cluster: dict[str, Any] = {
            "name": cluster_name or "gridwatch",
            "listen": cluster_listen or "0.0.0.0:6222",
        }
        if route_tls is not None:
            cluster["tls"] = route_tls.block(verify=True)
        if routes:
            scheme = "tls" if route_tls is not None else "nats"
            cluster["routes"] = [f"{scheme}://{r.split('://', 1)[-1]}" for r in routes]
        if no_advertise:
            cluster["no_advertise"] = True
        out["cluster"] = cluster
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


if __name__ == "__main__":  # python -m gridwatch.auth.natsconf: the matrix for docs/security.md
    print(render_matrix(), end="")

"""Everything a secured 3-node NATS cluster needs, made in one step: the compose cluster's
(docker-compose.yml, configs/nats-cluster/) certificates, passwords and node configs.

``gridwatch nats-cluster-init --out configs/nats-cluster`` (``./run compose-init``) writes into
``--out``, all of it gitignored:

* ``certs/``: a private CA and one certificate per node (``gridwatch nats-certs``; valid for the
  node's compose host name, ``localhost`` and ``127.0.0.1``), used for the client port and for
  the routes, whose both ends verify each other. Existing certificates are kept.
* ``secrets.env``: one random password per identity (``GW_WORKER_NATS_PASSWORD=...``), mode
  0600, for ``docker compose --env-file``. A password already in the environment (under the
  same name) or in an existing ``secrets.env`` is kept: re-running changes nothing a running
  deployment relies on.
* ``users.yaml``: a gridwatch config of the cluster's identities with the passwords' bcrypt
  hashes (plus, with ``--config``, that config's own users, e.g. people and other services).
* ``nats-1.conf``, ``nats-2.conf``, ``nats-3.conf``: ``gridwatch nats-config`` of
  ``users.yaml`` for each node, so the permissions are exactly docs/security.md's matrix:
  JetStream in ``/data``, the client port TLS only, routes to every node over verified TLS,
  the monitor on the node's loopback only (its ``/connz`` names users and subjects).

No password is ever written into the repository: the configs hold bcrypt hashes only, the
passwords are in ``secrets.env`` (or the operator's secret store) and reach the worker
container as ``$GW_NATS_PASSWORD``.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from gridwatch.auth.certs import make_certs
from gridwatch.auth.models import UserConfig
from gridwatch.auth.natsconf import TlsFiles, write_nats_config
from gridwatch.auth.passwords import hash_password
from gridwatch.config import GridwatchConfig

NODES = ("nats", "nats-2", "nats-3")
"""The compose services of the cluster's nodes (their host names on the compose network)."""
CLIENT_PORT, ROUTE_PORT, MONITOR_PORT = 4222, 6222, 8222
CONTAINER_TLS = "/etc/nats/tls"
"""Where a node's container finds its own ca.pem, cert.pem and key.pem (docker-compose.yml)."""


@dataclass(frozen=True)
class Identity:
    """A login the compose deployment uses; its password is ``env`` in secrets.env."""

    name: str
    role: str
    service: str | None
    env: str
    why: str


IDENTITIES: tuple[Identity, ...] = (
    Identity("gw-worker", "service", "worker", "GW_WORKER_NATS_PASSWORD", "every worker replica"),
    Identity(
        "gw-admin",
        "admin",
        None,
        "GW_ADMIN_NATS_PASSWORD",
        "operations: `gridwatch camera ...`, `nats stream edit`",
    ),
)


@dataclass(frozen=True)
class ClusterFiles:
    out: Path
    certs: Path
    secrets_env: Path
    users: Path
    node_configs: tuple[Path, ...]
    passwords: dict[str, str]
    """Identity name -> password (what secrets.env holds)."""


def read_env_file(path: Path) -> dict[str, str]:
    """``NAME=value`` lines (no quoting, ``#`` comments), as ``docker compose --env-file``."""
    out: dict[str, str] = {}
    if not path.exists():
        return out
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            out[key.strip()] = value.strip()
    return out


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.chmod(0o600)
    tmp.replace(path)


def node_config_name(i: int) -> str:
    return f"nats-{i}.conf"


def init_cluster(
    out: str | Path,
    *,
    nodes: Sequence[str] = NODES,
    base: GridwatchConfig | None = None,
    environ: Mapping[str, str] | None = None,
    rounds: int = 12,
    cluster_name: str = "gridwatch",
) -> ClusterFiles:
    """Make (or complete) the cluster's files in ``out``; see the module docstring."""
    env = os.environ if environ is None else environ
    d = Path(out)
    d.mkdir(parents=True, exist_ok=True)

    certs = d / "certs"
    missing = [h for h in nodes if not (certs / f"{h}.pem").exists()]
    if missing or not (certs / "ca.pem").exists():
        make_certs(certs, missing or list(nodes), extra_sans=["localhost", "127.0.0.1"])

    secrets_env = d / "secrets.env"
    known = read_env_file(secrets_env)
    passwords: dict[str, str] = {}
    lines = [
        "# NATS passwords of the compose deployment (gridwatch nats-cluster-init): keep secret,",
        "# never commit. Use: docker compose --env-file configs/nats-cluster/secrets.env up",
    ]
    for ident in IDENTITIES:
        pw = env.get(ident.env) or known.get(ident.env) or secrets.token_urlsafe(24)
        passwords[ident.name] = pw
        lines.append(f"# {ident.name} ({ident.role}): {ident.why}")
        lines.append(f"{ident.env}={pw}")
    _write_private(secrets_env, "\n".join(lines) + "\n")

    ours = [
        UserConfig(
            name=i.name,
            role=i.role,  # type: ignore[arg-type]
            service=i.service,  # type: ignore[arg-type]
            password_hash=hash_password(passwords[i.name], rounds=rounds),
        )
        for i in IDENTITIES
    ]
    names = {u.name for u in ours}
    theirs = [u for u in base.users if u.name not in names] if base is not None else []
    cfg = (base or GridwatchConfig()).model_copy(update={"users": [*ours, *theirs]})
    doc: dict[str, Any] = {}
    if base is not None:  # the grids and schedules its people refer to
        doc = base.model_dump(mode="json", include={"grids", "schedules"}, exclude_defaults=True)
    doc["users"] = [u.model_dump(mode="json", exclude_defaults=True) for u in cfg.users]
    users_file = d / "users.yaml"
    header = (
        "# The NATS identities of the compose cluster (gridwatch nats-cluster-init): bcrypt\n"
        "# hashes only; the passwords are in secrets.env. Regenerated on every run.\n"
    )
    _write_private(users_file, header + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))

    tls = TlsFiles(
        f"{CONTAINER_TLS}/cert.pem", f"{CONTAINER_TLS}/key.pem", f"{CONTAINER_TLS}/ca.pem"
    )
    confs = []
    for i in range(1, len(nodes) + 1):
        confs.append(
            write_nats_config(
                cfg,
                d / node_config_name(i),
                store_dir="/data",
                listen=f"0.0.0.0:{CLIENT_PORT}",
                monitor=f"127.0.0.1:{MONITOR_PORT}",
                server_name=f"nats-{i}",
                tls=tls,
                cluster_name=cluster_name,
                cluster_listen=f"0.0.0.0:{ROUTE_PORT}",
                routes=[f"{h}:{ROUTE_PORT}" for h in nodes],
                route_tls=tls,
                no_advertise=True,
            )
        )
    return ClusterFiles(d, certs, secrets_env, users_file, tuple(confs), passwords)

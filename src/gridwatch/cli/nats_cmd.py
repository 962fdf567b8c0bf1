"""NATS set-up commands: the server's configuration, its TLS certificates, a whole cluster.

* ``gridwatch nats-config --config FILE --out FILE`` writes the nats-server configuration with
  one user per person and grid-confined permissions (and TLS with ``--tls-*``).
* ``gridwatch nats-certs`` makes the CA and the per-host certificates.
* ``gridwatch nats-cluster-init`` makes a TLS, authorized cluster's files.

Exit codes: 0 done, 2 bad input.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gridwatch.cli.common import EXIT_INVALID, ConfigFile, fail, load_or_exit, optional_config


def nats_config_cmd(
    config: ConfigFile,
    out: Annotated[Path, typer.Option("--out", "-o", help="nats-server config file to write.")],
    store_dir: Annotated[
        str | None, typer.Option(help="JetStream store directory (default: -sd or the server's).")
    ] = None,
    listen: Annotated[
        str | None, typer.Option(help="host:port to listen on (default: from nats.url).")
    ] = None,
    monitor: Annotated[str | None, typer.Option(help="host:port of the monitoring port.")] = None,
    tls_cert: Annotated[
        str | None, typer.Option(help="Server certificate PEM: clients must use TLS.")
    ] = None,
    tls_key: Annotated[str | None, typer.Option(help="Its private key PEM.")] = None,
    tls_ca: Annotated[
        str | None, typer.Option(help="CA PEM (`gridwatch nats-certs`); also verifies routes.")
    ] = None,
    server_name: Annotated[str, typer.Option(help="This node's server_name.")] = "gridwatch",
    cluster_name: Annotated[str | None, typer.Option(help="Cluster name (a cluster node).")] = None,
    cluster_listen: Annotated[
        str | None, typer.Option(help="host:port of the route listener (default 0.0.0.0:6222).")
    ] = None,
    route: Annotated[
        list[str] | None,
        typer.Option(help="host:port of a node's route port (repeat; its own is ignored)."),
    ] = None,
    route_tls: Annotated[
        bool, typer.Option(help="Routes over TLS, both ends verified (needs the --tls-* files).")
    ] = True,
    no_advertise: Annotated[
        bool,
        typer.Option("--no-advertise", help="Do not gossip the other nodes' addresses to clients."),
    ] = False,
) -> None:
    """Write a nats-server configuration: JetStream on, one user per configured user, each
    confined to what their role and grid allow; with --tls-* TLS for clients (and routes)."""
    from gridwatch.auth.natsconf import TlsFiles, security_warnings, write_nats_config

    cfg = load_or_exit(config)
    if not cfg.users:
        typer.echo("warning: the config has no users: the server will accept anyone", err=True)
    for warning in security_warnings(cfg):
        typer.echo(f"warning: {warning}", err=True)
    tls_given = [v for v in (tls_cert, tls_key, tls_ca) if v]
    if tls_given and len(tls_given) != 3:
        fail("TLS needs --tls-cert, --tls-key and --tls-ca together", EXIT_INVALID)
    tls = TlsFiles(tls_cert, tls_key, tls_ca) if tls_cert and tls_key and tls_ca else None
    clustered = bool(cluster_name or cluster_listen or route)
    if clustered and tls is None:
        typer.echo(
            "warning: cluster routes without TLS (give --tls-cert/--tls-key/--tls-ca)", err=True
        )
    path = write_nats_config(
        cfg,
        out,
        store_dir=store_dir,
        listen=listen,
        monitor=monitor,
        server_name=server_name,
        tls=tls,
        cluster_name=cluster_name,
        cluster_listen=cluster_listen,
        routes=route or (),
        route_tls=tls if clustered and route_tls else None,
        no_advertise=no_advertise,
    )
    roles: dict[str, int] = {}
    for u in cfg.users:
        roles[u.role] = roles.get(u.role, 0) + 1
    summary = ", ".join(f"{n} {r}" for r, n in sorted(roles.items())) or "no users"
    typer.echo(f"wrote {path} ({summary}{', TLS' if tls else ''})")


def nats_certs_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for the PEM files.")],
    host: Annotated[
        list[str], typer.Option("--host", help="Server host name (repeat: one cert each).")
    ],
    san: Annotated[
        list[str] | None,
        typer.Option(help="Extra name or IP in every certificate (e.g. localhost, 127.0.0.1)."),
    ] = None,
    days: Annotated[int, typer.Option(help="Validity in days.")] = 825,
) -> None:
    """Make the NATS TLS certificates: a CA (ca.pem, reused when present) and, per --host,
    <host>.pem / <host>-key.pem for the client port and the cluster routes."""
    from gridwatch.auth.certs import make_certs

    issued = make_certs(out, host, extra_sans=san or [], days=days)
    for c in issued:
        typer.echo(f"wrote {c.cert} and {c.key}")
    typer.echo(f"CA: {out / 'ca.pem'} (clients: nats.tls_ca_file; keep ca-key.pem offline)")


def nats_cluster_init_cmd(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Directory for certs, secrets and node configs.")
    ] = Path("configs/nats-cluster"),
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="Also give this config's users (people, services)."),
    ] = None,
    node: Annotated[
        list[str] | None,
        typer.Option("--node", help="Node host names (repeat; default nats, nats-2, nats-3)."),
    ] = None,
) -> None:
    """Make a TLS, authorized NATS cluster's files (docker-compose.yml's): certificates, one
    password per identity (secrets.env), users.yaml with their bcrypt hashes, and each node's
    `nats-config` (nats-1.conf ...). Re-running keeps the certificates and passwords."""
    from gridwatch.auth.cluster import IDENTITIES, NODES, init_cluster

    base = optional_config(config)
    files = init_cluster(out, nodes=node or NODES, base=base)
    for conf in files.node_configs:
        typer.echo(f"wrote {conf}")
    typer.echo(f"certificates in {files.certs} (clients trust {files.certs / 'ca.pem'})")
    names = ", ".join(f"{i.name} ({i.env})" for i in IDENTITIES)
    typer.echo(f"passwords in {files.secrets_env} (mode 0600, never commit): {names}")
    typer.echo(f"start: docker compose --env-file {files.secrets_env} up --scale worker=3")


def register(app: typer.Typer) -> None:
    """Add ``nats-config``, ``nats-certs`` and ``nats-cluster-init`` to the ``gridwatch`` app."""
    app.command("nats-config")(nats_config_cmd)
    app.command("nats-certs")(nats_certs_cmd)
    app.command("nats-cluster-init")(nats_cluster_init_cmd)

"""Dispatch commands: users and NATS access, cases, keys, the case and notifier services, status.

* ``gridwatch users hash-password`` reads a password on standard input, prints its bcrypt hash
  for the config's ``users:`` section.
* ``gridwatch nats-config --config FILE --out FILE`` writes the nats-server configuration with
  one user per person and grid-confined permissions.
* ``gridwatch cases list|show|ack|dispatch|on-scene|resolve`` talk to the case service as the
  logged-in user (``--user``, password from ``$GW_NATS_PASSWORD`` or a prompt);
  ``gridwatch cases serve`` runs the case service and the snapshot service.
* ``gridwatch keys vapid`` creates the Web Push key pair; ``gridwatch notifier`` runs the
  notifier; ``gridwatch push register`` stores a browser's push subscription.
* ``gridwatch status`` shows retention, stream sizes, cases by state and the local spool.

Exit codes: 0 done, 1 an operation failed (NATS unreachable, refused), 2 bad input.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import getpass
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from nats.aio.client import Client as NATS

from gridwatch.config import GridwatchConfig

T = TypeVar("T")

users_app = typer.Typer(help="Users and their passwords.", no_args_is_help=True)
cases_app = typer.Typer(
    help="Alert cases: list, acknowledge, dispatch, resolve.", no_args_is_help=True
)
keys_app = typer.Typer(help="Key pairs (Web Push VAPID).", no_args_is_help=True)
push_app = typer.Typer(help="Web Push subscriptions.", no_args_is_help=True)

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="Config YAML file.")]
NatsOpt = Annotated[str | None, typer.Option("--nats", help="NATS URL (default: the config's).")]
UserOpt = Annotated[
    str | None, typer.Option("--user", "-u", help="NATS user (default $GW_NATS_USER).")
]
GridOpt = Annotated[
    str | None,
    typer.Option("--grid", "-g", help="Your grid (responders); operators may leave it out."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _config(path: Path | None) -> GridwatchConfig | None:
    if path is None:
        return None
    from gridwatch.cli.common import load_or_exit as _load_or_exit

    return _load_or_exit(path)


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _run(coro: Awaitable[T]) -> T:
    return asyncio.run(coro)  # type: ignore[arg-type]


async def _connect(
    cfg: GridwatchConfig | None,
    nats_url: str | None,
    user: str | None,
    name: str,
    *,
    prompt: bool = True,
) -> tuple[NATS, str | None]:
    from gridwatch.auth.client import PASSWORD_ENV, connect_as, resolve_credentials

    url = nats_url or (cfg.nats.url if cfg else "nats://127.0.0.1:4222")
    u, p = resolve_credentials(
        user,
        None,
        config_user=cfg.nats.user if cfg else None,
        config_password=cfg.nats.password if cfg else None,
    )
    if u and not p and prompt and sys.stdin.isatty():
        p = getpass.getpass(f"NATS password for {u} (or set ${PASSWORD_ENV}): ")
    nc = await connect_as(
        url,
        user=u,
        password=p,
        name=name,
        max_reconnect_attempts=2,
        reconnect_time_wait=0.5,
        tls_ca_file=cfg.nats.tls_ca_file if cfg else None,
    )
    return nc, u


# -- users / nats-config -------------------------------------------------------------------------


@users_app.command("hash-password")
def hash_password_cmd(
    rounds: Annotated[int, typer.Option(help="bcrypt cost (12: about 0.25 s per login).")] = 12,
) -> None:
    """Read a password on standard input (first line) and print its bcrypt hash."""
    from gridwatch.auth.passwords import hash_password

    if sys.stdin.isatty():
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            raise _fail("the passwords differ", 2)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    try:
        typer.echo(hash_password(password, rounds=rounds))
    except ValueError as e:
        raise _fail(str(e), 2) from None


def nats_config_cmd(
    config: Annotated[Path, typer.Option("--config", "-c", help="Config YAML file.")],
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

    cfg = _config(config)
    assert cfg is not None
    if not cfg.users:
        typer.echo("warning: the config has no users: the server will accept anyone", err=True)
    for warning in security_warnings(cfg):
        typer.echo(f"warning: {warning}", err=True)
    tls_given = [v for v in (tls_cert, tls_key, tls_ca) if v]
    if tls_given and len(tls_given) != 3:
        raise _fail("TLS needs --tls-cert, --tls-key and --tls-ca together", 2)
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

    base = _config(config) if config is not None else None
    files = init_cluster(out, nodes=node or NODES, base=base)
    for conf in files.node_configs:
        typer.echo(f"wrote {conf}")
    typer.echo(f"certificates in {files.certs} (clients trust {files.certs / 'ca.pem'})")
    names = ", ".join(f"{i.name} ({i.env})" for i in IDENTITIES)
    typer.echo(f"passwords in {files.secrets_env} (mode 0600, never commit): {names}")
    typer.echo(f"start: docker compose --env-file {files.secrets_env} up --scale worker=3")


# -- cases -----------------------------------------------------------------------------------------


def _case_line(c: Any) -> str:
    when = c.opened_at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    who = c.dispatched_to or c.acknowledged_by or "-"
    esc = f" esc{c.escalation_level}" if c.escalation_level else ""
    return (
        f"{c.id}  {when}  {c.state.value:<12} {c.grid_id:<16} {c.type:<10} "
        f"{c.camera_name or c.camera_id}  count {c.count}  {c.severity}  by {who}{esc}"
    )


def _with_cases(
    config: Path | None,
    nats_url: str | None,
    user: str | None,
    grid: str | None,
    action: Callable[[Any], Awaitable[T]],
) -> T:
    from gridwatch.cases.client import CaseClient, CaseRequestError

    cfg = _config(config)

    async def main() -> T:
        nc, u = await _connect(cfg, nats_url, user, "gridwatch-cases")
        if not u:
            raise _fail("name the user: --user or $GW_NATS_USER", 2)
        g = grid
        if g is None and cfg is not None:
            g = next((x.grid for x in cfg.users if x.name == u), None)
        try:
            return await action(CaseClient(nc, u, grid=g))
        except CaseRequestError as e:
            raise _fail(f"{e.code}: {e}") from None
        finally:
            await nc.drain()

    return _run(main())


def _show(case: Any, as_json: bool) -> None:
    typer.echo(case.model_dump_json(indent=2) if as_json else _case_line(case))


@cases_app.command("list")
def cases_list(
    config: ConfigOpt = None,
    nats_url: NatsOpt = None,
    user: UserOpt = None,
    grid: GridOpt = None,
    as_json: JsonOpt = False,
    state: Annotated[list[str] | None, typer.Option(help="Only these states (repeatable).")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
) -> None:
    """Cases you can see (your grid; all grids for operators), newest first."""
    from gridwatch.cases.model import CaseState

    states = [CaseState(s) for s in state] if state else None
    cases = _with_cases(config, nats_url, user, grid, lambda c: c.list(states, limit))
    if as_json:
        typer.echo(json.dumps([c.model_dump(mode="json") for c in cases], indent=2))
    else:
        for c in cases:
            typer.echo(_case_line(c))
        if not cases:
            typer.echo("no cases")


CaseId = Annotated[str, typer.Argument(help="Case id (the alert's id).")]


@cases_app.command("show")
def cases_show(
    case_id: CaseId,
    config: ConfigOpt = None,
    nats_url: NatsOpt = None,
    user: UserOpt = None,
    grid: GridOpt = None,
    as_json: JsonOpt = True,
) -> None:
    """One case with its whole state."""
    _show(_with_cases(config, nats_url, user, grid, lambda c: c.get(case_id)), as_json)


@cases_app.command("ack")
def cases_ack(
    case_id: CaseId,
    config: ConfigOpt = None,
    nats_url: NatsOpt = None,
    user: UserOpt = None,
    grid: GridOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Acknowledge a case: you have seen it and someone is on it."""
    _show(_with_cases(config, nats_url, user, grid, lambda c: c.acknowledge(case_id)), as_json)


@cases_app.command("dispatch")
def cases_dispatch(
    case_id: CaseId,
    responder: Annotated[str | None, typer.Option(help="Who to send (default: yourself).")] = None,
    config: ConfigOpt = None,
    nats_url: NatsOpt = None,
    user: UserOpt = None,
    grid: GridOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Send a responder of the case's grid to the scene."""
    _show(
        _with_cases(config, nats_url, user, grid, lambda c: c.dispatch(case_id, responder)),
        as_json,
    )


@cases_app.command("on-scene")
def cases_on_scene(
    case_id: CaseId,
    config: ConfigOpt = None,
    nats_url: NatsOpt = None,
    user: UserOpt = None,
    grid: GridOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Report arrival at the scene."""
    _show(_with_cases(config, nats_url, user, grid, lambda c: c.on_scene(case_id)), as_json)


@cases_app.command("resolve")
def cases_resolve(
    case_id: CaseId,
    outcome: Annotated[str, typer.Option(help="handled or false_alarm.")] = "handled",
    note: Annotated[str, typer.Option(help="What happened.")] = "",
    config: ConfigOpt = None,
    nats_url: NatsOpt = None,
    user: UserOpt = None,
    grid: GridOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Close a case with its outcome (only after it was acknowledged)."""
    if outcome not in ("handled", "false_alarm"):
        raise _fail("--outcome must be handled or false_alarm", 2)
    _show(
        _with_cases(config, nats_url, user, grid, lambda c: c.resolve(case_id, outcome, note)),
        as_json,
    )


@cases_app.command("serve")
def cases_serve(
    config: Annotated[Path, typer.Option("--config", "-c", help="Config YAML file.")],
    nats_url: NatsOpt = None,
    log_level: Annotated[str, typer.Option("--log-level")] = "info",
) -> None:
    """Run the case service and the snapshot service (as the config's nats.user)."""
    from gridwatch.cases.service import CaseService
    from gridwatch.cli.common import run_until_signal
    from gridwatch.cli.common import setup_logging as _setup_logging
    from gridwatch.notify.snapshots import SnapshotService

    _setup_logging(log_level)
    cfg = _config(config)
    assert cfg is not None

    async def main() -> None:
        stop = run_until_signal()
        nc, _ = await _connect(cfg, nats_url, None, "gridwatch-cases", prompt=False)
        cases, snaps = CaseService(nc, cfg), SnapshotService(nc, cfg)
        await cases.start()
        await snaps.start()
        try:
            await stop.wait()
        finally:
            await snaps.stop()
            await cases.stop()
            await nc.drain()

    _run(main())


# -- keys, notifier, push ----------------------------------------------------------------------


@keys_app.command("vapid")
def keys_vapid(
    out: Annotated[Path, typer.Option("--out", "-o", help="Private key PEM file to write.")] = Path(
        "vapid-private.pem"
    ),
    force: Annotated[bool, typer.Option(help="Overwrite an existing key.")] = False,
) -> None:
    """Create the Web Push (VAPID) key pair; print the public key for the PWA."""
    from gridwatch.notify.webpush import VapidKey

    if out.exists() and not force:
        raise _fail(f"{out} exists (every phone's subscription is bound to it); --force", 2)
    key = VapidKey.generate()
    key.save(out)
    typer.echo(f"wrote {out} (keep it secret; set notify.vapid_private_key_file to it)")
    typer.echo(f"applicationServerKey: {key.application_server_key}")


def notifier_cmd(
    config: Annotated[Path, typer.Option("--config", "-c", help="Config YAML file.")],
    nats_url: NatsOpt = None,
    log_level: Annotated[str, typer.Option("--log-level")] = "info",
) -> None:
    """Run the notifier: Web Push to on-duty responders, signed webhooks."""
    from gridwatch.cli.common import run_until_signal
    from gridwatch.cli.common import setup_logging as _setup_logging
    from gridwatch.notify.notifier import Notifier
    from gridwatch.notify.webpush import VapidKey

    _setup_logging(log_level)
    cfg = _config(config)
    assert cfg is not None
    key_file = cfg.notify.vapid_private_key_file
    vapid = VapidKey.load(key_file) if key_file else None
    if vapid is None:
        typer.echo("warning: notify.vapid_private_key_file not set: no Web Push", err=True)

    async def main() -> None:
        stop = run_until_signal()
        nc, _ = await _connect(cfg, nats_url, None, "gridwatch-notifier", prompt=False)
        async with Notifier(nc, cfg, vapid=vapid):
            await stop.wait()
        await nc.drain()

    _run(main())


@push_app.command("register")
def push_register(
    subscription: Annotated[Path, typer.Argument(help="PushSubscription JSON ('-': stdin).")],
    config: ConfigOpt = None,
    nats_url: NatsOpt = None,
    user: UserOpt = None,
    for_user: Annotated[
        str | None, typer.Option("--for", help="Register for this user (service accounts).")
    ] = None,
) -> None:
    """Store a browser's push subscription for yourself (or, as a service, for --for)."""
    from gridwatch.notify.subscriptions import register_subscription

    data = json.loads(sys.stdin.read() if str(subscription) == "-" else subscription.read_text())
    cfg = _config(config)

    async def main() -> str:
        nc, u = await _connect(cfg, nats_url, user, "gridwatch-push")
        try:
            owner = for_user or u
            if not owner:
                raise _fail("name the user: --user or --for", 2)
            return await register_subscription(nc.jetstream(), owner, data)
        finally:
            await nc.drain()

    typer.echo(f"registered {_run(main())}")


# -- status ----------------------------------------------------------------------------------------


def status_cmd(
    config: Annotated[Path, typer.Option("--config", "-c", help="Config YAML file.")],
    nats_url: NatsOpt = None,
    user: UserOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Retention (configured and applied), stream sizes, cases by state, the local spool."""
    from gridwatch.alerts.spool import default_spool_dir
    from gridwatch.alerts.streams import snapshot_stream_name
    from gridwatch.alerts.subjects import ALERTS_STREAM
    from gridwatch.auth.subjects import CASES_KV, CASES_STREAM
    from gridwatch.cases.model import Case

    cfg = _config(config)
    assert cfg is not None
    a = cfg.alerts
    out: dict[str, Any] = {
        "retention_configured_days": {
            "alerts": a.retention_days,
            "snapshots": a.snapshot_retention_days or a.retention_days,
            "cases": cfg.cases.retention_days,
        },
        "users": {
            r: sum(u.role == r for u in cfg.users) for r in sorted({u.role for u in cfg.users})
        },
    }
    spool_dir = Path(a.spool.dir) if a.spool.dir else default_spool_dir() / "worker"
    entries = list(spool_dir.glob("*.json")) if spool_dir.exists() else []
    out["spool"] = {
        "dir": str(spool_dir),
        "alerts": len(entries),
        "bytes": sum(p.stat().st_size for p in spool_dir.glob("*") if p.is_file())
        if spool_dir.exists()
        else 0,
    }

    async def main() -> None:
        nc, _ = await _connect(cfg, nats_url, user, "gridwatch-status")
        js = nc.jetstream(timeout=3.0)
        streams: dict[str, Any] = {}
        try:
            for name in (ALERTS_STREAM, CASES_STREAM, snapshot_stream_name(), f"KV_{CASES_KV}"):
                try:
                    info = await js.stream_info(name)
                    streams[name] = {
                        "messages": info.state.messages,
                        "bytes": info.state.bytes,
                        "max_age_days": round((info.config.max_age or 0) / 86400, 2),
                    }
                except Exception as e:
                    streams[name] = {"error": type(e).__name__}
            out["streams"] = streams
            counts: dict[str, int] = {}
            try:
                kv = await js.key_value(CASES_KV)
                for key in await kv.keys():
                    entry = await kv.get(key)
                    if entry.value:
                        st = Case.model_validate_json(entry.value).state.value
                        counts[st] = counts.get(st, 0) + 1
            except Exception as e:
                counts = {"error": type(e).__name__}  # type: ignore[dict-item]
            out["cases"] = counts
        finally:
            await nc.drain()

    try:
        _run(main())
    except OSError as e:
        raise _fail(f"NATS unreachable: {e}") from None
    if as_json:
        typer.echo(json.dumps(out, indent=2))
        return
    r = out["retention_configured_days"]
    typer.echo(
        f"retention (days): alerts {r['alerts']:g}, snapshots {r['snapshots']:g}, "
        f"cases {r['cases']:g}"
    )
    for name, s in out.get("streams", {}).items():
        if "error" in s:
            typer.echo(f"  {name:<20} {s['error']}")
        else:
            typer.echo(
                f"  {name:<20} {s['messages']:>8} msgs {s['bytes']:>12} bytes  "
                f"max age {s['max_age_days']:g} d"
            )
    typer.echo("cases: " + (", ".join(f"{k} {v}" for k, v in out["cases"].items()) or "none"))
    sp = out["spool"]
    typer.echo(f"spool {sp['dir']}: {sp['alerts']} alerts waiting, {sp['bytes']} bytes")
    typer.echo("users: " + (", ".join(f"{v} {k}" for k, v in out["users"].items()) or "none"))


def register(app: typer.Typer) -> None:
    """Add the dispatch commands to the ``gridwatch`` app (called from cli/main.py)."""
    app.add_typer(users_app, name="users")
    app.add_typer(cases_app, name="cases")
    app.add_typer(keys_app, name="keys")
    app.add_typer(push_app, name="push")
    app.command("nats-config")(nats_config_cmd)
    app.command("nats-certs")(nats_certs_cmd)
    app.command("nats-cluster-init")(nats_cluster_init_cmd)
    app.command("notifier")(notifier_cmd)
    app.command("status")(status_cmd)

"""``gridwatch cases ...``: alert cases as the logged-in user.

``list|show|ack|dispatch|on-scene|resolve`` talk to the case service as ``--user`` (password
from ``$GW_NATS_PASSWORD`` or a prompt); ``export`` fetches a case bundle from the console as
that user (same password), ``verify`` checks one offline; ``serve`` runs the case, snapshot
and clip services.

Exit codes: 0 done, 1 an operation failed (NATS unreachable, refused), 2 bad input.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from gridwatch.cli.common import (
    DEFAULT_NATS,
    EXIT_FAILED,
    EXIT_INVALID,
    ConfigFile,
    ConfigOpt,
    JsonOpt,
    NatsOpt,
    ServiceLogOpt,
    UserOpt,
    connect,
    error,
    fail,
    load_or_exit,
    nats_credentials,
    optional_config,
    print_json,
    run,
    run_until_signal,
    setup_logging,
)
from gridwatch.config import GridwatchConfig

T = TypeVar("T")

cases_app = typer.Typer(
    help="Alert cases: list, acknowledge, dispatch, resolve.", no_args_is_help=True
)

GridOpt = Annotated[
    str | None,
    typer.Option("--grid", "-g", help="Your grid (responders); operators may leave it out."),
]


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

    cfg = optional_config(config)

    async def main() -> T:
        nc, u = await connect(cfg, nats_url, user, "gridwatch-cases")
        if not u:
            fail("name the user: --user or $GW_NATS_USER", EXIT_INVALID)
        g = grid
        if g is None and cfg is not None:
            g = next((x.grid for x in cfg.users if x.name == u), None)
        try:
            return await action(CaseClient(nc, u, grid=g))
        except CaseRequestError as e:
            fail(f"{e.code}: {e}")
        finally:
            await nc.drain()

    return run(main())


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
        fail("--outcome must be handled or false_alarm", EXIT_INVALID)
    _show(
        _with_cases(config, nats_url, user, grid, lambda c: c.resolve(case_id, outcome, note)),
        as_json,
    )


ConsoleOpt = Annotated[
    str | None,
    typer.Option(
        "--console",
        envvar="GW_CONSOLE_URL",
        help="Console URL, e.g. https://console.example:8080 (default: the config's console "
        "host and port).",
    ),
]
ConsoleCaOpt = Annotated[
    Path | None,
    typer.Option(
        "--console-ca", envvar="GW_CONSOLE_CA", help="CA file of the console's HTTPS certificate."
    ),
]


def _case_grid(
    cfg: GridwatchConfig | None, nats_url: str | None, name: str, password: str, case_id: str
) -> str:
    """The grid of case ``case_id``, asked of the case service as ``name`` (with the password
    already given: no second prompt)."""
    from gridwatch.bus.connect import connect as nats_connect
    from gridwatch.cases.client import CaseClient, CaseRequestError

    async def main() -> str:
        url = nats_url or (cfg.nats.url if cfg else DEFAULT_NATS)
        try:
            nc = await nats_connect(
                url,
                user=name,
                password=password,
                name="gridwatch-cases",
                reconnects=2,
                reconnect_wait=0.5,
                tls_ca_file=cfg.nats.tls_ca_file if cfg else None,
            )
        except Exception as e:
            fail(f"cannot reach NATS at {url} to find the case's grid ({e}); give --grid")
        try:
            return (await CaseClient(nc, name).get(case_id)).grid_id
        except CaseRequestError as e:
            fail(f"{e.code}: {e}")
        finally:
            await nc.drain()

    return run(main())


@cases_app.command("export")
def cases_export(
    case_id: CaseId,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Zip to write (default: case-<grid>-<id>.zip)."),
    ] = None,
    console: ConsoleOpt = None,
    console_ca: ConsoleCaOpt = None,
    config: ConfigOpt = None,
    nats_url: NatsOpt = None,
    user: UserOpt = None,
    grid: GridOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Export a case bundle (zip): alert messages, full snapshots and clips, case history, audit
    records and a manifest with the SHA-256 of every file. Asked of the console as you (roles
    that may see full pictures only); the export is audited. Without --grid and a grid of your
    own, the case's grid is looked up on NATS."""
    from gridwatch.cases.bundle import verify_bundle
    from gridwatch.console.http_client import ConsoleClient, ConsoleRequestError, console_url

    cfg = optional_config(config)
    url = console or console_url(cfg)
    if not url:
        fail(
            "give --console URL (or $GW_CONSOLE_URL, or --config with a console: section)",
            EXIT_INVALID,
        )
    name, password = nats_credentials(cfg, user, prompt=True)
    if not name or not password:
        fail(
            "name the user (--user or $GW_NATS_USER) and give the password "
            "($GW_NATS_PASSWORD, or a terminal to type it)",
            EXIT_INVALID,
        )
    g = grid or next((x.grid for x in (cfg.users if cfg else []) if x.name == name), None)
    if g is None:
        g = _case_grid(cfg, nats_url, name, password, case_id)

    async def main() -> tuple[bytes, dict[str, str]]:
        async with ConsoleClient(url, ca_file=str(console_ca) if console_ca else None) as cc:
            await cc.login(name, password)
            return await cc.export_case(g, case_id)

    try:
        data, _headers = run(main())
    except ConsoleRequestError as e:
        fail(f"{e.code}: {e}")
    checked = verify_bundle(data)
    if not checked.ok:
        fail(f"the console's bundle does not verify: {checked.problems[0]}")
    path = output or Path(f"case-{g}-{case_id}.zip")
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(data)
    tmp.replace(path)
    m = checked.manifest
    if as_json:
        print_json(
            {
                "path": str(path),
                "bytes": len(data),
                "manifest_sha256": checked.manifest_sha256,
                "files": len(m["files"]),
                "missing": m.get("missing", []),
            }
        )
        return
    typer.echo(
        f"{path}: case {case_id} of {g}, {len(m['files'])} files, {len(data)} bytes; "
        f"manifest sha256 {checked.manifest_sha256}"
    )
    for miss in m.get("missing", []):
        typer.echo(f"  not in the bundle: {miss['path']}: {miss['reason']}")


@cases_app.command("verify")
def cases_verify(
    bundle: Annotated[Path, typer.Argument(help="A case bundle (zip) from `cases export`.")],
    as_json: JsonOpt = False,
) -> None:
    """Check a case bundle offline: recompute the SHA-256 and size of every file against its
    manifest.json. Exit 1 naming each file that differs, is absent, damaged or unlisted."""
    from gridwatch.cases.bundle import verify_bundle

    if not bundle.is_file():
        fail(f"{bundle}: no such file", EXIT_INVALID)
    v = verify_bundle(bundle)
    m = v.manifest
    if as_json:
        print_json(
            {
                "ok": v.ok,
                "checked": v.checked,
                "manifest_sha256": v.manifest_sha256,
                "problems": [{"path": p, "problem": what} for p, what in v.problems],
                "missing": m.get("missing", []),
            }
        )
    else:
        for p, what in v.problems:
            error(f"{p or bundle}: {what}")
        if v.ok:
            typer.echo(
                f"ok: {v.checked} files match manifest.json (case {m.get('case_id')} of "
                f"{m.get('grid')}, exported by {m.get('exported_by')} at "
                f"{m.get('exported_at')}); manifest sha256 {v.manifest_sha256}"
            )
            for miss in m.get("missing", []):
                typer.echo(f"  not in the bundle: {miss.get('path')}: {miss.get('reason')}")
    if not v.ok:
        raise typer.Exit(EXIT_FAILED)


@cases_app.command("serve")
def cases_serve(
    config: ConfigFile,
    nats_url: NatsOpt = None,
    log_level: ServiceLogOpt = "info",
) -> None:
    """Run the case service, the snapshot service and the clip service (as the config's
    nats.user)."""
    from gridwatch.alerts.clip_service import ClipService
    from gridwatch.alerts.snapshot_service import SnapshotService
    from gridwatch.cases.service import CaseService

    setup_logging(log_level)
    cfg = load_or_exit(config)

    async def main() -> None:
        stop = run_until_signal()
        nc, _ = await connect(cfg, nats_url, None, "gridwatch-cases", prompt=False)
        cases, snaps, clips = CaseService(nc, cfg), SnapshotService(nc, cfg), ClipService(nc, cfg)
        await cases.start()
        await snaps.start()
        await clips.start()
        try:
            await stop.wait()
        finally:
            await clips.stop()
            await snaps.stop()
            await cases.stop()
            await nc.drain()

    run(main())


def register(app: typer.Typer) -> None:
    """Add ``cases`` to the ``gridwatch`` app."""
    app.add_typer(cases_app, name="cases")

"""``gridwatch cases ...``: alert cases as the logged-in user.

``list|show|ack|dispatch|on-scene|resolve`` talk to the case service as ``--user`` (password
from ``$GW_NATS_PASSWORD`` or a prompt); ``serve`` runs the case service and the snapshot
service.

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
    EXIT_INVALID,
    ConfigFile,
    ConfigOpt,
    JsonOpt,
    NatsOpt,
    ServiceLogOpt,
    UserOpt,
    connect,
    fail,
    load_or_exit,
    optional_config,
    run,
    run_until_signal,
    setup_logging,
)

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


@cases_app.command("serve")
def cases_serve(
    config: ConfigFile,
    nats_url: NatsOpt = None,
    log_level: ServiceLogOpt = "info",
) -> None:
    """Run the case service and the snapshot service (as the config's nats.user)."""
    from gridwatch.alerts.snapshot_service import SnapshotService
    from gridwatch.cases.service import CaseService

    setup_logging(log_level)
    cfg = load_or_exit(config)

    async def main() -> None:
        stop = run_until_signal()
        nc, _ = await connect(cfg, nats_url, None, "gridwatch-cases", prompt=False)
        cases, snaps = CaseService(nc, cfg), SnapshotService(nc, cfg)
        await cases.start()
        await snaps.start()
        try:
            await stop.wait()
        finally:
            await snaps.stop()
            await cases.stop()
            await nc.drain()

    run(main())


def register(app: typer.Typer) -> None:
    """Add ``cases`` to the ``gridwatch`` app."""
    app.add_typer(cases_app, name="cases")

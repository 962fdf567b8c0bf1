"""``gridwatch workers``: the workers sharing cameras by leases, their cameras and load.

Reads ``gw_workers`` (each worker's last heartbeat: capacity, what it runs, CPU) and
``gw_leases`` (who holds which camera), plus ``gw_cameras`` when the registry is in use to list
cameras nobody owns. Uses the CLI's fail-fast NATS connection (``cli.common``), as ``camera``
does.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from gridwatch.cli.common import (
    EnvConfigOpt,
    EnvNatsOpt,
    JsonOpt,
    LogOpt,
    load_env,
    nats_session,
    out,
    print_json,
    run,
)
from gridwatch.leases.status import ClusterStatus, cluster_status


def _short(items: list[str], n: int) -> str:
    if len(items) <= n:
        return " ".join(items)
    return " ".join(items[:n]) + f" … (+{len(items) - n})"


def workers(
    config: EnvConfigOpt = None,
    nats_url: EnvNatsOpt = None,
    as_json: JsonOpt = False,
    all_cameras: Annotated[
        bool, typer.Option("--cameras", help="List every camera of every worker.")
    ] = False,
    log_level: LogOpt = "warning",
) -> None:
    """List the workers sharing cameras (leases): cameras, capacity, load, heartbeat."""
    env = load_env(config, nats_url, log_level)

    async def main() -> ClusterStatus:
        async with nats_session(env) as nc:
            return await cluster_status(nc.jetstream())

    status = run(main())
    if as_json:
        print_json(status.as_dict())
        return
    if not status.workers:
        out.print("no workers (none runs with leases.enabled, or none has started yet)")
    else:
        table = Table(title="workers", title_justify="left")
        for col in ("worker", "host", "cameras", "capacity", "load", "cpu", "heartbeat", "ready"):
            table.add_column(col)
        for w in status.workers:
            table.add_row(
                w.worker,
                f"{w.host}:{w.pid}",
                f"{len(w.running)}"
                + (f" ({len(w.leases)} held)" if len(w.leases) != len(w.running) else ""),
                str(w.capacity),
                f"{w.load:.0%}" if w.load is not None else "-",
                f"{w.cpu_percent:.0f}%" if w.cpu_percent is not None else "-",
                f"{w.heartbeat_age_s:g}s ago" if w.heartbeat_age_s is not None else "?",
                "yes" if w.ready else "joining",
            )
        out.print(table)
        for w in status.workers:
            shown = w.running if all_cameras else w.running[:12]
            rest = len(w.running) - len(shown)
            out.print(
                f"{w.worker}: {' '.join(shown) or '-'}" + (f" … (+{rest})" if rest else ""),
                markup=False,
            )
    summary = f"{len(status.workers)} workers, {status.owned} cameras owned"
    if status.registry_cameras is not None:
        summary += f" of {status.registry_cameras} in the registry"
        if status.unassigned:
            summary += f"; unassigned: {_short(status.unassigned, 10)}"
    if status.orphaned:
        summary += f"; {len(status.orphaned)} leases of ended sessions (being re-claimed)"
    out.print(summary, markup=False)


def register(app: typer.Typer) -> None:
    app.command("workers")(workers)

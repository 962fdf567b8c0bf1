"""``gridwatch`` command line: worker, alerts, config, snapshots, clips and the demo.

Heavy imports (torch, ultralytics, PyAV) happen inside the commands that need them, so
``gridwatch --help`` and ``gridwatch config check`` answer at once.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer

from gridwatch.cli import (
    camera_cmd,
    cases_cmd,
    clip_cmd,
    eval_cmd,
    gb28181_cmd,
    keys_cmd,
    nats_cmd,
    notifier_cmd,
    push_cmd,
    stats_cmd,
    status_cmd,
    users_cmd,
    workers_cmd,
)
from gridwatch.cli.common import load_or_exit, parse_duration, run_until_signal, setup_logging
from gridwatch.config import GridwatchConfig

app = typer.Typer(
    name="gridwatch",
    help="Video event processing for city camera networks: RTSP → YOLO → zone rules → NATS.",
    no_args_is_help=True,
    add_completion=False,
)
alerts_app = typer.Typer(help="Read alerts from JetStream.", no_args_is_help=True)
config_app = typer.Typer(help="Validate and describe config files.", no_args_is_help=True)
snapshot_app = typer.Typer(help="Fetch alert snapshots.", no_args_is_help=True)
app.add_typer(alerts_app, name="alerts")
app.add_typer(config_app, name="config")
app.add_typer(snapshot_app, name="snapshot")
# One module per noun, each with register(app). The order here is the order of `--help`
# (commands first, then the sub-apps, each in the order registered).
camera_cmd.register(app)  # camera (the live registry)
nats_cmd.register(app)  # nats-config, nats-certs, nats-cluster-init
users_cmd.register(app)  # users
cases_cmd.register(app)  # cases (and the case service)
keys_cmd.register(app)  # keys
notifier_cmd.register(app)  # notifier
push_cmd.register(app)  # push
status_cmd.register(app)  # status
eval_cmd.register(app)  # replay (shadow mode), eval (scenario precision/recall)
workers_cmd.register(app)  # workers: who runs which cameras (leases)
clip_cmd.register(app)  # clip get (through the clip service)
stats_cmd.register(app)  # stats: people-flow statistics (GW_STATS)
gb28181_cmd.register(app)  # gb28181 serve: the GB/T 28181 alarm cascade

LogLevel = Annotated[
    str, typer.Option("--log-level", help="debug, info, warning or error.", envvar="GW_LOG_LEVEL")
]
NatsUrl = Annotated[
    str | None,
    typer.Option(
        "--nats", help="NATS URL; default: the config's nats.url or nats://127.0.0.1:4222."
    ),
]


@app.command()
def worker(
    config: Annotated[Path, typer.Option("--config", "-c", help="Config YAML file.")],
    nats_url: NatsUrl = None,
    log_level: LogLevel = "info",
    registry: Annotated[
        bool | None,
        typer.Option(
            "--registry/--no-registry",
            help="Cameras from the live registry (gw_cameras) instead of the config's "
            "'cameras' (default: the config's registry.enabled).",
        ),
    ] = None,
) -> None:
    """Run a worker: analyse the config's (or the registry's) cameras, publish alerts to NATS."""
    setup_logging(log_level)
    cfg = load_or_exit(config)
    from gridwatch.worker import Worker

    async def main() -> None:
        stop = run_until_signal()
        await Worker(cfg, nats_url=nats_url, registry=registry).run(stop)

    asyncio.run(main())


@alerts_app.command("tail")
def alerts_tail(
    grid: Annotated[str | None, typer.Option(help="Only this grid.")] = None,
    camera: Annotated[str | None, typer.Option(help="Only this camera.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    since: Annotated[
        str | None, typer.Option(help="Replay stored alerts from this long ago (10m, 2h, 1d).")
    ] = None,
    nats_url: NatsUrl = None,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="Take the NATS URL from this config.")
    ] = None,
    log_level: LogLevel = "warning",
) -> None:
    """Print alerts live from JetStream (Ctrl-C to stop)."""
    setup_logging(log_level)
    since_td = parse_duration(since) if since else None
    url = nats_url or (load_or_exit(config).nats.url if config else "nats://127.0.0.1:4222")
    from gridwatch.alerts.tail import format_alert_line, iter_alerts
    from gridwatch.bus.connect import connect

    async def main() -> None:
        stop = run_until_signal()
        nc = await connect(url, name="gridwatch-tail", flush=False)
        try:
            async for alert in iter_alerts(nc, grid=grid, camera=camera, since=since_td, stop=stop):
                line = alert.model_dump_json() if as_json else format_alert_line(alert)
                typer.echo(line)
        finally:
            await nc.drain()

    asyncio.run(main())


@config_app.command("check")
def config_check(
    file: Annotated[Path, typer.Argument(help="Config YAML file.")],
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing when valid.")] = False,
) -> None:
    """Validate a config; print every error with file, line and field; exit 2 when invalid."""
    cfg = load_or_exit(file)
    from gridwatch.auth.natsconf import security_warnings

    for warning in security_warnings(cfg):
        typer.echo(f"{file}: warning: {warning}", err=True)
    if not quiet:
        rules = sum(len(c.rules) for c in cfg.cameras)
        typer.echo(
            f"{file}: ok ({len(cfg.grids)} grids, {len(cfg.cameras)} cameras, {rules} rules)"
        )


@config_app.command("schema")
def config_schema() -> None:
    """Print the config's JSON schema (every field with its title and description)."""
    typer.echo(json.dumps(GridwatchConfig.model_json_schema(), indent=2, ensure_ascii=False))


@snapshot_app.command("get")
def snapshot_get(
    name: Annotated[str, typer.Argument(help="Snapshot name, as in an alert's 'snapshot' field.")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="File to write.")] = None,
    nats_url: NatsUrl = None,
) -> None:
    """Fetch an alert's snapshot JPEG from the gw_snapshots object store."""
    url = nats_url or "nats://127.0.0.1:4222"
    from gridwatch.alerts.tail import fetch_snapshot
    from gridwatch.bus.connect import connect

    async def main() -> bytes:
        nc = await connect(url, name="gridwatch-snapshot", flush=False)
        try:
            return await fetch_snapshot(nc, name)
        finally:
            await nc.drain()

    data = asyncio.run(main())
    target = out or Path(name.replace("/", "_"))
    target.write_bytes(data)
    typer.echo(f"wrote {target} ({len(data)} bytes)")


@app.command()
def console(
    config: Annotated[Path, typer.Option("--config", "-c", help="Config YAML file.")],
    host: Annotated[
        str | None, typer.Option(help="Listen address (default: the config's console.host).")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="TCP port, 0 for any (default: console.port).")
    ] = None,
    nats_url: NatsUrl = None,
    live: Annotated[bool, typer.Option("--live/--no-live", help="Serve WebRTC live video.")] = True,
    log_level: LogLevel = "info",
) -> None:
    """Run the command-centre console and the responder phone view (see docs/console.md)."""
    setup_logging(log_level)
    cfg = load_or_exit(config)
    from gridwatch.console.server import run_console

    async def main() -> None:
        await run_console(
            cfg, run_until_signal(), host=host, port=port, nats_url=nats_url, live=live
        )

    asyncio.run(main())


@app.command()
def demo(
    config: Annotated[Path, typer.Option("--config", "-c", help="Demo config.")] = Path(
        "configs/demo.yaml"
    ),
    duration: Annotated[
        float | None, typer.Option(help="Stop after this many seconds (default: until Ctrl-C).")
    ] = None,
    log_level: LogLevel = "warning",
) -> None:
    """Embedded NATS + a looping RTSP camera of real video + a worker + the console, printing
    alerts and the console's URL and logins."""
    setup_logging(log_level)
    cfg = load_or_exit(config)
    from gridwatch_devtools.demo import run_demo

    asyncio.run(run_demo(cfg, duration_s=duration))


def main() -> None:
    app()


if __name__ == "__main__":
    main()

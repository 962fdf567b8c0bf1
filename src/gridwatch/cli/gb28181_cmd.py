"""``gridwatch gb28181 serve``: the GB/T 28181 alarm cascade (gridwatch as a lower platform
of a superior video platform), as the config's ``nats.user`` (a ``service: gb28181``
identity). Exit codes: 0 stopped, 2 bad config (no ``gb28181:`` section, no password)."""

from __future__ import annotations

from typing import Annotated

import typer

from gridwatch.cli.common import (
    ConfigFile,
    NatsOpt,
    ServiceLogOpt,
    connect,
    fail,
    load_or_exit,
    run,
    run_until_signal,
    setup_logging,
)

gb28181_app = typer.Typer(
    help="GB/T 28181 alarm cascade to a superior platform.", no_args_is_help=True
)

MetricsPortOpt = Annotated[
    int | None,
    typer.Option(
        "--metrics-port", help="Serve Prometheus metrics on this port (0: any free port)."
    ),
]
MetricsHostOpt = Annotated[str, typer.Option("--metrics-host", help="Metrics address.")]


@gb28181_app.command("serve")
def serve_cmd(
    config: ConfigFile,
    nats_url: NatsOpt = None,
    log_level: ServiceLogOpt = "info",
    metrics_port: MetricsPortOpt = None,
    metrics_host: MetricsHostOpt = "127.0.0.1",
) -> None:
    """Register with the superior, answer its queries, send each raised alert as an Alarm."""
    from gridwatch.gb28181.service import Gb28181Service

    setup_logging(log_level)
    cfg = load_or_exit(config)
    settings = getattr(cfg, "gb28181", None)
    if settings is None:
        fail(f"{config}: no gb28181: section", code=2)
    if not settings.enabled:
        fail(f"{config}: gb28181.enabled is false", code=2)
    try:
        settings.resolved_password()
    except RuntimeError as e:
        fail(f"{config}: {e}", code=2)

    async def main() -> None:
        stop = run_until_signal()
        nc, _ = await connect(cfg, nats_url, None, "gridwatch-gb28181", prompt=False)
        async with Gb28181Service(nc, cfg, metrics_host=metrics_host, metrics_port=metrics_port):
            await stop.wait()
        await nc.drain()

    run(main())


def register(app: typer.Typer) -> None:
    """Add ``gb28181`` to the ``gridwatch`` app."""
    app.add_typer(gb28181_app, name="gb28181")

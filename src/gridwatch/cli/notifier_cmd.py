"""``gridwatch notifier``: run the notifier (Web Push to on-duty responders, signed webhooks)
as the config's ``nats.user``."""

from __future__ import annotations

import typer

from gridwatch.cli.common import (
    ConfigFile,
    NatsOpt,
    ServiceLogOpt,
    connect,
    load_or_exit,
    run,
    run_until_signal,
    setup_logging,
)


def notifier_cmd(
    config: ConfigFile,
    nats_url: NatsOpt = None,
    log_level: ServiceLogOpt = "info",
) -> None:
    """Run the notifier: Web Push to on-duty responders, signed webhooks."""
    from gridwatch.notify.notifier import Notifier
    from gridwatch.notify.webpush import VapidKey

    setup_logging(log_level)
    cfg = load_or_exit(config)
    key_file = cfg.notify.vapid_private_key_file
    vapid = VapidKey.load(key_file) if key_file else None
    if vapid is None:
        typer.echo("warning: notify.vapid_private_key_file not set: no Web Push", err=True)

    async def main() -> None:
        stop = run_until_signal()
        nc, _ = await connect(cfg, nats_url, None, "gridwatch-notifier", prompt=False)
        async with Notifier(nc, cfg, vapid=vapid):
            await stop.wait()
        await nc.drain()

    run(main())


def register(app: typer.Typer) -> None:
    """Add ``notifier`` to the ``gridwatch`` app."""
    app.command("notifier")(notifier_cmd)

"""``gridwatch push register``: store a browser's Web Push subscription (for yourself, or as a
service for ``--for``).

Exit codes: 0 done, 1 NATS refused, 2 no user named.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from gridwatch.cli.common import (
    EXIT_INVALID,
    ConfigOpt,
    NatsOpt,
    UserOpt,
    connect,
    fail,
    optional_config,
    run,
)

push_app = typer.Typer(help="Web Push subscriptions.", no_args_is_help=True)


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
    cfg = optional_config(config)

    async def main() -> str:
        nc, u = await connect(cfg, nats_url, user, "gridwatch-push")
        try:
            owner = for_user or u
            if not owner:
                fail("name the user: --user or --for", EXIT_INVALID)
            return await register_subscription(nc.jetstream(), owner, data)
        finally:
            await nc.drain()

    typer.echo(f"registered {run(main())}")


def register(app: typer.Typer) -> None:
    """Add ``push`` to the ``gridwatch`` app."""
    app.add_typer(push_app, name="push")

"""``gridwatch keys vapid``: create the Web Push (VAPID) key pair.

Exit codes: 0 done, 2 the key file exists (without ``--force``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gridwatch.cli.common import EXIT_INVALID, fail

keys_app = typer.Typer(help="Key pairs (Web Push VAPID).", no_args_is_help=True)


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
        fail(f"{out} exists (every phone's subscription is bound to it); --force", EXIT_INVALID)
    key = VapidKey.generate()
    key.save(out)
    typer.echo(f"wrote {out} (keep it secret; set notify.vapid_private_key_file to it)")
    typer.echo(f"applicationServerKey: {key.application_server_key}")


def register(app: typer.Typer) -> None:
    """Add ``keys`` to the ``gridwatch`` app."""
    app.add_typer(keys_app, name="keys")

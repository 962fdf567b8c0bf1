"""``gridwatch users hash-password``: read a password on standard input, print its bcrypt hash
for the config's ``users:`` section.

Exit codes: 0 done, 2 bad input (the passwords differ, or one bcrypt refuses).
"""

from __future__ import annotations

import getpass
import sys
from typing import Annotated

import typer

from gridwatch.cli.common import EXIT_INVALID, fail

users_app = typer.Typer(help="Users and their passwords.", no_args_is_help=True)


@users_app.command("hash-password")
def hash_password_cmd(
    rounds: Annotated[int, typer.Option(help="bcrypt cost (12: about 0.25 s per login).")] = 12,
) -> None:
    """Read a password on standard input (first line) and print its bcrypt hash."""
    from gridwatch.auth.passwords import hash_password

    if sys.stdin.isatty():
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            fail("the passwords differ", EXIT_INVALID)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    try:
        typer.echo(hash_password(password, rounds=rounds))
    except ValueError as e:
        fail(str(e), EXIT_INVALID)


def register(app: typer.Typer) -> None:
    """Add ``users`` to the ``gridwatch`` app."""
    app.add_typer(users_app, name="users")

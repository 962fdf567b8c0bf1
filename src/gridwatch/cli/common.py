"""What every CLI noun shares, in one place: logging set-up, loading a config or exiting with
its errors, stopping on a signal, durations, error output and exit codes, JSON output, the
common options, and the NATS connection (credentials, TLS) of the commands that talk to NATS.
The noun modules import this and never ``cli.main`` (which imports them: a cycle).

Exit codes: 0 done, :data:`EXIT_FAILED` an operation failed (NATS unreachable, refused, no
such camera), :data:`EXIT_INVALID` the input is invalid.

>>> parse_duration("1h30m")
datetime.timedelta(seconds=5400)
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import json
import logging
import re
import signal
import sys
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from nats.aio.client import Client as NatsClient
from rich.console import Console
from rich.text import Text

from gridwatch.config import ConfigError, ConfigIssue, GridwatchConfig, load_config
from gridwatch.ingest.urls import redact_text

log = logging.getLogger(__name__)

_T = TypeVar("_T")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd])")

EXIT_FAILED = 1
EXIT_INVALID = 2
DEFAULT_NATS = "nats://127.0.0.1:4222"

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

# -- options shared by several nouns ----------------------------------------------------------

ConfigFile = Annotated[Path, typer.Option("--config", "-c", help="Config YAML file.")]
ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="Config YAML file.")]
NatsOpt = Annotated[str | None, typer.Option("--nats", help="NATS URL (default: the config's).")]
UserOpt = Annotated[
    str | None, typer.Option("--user", "-u", help="NATS user (default $GW_NATS_USER).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
ServiceLogOpt = Annotated[str, typer.Option("--log-level")]

# The ops commands (camera, workers) also read $GW_CONFIG, $GW_NATS and $GW_LOG_LEVEL.
EnvConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        envvar="GW_CONFIG",
        help="Deployment config: its grids and schedules validate cameras, its nats.url is used.",
    ),
]
EnvNatsOpt = Annotated[
    str | None,
    typer.Option(
        "--nats", envvar="GW_NATS", help=f"NATS URL (default: the config's, or {DEFAULT_NATS})."
    ),
]
LogOpt = Annotated[str, typer.Option("--log-level", envvar="GW_LOG_LEVEL", help="Log level.")]


# -- process plumbing ------------------------------------------------------------------------


def setup_logging(level: str, default: int = logging.INFO) -> None:
    """Log to stderr at ``level`` (a name; an unknown one means ``default``)."""
    logging.basicConfig(
        level=getattr(logging, level.upper(), default),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def load_or_exit(path: Path) -> GridwatchConfig:
    """The config at ``path``, or every error (file, line, field) on stderr and exit code 2."""
    try:
        return load_config(path)
    except ConfigError as exc:
        for issue in exc.issues:
            typer.echo(f"error: {issue}", err=True)
        raise typer.Exit(2) from None


def optional_config(path: Path | None) -> GridwatchConfig | None:
    """:func:`load_or_exit` for an optional ``--config``."""
    return None if path is None else load_or_exit(path)


def run_until_signal(main: asyncio.Event | None = None) -> asyncio.Event:
    """An event set on SIGINT/SIGTERM in the running loop."""
    stop = main or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


def run(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run a command's coroutine to its end."""
    return asyncio.run(coro)


def parse_duration(text: str) -> timedelta:
    """``90s``, ``10m``, ``1h30m``, ``2d`` → timedelta."""
    text = text.strip().lower()
    parts = _DURATION.findall(text)
    if not parts or _DURATION.sub("", text).strip():
        raise typer.BadParameter(f"{text!r} is not a duration like 90s, 10m, 1h30m or 2d")
    unit = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    return timedelta(seconds=sum(float(n) * unit[u] for n, u in parts))


# -- output ----------------------------------------------------------------------------------


def error(message: str) -> None:
    """``error: message`` on stderr (passwords in URLs as ***)."""
    err.print(Text.assemble(("error:", "bold red"), " ", redact_text(message)))


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    """Print ``error: message`` on stderr and exit with ``code``."""
    error(message)
    raise typer.Exit(code)


def print_issues(issues: list[ConfigIssue], *, file_level: bool = True) -> None:
    """Each config problem as an ``error:`` line (with file and line, or just its field)."""
    for issue in issues:
        error(str(issue) if file_level else f"{issue.field}: {issue.message}")


def print_json(obj: Any) -> None:
    """Plain JSON on stdout (no colours, no wrapping): for scripts and ``jq``."""
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()


# -- NATS ------------------------------------------------------------------------------------


def nats_credentials(
    cfg: GridwatchConfig | None, user: str | None = None, *, prompt: bool = False
) -> tuple[str | None, str | None]:
    """``user`` (else ``$GW_NATS_USER``, else the config's ``nats.user``) and the password
    (``$GW_NATS_PASSWORD``, else the config's, else, with ``prompt`` on a terminal, asked)."""
    from gridwatch.auth.client import PASSWORD_ENV, resolve_credentials

    u, p = resolve_credentials(
        user,
        None,
        config_user=cfg.nats.user if cfg else None,
        config_password=cfg.nats.password if cfg else None,
    )
    if u and not p and prompt and sys.stdin.isatty():
        p = getpass.getpass(f"NATS password for {u} (or set ${PASSWORD_ENV}): ")
    return u, p


async def connect(
    cfg: GridwatchConfig | None,
    nats_url: str | None,
    user: str | None,
    name: str,
    *,
    prompt: bool = True,
) -> tuple[NatsClient, str | None]:
    """A service's or a person's connection (a couple of reconnects) as ``user`` (see
    :func:`nats_credentials`), TLS with the config's ``nats.tls_ca_file``; and the user."""
    from gridwatch.bus.connect import connect as nats_connect

    url = nats_url or (cfg.nats.url if cfg else DEFAULT_NATS)
    u, p = nats_credentials(cfg, user, prompt=prompt)
    nc = await nats_connect(
        url,
        user=u,
        password=p,
        name=name,
        reconnects=2,
        reconnect_wait=0.5,
        tls_ca_file=cfg.nats.tls_ca_file if cfg else None,
    )
    return nc, u


@dataclass
class Env:
    """What an ops command (camera, workers) runs with: the config, if given, and NATS URL."""

    config: GridwatchConfig | None
    nats_url: str


def load_env(config: Path | None, nats_url: str | None, level: str = "warning") -> Env:
    """Logging at ``level``, the config (or its errors and exit 2) and the NATS URL."""
    setup_logging(level, logging.WARNING)
    cfg = None
    if config is not None:
        try:
            cfg = load_config(config)
        except ConfigError as exc:
            print_issues(exc.issues)
            raise typer.Exit(EXIT_INVALID) from None
    url = nats_url or (cfg.nats.url if cfg else DEFAULT_NATS)
    return Env(cfg, url)


def require_config(env: Env, why: str) -> GridwatchConfig:
    """The ops command's config, or exit 2 saying ``why`` one is needed."""
    if env.config is None:
        fail(f"give --config FILE (or set GW_CONFIG): {why}", EXIT_INVALID)
    return env.config


@contextlib.asynccontextmanager
async def nats_session(env: Env) -> AsyncIterator[NatsClient]:
    """A connection that fails fast (no reconnects): a CLI should say at once if NATS is down.

    On a secured server it logs in as ``$GW_NATS_USER``/``$GW_NATS_PASSWORD`` (else the
    config's ``nats.user``/``password``) and uses TLS with ``$GW_NATS_TLS_CA`` (else the
    config's ``nats.tls_ca_file``)."""
    from gridwatch.bus.connect import connect as nats_connect

    user, password = nats_credentials(env.config)
    try:
        nc = await asyncio.wait_for(
            nats_connect(
                env.nats_url,
                user=user,
                password=password,
                name="gridwatch-camera-cli",
                connect_timeout=3,
                fail_fast=True,
                tls_ca_file=env.config.nats.tls_ca_file if env.config else None,
            ),
            10,
        )
    except Exception as exc:
        fail(
            f"cannot reach NATS at {env.nats_url} ({type(exc).__name__}: {exc}); is the server "
            "running? give --nats URL or the config's nats.url"
        )
    try:
        yield nc
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(nc.drain(), 5)

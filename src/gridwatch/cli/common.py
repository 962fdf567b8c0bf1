"""What every CLI noun shares: logging set-up, loading a config or exiting with its errors,
stopping on a signal, durations. One place, so the noun modules never import ``cli.main``
(which imports them: a cycle).

>>> parse_duration("1h30m")
datetime.timedelta(seconds=5400)
"""

from __future__ import annotations

import asyncio
import logging
import re
import signal
import sys
from datetime import timedelta
from pathlib import Path

import typer

from gridwatch.config import ConfigError, GridwatchConfig, load_config

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd])")


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


def run_until_signal(main: asyncio.Event | None = None) -> asyncio.Event:
    """An event set on SIGINT/SIGTERM in the running loop."""
    stop = main or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


def parse_duration(text: str) -> timedelta:
    """``90s``, ``10m``, ``1h30m``, ``2d`` → timedelta."""
    text = text.strip().lower()
    parts = _DURATION.findall(text)
    if not parts or _DURATION.sub("", text).strip():
        raise typer.BadParameter(f"{text!r} is not a duration like 90s, 10m, 1h30m or 2d")
    unit = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    return timedelta(seconds=sum(float(n) * unit[u] for n, u in parts))

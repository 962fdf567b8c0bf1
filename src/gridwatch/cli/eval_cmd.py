"""``gridwatch replay`` and ``gridwatch eval``: shadow mode and the evaluation harness.

``replay`` runs a config over a recorded clip and prints every incident event that would have
fired, publishing nothing; ``eval`` replays a directory of scenarios and scores them against
their labelled truth (precision, recall and onset delay per rule type, real and synthetic
scenarios apart). Heavy imports happen inside the commands.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from gridwatch.evaluation.runner import EvalResult, ScenarioResult
    from gridwatch.evaluation.scenarios import Tally

log = logging.getLogger(__name__)


def register(app: typer.Typer) -> None:
    """Add the ``replay`` and ``eval`` commands to the ``gridwatch`` app."""
    app.command("replay")(replay_cmd)
    app.command("eval")(eval_cmd)


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.WARNING),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def replay_cmd(
    config: Annotated[Path, typer.Option("--config", "-c", help="Config YAML file.")],
    video: Annotated[Path, typer.Option("--video", help="Recorded clip to replay.")],
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="One JSON object per line (type, state, camera_id, zone_id, video_s, ...).",
        ),
    ] = False,
    realtime: Annotated[
        bool, typer.Option("--realtime", help="Pace the clip at its own rate.")
    ] = False,
    camera: Annotated[
        str | None, typer.Option("--camera", help="Camera of the config (default: the first).")
    ] = None,
    start: Annotated[
        str | None,
        typer.Option(
            "--start",
            help="Wall time of the clip's first frame, ISO 8601 (local to the config's time zone "
            "unless it has an offset), for schedules; default: now.",
        ),
    ] = None,
    log_level: Annotated[str, typer.Option("--log-level", help="Log level.")] = "warning",
) -> None:
    """Shadow mode: run a config over a clip and print the incidents that would fire."""
    _setup_logging(log_level)
    from gridwatch.cli.main import _load_or_exit
    from gridwatch.evaluation.replay import parse_start, pick_camera, replay
    from gridwatch.evaluation.runner import DetectorPool

    cfg = _load_or_exit(config)
    if not video.is_file():
        typer.echo(f"error: {video}: no such file", err=True)
        raise typer.Exit(2)
    try:
        cam = pick_camera(cfg, camera)
        start_ts = parse_start(start, cfg.tzinfo())
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    needs = any(r.type not in ("tamper", "offline") for r in cam.rules)
    detector = DetectorPool().get(cfg.detector) if needs else None
    n = 0
    try:
        for ev in replay(
            cfg, video, camera_id=cam.id, detector=detector, start_ts=start_ts, realtime=realtime
        ):
            n += 1
            typer.echo(json.dumps(ev.to_json(), ensure_ascii=False) if as_json else ev.line())
    except ValueError as exc:  # a rule that cannot run with this detector
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if not as_json:
        typer.echo(f"{n} events", err=True)


def _fmt(v: float | None, digits: int = 2) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def _table(result: EvalResult) -> Any:
    from rich.table import Table

    rep = result.report
    table = Table(title=f"gridwatch eval: {len(result.scenarios)} scenarios")
    for col in ("rule type", "set", "tp", "fp", "fn", "precision", "recall", "onset med s",
                "onset max s", "late"):  # fmt: skip
        table.add_column(
            col, justify="left" if col in ("rule type", "set") else "right", no_wrap=True
        )

    def row(t: str, label: str, tally: Tally) -> None:
        j = tally.as_json()
        table.add_row(
            t, label, str(j["tp"]), str(j["fp"]), str(j["fn"]), _fmt(j["precision"]),
            _fmt(j["recall"]), _fmt(j["onset_median_s"], 1), _fmt(j["onset_max_s"], 1),
            str(j["onset_late"]),
        )  # fmt: skip

    from gridwatch.evaluation.scenarios import Tally as _T

    for t in sorted(rep.overall):
        row(t, "all", rep.overall[t])
        row("", "real", rep.real.get(t, _T()))
        row("", "synthetic", rep.synthetic.get(t, _T()))
    return table


def _scenario_line(r: ScenarioResult) -> str:
    kind = "synthetic" if r.scenario.synthetic else "real"
    outcomes = ", ".join(
        f"{m.rule_type}:{m.outcome}"
        + (f"@{m.video_s:.1f}s" if m.video_s is not None else "")
        + (f" onset {m.onset_s:.1f}s" if m.onset_s is not None else "")
        + (f" ({m.note})" if m.note else "")
        for m in r.matches
    )
    return f"{r.scenario.name} [{kind}] {r.seconds:.1f}s: {outcomes or 'quiet (as expected)'}"


def eval_cmd(
    directory: Annotated[Path, typer.Argument(help="Directory of scenarios (or one scenario).")],
    json_file: Annotated[
        Path | None,
        typer.Option("--json", help="Write the figures as JSON, keyed by rule type."),
    ] = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Run the detector on every frame afresh.")
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Print each scenario's outcome.")
    ] = False,
    backend: Annotated[
        str | None,
        typer.Option(
            "--backend",
            help="Run the default model with this detector backend instead of the scenarios' "
            "(ultralytics, openvino, onnx): measures an export against the same truth.",
        ),
    ] = None,
    log_level: Annotated[str, typer.Option("--log-level", help="Log level.")] = "warning",
) -> None:
    """Replay every scenario under DIR and report precision, recall and onset per rule type."""
    _setup_logging(log_level)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from gridwatch.config import ConfigError
    from gridwatch.evaluation.runner import evaluate
    from gridwatch.evaluation.scenarios import ScenarioError

    if not directory.exists():
        typer.echo(f"error: {directory}: no such directory", err=True)
        raise typer.Exit(2)
    console = Console(stderr=True)
    lines: list[str] = []
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("scenarios", total=None)

        def started(n: int) -> None:
            progress.update(task, total=n)

        def done(r: ScenarioResult) -> None:
            progress.update(task, advance=1, description=r.scenario.name)
            lines.append(_scenario_line(r))

        try:
            result = evaluate(
                directory, cache=not no_cache, on_start=started, on_done=done, backend=backend
            )
        except (ScenarioError, ConfigError, ValueError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
    out = Console() if sys.stdout.isatty() else Console(width=120)  # pipes: no truncation
    if verbose:
        for line in lines:
            out.print(line, highlight=False, markup=False)
    out.print(_table(result))
    out.print(f"{len(result.scenarios)} scenarios in {result.seconds:.1f} s", highlight=False)
    if json_file is not None:
        json_file.write_text(json.dumps(result.report.as_json(), indent=2) + "\n")

"""``gridwatch replay`` and ``gridwatch eval``: shadow mode and the evaluation harness.

``replay`` runs a config over a recorded clip and prints every incident event that would have
fired, publishing nothing; ``eval`` replays a directory of scenarios and scores them against
their labelled truth (precision, recall and onset delay per rule type, real and synthetic
scenarios apart). Heavy imports happen inside the commands.

Scenarios on real footage with ground truth (``data.yaml``) add a second table, per scene: the
error of the count the crowding rules saw against the truth's (MAE, MAPE, and the frame-to-frame
spread of both counts) next to the scene's incident precision, recall and onset. ``--json``
keeps its ``{rule type: {...}}`` figures and adds them under ``"_scenes"`` (see
:meth:`gridwatch.evaluation.runner.EvalResult.as_json` for why that key). Their data is read
from ``--data DIR`` / ``$GRIDWATCH_DATA`` / ``../shared/data``; when it is missing they are
listed as not run, with where the data comes from, and under ``CI=true`` eval fails instead.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from gridwatch.cli.common import load_or_exit, setup_logging

if TYPE_CHECKING:
    from gridwatch.evaluation.runner import EvalResult, ScenarioResult, SceneResult
    from gridwatch.evaluation.scenarios import Tally

log = logging.getLogger(__name__)


def register(app: typer.Typer) -> None:
    """Add the ``replay`` and ``eval`` commands to the ``gridwatch`` app."""
    app.command("replay")(replay_cmd)
    app.command("eval")(eval_cmd)


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
    setup_logging(log_level, logging.WARNING)
    from gridwatch.evaluation.replay import parse_start, pick_camera, replay
    from gridwatch.evaluation.runner import DetectorPool

    cfg = load_or_exit(config)
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


def _scenes_table(scenes: dict[str, SceneResult]) -> Any:
    """One row per scene (count error pooled over its zones, incident tallies of all its
    scenarios), then one row per zone with that zone's count error."""
    from rich.table import Table

    from gridwatch.evaluation.count_metrics import CountMetrics

    table = Table(
        title="real footage: count the crowding rules saw vs the ground truth's, per scene",
        caption="MAPE over frames with truth > 0; spread: mean |count change| between "
        "consecutive analysed frames, seen/truth",
    )
    for col in ("scene (run) / zone", "frames", "truth", "seen", "MAE", "MAPE %",
                "spread", "tp/fp/fn", "prec.", "recall", "onset s"):  # fmt: skip
        table.add_column(col, justify="right" if table.columns else "left", no_wrap=True)

    def counts(c: CountMetrics) -> list[str]:
        return [
            str(c.frames), _fmt(c.mean_truth, 1), _fmt(c.mean_predicted, 1), _fmt(c.mae),
            _fmt(c.mape, 1), f"{_fmt(c.spread_predicted)}/{_fmt(c.spread_truth)}",
        ]  # fmt: skip

    for name in sorted(scenes):
        sc = scenes[name]
        ran = len(sc.scenarios)
        label = f"{name} ({ran}/{ran + len(sc.not_run)})"
        if sc.count is None or sc.count.frames == 0:
            table.add_row(label, *(["—"] * 10))
            continue
        j = _sum_tallies(sc.tallies).as_json()
        table.add_row(
            label, *counts(sc.count), f"{j['tp']}/{j['fp']}/{j['fn']}",
            _fmt(j["precision"]), _fmt(j["recall"]), _fmt(j["onset_median_s"], 1),
        )  # fmt: skip
        for zone in sorted(sc.zones):
            table.add_row(f"  {zone}", *counts(sc.zones[zone]), "", "", "", "")
    return table


def _sum_tallies(tallies: dict[str, Tally]) -> Tally:
    from gridwatch.evaluation.scenarios import Tally as _T

    total = _T()
    for t in tallies.values():
        total.add(t)
    return total


def _scenario_line(r: ScenarioResult) -> str:
    kind = "synthetic" if r.scenario.synthetic else "real"
    if r.not_run is not None:
        return f"{r.scenario.name} [{kind}] not run: {r.not_run}"
    outcomes = ", ".join(
        f"{m.rule_type}:{m.outcome}"
        + (f"@{m.video_s:.1f}s" if m.video_s is not None else "")
        + (f" onset {m.onset_s:.1f}s" if m.onset_s is not None else "")
        + (f" ({m.note})" if m.note else "")
        for m in r.matches
    )
    line = f"{r.scenario.name} [{kind}] {r.seconds:.1f}s: {outcomes or 'quiet (as expected)'}"
    if r.counts:
        from gridwatch.evaluation.count_metrics import count_metrics

        parts = []
        for zone, samples in sorted(r.counts.items()):
            m = count_metrics(samples)
            parts.append(
                f"{zone} MAE {_fmt(m.mae)} MAPE {_fmt(m.mape, 1)}% "
                f"(truth {_fmt(m.mean_truth, 1)}, seen {_fmt(m.mean_predicted, 1)})"
            )
        line += "; counts: " + ", ".join(parts)
    return line


def eval_cmd(
    directory: Annotated[Path, typer.Argument(help="Directory of scenarios (or one scenario).")],
    json_file: Annotated[
        Path | None,
        typer.Option(
            "--json",
            help="Write the figures as JSON, keyed by rule type (real-data scenes under "
            '"_scenes").',
        ),
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
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            help="Run these weights (a path, as detector.model takes it) instead of the default "
            "model of the scenarios that use it; combines with --backend.",
        ),
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help="Root of the real footage that data.yaml scenarios name (default: "
            "$GRIDWATCH_DATA, else ../shared/data from here or above the scenarios).",
        ),
    ] = None,
    log_level: Annotated[str, typer.Option("--log-level", help="Log level.")] = "warning",
) -> None:
    """Replay every scenario under DIR and report precision, recall and onset per rule type,
    and the count error per real-data scene."""
    setup_logging(log_level, logging.WARNING)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from gridwatch.config import ConfigError
    from gridwatch.detectors.base import DetectorError
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
                directory,
                cache=not no_cache,
                on_start=started,
                on_done=done,
                backend=backend,
                model=model,
                data_dir=data,
            )
        except (ScenarioError, ConfigError, DetectorError, ValueError) as exc:
            typer.echo(f"error: {exc}", err=True)  # a missing model or data: no traceback
            raise typer.Exit(2) from None
    out = Console() if sys.stdout.isatty() else Console(width=120)  # pipes: no truncation
    if verbose:
        for line in lines:
            out.print(line, highlight=False, markup=False)
    out.print(_table(result))
    scenes = result.scenes
    if scenes:
        out.print(_scenes_table(scenes))
        for name in sorted(scenes):
            reasons = list(scenes[name].not_run.values())
            if reasons:
                out.print(f"{name}: not run: {reasons[0]}", highlight=False, markup=False)
    not_run = sum(r.not_run is not None for r in result.scenarios)
    ran = len(result.scenarios) - not_run
    summary = f"{ran} scenarios in {result.seconds:.1f} s"
    if not_run:
        summary += f"; {not_run} not run (data missing)"
    out.print(summary, highlight=False)
    if json_file is not None:
        json_file.write_text(json.dumps(result.as_json(), indent=2) + "\n")

"""``gridwatch camera import|export``: the registry from and to a file (CSV, YAML, JSON).

``import`` reports every bad row with its line and imports nothing from a file with errors
unless ``--skip-bad``; ``export`` writes passwords as ``***`` unless asked not to."""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from gridwatch.cli.camera_registry import registry_session
from gridwatch.cli.common import (
    EXIT_FAILED,
    EXIT_INVALID,
    EnvConfigOpt,
    EnvNatsOpt,
    JsonOpt,
    LogOpt,
    err,
    fail,
    load_env,
    out,
    print_issues,
    print_json,
    require_config,
    run,
)
from gridwatch.config import CameraConfig, ConfigIssue
from gridwatch.ingest.urls import redact_text
from gridwatch.registry.store import CameraRegistry


def import_(
    file: Annotated[Path, typer.Argument(help="cameras.csv, or YAML (a config or cameras: list).")],
    skip_bad: Annotated[
        bool, typer.Option("--skip-bad", help="Import the valid rows even if some are bad.")
    ] = False,
    update: Annotated[
        bool, typer.Option("--update", help="Replace cameras that already exist.")
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate, write nothing.")] = False,
    config: EnvConfigOpt = None,
    nats_url: EnvNatsOpt = None,
    as_json: JsonOpt = False,
    log_level: LogOpt = "warning",
) -> None:
    """Bulk import. Every bad row is reported with its line; nothing is imported from a file
    with errors unless --skip-bad."""
    from gridwatch.registry.files import (
        read_cameras_file,
        restore_credentials,
        validate_cameras,
    )

    env = load_env(config, nats_url, log_level)
    try:
        text = file.read_text(encoding="utf-8-sig")
    except OSError as exc:
        fail(f"cannot read {file}: {exc}", EXIT_INVALID)
    parsed = read_cameras_file(text, str(file))
    reference = env.config or parsed.own_config
    if reference is None:
        if parsed.issues and not parsed.rows:
            print_issues(parsed.issues)
            raise typer.Exit(EXIT_INVALID)
        reference = require_config(env, "the cameras' grids are checked against its grids")
    if env.config is None and parsed.own_config is not None:
        env.nats_url = nats_url or parsed.own_config.nats.url
    checked = validate_cameras(parsed, reference)

    async def main() -> dict[str, Any]:
        async with registry_session(env) as reg:
            existing = await reg.entries()
            plan: list[tuple[str, int, CameraConfig, int]] = []  # action, line, camera, rev
            issues = list(checked.issues)
            unchanged: list[str] = []
            for line, cam in checked.cameras:
                entry = existing.get(cam.id)
                current: CameraConfig | None = None
                if entry is not None:
                    with contextlib.suppress(Exception):
                        current = reg.record(entry).camera
                try:
                    cam = restore_credentials(cam, current)
                except ValueError as exc:
                    issues.append(ConfigIssue(str(file), line, 1, "url", str(exc)))
                    continue
                if entry is None:
                    plan.append(("create", line, cam, 0))
                    continue
                same = current == cam
                if same:
                    unchanged.append(cam.id)
                elif update:
                    plan.append(("update", line, cam, int(entry.revision or 0)))
                else:
                    issues.append(
                        ConfigIssue(
                            str(file),
                            line,
                            1,
                            "id",
                            f"camera {cam.id!r} already exists in the registry with other "
                            "settings (--update replaces existing cameras)",
                        )
                    )
            issues.sort(key=lambda i: (i.line, i.column))
            bad_lines = sorted({i.line for i in issues})
            summary: dict[str, Any] = {
                "file": str(file),
                "rows": checked.rows,
                "bad_rows": bad_lines,
                "issues": [
                    {**dataclasses.asdict(i), "message": redact_text(i.message)} for i in issues
                ],
                "created": [],
                "updated": [],
                "unchanged": unchanged,
                "imported": False,
            }
            print_issues(issues)
            if issues and not skip_bad:
                good = len(plan) + len(unchanged)
                err.print(
                    f"{len(bad_lines)} bad row(s) of {checked.rows}: nothing imported. Fix them, "
                    f"or add --skip-bad to import the {good} good row(s)."
                )
                summary["exit"] = EXIT_INVALID
                return summary
            if dry_run:
                summary["created"] = [c.id for a, _, c, _ in plan if a == "create"]
                summary["updated"] = [c.id for a, _, c, _ in plan if a == "update"]
                return summary
            await _write_plan(reg, plan, summary, quiet=as_json)
            summary["imported"] = True
            if summary["failed"]:
                summary["exit"] = EXIT_FAILED
            return summary

    summary: dict[str, Any] = run(main())
    code = int(summary.pop("exit", 0))
    if as_json:
        print_json(summary)
    elif code == 0:
        verb = "would import" if dry_run else "imported"
        out.print(
            f"{verb} {len(summary['created'])} new and {len(summary['updated'])} changed "
            f"camera(s); {len(summary['unchanged'])} unchanged; "
            f"{len(summary['bad_rows'])} bad row(s) skipped"
        )
    if code:
        raise typer.Exit(code)


async def _write_plan(
    reg: CameraRegistry,
    plan: list[tuple[str, int, CameraConfig, int]],
    summary: dict[str, Any],
    *,
    quiet: bool,
) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from gridwatch.registry.store import ConcurrentUpdateError

    failed: list[dict[str, Any]] = []
    with Progress(
        TextColumn("importing"),
        BarColumn(),
        MofNCompleteColumn(),
        console=err,
        disable=quiet or not plan,
        transient=True,
    ) as progress:
        task = progress.add_task("import", total=len(plan))
        for action, line, cam, rev in plan:
            try:
                await reg.put(cam, expect_revision=rev, change=f"import line {line}")
                summary["created" if action == "create" else "updated"].append(cam.id)
            except ConcurrentUpdateError as exc:
                failed.append({"line": line, "id": cam.id, "error": str(exc)})
                err.print(f"[bold red]error:[/] line {line}: {exc}", markup=True)
            progress.advance(task)
    summary["failed"] = failed


def export(
    out_file: Annotated[
        Path | None, typer.Option("--out", "-o", help="File to write (default: stdout).")
    ] = None,
    fmt: Annotated[
        str | None, typer.Option("--format", help="yaml, csv or json (default: from --out).")
    ] = None,
    grid: Annotated[str | None, typer.Option("--grid", help="Only this grid.")] = None,
    include_credentials: Annotated[
        bool,
        typer.Option("--include-credentials", help="Keep passwords in URLs (default: ***)."),
    ] = False,
    config: EnvConfigOpt = None,
    nats_url: EnvNatsOpt = None,
    log_level: LogOpt = "warning",
) -> None:
    """Write the registry as YAML (a config's cameras: section, for version control) or CSV."""
    from gridwatch.registry.files import dump_cameras_csv, dump_cameras_json, dump_cameras_yaml

    env = load_env(config, nats_url, log_level)
    kind = (fmt or (out_file.suffix.lstrip(".") if out_file else "yaml")).lower()
    dumpers = {"yaml": dump_cameras_yaml, "yml": dump_cameras_yaml, "csv": dump_cameras_csv}
    dumpers["json"] = dump_cameras_json
    if kind not in dumpers:
        fail(f"unknown format {kind!r}: use yaml, csv or json", EXIT_INVALID)

    async def main() -> list[CameraConfig]:
        async with registry_session(env) as reg:
            return [r.camera for r in await reg.cameras() if grid is None or r.camera.grid == grid]

    cameras: list[CameraConfig] = run(main())
    text = dumpers[kind](cameras, include_credentials=include_credentials)
    if out_file is None:
        sys.stdout.write(text)
    else:
        out_file.write_text(text, encoding="utf-8")
        err.print(f"wrote {len(cameras)} camera(s) to {out_file}")

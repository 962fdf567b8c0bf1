"""``gridwatch camera ...``: the ops engineer's tools for the live camera registry.

Every write is validated exactly like ``gridwatch config check`` (via
:func:`gridwatch.config.check_camera`) *before* it reaches the registry, so a mistake is caught
at the engineer's terminal and never reaches a worker; ``add`` also probes the stream. Read
commands take ``--json`` for scripts. Passwords in URLs are shown as ``***`` everywhere.

Exit codes: 0 done, 1 an operation failed (NATS unreachable, stream cannot be opened, no such
camera), 2 the input is invalid (with every problem listed).

Heavy modules (PyAV, OpenCV) are imported by the commands that need them, so ``list`` and
``add --no-probe`` answer quickly.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
import yaml
from rich.table import Table

from gridwatch.cli.camera_calibrate import calibrate
from gridwatch.cli.camera_edit import rule_add, rule_remove, zone_remove, zone_set
from gridwatch.cli.camera_files import export, import_
from gridwatch.cli.camera_probe import discover, probe, probe_for_add, zone_image
from gridwatch.cli.camera_registry import (
    camera_doc,
    collect_health,
    edit_camera,
    open_registry,
    redacted,
    registry_session,
    rule_key,
)
from gridwatch.cli.common import (
    EXIT_INVALID,
    Env,
    EnvConfigOpt,
    EnvNatsOpt,
    JsonOpt,
    LogOpt,
    fail,
    load_env,
    nats_session,
    out,
    print_issues,
    print_json,
    require_config,
    run,
)
from gridwatch.config import CameraConfig, ConfigError, check_camera
from gridwatch.ingest.urls import redact_text, redact_url
from gridwatch.leases.status import CameraOwner, camera_owner
from gridwatch.registry.files import CameraDumper
from gridwatch.registry.store import CameraRecord, RegistryError

camera_app = typer.Typer(
    help="Manage cameras in the live registry (NATS KV gw_cameras); workers follow it.",
    no_args_is_help=True,
)
zone_app = typer.Typer(help="Edit a camera's zones and privacy masks.", no_args_is_help=True)
rule_app = typer.Typer(help="Edit a camera's rules.", no_args_is_help=True)
camera_app.add_typer(zone_app, name="zone")
camera_app.add_typer(rule_app, name="rule")


def add(
    camera_id: Annotated[
        str, typer.Argument(metavar="ID", help="Camera id (letters, digits, - _).")
    ],
    url: Annotated[str, typer.Option("--url", help="rtsp://[user:password@]host[:port]/path")],
    grid: Annotated[str, typer.Option("--grid", help="Grid responsible for the camera.")],
    name: Annotated[str | None, typer.Option("--name", help="Human name.")] = None,
    lat: Annotated[float | None, typer.Option("--lat", help="Latitude (WGS-84).")] = None,
    lon: Annotated[float | None, typer.Option("--lon", help="Longitude (WGS-84).")] = None,
    analysis_fps: Annotated[
        float | None, typer.Option("--analysis-fps", help="Frames per second analysed.")
    ] = None,
    sub_url: Annotated[
        str | None, typer.Option("--sub-url", help="Low-resolution sub-stream, analysed instead.")
    ] = None,
    loop: Annotated[bool, typer.Option("--loop", help="A video file: play it forever.")] = False,
    disabled: Annotated[bool, typer.Option("--disabled", help="Register without running.")] = False,
    no_probe: Annotated[
        bool, typer.Option("--no-probe", help="Register without opening the stream first.")
    ] = False,
    probe_timeout: Annotated[float, typer.Option("--probe-timeout", help="Seconds.")] = 10.0,
    config: EnvConfigOpt = None,
    nats_url: EnvNatsOpt = None,
    as_json: JsonOpt = False,
    log_level: LogOpt = "warning",
) -> None:
    """Validate a new camera like `config check` does, probe its stream, and register it."""
    env = load_env(config, nats_url, log_level)
    reference = require_config(env, "the camera's grid is checked against its grids")
    data: dict[str, Any] = {"id": camera_id, "grid": grid, "url": url}
    optional = {
        "name": name,
        "lat": lat,
        "lon": lon,
        "analysis_fps": analysis_fps,
        "sub_url": sub_url,
    }
    data.update({k: v for k, v in optional.items() if v is not None})
    if loop:
        data["loop"] = True
    if disabled:
        data["enabled"] = False
    try:
        camera = check_camera(data, reference)
    except ConfigError as exc:
        print_issues(exc.issues, file_level=False)
        raise typer.Exit(EXIT_INVALID) from None

    async def main() -> dict[str, Any]:
        async with registry_session(env) as reg:
            exists = True
            try:
                await reg.get(camera.id)
            except RegistryError:
                exists = False
            if exists:
                fail(
                    f"duplicate id: camera {camera.id!r} already exists; pick another id, or "
                    f"see it with `gridwatch camera show {camera.id}`",
                    EXIT_INVALID,
                )
            probe: dict[str, Any] | None = None
            if not no_probe:
                probe = await probe_for_add(camera, probe_timeout)
            try:
                rev = await reg.create(camera, change="add")
            except RegistryError as exc:
                fail(str(exc), EXIT_INVALID)
            return {"id": camera.id, "revision": rev, "probe": probe}

    result: dict[str, Any] = run(main())
    if as_json:
        print_json(result)
        return
    probe = result["probe"]
    seen = (
        f" ({probe['codec']} {probe['width']}×{probe['height']}, first frame in "
        f"{probe['first_frame_s']:.1f}s)"
        if probe
        else " (not probed)"
    )
    out.print(f"added camera {camera.id} (revision {result['revision']}){seen}")


def list_(
    grid: Annotated[str | None, typer.Option("--grid", help="Only this grid.")] = None,
    status: Annotated[
        bool, typer.Option("--status", help="Add live health (listens to workers' reports).")
    ] = False,
    wait: Annotated[
        float, typer.Option("--wait", help="Seconds to listen for health with --status.")
    ] = 11.0,
    config: EnvConfigOpt = None,
    nats_url: EnvNatsOpt = None,
    as_json: JsonOpt = False,
    log_level: LogOpt = "warning",
) -> None:
    """List registered cameras (optionally with their live state)."""
    env = load_env(config, nats_url, log_level)

    async def main() -> tuple[list[CameraRecord], dict[str, dict[str, Any]]]:
        health: dict[str, dict[str, Any]] = {}
        async with nats_session(env) as nc:
            reg = await open_registry(nc, env, create=True)  # an empty registry lists nothing
            records = [r for r in await reg.cameras() if grid is None or r.camera.grid == grid]
            if status and records:
                wanted = {r.camera.id for r in records if r.camera.enabled}
                health = await collect_health(nc, wanted, wait)
        return records, health

    records, health = run(main())
    if as_json:
        rows = []
        for r in records:
            item = {**camera_doc(r.camera), "revision": r.revision, "changed_by": r.changed_by}
            item["changed_at"] = r.changed_at
            if status:
                item["status"] = health.get(r.camera.id)
            rows.append(item)
        print_json(rows)
        return
    table = Table(title=f"{len(records)} camera(s)", title_justify="left")
    for col in ("id", "grid", "name", "enabled", "fps", "zones", "rules", "masks", "url"):
        table.add_column(col, overflow="fold")
    if status:
        for col in ("state", "analysed", "last error"):
            table.add_column(col, overflow="fold")
    for r in records:
        c = r.camera
        row = [
            c.id,
            c.grid,
            c.name,
            "yes" if c.enabled else "no",
            f"{c.analysis_fps:g}",
            str(len(c.zones)),
            str(len(c.rules)),
            str(len(c.privacy_masks)),
            redact_url(c.url),
        ]
        if status:
            h = health.get(c.id)
            row += (
                [
                    str(h.get("state")),
                    str(h.get("frames_analysed")),
                    redact_text(str(h.get("last_error") or "")),
                ]
                if h
                else ["no report" if c.enabled else "disabled", "", ""]
            )
        table.add_row(*row)
    out.print(table)


def show(
    camera_id: Annotated[str, typer.Argument(metavar="ID")],
    history: Annotated[bool, typer.Option("--history", help="Every kept revision.")] = False,
    config: EnvConfigOpt = None,
    nats_url: EnvNatsOpt = None,
    as_json: JsonOpt = False,
    log_level: LogOpt = "warning",
) -> None:
    """Show one camera (as YAML), with who changed it last; --history lists its revisions."""
    env = load_env(config, nats_url, log_level)

    async def main() -> tuple[CameraRecord | None, list[Any], CameraOwner]:
        async with registry_session(env, create=False) as reg:
            record = None
            try:
                record = await reg.get(camera_id)
            except RegistryError as exc:
                if not history:
                    fail(str(exc))
            revisions = await reg.history(camera_id) if history else []
            return record, revisions, await camera_owner(reg.js, camera_id)

    try:
        record, revisions, owner = run(main())
    except RegistryError as exc:
        fail(str(exc))
    if as_json:
        doc: dict[str, Any] = {}
        if record is not None:
            doc = {"camera": camera_doc(record.camera), "revision": record.revision}
            doc.update(changed_by=record.changed_by, changed_at=record.changed_at)
            doc["change"] = record.change
        doc["owner"] = owner.as_dict()
        if history:
            doc["history"] = [
                {
                    "revision": h.revision,
                    "operation": h.operation,
                    "at": h.created.isoformat() if h.created else None,
                    "changed_by": h.changed_by,
                    "change": h.change,
                    "camera": redacted(h.camera) if h.camera is not None else None,
                }
                for h in revisions
            ]
        print_json(doc)
        return
    if record is not None:
        out.print(
            f"# revision {record.revision}, {record.change or 'changed'} by "
            f"{record.changed_by or '?'} at {record.changed_at or '?'}"
        )
        out.print(f"# owner: {owner.describe()}", markup=False)
        keys = {i: rule_key(r) for i, r in enumerate(record.camera.rules)}
        text = yaml.dump(
            camera_doc(record.camera), Dumper=CameraDumper, sort_keys=False, allow_unicode=True
        )
        out.print(text.rstrip(), markup=False)
        if keys:
            out.print("# rule keys: " + ", ".join(f"#{i} {k}" for i, k in keys.items()))
    else:
        out.print(f"# camera {camera_id} was removed")
    if history:
        table = Table(title="history", title_justify="left")
        for col in ("revision", "operation", "at", "by", "change"):
            table.add_column(col)
        for h in revisions:
            at = h.created.strftime("%Y-%m-%d %H:%M:%S") if h.created else ""
            table.add_row(str(h.revision), h.operation, at, h.changed_by, h.change)
        out.print(table)


def remove(
    camera_id: Annotated[str, typer.Argument(metavar="ID")],
    config: EnvConfigOpt = None,
    nats_url: EnvNatsOpt = None,
    log_level: LogOpt = "warning",
) -> None:
    """Remove a camera; workers stop it. Its history is kept (`show ID --history`)."""
    env = load_env(config, nats_url, log_level)

    async def main() -> None:
        async with registry_session(env, create=False) as reg:
            try:
                await reg.remove(camera_id)
            except RegistryError as exc:
                fail(str(exc))

    run(main())
    out.print(f"removed camera {camera_id}")


def _set_enabled(camera_id: str, enabled: bool, env: Env) -> None:
    def fn(doc: dict[str, Any], _: CameraConfig) -> dict[str, Any]:
        return {**doc, "enabled": enabled}

    record = edit_camera(env, camera_id, "enable" if enabled else "disable", fn)
    state = "enabled" if enabled else "disabled"
    out.print(f"camera {camera_id} {state} (revision {record.revision})")


def enable(
    camera_id: Annotated[str, typer.Argument(metavar="ID")],
    config: EnvConfigOpt = None,
    nats_url: EnvNatsOpt = None,
    log_level: LogOpt = "warning",
) -> None:
    """Run a disabled camera again."""
    _set_enabled(camera_id, True, load_env(config, nats_url, log_level))


def disable(
    camera_id: Annotated[str, typer.Argument(metavar="ID")],
    config: EnvConfigOpt = None,
    nats_url: EnvNatsOpt = None,
    log_level: LogOpt = "warning",
) -> None:
    """Stop analysing a camera but keep it registered."""
    _set_enabled(camera_id, False, load_env(config, nats_url, log_level))


for _name, _command in (
    ("add", add),
    ("import", import_),
    ("export", export),
    ("list", list_),
    ("show", show),
    ("probe", probe),
    ("remove", remove),
    ("enable", enable),
    ("disable", disable),
    ("zone-image", zone_image),
    ("discover", discover),
    ("calibrate", calibrate),
):
    camera_app.command(_name)(_command)
zone_app.command("set")(zone_set)
zone_app.command("remove")(zone_remove)
rule_app.command("add")(rule_add)
rule_app.command("remove")(rule_remove)


def register(app: typer.Typer) -> None:
    """Add ``camera`` to the ``gridwatch`` app."""
    app.add_typer(camera_app, name="camera")

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

import asyncio
import contextlib
import dataclasses
import json
import logging
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
import yaml
from nats.aio.client import Client as NatsClient
from rich.console import Console
from rich.table import Table

from gridwatch.cli.common import setup_logging
from gridwatch.config import (
    CameraConfig,
    ConfigError,
    ConfigIssue,
    GridConfig,
    GridwatchConfig,
    check_camera,
    load_config,
)
from gridwatch.ingest.urls import redact_text, redact_url
from gridwatch.leases.status import CameraOwner, camera_owner
from gridwatch.registry.files import CameraDumper
from gridwatch.registry.store import (
    CameraRecord,
    CameraRegistry,
    RegistryError,
    camera_document,
)

log = logging.getLogger(__name__)

camera_app = typer.Typer(
    help="Manage cameras in the live registry (NATS KV gw_cameras); workers follow it.",
    no_args_is_help=True,
)
zone_app = typer.Typer(help="Edit a camera's zones and privacy masks.", no_args_is_help=True)
rule_app = typer.Typer(help="Edit a camera's rules.", no_args_is_help=True)
camera_app.add_typer(zone_app, name="zone")
camera_app.add_typer(rule_app, name="rule")

_T = TypeVar("_T")
EXIT_FAILED = 1
EXIT_INVALID = 2
DEFAULT_NATS = "nats://127.0.0.1:4222"

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        envvar="GW_CONFIG",
        help="Deployment config: its grids and schedules validate cameras, its nats.url is used.",
    ),
]
NatsOpt = Annotated[
    str | None,
    typer.Option(
        "--nats", envvar="GW_NATS", help=f"NATS URL (default: the config's, or {DEFAULT_NATS})."
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
LogOpt = Annotated[str, typer.Option("--log-level", envvar="GW_LOG_LEVEL", help="Log level.")]


# -- plumbing --------------------------------------------------------------------


def _fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    err.print(f"[bold red]error:[/] {redact_text(message)}", markup=True)
    raise typer.Exit(code)


def _print_issues(issues: list[ConfigIssue], *, file_level: bool = True) -> None:
    for issue in issues:
        text = str(issue) if file_level else f"{issue.field}: {issue.message}"
        err.print(f"[bold red]error:[/] {redact_text(text)}", markup=True, highlight=False)


@dataclass
class _Env:
    config: GridwatchConfig | None
    nats_url: str


def _env(config: Path | None, nats_url: str | None, level: str = "warning") -> _Env:
    setup_logging(level, logging.WARNING)
    cfg = None
    if config is not None:
        try:
            cfg = load_config(config)
        except ConfigError as exc:
            _print_issues(exc.issues)
            raise typer.Exit(EXIT_INVALID) from None
    url = nats_url or (cfg.nats.url if cfg else DEFAULT_NATS)
    return _Env(cfg, url)


def _require_config(env: _Env, why: str) -> GridwatchConfig:
    if env.config is None:
        _fail(f"give --config FILE (or set GW_CONFIG): {why}", EXIT_INVALID)
    return env.config


def _lenient_reference(camera: CameraConfig, env: _Env) -> GridwatchConfig:
    """Without a config, edits that cannot change grid or schedule references are checked
    against the camera's own: everything else (polygons, zone references) still is."""
    if env.config is not None:
        return env.config
    schedules: dict[str, list[Any]] = {
        str(r.schedule): [] for r in camera.rules if getattr(r, "schedule", None)
    }
    return GridwatchConfig.model_validate(
        {"grids": [GridConfig(id=camera.grid).model_dump()], "schedules": schedules}
    )


@contextlib.asynccontextmanager
async def _nats(env: _Env) -> AsyncIterator[NatsClient]:
    """A connection that fails fast (no reconnects): a CLI should say at once if NATS is down.

    On a secured server it logs in as ``$GW_NATS_USER``/``$GW_NATS_PASSWORD`` (else the
    config's ``nats.user``/``password``) and uses TLS with ``$GW_NATS_TLS_CA`` (else the
    config's ``nats.tls_ca_file``)."""
    import nats

    from gridwatch.auth.client import resolve_credentials, tls_context
    from gridwatch.auth.subjects import inbox_prefix

    async def quiet(exc: Exception) -> None:
        log.debug("nats: %s", exc)

    ncfg = env.config.nats if env.config is not None else None
    user, password = resolve_credentials(
        None,
        None,
        config_user=ncfg.user if ncfg else None,
        config_password=ncfg.password if ncfg else None,
    )
    login: dict[str, Any] = {}
    if user:
        login = {"user": user, "password": password or "", "inbox_prefix": inbox_prefix(user)}
    ctx = tls_context(ncfg.tls_ca_file if ncfg else None)
    if ctx is not None:
        login["tls"] = ctx
    try:
        nc: NatsClient = await asyncio.wait_for(
            nats.connect(
                servers=[u.strip() for u in env.nats_url.split(",")],
                name="gridwatch-camera-cli",
                connect_timeout=3,
                allow_reconnect=False,
                max_reconnect_attempts=0,
                error_cb=quiet,
                **login,
            ),
            10,
        )
    except Exception as exc:
        _fail(
            f"cannot reach NATS at {env.nats_url} ({type(exc).__name__}: {exc}); is the server "
            "running? give --nats URL or the config's nats.url"
        )
    try:
        yield nc
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(nc.drain(), 5)


async def _open_registry(nc: NatsClient, env: _Env, *, create: bool) -> CameraRegistry:
    history = env.config.registry.history if env.config else 16
    replicas = env.config.nats.replicas if env.config else 1
    try:
        return await CameraRegistry.open(
            nc.jetstream(), create=create, history=history, replicas=replicas
        )
    except RegistryError as exc:
        _fail(str(exc))


@contextlib.asynccontextmanager
async def _registry(env: _Env, *, create: bool = True) -> AsyncIterator[CameraRegistry]:
    async with _nats(env) as nc:
        yield await _open_registry(nc, env, create=create)


def _run(coro: Coroutine[Any, Any, _T]) -> _T:
    return asyncio.run(coro)


def _print_json(obj: Any) -> None:
    """Plain JSON on stdout (no colours, no wrapping): for scripts and ``jq``."""
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def _redacted(doc: dict[str, Any]) -> dict[str, Any]:
    out = dict(doc)
    for key in ("url", "sub_url"):
        if isinstance(out.get(key), str):
            out[key] = redact_url(out[key])
    return out


def _doc(camera: CameraConfig) -> dict[str, Any]:
    """The camera as shown to a person or a script: config-file shape, passwords as ***."""
    return _redacted(camera_document(camera))


def _rule_key(rule: Any) -> str:
    zone = getattr(rule, "zone", None)
    return f"{rule.type}/{zone}" if zone else str(rule.type)


def _polygon(text: str) -> list[tuple[float, float]]:
    """``"x,y x,y x,y"`` → points (what a user types; also accepts ``;`` between points)."""
    points = []
    for part in text.replace(";", " ").split():
        try:
            x, y = part.split(",")
            points.append((float(x), float(y)))
        except ValueError:
            raise typer.BadParameter(
                f"{part!r} is not a point: write the polygon as 'x,y x,y x,y' with "
                "normalized coordinates (0..1, x to the right, y down)"
            ) from None
    return points


def _edit(
    env: _Env,
    camera_id: str,
    change: str,
    fn: Callable[[dict[str, Any], CameraConfig], dict[str, Any]],
    *,
    strict_reference: bool = False,
) -> CameraRecord:
    """Read-modify-validate-write one camera with compare-and-set (see CameraRegistry.edit)."""

    def apply(current: CameraConfig) -> CameraConfig:
        reference = (
            _require_config(env, "a rule's schedule is checked against its schedules")
            if strict_reference
            else _lenient_reference(current, env)
        )
        data = fn(camera_document(current), current)
        return check_camera(data, reference)

    async def main() -> CameraRecord:
        async with _registry(env, create=False) as reg:
            try:
                return await reg.edit(camera_id, apply, change=change)
            except ConfigError as exc:
                _print_issues(exc.issues, file_level=False)
                err.print(f"nothing changed: camera {camera_id} is as it was")
                raise typer.Exit(EXIT_INVALID) from None
            except RegistryError as exc:
                _fail(str(exc))

    record: CameraRecord = _run(main())
    return record


# -- add / import / export --------------------------------------------------------------------


@camera_app.command("add")
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
    config: ConfigOpt = None,
    nats_url: NatsOpt = None,
    as_json: JsonOpt = False,
    log_level: LogOpt = "warning",
) -> None:
    """Validate a new camera like `config check` does, probe its stream, and register it."""
    env = _env(config, nats_url, log_level)
    reference = _require_config(env, "the camera's grid is checked against its grids")
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
        _print_issues(exc.issues, file_level=False)
        raise typer.Exit(EXIT_INVALID) from None

    async def main() -> dict[str, Any]:
        async with _registry(env) as reg:
            exists = True
            try:
                await reg.get(camera.id)
            except RegistryError:
                exists = False
            if exists:
                _fail(
                    f"duplicate id: camera {camera.id!r} already exists; pick another id, or "
                    f"see it with `gridwatch camera show {camera.id}`",
                    EXIT_INVALID,
                )
            probe: dict[str, Any] | None = None
            if not no_probe:
                probe = await _probe_for_add(camera, probe_timeout)
            try:
                rev = await reg.create(camera, change="add")
            except RegistryError as exc:
                _fail(str(exc), EXIT_INVALID)
            return {"id": camera.id, "revision": rev, "probe": probe}

    result: dict[str, Any] = _run(main())
    if as_json:
        _print_json(result)
        return
    probe = result["probe"]
    seen = (
        f" ({probe['codec']} {probe['width']}×{probe['height']}, first frame in "
        f"{probe['first_frame_s']:.1f}s)"
        if probe
        else " (not probed)"
    )
    out.print(f"added camera {camera.id} (revision {result['revision']}){seen}")


async def _probe_for_add(camera: CameraConfig, timeout_s: float) -> dict[str, Any]:
    from gridwatch.registry.probe import ProbeError, probe_stream

    masks = [m.polygon for m in camera.privacy_masks]
    results = {}
    for key, url in (("url", camera.url), ("sub_url", camera.sub_url)):
        if url is None:
            continue
        try:
            res = await asyncio.wait_for(
                asyncio.to_thread(
                    probe_stream, url, timeout_s=timeout_s, gop_window_s=0, masks=masks
                ),
                timeout_s * 2 + 5,
            )
        except ProbeError as exc:
            _fail(f"cannot open the camera's {key}: {exc}\n(--no-probe registers it anyway)")
        except TimeoutError:
            _fail(f"probing the camera's {key} took too long (--no-probe registers it anyway)")
        results[key] = res.to_dict()
    return results["url"]


@camera_app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="cameras.csv, or YAML (a config or cameras: list).")],
    skip_bad: Annotated[
        bool, typer.Option("--skip-bad", help="Import the valid rows even if some are bad.")
    ] = False,
    update: Annotated[
        bool, typer.Option("--update", help="Replace cameras that already exist.")
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate, write nothing.")] = False,
    config: ConfigOpt = None,
    nats_url: NatsOpt = None,
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

    env = _env(config, nats_url, log_level)
    try:
        text = file.read_text(encoding="utf-8-sig")
    except OSError as exc:
        _fail(f"cannot read {file}: {exc}", EXIT_INVALID)
    parsed = read_cameras_file(text, str(file))
    reference = env.config or parsed.own_config
    if reference is None:
        if parsed.issues and not parsed.rows:
            _print_issues(parsed.issues)
            raise typer.Exit(EXIT_INVALID)
        reference = _require_config(env, "the cameras' grids are checked against its grids")
    if env.config is None and parsed.own_config is not None:
        env.nats_url = nats_url or parsed.own_config.nats.url
    checked = validate_cameras(parsed, reference)

    async def main() -> dict[str, Any]:
        async with _registry(env) as reg:
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
            _print_issues(issues)
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

    summary: dict[str, Any] = _run(main())
    code = int(summary.pop("exit", 0))
    if as_json:
        _print_json(summary)
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


@camera_app.command("export")
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
    config: ConfigOpt = None,
    nats_url: NatsOpt = None,
    log_level: LogOpt = "warning",
) -> None:
    """Write the registry as YAML (a config's cameras: section, for version control) or CSV."""
    from gridwatch.registry.files import dump_cameras_csv, dump_cameras_json, dump_cameras_yaml

    env = _env(config, nats_url, log_level)
    kind = (fmt or (out_file.suffix.lstrip(".") if out_file else "yaml")).lower()
    dumpers = {"yaml": dump_cameras_yaml, "yml": dump_cameras_yaml, "csv": dump_cameras_csv}
    dumpers["json"] = dump_cameras_json
    if kind not in dumpers:
        _fail(f"unknown format {kind!r}: use yaml, csv or json", EXIT_INVALID)

    async def main() -> list[CameraConfig]:
        async with _registry(env) as reg:
            return [r.camera for r in await reg.cameras() if grid is None or r.camera.grid == grid]

    cameras: list[CameraConfig] = _run(main())
    text = dumpers[kind](cameras, include_credentials=include_credentials)
    if out_file is None:
        sys.stdout.write(text)
    else:
        out_file.write_text(text, encoding="utf-8")
        err.print(f"wrote {len(cameras)} camera(s) to {out_file}")


# -- read commands --------------------------------------------------------------------


@camera_app.command("list")
def list_(
    grid: Annotated[str | None, typer.Option("--grid", help="Only this grid.")] = None,
    status: Annotated[
        bool, typer.Option("--status", help="Add live health (listens to workers' reports).")
    ] = False,
    wait: Annotated[
        float, typer.Option("--wait", help="Seconds to listen for health with --status.")
    ] = 11.0,
    config: ConfigOpt = None,
    nats_url: NatsOpt = None,
    as_json: JsonOpt = False,
    log_level: LogOpt = "warning",
) -> None:
    """List registered cameras (optionally with their live state)."""
    env = _env(config, nats_url, log_level)

    async def main() -> tuple[list[CameraRecord], dict[str, dict[str, Any]]]:
        health: dict[str, dict[str, Any]] = {}
        async with _nats(env) as nc:
            reg = await _open_registry(nc, env, create=True)  # an empty registry lists nothing
            records = [r for r in await reg.cameras() if grid is None or r.camera.grid == grid]
            if status and records:
                wanted = {r.camera.id for r in records if r.camera.enabled}
                health = await _collect_health(nc, wanted, wait)
        return records, health

    records, health = _run(main())
    if as_json:
        rows = []
        for r in records:
            item = {**_doc(r.camera), "revision": r.revision, "changed_by": r.changed_by}
            item["changed_at"] = r.changed_at
            if status:
                item["status"] = health.get(r.camera.id)
            rows.append(item)
        _print_json(rows)
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


async def _collect_health(nc: NatsClient, ids: set[str], wait_s: float) -> dict[str, Any]:
    """Listen to the workers' periodic health reports until every camera has one or
    ``wait_s`` passes (reports come every ``health_interval_s``, 10 s by default)."""
    from nats.aio.msg import Msg

    from gridwatch.alerts.subjects import HEALTH_PREFIX
    from gridwatch.bus.messages import CameraHealth

    health: dict[str, dict[str, Any]] = {}
    done = asyncio.Event()

    async def on_msg(msg: Msg) -> None:
        if (report := CameraHealth.from_json(msg.data)) is not None:
            health[report.camera_id] = report.to_dict()
            if ids <= set(health):
                done.set()

    sub = await nc.subscribe(f"{HEALTH_PREFIX}.*", cb=on_msg)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(done.wait(), wait_s)
    await sub.unsubscribe()
    return health


@camera_app.command("show")
def show(
    camera_id: Annotated[str, typer.Argument(metavar="ID")],
    history: Annotated[bool, typer.Option("--history", help="Every kept revision.")] = False,
    config: ConfigOpt = None,
    nats_url: NatsOpt = None,
    as_json: JsonOpt = False,
    log_level: LogOpt = "warning",
) -> None:
    """Show one camera (as YAML), with who changed it last; --history lists its revisions."""
    env = _env(config, nats_url, log_level)

    async def main() -> tuple[CameraRecord | None, list[Any], CameraOwner]:
        async with _registry(env, create=False) as reg:
            record = None
            try:
                record = await reg.get(camera_id)
            except RegistryError as exc:
                if not history:
                    _fail(str(exc))
            revisions = await reg.history(camera_id) if history else []
            return record, revisions, await camera_owner(reg.js, camera_id)

    try:
        record, revisions, owner = _run(main())
    except RegistryError as exc:
        _fail(str(exc))
    if as_json:
        doc: dict[str, Any] = {}
        if record is not None:
            doc = {"camera": _doc(record.camera), "revision": record.revision}
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
                    "camera": _redacted(h.camera) if h.camera is not None else None,
                }
                for h in revisions
            ]
        _print_json(doc)
        return
    if record is not None:
        out.print(
            f"# revision {record.revision}, {record.change or 'changed'} by "
            f"{record.changed_by or '?'} at {record.changed_at or '?'}"
        )
        out.print(f"# owner: {owner.describe()}", markup=False)
        keys = {i: _rule_key(r) for i, r in enumerate(record.camera.rules)}
        text = yaml.dump(
            _doc(record.camera), Dumper=CameraDumper, sort_keys=False, allow_unicode=True
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


@camera_app.command("probe")
def probe(
    target: Annotated[str, typer.Argument(metavar="URL|ID", help="A stream URL or a camera id.")],
    timeout: Annotated[float, typer.Option("--timeout", help="Open/read timeout, seconds.")] = 10.0,
    gop_window: Annotated[
        float, typer.Option("--gop-window", help="Seconds to wait for a second keyframe.")
    ] = 6.0,
    snapshot: Annotated[
        Path | None,
        typer.Option("--snapshot", help="Where to save the first picture (JPEG) for zone drawing."),
    ] = None,
    no_snapshot: Annotated[bool, typer.Option("--no-snapshot", help="Save no picture.")] = False,
    config: ConfigOpt = None,
    nats_url: NatsOpt = None,
    as_json: JsonOpt = False,
    log_level: LogOpt = "warning",
) -> None:
    """Open a stream; report codec, resolution, fps, GOP, time to first frame; save a snapshot."""
    from gridwatch.registry.probe import ProbeError, probe_stream

    env = _env(config, nats_url, log_level)
    camera: CameraConfig | None = None
    if "://" not in target and not Path(target).exists():

        async def lookup() -> CameraConfig:
            async with _registry(env, create=False) as reg:
                try:
                    return (await reg.get(target)).camera
                except RegistryError as exc:
                    _fail(f"{exc} (or give a stream URL)")

        camera = _run(lookup())
    url = camera.url if camera else target
    masks = [m.polygon for m in camera.privacy_masks] if camera else []
    if snapshot is None and not no_snapshot:
        snapshot = Path(f"{camera.id}-probe.jpg" if camera else "probe.jpg")
    try:
        result = probe_stream(
            url, timeout_s=timeout, gop_window_s=gop_window, masks=masks, snapshot=snapshot
        )
        if camera is not None and camera.sub_url:
            result.sub_url = redact_url(camera.sub_url)
            result.sub_stream = probe_stream(
                camera.sub_url, timeout_s=timeout, gop_window_s=gop_window, masks=masks
            )
    except ProbeError as exc:
        if as_json:
            _print_json({"ok": False, "kind": exc.kind, "error": str(exc)})
            raise typer.Exit(EXIT_FAILED) from None
        _fail(f"{exc.kind}: {exc}")
    if as_json:
        _print_json({"ok": True, **result.to_dict()})
        return
    table = Table(show_header=False, title=result.url, title_justify="left")
    table.add_column("what")
    table.add_column("value")
    gop = (
        f"{result.gop_frames} frames ({result.gop_s:g} s)"
        if result.gop_frames and result.gop_s
        else "not seen within the window"
    )
    rows = [
        ("codec", f"{result.codec} {result.profile or ''}".strip()),
        ("resolution", f"{result.width}×{result.height}"),
        ("frame rate", f"{result.fps:g} fps" if result.fps else "unknown"),
        ("GOP", gop),
        ("time to open", f"{result.open_s:.2f} s"),
        ("time to first frame", f"{result.first_frame_s:.2f} s"),
        (
            "sub-stream",
            (
                f"{result.sub_url} ({result.sub_stream.width}×{result.sub_stream.height})"
                if result.sub_url and result.sub_stream
                else "not configured"
            ),
        ),
        ("snapshot", result.snapshot or "not saved"),
    ]
    for k, v in rows:
        table.add_row(k, v)
    out.print(table)


# -- simple writes --------------------------------------------------------------------


@camera_app.command("remove")
def remove(
    camera_id: Annotated[str, typer.Argument(metavar="ID")],
    config: ConfigOpt = None,
    nats_url: NatsOpt = None,
    log_level: LogOpt = "warning",
) -> None:
    """Remove a camera; workers stop it. Its history is kept (`show ID --history`)."""
    env = _env(config, nats_url, log_level)

    async def main() -> None:
        async with _registry(env, create=False) as reg:
            try:
                await reg.remove(camera_id)
            except RegistryError as exc:
                _fail(str(exc))

    _run(main())
    out.print(f"removed camera {camera_id}")


def _set_enabled(camera_id: str, enabled: bool, env: _Env) -> None:
    def fn(doc: dict[str, Any], _: CameraConfig) -> dict[str, Any]:
        return {**doc, "enabled": enabled}

    record = _edit(env, camera_id, "enable" if enabled else "disable", fn)
    state = "enabled" if enabled else "disabled"
    out.print(f"camera {camera_id} {state} (revision {record.revision})")


@camera_app.command("enable")
def enable(
    camera_id: Annotated[str, typer.Argument(metavar="ID")],
    config: ConfigOpt = None,
    nats_url: NatsOpt = None,
    log_level: LogOpt = "warning",
) -> None:
    """Run a disabled camera again."""
    _set_enabled(camera_id, True, _env(config, nats_url, log_level))


@camera_app.command("disable")
def disable(
    camera_id: Annotated[str, typer.Argument(metavar="ID")],
    config: ConfigOpt = None,
    nats_url: NatsOpt = None,
    log_level: LogOpt = "warning",
) -> None:
    """Stop analysing a camera but keep it registered."""
    _set_enabled(camera_id, False, _env(config, nats_url, log_level))


# -- zones and masks --------------------------------------------------------------------


@zone_app.command("set")
def zone_set(
    camera_id: Annotated[str, typer.Argument(metavar="ID")],
    zone_id: Annotated[str, typer.Argument(metavar="ZONE")],
    polygon: Annotated[
        str, typer.Option("--polygon", help='Normalized points: "x,y x,y x,y ..." (y down).')
    ],
    mask: Annotated[
        bool, typer.Option("--mask", help="A privacy mask (blacked out), not a zone.")
    ] = False,
    config: ConfigOpt = None,
    nats_url: NatsOpt = None,
    log_level: LogOpt = "warning",
) -> None:
    """Create or replace a zone (or, with --mask, a privacy mask); workers pick it up live."""
    env = _env(config, nats_url, log_level)
    points = [list(p) for p in _polygon(polygon)]
    key = "privacy_masks" if mask else "zones"

    def fn(doc: dict[str, Any], _: CameraConfig) -> dict[str, Any]:
        items = [z for z in doc.get(key, []) if z.get("id") != zone_id]
        replaced = len(items) != len(doc.get(key, []))
        new = {"id": zone_id, "polygon": points}
        if replaced:  # keep its place in the list
            items = [new if z.get("id") == zone_id else z for z in doc.get(key, [])]
        else:
            items.append(new)
        return {**doc, key: items}

    record = _edit(env, camera_id, f"{'mask' if mask else 'zone'} set {zone_id}", fn)
    what = "privacy mask" if mask else "zone"
    out.print(f"{what} {zone_id} of camera {camera_id} set (revision {record.revision})")


@zone_app.command("remove")
def zone_remove(
    camera_id: Annotated[str, typer.Argument(metavar="ID")],
    zone_id: Annotated[str, typer.Argument(metavar="ZONE")],
    mask: Annotated[bool, typer.Option("--mask", help="Remove a privacy mask.")] = False,
    config: ConfigOpt = None,
    nats_url: NatsOpt = None,
    log_level: LogOpt = "warning",
) -> None:
    """Remove a zone (refused while a rule uses it) or, with --mask, a privacy mask."""
    env = _env(config, nats_url, log_level)
    key = "privacy_masks" if mask else "zones"

    def fn(doc: dict[str, Any], current: CameraConfig) -> dict[str, Any]:
        items = doc.get(key, [])
        if not any(z.get("id") == zone_id for z in items):
            known = ", ".join(z.get("id", "?") for z in items) or "none"
            _fail(
                f"camera {camera_id} has no {'mask' if mask else 'zone'} {zone_id!r} (has: {known})"
            )
        users = [_rule_key(r) for r in current.rules if getattr(r, "zone", None) == zone_id]
        if users and not mask:
            _fail(
                f"zone {zone_id} is used by rule(s) {', '.join(users)}: remove them first "
                f"(`gridwatch camera rule remove {camera_id} {users[0]}`)",
                EXIT_INVALID,
            )
        return {**doc, key: [z for z in items if z.get("id") != zone_id]}

    record = _edit(env, camera_id, f"{'mask' if mask else 'zone'} remove {zone_id}", fn)
    out.print(f"removed {zone_id} from camera {camera_id} (revision {record.revision})")


@camera_app.command("zone-image")
def zone_image(
    camera_id: Annotated[str, typer.Argument(metavar="ID")],
    out_file: Annotated[Path | None, typer.Option("--out", "-o", help="JPEG to write.")] = None,
    image: Annotated[
        Path | None, typer.Option("--image", help="Draw on this picture instead of a live one.")
    ] = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Probe timeout, seconds.")] = 10.0,
    config: ConfigOpt = None,
    nats_url: NatsOpt = None,
    log_level: LogOpt = "warning",
) -> None:
    """Write a current picture of the camera with its zones, masks and rules drawn."""
    import numpy as np
    import numpy.typing as npt

    from gridwatch.registry.probe import ProbeError, probe_stream
    from gridwatch.registry.zone_image import draw_zones

    env = _env(config, nats_url, log_level)

    async def lookup() -> CameraConfig:
        async with _registry(env, create=False) as reg:
            try:
                return (await reg.get(camera_id)).camera
            except RegistryError as exc:
                _fail(str(exc))

    camera: CameraConfig = _run(lookup())
    picture: npt.NDArray[np.uint8] | None
    if image is not None:
        import cv2

        loaded = cv2.imread(str(image), cv2.IMREAD_COLOR)
        if loaded is None:
            _fail(f"cannot read the picture {image}", EXIT_INVALID)
        picture = np.asarray(loaded, dtype=np.uint8)
    else:
        try:
            picture = probe_stream(
                camera.sub_url or camera.url, timeout_s=timeout, gop_window_s=0
            ).image
        except ProbeError as exc:
            _fail(f"{exc} (or draw on a saved picture with --image FILE)")
    assert picture is not None
    target = out_file or Path(f"{camera_id}-zones.jpg")
    target.write_bytes(draw_zones(picture, camera))
    out.print(f"wrote {target}")


# -- rules --------------------------------------------------------------------


def _parse_settings(settings: list[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for item in settings:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{item!r}: write settings as key=value")
        values[key.strip()] = yaml.safe_load(raw) if raw.strip() else None
    return values


@rule_app.command("add")
def rule_add(
    camera_id: Annotated[str, typer.Argument(metavar="ID")],
    rule_type: Annotated[str, typer.Argument(metavar="TYPE", help="Rule type, e.g. crowding.")],
    zone: Annotated[str | None, typer.Option("--zone", help="Zone the rule watches.")] = None,
    min_count: Annotated[int | None, typer.Option("--min-count", help="crowding: people.")] = None,
    schedule: Annotated[str | None, typer.Option("--schedule", help="Schedule name.")] = None,
    severity: Annotated[
        str | None, typer.Option("--severity", help="info, warning or critical.")
    ] = None,
    settings: Annotated[
        list[str] | None,
        typer.Option("--set", help="Any other rule field, key=value (repeat)."),
    ] = None,
    replace: Annotated[
        bool, typer.Option("--replace", help="Replace a rule of the same type and zone.")
    ] = False,
    config: ConfigOpt = None,
    nats_url: NatsOpt = None,
    log_level: LogOpt = "warning",
) -> None:
    """Add a rule; validated (fields, zone, schedule) before it is written."""
    env = _env(config, nats_url, log_level)
    rule: dict[str, Any] = {"type": rule_type}
    for k, v in (("zone", zone), ("min_count", min_count), ("schedule", schedule)):
        if v is not None:
            rule[k] = v
    if severity is not None:
        rule["severity"] = severity
    rule.update(_parse_settings(settings or []))
    key = f"{rule_type}/{rule['zone']}" if rule.get("zone") else rule_type

    def fn(doc: dict[str, Any], current: CameraConfig) -> dict[str, Any]:
        rules = list(doc.get("rules", []))
        same = [i for i, r in enumerate(current.rules) if _rule_key(r) == key]
        if same and not replace:
            _fail(
                f"camera {camera_id} already has rule {key}: add --replace to replace it, or "
                f"remove it first",
                EXIT_INVALID,
            )
        if same:
            rules[same[0]] = rule
        else:
            rules.append(rule)
        return {**doc, "rules": rules}

    record = _edit(env, camera_id, f"rule add {key}", fn, strict_reference=schedule is not None)
    out.print(f"rule {key} set on camera {camera_id} (revision {record.revision})")


@rule_app.command("remove")
def rule_remove(
    camera_id: Annotated[str, typer.Argument(metavar="ID")],
    key: Annotated[str, typer.Argument(metavar="KEY", help="type/zone (see `show`), or #index.")],
    config: ConfigOpt = None,
    nats_url: NatsOpt = None,
    log_level: LogOpt = "warning",
) -> None:
    """Remove a rule by its key (crowding/gate-apron) or its index (#0)."""
    env = _env(config, nats_url, log_level)

    def fn(doc: dict[str, Any], current: CameraConfig) -> dict[str, Any]:
        keys = [_rule_key(r) for r in current.rules]
        if key.lstrip("#").isdigit():
            index = int(key.lstrip("#"))
            if not 0 <= index < len(keys):
                _fail(f"camera {camera_id} has {len(keys)} rule(s); no #{index}", EXIT_INVALID)
        elif key in keys:
            index = keys.index(key)
        else:
            _fail(
                f"camera {camera_id} has no rule {key!r} (has: {', '.join(keys) or 'none'})",
                EXIT_INVALID,
            )
        rules = list(doc.get("rules", []))
        del rules[index]
        return {**doc, "rules": rules}

    record = _edit(env, camera_id, f"rule remove {key}", fn)
    out.print(f"removed rule {key} from camera {camera_id} (revision {record.revision})")


# -- ONVIF --------------------------------------------------------------------


@camera_app.command("discover")
def discover(
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to listen.")] = 3.0,
    interface: Annotated[
        str | None, typer.Option("--interface", help="IPv4 address of the interface to probe on.")
    ] = None,
    user: Annotated[
        str | None, typer.Option("--user", help="ONVIF user, to list RTSP URIs.")
    ] = None,
    password: Annotated[
        str | None, typer.Option("--password", envvar="GW_ONVIF_PASSWORD", help="ONVIF password.")
    ] = None,
    as_json: JsonOpt = False,
    log_level: LogOpt = "warning",
) -> None:
    """Find ONVIF cameras on the local segment (WS-Discovery); with --user, their RTSP URIs."""
    from gridwatch.onvif.discovery import discover as ws_discover
    from gridwatch.onvif.media import OnvifError, fetch_device

    setup_logging(log_level, logging.WARNING)
    devices = asyncio.run(ws_discover(timeout, interface=interface))
    rows: list[dict[str, Any]] = []
    for dev in devices:
        row: dict[str, Any] = {
            "endpoint": dev.endpoint,
            "address": dev.address,
            "xaddrs": dev.xaddrs,
            "name": dev.name,
            "hardware": dev.hardware,
            "location": dev.location,
        }
        if user and dev.xaddrs:
            try:
                details = fetch_device(dev.xaddrs[0], user=user, password=password, timeout_s=5)
                row["device"] = details.to_dict()
            except OnvifError as exc:
                row["error"] = {"kind": exc.kind, "message": str(exc)}
        rows.append(row)
    if as_json:
        _print_json(rows)
        return
    if not rows:
        out.print(
            f"no ONVIF devices answered within {timeout:g}s (discovery reaches this network "
            "segment only; --interface picks another interface)"
        )
        return
    table = Table(title=f"{len(rows)} ONVIF device(s)", title_justify="left")
    for col in ("address", "name", "hardware", "device service", "profiles / RTSP URIs"):
        table.add_column(col, overflow="fold")
    for row in rows:
        if "device" in row:
            profiles = "\n".join(
                f"{p['name']}: {p['rtsp_uri']} ({p['encoding']} {p['width']}×{p['height']})"
                for p in row["device"]["profiles"]
            )
        elif "error" in row:
            profiles = f"[red]{row['error']['message']}[/]"
        else:
            profiles = "(give --user/--password)"
        table.add_row(
            row["address"],
            row["name"] or "",
            row["hardware"] or "",
            " ".join(row["xaddrs"]),
            profiles,
        )
    out.print(table)

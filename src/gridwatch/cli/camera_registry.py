"""The camera commands' registry plumbing: opening ``gw_cameras`` over the CLI's connection,
the read-modify-validate-write of one camera, how a camera is shown (passwords as ***), and
listening to the workers' health reports."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import typer
from nats.aio.client import Client as NatsClient

from gridwatch.cli.common import (
    EXIT_INVALID,
    Env,
    err,
    fail,
    nats_session,
    print_issues,
    require_config,
    run,
)
from gridwatch.config import CameraConfig, ConfigError, GridConfig, GridwatchConfig, check_camera
from gridwatch.ingest.urls import redact_url
from gridwatch.registry.store import CameraRecord, CameraRegistry, RegistryError, camera_document


def lenient_reference(camera: CameraConfig, env: Env) -> GridwatchConfig:
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


async def open_registry(nc: NatsClient, env: Env, *, create: bool) -> CameraRegistry:
    history = env.config.registry.history if env.config else 16
    replicas = env.config.nats.replicas if env.config else 1
    try:
        return await CameraRegistry.open(
            nc.jetstream(), create=create, history=history, replicas=replicas
        )
    except RegistryError as exc:
        fail(str(exc))


@contextlib.asynccontextmanager
async def registry_session(env: Env, *, create: bool = True) -> AsyncIterator[CameraRegistry]:
    async with nats_session(env) as nc:
        yield await open_registry(nc, env, create=create)


def redacted(doc: dict[str, Any]) -> dict[str, Any]:
    out = dict(doc)
    for key in ("url", "sub_url"):
        if isinstance(out.get(key), str):
            out[key] = redact_url(out[key])
    return out


def camera_doc(camera: CameraConfig) -> dict[str, Any]:
    """The camera as shown to a person or a script: config-file shape, passwords as ***."""
    return redacted(camera_document(camera))


def rule_key(rule: Any) -> str:
    zone = getattr(rule, "zone", None)
    return f"{rule.type}/{zone}" if zone else str(rule.type)


def edit_camera(
    env: Env,
    camera_id: str,
    change: str,
    fn: Callable[[dict[str, Any], CameraConfig], dict[str, Any]],
    *,
    strict_reference: bool = False,
) -> CameraRecord:
    """Read-modify-validate-write one camera with compare-and-set (see CameraRegistry.edit)."""

    def apply(current: CameraConfig) -> CameraConfig:
        reference = (
            require_config(env, "a rule's schedule is checked against its schedules")
            if strict_reference
            else lenient_reference(current, env)
        )
        data = fn(camera_document(current), current)
        return check_camera(data, reference)

    async def main() -> CameraRecord:
        async with registry_session(env, create=False) as reg:
            try:
                return await reg.edit(camera_id, apply, change=change)
            except ConfigError as exc:
                print_issues(exc.issues, file_level=False)
                err.print(f"nothing changed: camera {camera_id} is as it was")
                raise typer.Exit(EXIT_INVALID) from None
            except RegistryError as exc:
                fail(str(exc))

    record: CameraRecord = run(main())
    return record


async def collect_health(nc: NatsClient, ids: set[str], wait_s: float) -> dict[str, Any]:
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

"""``gridwatch camera probe|zone-image|discover`` and the stream check of ``camera add``: what a
camera's stream looks like (codec, resolution, GOP, first frame), a picture with its zones
drawn, and the ONVIF cameras on the local segment. PyAV and OpenCV load only when used."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from gridwatch.cli.camera_registry import registry_session
from gridwatch.cli.common import (
    EXIT_FAILED,
    EXIT_INVALID,
    EnvConfigOpt,
    EnvNatsOpt,
    JsonOpt,
    LogOpt,
    fail,
    load_env,
    out,
    print_json,
    run,
    setup_logging,
)
from gridwatch.config import CameraConfig
from gridwatch.ingest.urls import redact_url
from gridwatch.registry.store import RegistryError


async def probe_for_add(camera: CameraConfig, timeout_s: float) -> dict[str, Any]:
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
            fail(f"cannot open the camera's {key}: {exc}\n(--no-probe registers it anyway)")
        except TimeoutError:
            fail(f"probing the camera's {key} took too long (--no-probe registers it anyway)")
        results[key] = res.to_dict()
    return results["url"]


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
    config: EnvConfigOpt = None,
    nats_url: EnvNatsOpt = None,
    as_json: JsonOpt = False,
    log_level: LogOpt = "warning",
) -> None:
    """Open a stream; report codec, resolution, fps, GOP, time to first frame; save a snapshot."""
    from gridwatch.registry.probe import ProbeError, probe_stream

    env = load_env(config, nats_url, log_level)
    camera: CameraConfig | None = None
    if "://" not in target and not Path(target).exists():

        async def lookup() -> CameraConfig:
            async with registry_session(env, create=False) as reg:
                try:
                    return (await reg.get(target)).camera
                except RegistryError as exc:
                    fail(f"{exc} (or give a stream URL)")

        camera = run(lookup())
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
            print_json({"ok": False, "kind": exc.kind, "error": str(exc)})
            raise typer.Exit(EXIT_FAILED) from None
        fail(f"{exc.kind}: {exc}")
    if as_json:
        print_json({"ok": True, **result.to_dict()})
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


def zone_image(
    camera_id: Annotated[str, typer.Argument(metavar="ID")],
    out_file: Annotated[Path | None, typer.Option("--out", "-o", help="JPEG to write.")] = None,
    image: Annotated[
        Path | None, typer.Option("--image", help="Draw on this picture instead of a live one.")
    ] = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Probe timeout, seconds.")] = 10.0,
    config: EnvConfigOpt = None,
    nats_url: EnvNatsOpt = None,
    log_level: LogOpt = "warning",
) -> None:
    """Write a current picture of the camera with its zones, masks and rules drawn."""
    import numpy as np
    import numpy.typing as npt

    from gridwatch.registry.probe import ProbeError, probe_stream
    from gridwatch.registry.zone_image import draw_zones

    env = load_env(config, nats_url, log_level)

    async def lookup() -> CameraConfig:
        async with registry_session(env, create=False) as reg:
            try:
                return (await reg.get(camera_id)).camera
            except RegistryError as exc:
                fail(str(exc))

    camera: CameraConfig = run(lookup())
    picture: npt.NDArray[np.uint8] | None
    if image is not None:
        import cv2

        loaded = cv2.imread(str(image), cv2.IMREAD_COLOR)
        if loaded is None:
            fail(f"cannot read the picture {image}", EXIT_INVALID)
        picture = np.asarray(loaded, dtype=np.uint8)
    else:
        try:
            picture = probe_stream(
                camera.sub_url or camera.url, timeout_s=timeout, gop_window_s=0
            ).image
        except ProbeError as exc:
            fail(f"{exc} (or draw on a saved picture with --image FILE)")
    assert picture is not None
    target = out_file or Path(f"{camera_id}-zones.jpg")
    target.write_bytes(draw_zones(picture, camera))
    out.print(f"wrote {target}")


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
        print_json(rows)
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

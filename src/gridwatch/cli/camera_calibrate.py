"""``gridwatch camera calibrate ID``: set a camera's ground-plane calibration, or check it.

Set (validated, then written to the registry with compare-and-set like every camera edit)::

    gridwatch camera calibrate gate --point "0.1,0.9=0,0" --point "0.9,0.9=8,0" \\
        --point "0.8,0.4=8,20" --point "0.2,0.4=0,20"
    gridwatch camera calibrate gate --height 6 --tilt 35 --hfov 70

Check what a calibration implies (the camera's own, or the one given on the line, which is
then *not* written): the distance between pairs of image points, each zone's ground area in
m², and the fit's reprojection error::

    gridwatch camera calibrate gate --check --between "0.1,0.9" "0.9,0.9" "0.8,0.4"

(distances from each point to the next: 0.1,0.9 → 0.9,0.9 and 0.9,0.9 → 0.8,0.4).

Points are normalized image coordinates (0..1, x right, y down), as zones' polygons are.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from pydantic import ValidationError

from gridwatch.calibration.ground import CalibrationError, GroundPlane
from gridwatch.calibration.settings import CalibrationConfig
from gridwatch.cli.camera_registry import edit_camera, registry_session
from gridwatch.cli.common import (
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
)
from gridwatch.config import CameraConfig
from gridwatch.registry.store import RegistryError

__all__ = ["calibrate", "check_report", "parse_point", "parse_uv"]


def parse_uv(text: str) -> tuple[float, float]:
    """``"u,v"`` → a normalized image point.

    >>> parse_uv(" 0.25, 0.5 ")
    (0.25, 0.5)
    """
    try:
        u, v = (float(p) for p in text.split(","))
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not an image point: write 'u,v' (normalized 0..1, y down)"
        ) from None
    if not (0.0 <= u <= 1.0 and 0.0 <= v <= 1.0):
        raise typer.BadParameter(f"{text!r}: image points are normalized, 0..1")
    return u, v


def parse_point(text: str) -> dict[str, list[float]]:
    """``"u,v=x,y"`` → one calibration point (image normalized, ground metres).

    >>> parse_point("0.1,0.9=0,2.5")
    {'image': [0.1, 0.9], 'ground': [0.0, 2.5]}
    """
    image, sep, ground = text.partition("=")
    if not sep:
        raise typer.BadParameter(
            f"{text!r}: write a point as 'u,v=x,y' (image normalized 0..1 = ground metres)"
        )
    try:
        x, y = (float(p) for p in ground.split(","))
    except ValueError:
        raise typer.BadParameter(f"{text!r}: the ground position must be 'x,y' in metres") from None
    return {"image": list(parse_uv(image)), "ground": [x, y]}


def check_report(
    camera: CameraConfig, cal: CalibrationConfig, between: list[tuple[str, str]]
) -> dict[str, Any]:
    """What ``--check`` prints: distances between the pairs, zone areas, the fit's error."""
    plane: GroundPlane = cal.plane()
    distances = []
    for a, b in between:
        pa, pb = parse_uv(a), parse_uv(b)
        try:
            d: float | None = round(plane.distance(pa, pb), 3)
            why = None
        except CalibrationError as exc:
            d, why = None, str(exc)
        distances.append({"from": list(pa), "to": list(pb), "metres": d, "error": why})
    areas: dict[str, float | None] = {}
    for z in camera.zones:
        try:
            areas[z.id] = round(plane.area(z.polygon), 2)
        except CalibrationError:
            areas[z.id] = None
    return {
        "camera": camera.id,
        "source": cal.source,
        "reprojection_rms_m": round(plane.rms_error_m, 3),
        "reprojection_max_m": round(plane.max_error_m, 3),
        "point_errors_m": [round(e, 3) for e in plane.errors_m],
        "distances": distances,
        "zone_areas_m2": areas,
    }


def _print_report(r: dict[str, Any]) -> None:
    out.print(f"camera {r['camera']}: calibration from {r['source']}", markup=False)
    if r["source"] == "points":
        errs = ", ".join(f"{e:.3f}" for e in r["point_errors_m"])
        out.print(
            f"reprojection error: rms {r['reprojection_rms_m']:.3f} m, max "
            f"{r['reprojection_max_m']:.3f} m (per point: {errs})",
            markup=False,
        )
    for d in r["distances"]:
        a, b = d["from"], d["to"]
        what = f"{d['metres']:.2f} m" if d["metres"] is not None else f"none: {d['error']}"
        out.print(f"distance {a[0]:g},{a[1]:g} -> {b[0]:g},{b[1]:g}: {what}", markup=False)
    for zone, area in r["zone_areas_m2"].items():
        what = f"{area:.2f} m²" if area is not None else "unbounded (reaches the horizon)"
        out.print(f"zone {zone}: {what}", markup=False)


def calibrate(
    camera_id: Annotated[str, typer.Argument(metavar="ID")],
    point: Annotated[
        list[str] | None,
        typer.Option("--point", help='An image point and its ground position: "u,v=x,y" (repeat).'),
    ] = None,
    height: Annotated[
        float | None, typer.Option("--height", help="Camera model: lens height, metres.")
    ] = None,
    tilt: Annotated[
        float | None, typer.Option("--tilt", help="Camera model: degrees below horizontal.")
    ] = None,
    hfov: Annotated[
        float | None, typer.Option("--hfov", help="Camera model: horizontal field of view, °.")
    ] = None,
    aspect: Annotated[
        float | None, typer.Option("--aspect", help="Camera model: picture width / height.")
    ] = None,
    check: Annotated[
        bool,
        typer.Option("--check", help="Print what the calibration implies; write nothing."),
    ] = False,
    between: Annotated[
        bool,
        typer.Option(
            "--between",
            help='With --check: print the distances between the image points "u,v" given '
            "after it, each to the next.",
        ),
    ] = False,
    uv: Annotated[
        list[str] | None,
        typer.Argument(metavar="[U,V]...", help="Image points for --between.", show_default=False),
    ] = None,
    config: EnvConfigOpt = None,
    nats_url: EnvNatsOpt = None,
    as_json: JsonOpt = False,
    log_level: LogOpt = "warning",
) -> None:
    """Set a camera's ground-plane calibration (4+ points or height/tilt/hfov), or --check it."""
    env = load_env(config, nats_url, log_level)
    doc: dict[str, Any] | None = None
    if point:
        doc = {"points": [parse_point(p) for p in point]}
    pose = {"height_m": height, "tilt_deg": tilt, "hfov_deg": hfov}
    if any(v is not None for v in pose.values()) or aspect is not None:
        if doc is not None:
            fail("give --point or --height/--tilt/--hfov, not both", EXIT_INVALID)
        doc = {k: v for k, v in pose.items() if v is not None}
        if aspect is not None:
            doc["aspect"] = aspect
    given: CalibrationConfig | None = None
    if doc is not None:
        try:
            given = CalibrationConfig.model_validate(doc)
        except ValidationError as exc:
            msgs = "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())
            fail(f"camera {camera_id}: calibration refused: {msgs}", EXIT_INVALID)
    if (between or uv) and not check:
        fail("--between goes with --check", EXIT_INVALID)
    if between and len(uv or []) < 2:
        fail('--between needs two or more image points "u,v" after it', EXIT_INVALID)
    pairs = list(zip(uv or [], (uv or [])[1:], strict=False)) if between else []

    if check:

        async def read() -> CameraConfig:
            async with registry_session(env, create=False) as reg:
                try:
                    return (await reg.get(camera_id)).camera
                except RegistryError as exc:
                    fail(str(exc))

        camera: CameraConfig = run(read())
        cal = given or camera.calibration
        if cal is None:
            fail(
                f"camera {camera_id} has no calibration: set one with "
                f'`gridwatch camera calibrate {camera_id} --point "u,v=x,y" ...` (4 or more)',
                EXIT_INVALID,
            )
        report = check_report(camera, cal, pairs)
        if as_json:
            print_json(report)
        else:
            _print_report(report)
        return

    if given is None:
        fail('give 4 or more --point "u,v=x,y", or --height, --tilt and --hfov', EXIT_INVALID)
    written = given.model_dump(mode="json", exclude_none=True)

    def fn(current: dict[str, Any], _: CameraConfig) -> dict[str, Any]:
        return {**current, "calibration": written}

    record = edit_camera(env, camera_id, "calibrate", fn)
    plane = given.plane()
    extra = (
        f", reprojection error rms {plane.rms_error_m:.3f} m" if given.source == "points" else ""
    )
    out.print(
        f"calibration of camera {camera_id} set from {given.source}{extra} "
        f"(revision {record.revision})",
        markup=False,
    )

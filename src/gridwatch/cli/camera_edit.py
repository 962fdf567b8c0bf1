"""``gridwatch camera zone set|remove`` and ``camera rule add|remove``: edit one camera's zones,
privacy masks and rules; each edit is validated before it is written (compare-and-set)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
import yaml

from gridwatch.cli.camera_registry import edit_camera, rule_key
from gridwatch.cli.common import EXIT_INVALID, EnvConfigOpt, EnvNatsOpt, LogOpt, fail, load_env, out
from gridwatch.config import CameraConfig


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


def zone_set(
    camera_id: Annotated[str, typer.Argument(metavar="ID")],
    zone_id: Annotated[str, typer.Argument(metavar="ZONE")],
    polygon: Annotated[
        str, typer.Option("--polygon", help='Normalized points: "x,y x,y x,y ..." (y down).')
    ],
    mask: Annotated[
        bool, typer.Option("--mask", help="A privacy mask (blacked out), not a zone.")
    ] = False,
    config: EnvConfigOpt = None,
    nats_url: EnvNatsOpt = None,
    log_level: LogOpt = "warning",
) -> None:
    """Create or replace a zone (or, with --mask, a privacy mask); workers pick it up live."""
    env = load_env(config, nats_url, log_level)
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

    record = edit_camera(env, camera_id, f"{'mask' if mask else 'zone'} set {zone_id}", fn)
    what = "privacy mask" if mask else "zone"
    out.print(f"{what} {zone_id} of camera {camera_id} set (revision {record.revision})")


def zone_remove(
    camera_id: Annotated[str, typer.Argument(metavar="ID")],
    zone_id: Annotated[str, typer.Argument(metavar="ZONE")],
    mask: Annotated[bool, typer.Option("--mask", help="Remove a privacy mask.")] = False,
    config: EnvConfigOpt = None,
    nats_url: EnvNatsOpt = None,
    log_level: LogOpt = "warning",
) -> None:
    """Remove a zone (refused while a rule uses it) or, with --mask, a privacy mask."""
    env = load_env(config, nats_url, log_level)
    key = "privacy_masks" if mask else "zones"

    def fn(doc: dict[str, Any], current: CameraConfig) -> dict[str, Any]:
        items = doc.get(key, [])
        if not any(z.get("id") == zone_id for z in items):
            known = ", ".join(z.get("id", "?") for z in items) or "none"
            fail(
                f"camera {camera_id} has no {'mask' if mask else 'zone'} {zone_id!r} (has: {known})"
            )
        users = [rule_key(r) for r in current.rules if getattr(r, "zone", None) == zone_id]
        if users and not mask:
            fail(
                f"zone {zone_id} is used by rule(s) {', '.join(users)}: remove them first "
                f"(`gridwatch camera rule remove {camera_id} {users[0]}`)",
                EXIT_INVALID,
            )
        return {**doc, key: [z for z in items if z.get("id") != zone_id]}

    record = edit_camera(env, camera_id, f"{'mask' if mask else 'zone'} remove {zone_id}", fn)
    out.print(f"removed {zone_id} from camera {camera_id} (revision {record.revision})")


def _parse_settings(settings: list[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for item in settings:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{item!r}: write settings as key=value")
        values[key.strip()] = yaml.safe_load(raw) if raw.strip() else None
    return values


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
    config: EnvConfigOpt = None,
    nats_url: EnvNatsOpt = None,
    log_level: LogOpt = "warning",
) -> None:
    """Add a rule; validated (fields, zone, schedule) before it is written."""
    env = load_env(config, nats_url, log_level)
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
        same = [i for i, r in enumerate(current.rules) if rule_key(r) == key]
        if same and not replace:
            fail(
                f"camera {camera_id} already has rule {key}: add --replace to replace it, or "
                f"remove it first",
                EXIT_INVALID,
            )
        if same:
            rules[same[0]] = rule
        else:
            rules.append(rule)
        return {**doc, "rules": rules}

    record = edit_camera(
        env, camera_id, f"rule add {key}", fn, strict_reference=schedule is not None
    )
    out.print(f"rule {key} set on camera {camera_id} (revision {record.revision})")


def rule_remove(
    camera_id: Annotated[str, typer.Argument(metavar="ID")],
    key: Annotated[str, typer.Argument(metavar="KEY", help="type/zone (see `show`), or #index.")],
    config: EnvConfigOpt = None,
    nats_url: EnvNatsOpt = None,
    log_level: LogOpt = "warning",
) -> None:
    """Remove a rule by its key (crowding/gate-apron) or its index (#0)."""
    env = load_env(config, nats_url, log_level)

    def fn(doc: dict[str, Any], current: CameraConfig) -> dict[str, Any]:
        keys = [rule_key(r) for r in current.rules]
        if key.lstrip("#").isdigit():
            index = int(key.lstrip("#"))
            if not 0 <= index < len(keys):
                fail(f"camera {camera_id} has {len(keys)} rule(s); no #{index}", EXIT_INVALID)
        elif key in keys:
            index = keys.index(key)
        else:
            fail(
                f"camera {camera_id} has no rule {key!r} (has: {', '.join(keys) or 'none'})",
                EXIT_INVALID,
            )
        rules = list(doc.get("rules", []))
        del rules[index]
        return {**doc, "rules": rules}

    record = edit_camera(env, camera_id, f"rule remove {key}", fn)
    out.print(f"removed rule {key} from camera {camera_id} (revision {record.revision})")

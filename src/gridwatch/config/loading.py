"""Loading the deployment config: every problem at once, with file, line, column and field.

Every model forbids unknown keys (a typo is an error, not a silently ignored setting) and every
field has a title and description so ``gridwatch config schema`` documents itself. Loading
reports *every* problem at once, each with file, line, column and field path:

>>> text = '''
... grids: [{id: g1, name: Grid 1}]
... cameras:
...   - id: cam1
...     name: Cam
...     grid: g9
...     url: rtsp://127.0.0.1/x
...     zones: [{id: z, polygon: [[0, 0], [1, 0], [1, 1]]}]
...     rules: [{type: crowding, zone: z, min_count: -1}]
... '''
>>> try:
...     parse_config(text, "demo.yaml")
... except ConfigError as e:
...     print(e)
demo.yaml:9:39: cameras[0].rules[0].min_count: Input should be greater than or equal to 1
demo.yaml:6:5: cameras[0].grid: unknown grid 'g9' (known: g1)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from gridwatch.auth.models import user_reference_issues
from gridwatch.calibration.settings import calibration_issues
from gridwatch.config.models import CameraConfig, GridwatchConfig
from gridwatch.config.yaml_locations import (
    LocatedDocument,
    YamlSyntaxError,
    load_yaml_with_locations,
)
from gridwatch.detectors import BACKENDS, DEFAULT_BACKEND, backends_with
from gridwatch.gb28181.settings import gb28181_reference_issues
from gridwatch.rules.registry import RULE_TYPES
from gridwatch.rules.settings import rule_reference_issues


@dataclass(frozen=True)
class ConfigIssue:
    file: str
    line: int
    column: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.field}: {self.message}"


class ConfigError(ValueError):
    """All problems found in a config file, each with its location."""

    def __init__(self, issues: Sequence[ConfigIssue]) -> None:
        self.issues = list(issues)
        super().__init__("\n".join(str(i) for i in self.issues))


def _field_path(path: Sequence[str | int]) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def _issue(doc: LocatedDocument, path: Sequence[str | int], message: str) -> ConfigIssue:
    loc = doc.location(path) or (1, 1)
    return ConfigIssue(doc.filename, loc[0], loc[1], _field_path(path), message)


def _pydantic_issues(
    doc: LocatedDocument, exc: ValidationError, prefix: Sequence[str | int] = ()
) -> list[ConfigIssue]:
    issues = []
    for err in exc.errors():
        loc = [
            *prefix,
            *(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-"))),
        ]
        # tuple validators add an index after the field; keep it, it's the offending element
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = f"unknown field {loc[-1]!r}"
            if len(loc) == 3 and loc[0] == "detector" and backends_with(str(loc[2])):
                owners = " or ".join(backends_with(str(loc[2])))
                message += f" for backend {loc[1]} (it is a key of backend {owners})"
        elif err["type"] == "missing":
            message = "required field is missing"
        loc = _without_union_tags(doc.data, loc)
        if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
            key = str(err.get("ctx", {}).get("discriminator", "'type'")).strip("'")
            loc.append(key)
            if err["type"] == "union_tag_not_found":
                message = "required field is missing"
            elif key == "backend":
                tag = err.get("ctx", {}).get("tag")
                message = f"unknown detector backend {tag!r}; known: {', '.join(BACKENDS)}"
            else:
                message = f"unknown rule type; known: {', '.join(RULE_TYPES)}"
        issues.append(_issue(doc, loc, message))
    return issues


def _without_union_tags(data: Any, loc: Sequence[str | int]) -> list[str | int]:
    """Drop the tag pydantic puts in an error's path inside a discriminated union
    (``rules.0.loitering.min_dwell_s`` → ``rules.0.min_dwell_s``, ``detector.ultralytics.precision``
    → ``detector.precision``): it is no key of the document. A ``detector:`` without ``backend``
    is tagged with the default backend.
    """
    out: list[str | int] = []
    node: Any = data
    for p in loc:
        tag = isinstance(node, dict) and isinstance(p, str) and p not in node
        if tag and p in (node.get("type"), _detector_tag(out, node)):
            continue
        out.append(p)
        if isinstance(node, dict) and isinstance(p, str):
            node = node.get(p)
        elif isinstance(node, list) and isinstance(p, int) and 0 <= p < len(node):
            node = node[p]
        else:
            node = None
    return out


def _detector_tag(path: Sequence[str | int], node: dict[str, Any]) -> Any:
    """The union tag pydantic puts after ``detector`` (its backend, the default when left out)."""
    return node.get("backend", DEFAULT_BACKEND) if list(path) == ["detector"] else None


def _ids(items: Any) -> list[Any]:
    if not isinstance(items, list):
        return []
    return [it.get("id") if isinstance(it, dict) else None for it in items]


def _reference_issues(doc: LocatedDocument, data: dict[str, Any]) -> list[ConfigIssue]:
    """Cross-references pydantic cannot see: grid, zone and schedule names, duplicate ids.

    Works on the raw document, defensively, so these problems are reported together with the
    field errors pydantic finds rather than only after those are fixed.
    """
    issues: list[ConfigIssue] = []
    grid_ids = _ids(data.get("grids"))
    for i, gid in enumerate(grid_ids):
        if gid is not None and grid_ids.index(gid) != i:
            issues.append(_issue(doc, ("grids", i, "id"), f"duplicate grid id {gid!r}"))
    schedules = data.get("schedules")
    schedule_names = list(schedules) if isinstance(schedules, dict) else []
    cameras = data.get("cameras")
    seen_cams: set[Any] = set()
    for ci, cam in enumerate(cameras if isinstance(cameras, list) else []):
        if not isinstance(cam, dict):
            continue
        base: tuple[str | int, ...] = ("cameras", ci)
        cid = cam.get("id")
        if cid is not None and cid in seen_cams:
            issues.append(_issue(doc, (*base, "id"), f"duplicate camera id {cid!r}"))
        seen_cams.add(cid)
        issues.extend(_camera_reference_issues(doc, base, cam, grid_ids, schedule_names))
    for path, message in user_reference_issues(data.get("users"), grid_ids, schedule_names):
        issues.append(_issue(doc, path, message))
    issues.extend(_issue(doc, path, message) for path, message in gb28181_reference_issues(data))
    return issues


def _camera_reference_issues(
    doc: LocatedDocument,
    base: tuple[str | int, ...],
    cam: dict[str, Any],
    grid_ids: list[Any],
    schedule_names: list[str],
) -> list[ConfigIssue]:
    """One camera's cross-references (grid, zones, schedules): shared by the whole-file check
    and :func:`check_camera`, so a camera added live is held to the same rules as the file."""
    issues: list[ConfigIssue] = []
    grid = cam.get("grid")
    if isinstance(grid, str) and grid not in grid_ids:
        known = ", ".join(str(g) for g in grid_ids) or "none defined"
        issues.append(_issue(doc, (*base, "grid"), f"unknown grid {grid!r} (known: {known})"))
    zone_ids = _ids(cam.get("zones"))
    for zi, zid in enumerate(zone_ids):
        if zid is not None and zone_ids.index(zid) != zi:
            issues.append(_issue(doc, (*base, "zones", zi, "id"), f"duplicate zone id {zid!r}"))
    mask_ids = _ids(cam.get("privacy_masks"))
    for mi, mid in enumerate(mask_ids):
        if mid is not None and mask_ids.index(mid) != mi:
            issues.append(
                _issue(doc, (*base, "privacy_masks", mi, "id"), f"duplicate mask id {mid!r}")
            )
    rules = cam.get("rules")
    for ri, rule in enumerate(rules if isinstance(rules, list) else []):
        if not isinstance(rule, dict):
            continue
        rpath = (*base, "rules", ri)
        zone = rule.get("zone")
        if isinstance(zone, str) and zone not in zone_ids:
            known = ", ".join(str(z) for z in zone_ids) or "none defined"
            issues.append(_issue(doc, (*rpath, "zone"), f"unknown zone {zone!r} (known: {known})"))
        sched = rule.get("schedule")
        if isinstance(sched, str) and sched not in schedule_names:
            known = ", ".join(schedule_names) or "none defined"
            issues.append(
                _issue(doc, (*rpath, "schedule"), f"unknown schedule {sched!r} (known: {known})")
            )
    issues.extend(_issue(doc, (*base, *p), m) for p, m in rule_reference_issues(rules))
    issues.extend(_issue(doc, (*base, *p), m) for p, m in calibration_issues(cam))
    return issues


def parse_config(text: str, filename: str = "<config>") -> GridwatchConfig:
    """Validate YAML text; raise :class:`ConfigError` listing every problem with its place."""
    try:
        doc = load_yaml_with_locations(text, filename)
    except YamlSyntaxError as exc:
        raise ConfigError(
            [ConfigIssue(filename, exc.line, exc.column, "(syntax)", exc.message)]
        ) from exc
    data: Any = doc.data if doc.data is not None else {}
    if not isinstance(data, dict):
        raise ConfigError([_issue(doc, (), "the top level must be a mapping of settings")])
    issues: list[ConfigIssue] = []
    cfg: GridwatchConfig | None = None
    try:
        cfg = GridwatchConfig.model_validate(data)
    except ValidationError as exc:
        issues.extend(_pydantic_issues(doc, exc))
    issues.extend(_reference_issues(doc, data))
    if issues or cfg is None:
        raise ConfigError(issues)
    return cfg


def check_camera(
    data: Any,
    config: GridwatchConfig,
    *,
    doc: LocatedDocument | None = None,
    path: Sequence[str | int] = (),
) -> CameraConfig:
    """Validate one camera (a mapping shaped like a ``cameras:`` entry) exactly as
    :func:`parse_config` validates each camera of a file, against ``config``'s grids and
    schedules; return it or raise :class:`ConfigError` with every problem.

    The camera registry and ``gridwatch camera add``/``import`` use this, so a camera that
    reaches a worker live passed the same checks as one in a file. ``doc``/``path`` locate the
    issues in the document the camera came from (an imported YAML file, a CSV row); duplicate
    camera ids are the caller's concern (it knows what else exists).
    """
    where = doc or LocatedDocument(filename="<camera>", data=data)
    base = tuple(path)
    if not isinstance(data, dict):
        raise ConfigError([_issue(where, base, "a camera must be a mapping of settings")])
    issues: list[ConfigIssue] = []
    cam: CameraConfig | None = None
    try:
        cam = CameraConfig.model_validate(data)
    except ValidationError as exc:
        issues.extend(_pydantic_issues(where, exc, base))
    issues.extend(
        _camera_reference_issues(
            where, base, data, [g.id for g in config.grids], list(config.schedules)
        )
    )
    if issues or cam is None:
        raise ConfigError(issues)
    return cam


def load_config(path: str | Path) -> GridwatchConfig:
    """Read and validate a config file (see :func:`parse_config`)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([ConfigIssue(str(p), 0, 0, "(file)", f"cannot read: {exc}")]) from exc
    return parse_config(text, str(p))

"""Camera files: read CSV or YAML for ``camera import``, write YAML/CSV for ``camera export``.

Import is all-or-nothing by default, so every row is validated before anything is written,
and every problem is reported with its file, line and column, the way ``gridwatch config
check`` reports a config: an engineer fixing a 500-row spreadsheet wants the whole list at
once, not one error per run. Each camera is checked by :func:`gridwatch.config.check_camera`,
the same function the config check and the workers use.

CSV is for inventories (one camera per row: where it is, what URL, which grid); zones, rules
and privacy masks are drawn later or come from YAML, whose shape is a config file's
``cameras:`` list (a whole config file works too, which is how a deployment is seeded).

>>> rows = read_cameras_csv("id,grid,url\\ncam-1,g1,rtsp://10.0.0.1/s\\n", "x.csv")
>>> rows.rows[0].line, rows.rows[0].data
(2, {'id': 'cam-1', 'grid': 'g1', 'url': 'rtsp://10.0.0.1/s'})
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import yaml

from gridwatch.config import (
    CameraConfig,
    ConfigError,
    ConfigIssue,
    GridwatchConfig,
    check_camera,
    parse_config,
)
from gridwatch.config.yaml_locations import (
    LocatedDocument,
    YamlSyntaxError,
    load_yaml_with_locations,
)
from gridwatch.ingest.urls import redact_url, url_has_redacted_password
from gridwatch.registry.store import camera_document

__all__ = [
    "CSV_COLUMNS",
    "CameraDumper",
    "ParsedFile",
    "RawCamera",
    "ValidatedFile",
    "dump_cameras_csv",
    "dump_cameras_json",
    "dump_cameras_yaml",
    "read_cameras_csv",
    "read_cameras_file",
    "read_cameras_yaml",
    "restore_credentials",
    "validate_cameras",
]

CSV_COLUMNS = (
    "id",
    "name",
    "grid",
    "url",
    "sub_url",
    "lat",
    "lon",
    "analysis_fps",
    "enabled",
    "loop",
)
"""Columns a camera CSV may have (``id``, ``grid`` and ``url`` are required)."""
_REQUIRED_COLUMNS = ("id", "grid", "url")


@dataclass
class RawCamera:
    """One camera as read from a file, not yet validated, with where it came from."""

    data: Any
    doc: LocatedDocument
    path: tuple[str | int, ...]
    line: int


@dataclass
class ParsedFile:
    """The cameras of a file plus the problems found while reading it (not yet validating)."""

    rows: list[RawCamera] = field(default_factory=list)
    issues: list[ConfigIssue] = field(default_factory=list)
    own_config: GridwatchConfig | None = None
    """The file's own grids and schedules, when it is a whole config file."""


@dataclass
class ValidatedFile:
    """Valid cameras (with their line) and every issue, per line."""

    cameras: list[tuple[int, CameraConfig]]
    issues: list[ConfigIssue]
    rows: int

    @property
    def bad_lines(self) -> list[int]:
        return sorted({i.line for i in self.issues})


# -- reading -------------------------------------------------------------------------------------


def _field_columns(raw_line: str, values: list[str]) -> list[int]:
    """1-based character column of each field in a CSV line (best effort, for messages)."""
    cols: list[int] = []
    pos = 0
    for value in values:
        at = raw_line.find(value, pos) if value else -1
        if at < 0:
            cols.append(pos + 1)
            continue
        if at > 0 and raw_line[at - 1] == '"':
            at -= 1
        cols.append(at + 1)
        pos = at + len(value)
    return cols


def read_cameras_csv(text: str, filename: str) -> ParsedFile:
    """Cameras from CSV text with a header row; empty cells mean "the default"."""
    out = ParsedFile()
    lines = text.splitlines()
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        out.issues.append(ConfigIssue(filename, 1, 1, "(file)", "the file is empty"))
        return out
    columns = [h.strip().lower().lstrip("\ufeff") for h in header]
    header_cols = _field_columns(lines[0] if lines else "", header)
    for i, name in enumerate(columns):
        if name not in CSV_COLUMNS:
            out.issues.append(
                ConfigIssue(
                    filename,
                    1,
                    header_cols[i],
                    name or f"column {i + 1}",
                    f"unknown column {name!r} (known: {', '.join(CSV_COLUMNS)}; zones, rules "
                    "and privacy masks go in YAML)",
                )
            )
    missing = [c for c in _REQUIRED_COLUMNS if c not in columns]
    if missing:
        out.issues.append(
            ConfigIssue(filename, 1, 1, "(header)", f"missing column(s): {', '.join(missing)}")
        )
    if out.issues:
        return out
    start = reader.line_num + 1
    for values in reader:
        line = start
        start = reader.line_num + 1
        if not any(v.strip() for v in values):
            continue  # blank line
        raw_line = lines[line - 1] if line - 1 < len(lines) else ""
        cols = _field_columns(raw_line, values)
        data: dict[str, Any] = {}
        locations: dict[tuple[str | int, ...], tuple[int, int]] = {(): (line, 1)}
        extra = values[len(columns) :]
        for i, name in enumerate(columns):
            value = values[i].strip() if i < len(values) else ""
            if value:
                data[name] = value
                locations[(name,)] = (line, cols[i] if i < len(cols) else 1)
        doc = LocatedDocument(filename=filename, data=data, locations=locations)
        if any(e.strip() for e in extra):
            out.issues.append(
                ConfigIssue(
                    filename, line, 1, "(row)", f"{len(values)} fields, header has {len(columns)}"
                )
            )
        out.rows.append(RawCamera(data, doc, (), line))
    return out


def read_cameras_yaml(text: str, filename: str) -> ParsedFile:
    """Cameras from YAML: a config file (or its ``cameras:`` part) or a bare list of cameras."""
    out = ParsedFile()
    try:
        doc = load_yaml_with_locations(text, filename)
    except YamlSyntaxError as exc:
        out.issues.append(ConfigIssue(filename, exc.line, exc.column, "(syntax)", exc.message))
        return out
    data = doc.data
    base: tuple[str | int, ...]
    if isinstance(data, list):
        cameras, base = data, ()
    elif isinstance(data, dict) and isinstance(data.get("cameras"), list):
        cameras, base = data["cameras"], ("cameras",)
        if "grids" in data:
            try:
                # a whole config: its grids and schedules are the reference (seeding a
                # deployment from its own file); its camera errors are reported below
                own = {k: v for k, v in data.items() if k != "cameras"}
                out.own_config = parse_config(yaml.safe_dump(own), filename)
            except ConfigError:
                # report them with the right lines by checking the whole document
                try:
                    parse_config(text, filename)
                except ConfigError as exc:
                    out.issues.extend(i for i in exc.issues if not i.field.startswith("cameras"))
    else:
        loc = doc.location(()) or (1, 1)
        out.issues.append(
            ConfigIssue(
                filename, loc[0], loc[1], "(top level)", "expected a list of cameras or 'cameras:'"
            )
        )
        return out
    for i, cam in enumerate(cameras):
        path = (*base, i)
        line = (doc.location(path) or (1, 1))[0]
        out.rows.append(RawCamera(cam, doc, path, line))
    return out


def read_cameras_file(text: str, filename: str) -> ParsedFile:
    """By extension: ``.csv`` is CSV, anything else YAML."""
    if filename.lower().endswith(".csv"):
        return read_cameras_csv(text, filename)
    return read_cameras_yaml(text, filename)


def validate_cameras(parsed: ParsedFile, config: GridwatchConfig) -> ValidatedFile:
    """Check every camera against ``config`` (grids, schedules) and against the others in the
    file (duplicate ids). Redacted passwords are resolved later: :func:`restore_credentials`."""
    issues = list(parsed.issues)
    cameras: list[tuple[int, CameraConfig]] = []
    first_line: dict[str, int] = {}
    for row in parsed.rows:
        row_issues: list[ConfigIssue] = []
        try:
            camera = check_camera(row.data, config, doc=row.doc, path=row.path)
        except ConfigError as exc:
            row_issues.extend(exc.issues)
            camera = None
        cid = row.data.get("id") if isinstance(row.data, dict) else None
        if isinstance(cid, str):
            if cid in first_line:
                loc = row.doc.location((*row.path, "id")) or (row.line, 1)
                row_issues.append(
                    ConfigIssue(
                        row.doc.filename,
                        loc[0],
                        loc[1],
                        "id",
                        f"duplicate camera id {cid!r} (first on line {first_line[cid]})",
                    )
                )
            else:
                first_line[cid] = row.line
        issues.extend(row_issues)
        if camera is not None and not row_issues:
            cameras.append((row.line, camera))
    issues.sort(key=lambda i: (i.line, i.column))
    return ValidatedFile(cameras, issues, len(parsed.rows))


def restore_credentials(camera: CameraConfig, existing: CameraConfig | None) -> CameraConfig:
    """Put back the password of a URL exported as ``user:***@host``.

    An export keeps passwords out of version control; importing it again must not turn every
    password into ``***``. A redacted URL that is otherwise the same as the registered one
    takes the registered password; anything else (a new camera, another host or user) is an
    error the engineer fixes by writing the real password. Raises ``ValueError``.
    """
    updates: dict[str, str] = {}
    for key in ("url", "sub_url"):
        value = getattr(camera, key)
        if not isinstance(value, str) or not url_has_redacted_password(value):
            continue
        old = getattr(existing, key, None) if existing is not None else None
        if not isinstance(old, str) or redact_url(old) != value:
            raise ValueError(
                f"the password in {key} is '***' (an export without --include-credentials) and "
                f"the registry has no camera {camera.id!r} with this URL to take it from: put "
                "the real password in the URL"
            )
        updates[key] = old
    return camera.model_copy(update=updates) if updates else camera


# -- writing -------------------------------------------------------------------------------------


def _document(camera: CameraConfig, include_credentials: bool) -> dict[str, Any]:
    doc = camera_document(camera)
    if not include_credentials:
        for key in ("url", "sub_url"):
            if isinstance(doc.get(key), str):
                doc[key] = redact_url(doc[key])
    return doc


class CameraDumper(yaml.SafeDumper):
    """Points and polygons on one line each: ``polygon: [[0.1, 0.4], [0.9, 0.4], ...]``."""


def _represent_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    flow = all(not isinstance(x, dict) for x in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


CameraDumper.add_representer(list, _represent_list)


def dump_cameras_yaml(cameras: Iterable[CameraConfig], *, include_credentials: bool = False) -> str:
    """A ``cameras:`` section that ``camera import`` (and a config file) accepts."""
    docs = [_document(c, include_credentials) for c in cameras]
    header = "# gridwatch camera registry export (`gridwatch camera import` reads it back)\n" + (
        ""
        if include_credentials
        else "# passwords in URLs are shown as *** (export --include-credentials keeps them)\n"
    )
    body = yaml.dump(
        {"cameras": docs},
        Dumper=CameraDumper,
        sort_keys=False,
        allow_unicode=True,
        width=100,
    )
    return header + body


def dump_cameras_csv(cameras: Iterable[CameraConfig], *, include_credentials: bool = False) -> str:
    """One row per camera with the inventory columns (zones, rules and masks are left out)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for cam in cameras:
        doc = _document(cam, include_credentials)
        writer.writerow(["" if doc.get(c) is None else doc.get(c) for c in CSV_COLUMNS])
    return buf.getvalue()


def dump_cameras_json(cameras: Iterable[CameraConfig], *, include_credentials: bool = False) -> str:
    return json.dumps(
        [_document(c, include_credentials) for c in cameras], ensure_ascii=False, indent=2
    )

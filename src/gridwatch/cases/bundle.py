"""The case bundle: one case's evidence in a plain zip that can be checked later.

A bundle holds the alert messages as they were stored, the full snapshots and clips, the
case's history (who did what, when) and the audit records of who looked at it, plus
``manifest.json`` with the SHA-256 and size of every other file. Nothing here talks to NATS:
the console assembles the parts (:mod:`gridwatch.console.case_export`) and anyone checks a
bundle with :func:`verify_bundle` (``gridwatch cases verify case.zip``) without a server.

Layout (every path is ``/``-separated, relative, without ``..``)::

    manifest.json                  format, case_id, grid, exported_at, exported_by, files, missing
    case.json                      the case's state when exported
    history.json                   the case events, oldest first (seq, at, actor, type, ...)
    audit.json                     GW_AUDIT records about this case, its snapshots and clips
    alerts/<sequence>-<state>.json each alert message exactly as JetStream stored it
    snapshots/<name>               the full (unblurred) snapshots, <camera>/<alert>/<state>-<n>.jpg
    clips/<name>                   the full evidence clips, <camera>/<alert>.mp4

``manifest.json`` itself is not in its own list: its SHA-256 is written in the audit record of
the export (``what: case-export``, ``manifest_sha256``), so a bundle can be matched to the
export that made it. Evidence that could not be fetched (a clip not stored yet, a snapshot
past its retention) is listed under ``missing`` with the reason, never silently left out.

>>> data, manifest = build_bundle(
...     {"case_id": "c1", "grid": "g1"}, [BundleFile("history.json", b"[]")])
>>> [f["path"] for f in manifest["files"]], verify_bundle(data).ok
(['history.json'], True)
>>> member_path("snapshots", "gate/c1/raised-0.jpg")
'snapshots/gate/c1/raised-0.jpg'
>>> member_path("clips", "../../etc/passwd")
'clips/_/_/etc/passwd'
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import re
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BUNDLE_FORMAT = "gridwatch-case-bundle/1"
MANIFEST = "manifest.json"
_SAFE_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_STORED_SUFFIXES = (".jpg", ".jpeg", ".mp4")
"""Already compressed: stored as they are (deflating them costs time and saves nothing)."""


@dataclass(frozen=True)
class BundleFile:
    """One file of a bundle: its path inside the zip and its bytes."""

    path: str
    data: bytes


@dataclass(frozen=True)
class Missing:
    """Evidence the bundle should hold and does not: what, where it would be, and why."""

    kind: str
    name: str
    path: str
    reason: str

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind, "name": self.name, "path": self.path, "reason": self.reason}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def member_path(folder: str, name: str) -> str:
    """``folder/name`` with every part of ``name`` made a plain file name (no ``..``, no
    absolute path, no odd characters): object names come from the stored alerts."""
    parts = [p for p in name.replace("\\", "/").split("/") if p]
    return "/".join([folder, *(p if _SAFE_PART.fullmatch(p) else "_" for p in parts or ["_"])])


def json_bytes(obj: Any) -> bytes:
    """Stable, readable JSON (sorted keys, UTF-8, a final newline)."""
    text = json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False, default=str)
    return (text + "\n").encode()


def _zip_time(at: dt.datetime | None) -> tuple[int, int, int, int, int, int]:
    t = (at or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    return (max(1980, t.year), t.month, t.day, t.hour, t.minute, t.second)


def build_bundle(
    header: Mapping[str, Any],
    files: Sequence[BundleFile],
    *,
    missing: Iterable[Missing] = (),
    at: dt.datetime | None = None,
) -> tuple[bytes, dict[str, Any]]:
    """The zip of ``files`` with ``manifest.json`` first; (zip bytes, manifest).

    ``header`` goes into the manifest as it is (case_id, grid, exported_at, exported_by, ...);
    ``files`` and ``missing`` are added. Two files may not share a path."""
    seen: set[str] = set()
    for f in files:
        if f.path in seen or f.path == MANIFEST:
            raise ValueError(f"two files at {f.path!r} in one bundle")
        seen.add(f.path)
    manifest: dict[str, Any] = {
        "format": BUNDLE_FORMAT,
        **header,
        "files": [{"path": f.path, "sha256": sha256(f.data), "bytes": len(f.data)} for f in files],
        "missing": [m.to_json() for m in missing],
    }
    when = _zip_time(at)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for path, data in [(MANIFEST, json_bytes(manifest)), *((f.path, f.data) for f in files)]:
            info = zipfile.ZipInfo(path, date_time=when)
            stored = path.lower().endswith(_STORED_SUFFIXES)
            info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)
    return buf.getvalue(), manifest


# -- verification ------------------------------------------------------------------------------


@dataclass
class Verification:
    """What :func:`verify_bundle` found: ``problems`` as (path, what is wrong)."""

    manifest: dict[str, Any] = field(default_factory=dict)
    manifest_sha256: str = ""
    checked: int = 0
    problems: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _read_member(zf: zipfile.ZipFile, name: str) -> bytes:
    with zf.open(name) as f:
        return f.read()


def verify_bundle(source: bytes | Path) -> Verification:
    """Recompute the SHA-256 and size of every file the manifest lists; a problem for each
    file that differs, is absent, cannot be read (damaged), or is in the zip but not listed."""
    out = Verification()
    try:
        zf = zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes) else source)
    except (zipfile.BadZipFile, OSError) as e:
        out.problems.append(("", f"not a readable zip file: {e}"))
        return out
    with zf:
        names = [i.filename for i in zf.infolist()]
        for name in {n for n in names if names.count(n) > 1}:
            out.problems.append((name, "in the zip more than once"))
        try:
            raw = _read_member(zf, MANIFEST)
            manifest = json.loads(raw)
            listed = manifest["files"]
            entries = {str(e["path"]): (str(e["sha256"]), int(e["bytes"])) for e in listed}
        except KeyError:
            out.problems.append((MANIFEST, "missing, or without a files list"))
            return out
        except (ValueError, TypeError, zipfile.BadZipFile, OSError) as e:
            out.problems.append((MANIFEST, f"unreadable: {e}"))
            return out
        out.manifest, out.manifest_sha256 = manifest, sha256(raw)
        present = set(names)
        for path, (digest, size) in entries.items():
            if path not in present:
                out.problems.append((path, "listed in the manifest but not in the zip"))
                continue
            try:
                data = _read_member(zf, path)
            except (zipfile.BadZipFile, OSError, ValueError) as e:
                out.problems.append((path, f"damaged: {e}"))
                continue
            out.checked += 1
            if len(data) != size:
                out.problems.append((path, f"{len(data)} bytes, the manifest says {size}"))
            elif sha256(data) != digest:
                out.problems.append((path, "SHA-256 differs from the manifest"))
        for name in sorted(present - set(entries) - {MANIFEST}):
            out.problems.append((name, "in the zip but not in the manifest"))
    return out

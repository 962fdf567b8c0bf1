"""The case bundle's format and its verification, without a server: every way a bundle can
differ from its manifest is found and named."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import zipfile
from pathlib import Path

import pytest

from gridwatch.cases.bundle import (
    BUNDLE_FORMAT,
    MANIFEST,
    BundleFile,
    Missing,
    build_bundle,
    member_path,
    verify_bundle,
)

AT = dt.datetime(2026, 12, 5, 9, 30, tzinfo=dt.UTC)
FILES = [
    BundleFile("case.json", b'{"id": "c1"}\n'),
    BundleFile("alerts/0000-raised.json", b'{"state": "raised"}'),
    BundleFile("snapshots/gate/c1/raised-0.jpg", b"\xff\xd8" + bytes(range(256)) * 4),
    BundleFile("history.json", b"[]\n"),
]


def bundle() -> tuple[bytes, dict[str, object]]:
    return build_bundle(
        {"case_id": "c1", "grid": "g1", "exported_by": "op"},
        FILES,
        missing=[Missing("clip", "gate/c1.mp4", "clips/gate/c1.mp4", "not stored yet")],
        at=AT,
    )


def rewrite(
    data: bytes, change: dict[str, bytes | None], add: dict[str, bytes] | None = None
) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(buf, "w") as out:
        for info in src.infolist():
            new = change.get(info.filename, src.read(info.filename))
            if new is not None:
                out.writestr(info, new)
        for name, body in (add or {}).items():
            out.writestr(name, body)
    return buf.getvalue()


def test_manifest_lists_every_file_with_its_hash_and_the_missing_ones() -> None:
    data, manifest = bundle()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.namelist()[0] == MANIFEST
        assert json.loads(zf.read(MANIFEST)) == manifest
        kinds = {i.filename: i.compress_type for i in zf.infolist()}
    assert manifest["format"] == BUNDLE_FORMAT
    assert manifest["files"] == [
        {"path": f.path, "sha256": hashlib.sha256(f.data).hexdigest(), "bytes": len(f.data)}
        for f in FILES
    ]
    assert manifest["missing"] == [
        {
            "kind": "clip",
            "name": "gate/c1.mp4",
            "path": "clips/gate/c1.mp4",
            "reason": "not stored yet",
        }
    ]
    assert kinds["snapshots/gate/c1/raised-0.jpg"] == zipfile.ZIP_STORED
    assert kinds["history.json"] == zipfile.ZIP_DEFLATED
    v = verify_bundle(data)
    assert (v.ok, v.checked, v.manifest["case_id"]) == (True, 4, "c1")
    assert (
        v.manifest_sha256
        == hashlib.sha256(zipfile.ZipFile(io.BytesIO(data)).read(MANIFEST)).hexdigest()
    )
    assert bundle()[0] == data  # the same parts and time give the same bytes


def test_a_changed_byte_names_the_file(tmp_path: Path) -> None:
    data, _ = bundle()
    snap = FILES[2]
    changed = snap.data[:10] + bytes([snap.data[10] ^ 1]) + snap.data[11:]
    path = tmp_path / "b.zip"
    path.write_bytes(rewrite(data, {snap.path: changed}))
    v = verify_bundle(path)
    assert v.problems == [(snap.path, "SHA-256 differs from the manifest")]


@pytest.mark.parametrize(
    ("change", "add", "expected"),
    [
        ({"history.json": b"[]\n\n"}, None, ("history.json", "4 bytes, the manifest says 3")),
        ({"case.json": None}, None, ("case.json", "listed in the manifest but not in the zip")),
        ({}, {"notes.txt": b"x"}, ("notes.txt", "in the zip but not in the manifest")),
        ({MANIFEST: b"{not json"}, None, (MANIFEST, "unreadable")),
        ({MANIFEST: b'{"case_id": "c1"}'}, None, (MANIFEST, "missing, or without a files list")),
    ],
)
def test_every_difference_is_named(
    change: dict[str, bytes | None], add: dict[str, bytes] | None, expected: tuple[str, str]
) -> None:
    data, _ = bundle()
    v = verify_bundle(rewrite(data, change, add))
    assert not v.ok
    assert [(p, what[: len(expected[1])]) for p, what in v.problems] == [expected]


def test_a_damaged_zip_names_the_member() -> None:
    data, _ = bundle()
    raw = bytearray(data)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        info = zf.getinfo(FILES[2].path)
    at = info.header_offset + 30 + len(info.filename) + len(info.extra) + 100
    raw[at] ^= 0xFF
    v = verify_bundle(bytes(raw))
    assert [p for p, _ in v.problems] == [FILES[2].path]
    assert verify_bundle(b"not a zip").problems[0][0] == ""


def test_paths_stay_inside_the_bundle() -> None:
    assert member_path("clips", "/abs/../x.mp4") == "clips/abs/_/x.mp4"
    assert member_path("snapshots", "") == "snapshots/_"
    assert member_path("snapshots", "a\\..\\b.jpg") == "snapshots/a/_/b.jpg"
    with pytest.raises(ValueError, match="two files"):
        build_bundle({}, [BundleFile("a.json", b""), BundleFile("a.json", b"")])
    with pytest.raises(ValueError, match="two files"):
        build_bundle({}, [BundleFile(MANIFEST, b"")])

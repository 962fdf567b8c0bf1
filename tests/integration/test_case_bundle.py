"""Case bundles (issue 14 item 4): an operator exports a case through the console (and with
``gridwatch cases export``), the zip holds the stored alert messages, the full snapshots, the
history with who did what and the audit records of who looked, its manifest's SHA-256s match
every file, ``gridwatch cases verify`` finds a changed byte, roles that may not see full
pictures are refused, and every export is audited.

Real parts: a nats-server with the permissions ``gridwatch nats-config`` generates, the case and
snapshot services, alerts and snapshots through the real publisher, the console over HTTP and
the ``gridwatch`` CLI as separate processes."""

from __future__ import annotations

import hashlib
import io
import json
import random
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from nats.js import api as js_api

from gridwatch.cases.bundle import MANIFEST, verify_bundle
from gridwatch.console import case_export
from gridwatch.model import Alert
from tests.integration.test_dispatch_cli import gw
from tests.plugins.console_stack import Stack, console_stack
from tests.plugins.dispatch import GRID_A, make_alert, tiny_jpeg, wait_until

pytestmark = pytest.mark.timeout(180)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def rezip(data: bytes, change: dict[str, bytes]) -> bytes:
    """The same zip with some members' contents replaced (a tampered bundle, valid as a zip)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(buf, "w") as out:
        for info in src.infolist():
            out.writestr(info, change.get(info.filename, src.read(info.filename)))
    return buf.getvalue()


async def handled_case(stack: Stack) -> tuple[Alert, bytes, bytes]:
    """A crowding incident raised with a snapshot and a clip name, cleared with a snapshot, and
    its case acknowledged and dispatched by the operator, and on scene and resolved by the
    responder, all through the console. (alert, raised JPEG, cleared JPEG)."""
    raised = make_alert(GRID_A, "cam-a", 1, snapshot=True)
    raised = raised.model_copy(update={"clip": f"cam-a/{raised.id}.mp4"})
    raised_jpeg, cleared_jpeg = tiny_jpeg(320, 240, 90), tiny_jpeg(320, 240, 170)
    await stack.publisher.publish_with_snapshot(raised, raised_jpeg)
    await wait_until(lambda: len(stack.cases.cases) == 1)
    zhang, zhang_csrf = await stack.login("op-zhang")
    li, li_csrf = await stack.login("aux-li")
    base = f"/api/cases/{GRID_A}/{raised.id}"
    async with zhang.post(f"{base}/acknowledge", headers=zhang_csrf) as r:
        assert r.status == 200, await r.text()
    cleared = make_alert(GRID_A, "cam-a", 1, state="cleared", sequence=1, snapshot=True)
    await stack.publisher.publish_with_snapshot(cleared, cleared_jpeg)
    await wait_until(
        lambda: any(c.alert_cleared_at is not None for c in stack.cases.cases.values())
    )
    async with zhang.post(f"{base}/dispatch", json={"responder": "aux-li"}, headers=zhang_csrf):
        pass
    async with li.post(f"{base}/on_scene", headers=li_csrf) as r:
        assert r.status == 200, await r.text()
    async with li.post(
        f"{base}/resolve", json={"outcome": "handled", "note": "crowd dispersed"}, headers=li_csrf
    ) as r:
        assert (await r.json())["case"]["state"] == "resolved"
    # the operator looks at the raised picture once before the export
    async with zhang.get(f"/api/snapshots/{GRID_A}/{quote(raised.snapshot or '')}") as r:
        assert r.headers["X-Gw-Variant"] == "full"
    return raised, raised_jpeg, cleared_jpeg


async def export(stack: Stack, user: str, alert_id: str) -> tuple[int, bytes, Any]:
    http, csrf = await stack.login(user)
    async with http.post(f"/api/cases/{GRID_A}/{alert_id}/export", headers=csrf) as r:
        return r.status, await r.read(), r.headers


async def test_operator_exports_a_bundle_that_verifies_and_is_audited(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with console_stack(tmp_path) as stack:
        alert, raised_jpeg, cleared_jpeg = await handled_case(stack)
        status, data, headers = await export(stack, "op-zhang", alert.id)
        assert status == 200, data[:300]
        assert headers["Content-Type"] == "application/zip"
        assert headers["Content-Disposition"] == (
            f'attachment; filename="case-{GRID_A}-{alert.id}.zip"'
        )
        assert headers["Cache-Control"] == "no-store, private"

        # every file's hash and size as the manifest says, and nothing unlisted
        files = members(data)
        manifest = json.loads(files[MANIFEST])
        listed = {f["path"]: f for f in manifest["files"]}
        assert set(listed) == set(files) - {MANIFEST}
        for path, entry in listed.items():
            assert (sha(files[path]), len(files[path])) == (entry["sha256"], entry["bytes"]), path
        assert verify_bundle(data).ok
        assert (manifest["case_id"], manifest["grid"], manifest["exported_by"]) == (
            alert.id,
            GRID_A,
            "op-zhang",
        )
        assert manifest["exported_at"].endswith("+00:00")
        assert manifest["case_state"] == "resolved"

        # the alert messages exactly as stored, and the full snapshots
        assert Alert.model_validate_json(files["alerts/0000-raised.json"]) == alert
        cleared = Alert.model_validate_json(files["alerts/0001-cleared.json"])
        assert (cleared.id, cleared.state.value) == (alert.id, "cleared")
        assert files[f"snapshots/cam-a/{alert.id}/raised-0.jpg"] == raised_jpeg
        assert files[f"snapshots/cam-a/{alert.id}/cleared-1.jpg"] == cleared_jpeg
        # the clip is not there (no clip service in this stack): listed with why, not dropped
        [clip] = manifest["missing"]
        assert (clip["kind"], clip["name"], clip["path"]) == (
            "clip",
            alert.clip,
            f"clips/cam-a/{alert.id}.mp4",
        )
        assert clip["reason"]

        # who did what, when
        history = json.loads(files["history.json"])
        assert [(e["type"], e["actor"]) for e in history] == [
            ("opened", "system"),
            ("acknowledged", "op-zhang"),
            ("alert_cleared", "system"),
            ("dispatched", "op-zhang"),
            ("on_scene", "aux-li"),
            ("resolved", "aux-li"),
        ]
        assert history[3]["responder"] == "aux-li"
        assert history[-1]["note"] == "crowd dispersed"
        assert all(e["at"] and e["seq"] for e in history)

        # the audit records: the case actions, the operator's view, the snapshot service's
        # records of the full pictures (the export's own fetches included)
        audit = [a["record"] for a in json.loads(files["audit.json"])]
        actions = [(a["what"], a["user"]) for a in audit if a["kind"] == "case"]
        assert actions == [
            ("acknowledge", "op-zhang"),
            ("dispatch", "op-zhang"),
            ("on_scene", "aux-li"),
            ("resolve", "aux-li"),
        ]
        assert [(a["what"], a["user"]) for a in audit if a["kind"] == "view"] == [
            ("snapshot_full", "op-zhang")
        ]
        service_views = sorted(a["snapshot"] for a in audit if a["kind"] == "snapshot_full_view")
        assert service_views == sorted(
            [alert.snapshot, alert.snapshot, f"cam-a/{alert.id}/cleared-1.jpg"]
        )

        # the export itself is audited, with the manifest's hash, before the zip is given
        records = await stack.audit_records()
        exports = [a for a in records if a["kind"] == "export"]
        assert [(a["what"], a["user"], a["result"], a["case"]) for a in exports] == [
            ("case-export", "op-zhang", "ok", alert.id)
        ]
        assert exports[0]["subject"] == f"gw.v1.audit.export.{GRID_A}"
        assert exports[0]["manifest_sha256"] == sha(files[MANIFEST])
        assert exports[0]["manifest_sha256"] == headers["X-Gw-Manifest-Sha256"]
        assert exports[0]["bundle_sha256"] == sha(data)
        assert exports[0]["missing"] == [clip["path"]]

        # with a clip service answering, the clip is in the next bundle (asked as the person,
        # the full variant); that bundle's audit.json has the first export
        asked: list[dict[str, Any]] = []

        async def request_clip(nc: Any, **kw: Any) -> tuple[bytes, str]:
            asked.append(kw)
            return b"\x00\x00\x00\x18ftypmp42 evidence", "full"

        monkeypatch.setattr(case_export, "_clip_requester", lambda: request_clip)
        status, data2, _ = await export(stack, "op-zhang", alert.id)
        assert status == 200
        files2 = members(data2)
        assert files2[f"clips/cam-a/{alert.id}.mp4"] == b"\x00\x00\x00\x18ftypmp42 evidence"
        assert json.loads(files2[MANIFEST])["missing"] == []
        assert asked == [
            {"name": alert.clip, "grid": GRID_A, "user": "op-zhang", "variant": "full"}
        ]
        audit2 = [a["record"] for a in json.loads(files2["audit.json"])]
        assert [a["manifest_sha256"] for a in audit2 if a["kind"] == "export"] == [
            sha(files[MANIFEST])
        ]
        assert verify_bundle(data2).ok


async def test_the_clip_comes_from_the_clip_service_in_chunks(tmp_path: Path) -> None:
    """With the clip service running, the bundle has the full clip (larger than NATS's
    max_payload: a chunked reply), asked as the operator and audited by the clip service."""
    from gridwatch.alerts.clip_service import ClipService
    from gridwatch.bus.infra import ensure_clip_store
    from gridwatch.worker.clips import CLIP_ALERT_HEADER, CLIP_CAMERA_HEADER, CLIP_GRID_HEADER

    async with console_stack(tmp_path) as stack:
        clips = ClipService(stack.svc, stack.config)
        await clips.start()
        try:
            alert = make_alert(GRID_A, "cam-a", 3, snapshot=True)
            alert = alert.model_copy(update={"clip": f"cam-a/{alert.id}.mp4"})
            mp4 = b"\x00\x00\x00\x18ftypisom" + random.Random(3).randbytes(1_500_000)
            store = await ensure_clip_store(stack.svc.jetstream(), ttl_s=3600, max_bytes=1 << 26)
            headers = {
                CLIP_ALERT_HEADER: alert.id,
                CLIP_GRID_HEADER: GRID_A,
                CLIP_CAMERA_HEADER: "cam-a",
            }
            meta = js_api.ObjectMeta(name=alert.clip, headers={k: [v] for k, v in headers.items()})
            await store.put(alert.clip, mp4, meta=meta)
            await stack.publisher.publish_with_snapshot(alert, tiny_jpeg())
            await wait_until(lambda: len(stack.cases.cases) == 1)
            status, data, _ = await export(stack, "op-zhang", alert.id)
            assert status == 200, data[:300]
            files = members(data)
            assert files[f"clips/cam-a/{alert.id}.mp4"] == mp4
            assert json.loads(files[MANIFEST])["missing"] == []
            assert verify_bundle(data).ok
            audit = [a["record"] for a in json.loads(files["audit.json"])]
            assert [(a["what"], a["user"], a["clip"]) for a in audit if a["kind"] == "view"] == [
                ("clip", "op-zhang", alert.clip)
            ]
        finally:
            await clips.stop()


async def test_roles_without_full_pictures_are_refused_and_audited(tmp_path: Path) -> None:
    async with console_stack(tmp_path) as stack:
        alert = make_alert(GRID_A, "cam-a", 2, snapshot=True)
        await stack.publisher.publish_with_snapshot(alert, tiny_jpeg())
        await wait_until(lambda: len(stack.cases.cases) == 1)
        for user in ("aux-li", "lead-wang"):  # responder and grid leader of the case's grid
            status, body, _ = await export(stack, user, alert.id)
            assert status == 403, (user, body)
            refusal = json.loads(body)
            assert refusal["code"] == "forbidden"
            assert "full pictures" in refusal["error"]
        status, _, _ = await export(stack, "aux-zhao", alert.id)  # another grid: no such case
        assert status == 404
        status, _, _ = await export(stack, "op-zhang", "no-such-case")
        assert status == 404
        http, _ = await stack.login("op-zhang")  # no CSRF token: refused before anything
        async with http.post(f"/api/cases/{GRID_A}/{alert.id}/export") as r:
            assert r.status == 403

        exports = [a for a in await stack.audit_records() if a["kind"] == "export"]
        assert [(a["user"], a["result"]) for a in exports] == [
            ("aux-li", "forbidden"),
            ("lead-wang", "forbidden"),
            ("op-zhang", "not_found"),
        ]
        # nobody saw a full picture through a refused export
        assert not [a for a in await stack.audit_records() if a["kind"] == "snapshot_full_view"]


async def test_cli_export_and_verify(tmp_path: Path) -> None:
    async with console_stack(tmp_path) as stack:
        alert, raised_jpeg, _ = await handled_case(stack)
        out = tmp_path / "case.zip"
        nats = ["--nats", stack.server.url]
        code, text = await gw(
            "cases",
            "export",
            alert.id,
            "-o",
            str(out),
            "--console",
            stack.url,
            *nats,
            user="op-zhang",
        )
        assert code == 0, text
        assert "manifest sha256" in text
        assert f"not in the bundle: clips/cam-a/{alert.id}.mp4" in text
        data = out.read_bytes()
        assert members(data)[f"snapshots/cam-a/{alert.id}/raised-0.jpg"] == raised_jpeg
        exports = [a for a in await stack.audit_records() if a["kind"] == "export"]
        assert [(a["user"], a["result"]) for a in exports] == [("op-zhang", "ok")]

        code, text = await gw("cases", "verify", str(out))
        assert code == 0, text
        assert text.startswith("ok: ")
        assert exports[0]["manifest_sha256"] in text  # the bundle matches its audit record

        # one byte of one file changed: exit 1, naming that file
        snap = f"snapshots/cam-a/{alert.id}/cleared-1.jpg"
        jpeg = members(data)[snap]
        bad = tmp_path / "tampered.zip"
        bad.write_bytes(rezip(data, {snap: jpeg[:100] + bytes([jpeg[100] ^ 1]) + jpeg[101:]}))
        code, text = await gw("cases", "verify", str(bad))
        assert code == 1, text
        assert snap in text
        assert "SHA-256" in text
        code, text = await gw("cases", "verify", str(bad), "--json")
        assert code == 1
        assert [p["path"] for p in json.loads(text)["problems"]] == [snap]
        # a byte flipped in the zip file itself: the damaged member is named too
        bad.write_bytes(flip_stored_byte(data, snap))
        code, text = await gw("cases", "verify", str(bad))
        assert code == 1
        assert snap in text
        # a file added after the export
        bad.write_bytes(with_extra(data))
        code, text = await gw("cases", "verify", str(bad))
        assert (code, "extra.txt" in text) == (1, True), text

        # a responder is refused, with the reason
        no = tmp_path / "no.zip"
        code, text = await gw(
            "cases",
            "export",
            alert.id,
            "-o",
            str(no),
            "--console",
            stack.url,
            "--grid",
            GRID_A,
            user="aux-li",
        )
        assert code == 1
        assert "forbidden" in text
        assert "full pictures" in text
        assert not no.exists()


def flip_stored_byte(data: bytes, member: str) -> bytes:
    """``data`` (a zip) with one byte in the middle of ``member``'s stored bytes inverted."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        info = zf.getinfo(member)
    assert info.compress_type == zipfile.ZIP_STORED
    at = info.header_offset
    name_len = int.from_bytes(data[at + 26 : at + 28], "little")
    extra_len = int.from_bytes(data[at + 28 : at + 30], "little")
    raw = bytearray(data)
    raw[at + 30 + name_len + extra_len + info.file_size // 2] ^= 0xFF
    return bytes(raw)


def with_extra(data: bytes) -> bytes:
    buf = io.BytesIO(data)
    with zipfile.ZipFile(buf, "a") as zf:
        zf.writestr("extra.txt", b"added later")
    return buf.getvalue()

"""The audit stream's integrity, shipped secrets, redaction and retention (issue 13: item 7,
part of item 10, and the low ones on redaction, the spool, push subscriptions and the camera
registry).

Each test's docstring names the attack and what must happen. They run against a real
nats-server (the test fixtures' plain one, or one started from ``gridwatch nats-config``'s
output through :func:`tests.plugins.console_stack.console_stack`), the console's aiohttp app
and the snapshot service. Who may publish on or manage ``gw.v1.audit.>`` / ``GW_AUDIT`` (the
"any service can purge or forge it" part) is the permission matrix's, tested in
``test_nats_permissions.py``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import bcrypt
import pytest
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js import api as js_api
from nats.js.errors import NoKeysError

from gridwatch.alerts.snapshot_service import SnapshotRequestError, request_snapshot
from gridwatch.alerts.spool import AlertSpool
from gridwatch.bus.consumers import replay
from gridwatch.config import CameraConfig, SpoolConfig, parse_config
from gridwatch.console.audit import AUDIT_STREAM, DAY_S, AuditLog, ensure_audit_stream
from gridwatch.ingest.urls import redact_text, redact_url
from gridwatch.notify.subscriptions import DEFAULT_SUBSCRIPTION_TTL_S, ensure_push_bucket
from gridwatch.registry.store import BUCKET, SECRETS_BUCKET, CameraRegistry
from gridwatch.registry.watcher import RegistryWatcher
from tests.plugins.console_stack import console_stack
from tests.plugins.dispatch import GRID_A, make_alert, tiny_jpeg, wait_until

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "configs" / "dispatch-example.yaml"


async def _audit_messages(js: JetStreamContext) -> list[dict[str, Any]]:
    import datetime as dt

    start = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    msgs = await replay(js, AUDIT_STREAM, "gw.v1.audit.>", start=start)
    return [{"subject": m.subject, **json.loads(m.data)} for m in msgs]


# -- 7. the audit stream: floods, purges, shrinking, unacknowledged records -------------------


async def test_failed_login_flood_writes_a_bounded_number_of_audit_records(tmp_path: Path) -> None:
    """Attack: flood ``POST /login`` with wrong passwords for one name from one address, to
    fill (and, with the stream's limits, rotate out) the audit history and to make every
    attempt cost an acknowledged JetStream write.

    Must happen: failed and refused logins are aggregated per (name, address) and window:
    the first of each is written at once, the rest as one record with a count, so 60
    attempts leave at most 4 records whose counts add up to 60 (none is lost)."""
    async with console_stack(tmp_path, "audit_login_window_s: 600") as stack:
        s = stack.client()
        statuses = []
        for _ in range(60):
            async with s.post("/login", json={"name": "aux-li", "password": "wrong"}) as r:
                statuses.append(r.status)
        assert set(statuses) <= {401, 429}
        first = [a for a in await _audit_messages(stack.svc.jetstream()) if a["user"] == "aux-li"]
        assert 1 <= len(first) <= 2, first  # the first failure (and first refusal) at once
        await stack.console.audit.flush()  # the window's end
        records = [
            a
            for a in await _audit_messages(stack.svc.jetstream())
            if a["kind"] == "login" and a["user"] == "aux-li"
        ]
        assert len(records) <= 4, records
        assert sum(a["count"] for a in records) == 60
        assert {a["what"] for a in records} <= {"login_failed", "login_refused"}
        assert all(a["client"] == "127.0.0.1" for a in records)
        aggregated = [a for a in records if a.get("aggregated")]
        assert aggregated
        assert all(a["first_at"] <= a["last_at"] for a in aggregated)


async def test_failed_logins_from_many_names_stay_bounded_in_records_and_memory(
    js: JetStreamContext,
) -> None:
    """Attack: a flood of failed logins under 500 different names (and addresses), so that
    per-name aggregation alone would still write one record per name and track each in memory.

    Must happen: at most ``login_max_keys`` pairs are tracked per window; the rest are counted
    under one overflow record (user ``*``), so the window writes at most max_keys + 1 records at
    once and the counts still add up to every attempt."""
    await ensure_audit_stream(js)
    audit = AuditLog(js, login_window_s=600, login_max_keys=8)
    for i in range(500):
        await audit.record("login", "login_failed", None, user=f"name-{i}", client=f"10.0.{i}.1")
    assert audit.written == 9  # 8 pairs + the overflow, each once
    assert audit._window is not None
    assert len(audit._window.tallies) == 9
    await audit.close()
    records = await _audit_messages(js)
    assert len(records) == 10  # + the overflow's count when the window ended
    assert sum(a["count"] for a in records) == 500
    overflow = [a for a in records if a["user"] == "*"]
    assert [a["count"] for a in overflow] == [1, 491]


async def test_audit_stream_refuses_purge_and_delete_and_has_size_caps(
    js: JetStreamContext,
) -> None:
    """Attack: purge GW_AUDIT or delete single records through the JetStream API (whoever
    holds the API permission), or roll it up with a ``Nats-Rollup`` header; flood it without
    limit.

    Must happen: the stream is created with deny_purge, deny_delete, roll-ups off and caps on
    bytes and records; purge and delete requests are refused by nats-server."""
    info = await ensure_audit_stream(js, max_bytes=64 * 1024**2, max_msgs=100_000)
    cfg = info.config
    assert cfg.deny_delete
    assert cfg.deny_purge
    assert not cfg.allow_rollup_hdrs
    assert (cfg.max_bytes, cfg.max_msgs) == (64 * 1024**2, 100_000)
    await AuditLog(js).record("view", "snapshot_full", GRID_A, user="op-zhang")
    with pytest.raises(Exception):  # noqa: B017, PT011 - nats-py raises ServerError here
        await js.purge_stream(AUDIT_STREAM)
    with pytest.raises(Exception):  # noqa: B017, PT011
        await js.delete_msg(AUDIT_STREAM, 1)
    assert (await js.stream_info(AUDIT_STREAM)).state.messages == 1


async def test_existing_audit_stream_is_hardened_and_never_shortened(
    js: JetStreamContext, caplog: pytest.LogCaptureFixture
) -> None:
    """Attack: start a console whose config has a smaller ``audit_retention_days`` (or caps)
    against an existing GW_AUDIT, so that converging the stream deletes history; and rely on
    streams created by earlier versions (age limit only, purgeable).

    Must happen: the existing stream gets deny_delete/deny_purge and a size cap it does not cut
    into, and a smaller retention or cap in the config leaves the larger one in place with a
    warning."""
    await js.add_stream(
        js_api.StreamConfig(
            name=AUDIT_STREAM,
            subjects=["gw.v1.audit.>"],
            storage=js_api.StorageType.FILE,
            max_age=365 * DAY_S,
        )
    )
    await AuditLog(js).record("case", "acknowledge", GRID_A, user="op-zhang")
    info = await ensure_audit_stream(js, retention_days=365)
    assert info.config.deny_delete
    assert info.config.deny_purge
    assert (info.config.max_bytes or 0) > 0
    assert (info.config.max_msgs or 0) > 0
    caplog.set_level(logging.WARNING, logger="gridwatch.console.audit")
    info = await ensure_audit_stream(js, retention_days=30, max_bytes=1024**2, max_msgs=1000)
    assert info.config.max_age == pytest.approx(365 * DAY_S)
    assert (info.config.max_bytes or 0) > 1024**2
    assert (info.config.max_msgs or 0) > 1000
    assert "longer retention is kept" in caplog.text
    assert (await js.stream_info(AUDIT_STREAM)).state.messages == 1
    # a longer retention is still taken
    info = await ensure_audit_stream(js, retention_days=400)
    assert info.config.max_age == pytest.approx(400 * DAY_S)


async def test_snapshot_service_serves_no_full_picture_without_an_acknowledged_audit_record(
    tmp_path: Path,
) -> None:
    """Attack: get an unblurred snapshot from the snapshot service while its audit record is
    not stored (GW_AUDIT missing, full or unreachable), so the view leaves no trace; before,
    the record was a fire-and-forget core publish.

    Must happen: the service publishes its record through JetStream and waits for the ack;
    with the stream present the record is in it when the picture arrives; without it the full
    picture is refused (``audit``) while the blurred one is still served."""
    async with console_stack(tmp_path) as stack:
        alert = make_alert(GRID_A, "cam-a", 1, snapshot=True)
        await stack.publisher.publish_with_snapshot(alert, tiny_jpeg(320, 240))
        assert alert.snapshot
        zhang: NATS = await stack.users.connect("op-zhang")
        data, variant = await request_snapshot(
            zhang, grid=GRID_A, user="op-zhang", name=alert.snapshot, variant="full"
        )
        assert variant == "full"
        assert data
        records = await _audit_messages(stack.svc.jetstream())
        assert [a["user"] for a in records if a["subject"].startswith("gw.v1.audit.snapshot")] == [
            "op-zhang"
        ]

        await stack.svc.jetstream().delete_stream(AUDIT_STREAM)
        with pytest.raises(SnapshotRequestError) as e:
            await request_snapshot(
                zhang, grid=GRID_A, user="op-zhang", name=alert.snapshot, variant="full"
            )
        assert e.value.code == "audit"
        _, variant = await request_snapshot(
            zhang, grid=GRID_A, user="op-zhang", name=alert.snapshot, variant="blurred"
        )
        assert variant == "blurred"


# -- 10. shipped secrets --------------------------------------------------------------------

KNOWN_DEMO_PASSWORDS = ["op-demo-pass", "aux-demo-pass", "lead-demo-pass", "svc-demo-pass"]


def _gridwatch(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gridwatch.cli.main", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )


def test_example_dispatch_config_ships_no_usable_password_hashes(tmp_path: Path) -> None:
    """Attack: merge ``configs/dispatch-example.yaml`` into a deployment as it is (it invites
    that) and log in, to NATS or the console, with the passwords behind its hashes, which were
    published in its comments (one an unrestricted service account).

    Must happen: the example holds no bcrypt hash at all, only placeholders that `gridwatch
    config check` refuses; no known demo password appears; its header says loudly that it is an
    example and how to hash a password; with hashes from `gridwatch users hash-password` put in
    place of the placeholders it is a valid config."""
    text = EXAMPLE.read_text()
    assert not re.search(r"\$2[aby]\$", text), "a bcrypt hash is shipped"
    for pw in KNOWN_DEMO_PASSWORDS:
        assert pw not in text
    assert "NOT A DEPLOYMENT CONFIG" in text.split("timezone:")[0]
    assert "gridwatch users hash-password" in text.split("timezone:")[0]

    check = _gridwatch("config", "check", str(EXAMPLE))
    assert check.returncode != 0
    assert check.stderr.count("password_hash") == text.count("password_hash: ")

    hashed = _gridwatch("users", "hash-password", "--rounds", "4", stdin="a-local-secret\n")
    assert hashed.returncode == 0, hashed.stderr
    h = hashed.stdout.strip()
    assert bcrypt.checkpw(b"a-local-secret", h.encode())
    mine = tmp_path / "dispatch.yaml"
    mine.write_text(re.sub(r'password_hash: "[^"]*"', f'password_hash: "{h}"', text))
    ok = _gridwatch("config", "check", str(mine))
    assert ok.returncode == 0, ok.stderr


# -- low: URL redaction ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "secret", "expected"),
    [
        ("rtsp://admin:s3cret@10.0.0.7:554/ch1", "s3cret", "rtsp://admin:***@10.0.0.7:554/ch1"),
        ("rtsp://admin:pa'ss@cam/x", "pa'ss", "rtsp://admin:***@cam/x"),
        ('rtsp://admin:pa"ss@cam/x', 'pa"ss', "rtsp://admin:***@cam/x"),
        ("rtsp://admin:pa ss@cam/x", "pa ss", "rtsp://admin:***@cam/x"),
        ("rtsp://admin:p@ss@cam/x", "p@ss", "rtsp://admin:***@cam/x"),
        ("rtsp://admin:p%40ss%20w@cam/x", "p%40ss", "rtsp://admin:***@cam/x"),
        ("rtsp://admin:pw@cam", "pw", "rtsp://admin:***@cam"),
        ("rtsps://admin:p:w@cam:322/x?a=b", "p:w", "rtsps://admin:***@cam:322/x?a=b"),
        (
            "open 'rtsp://u:it's@cam/x' failed: 401",
            "it's",
            "open 'rtsp://u:***@cam/x' failed: 401",
        ),
        (
            'Error opening input "rtsp://u:a b\'c"d@cam/x": refused',
            "a b'c\"d",
            'Error opening input "rtsp://u:***@cam/x": refused',
        ),
        (
            "GET /live?src=rtsp%3A%2F%2Fadmin%3Ap%40ss%40cam%2Fx&x=1",
            "p%40ss",
            "GET /live?src=rtsp%3A%2F%2Fadmin%3A***%40cam%2Fx&x=1",
        ),
        (
            "rtsp://a:one@cam1/x then rtsp://b:two@cam2/y",
            "two",
            "rtsp://a:***@cam1/x then rtsp://b:***@cam2/y",
        ),
    ],
)
def test_redaction_leaves_no_password_in_clear(text: str, secret: str, expected: str) -> None:
    """Attack: read a camera password from a log line, health report or CLI table where the
    password holds a quote, a space, an ``@`` or percent-escapes, or the URL is quoted or
    itself percent-encoded (before, the redaction stopped at the quote or space).

    Must happen: the whole password (as FFmpeg would split it) is replaced by ``***``; the
    user, host and path stay readable."""
    assert redact_text(text) == expected
    assert secret not in redact_text(text)
    if " " not in text.split("://", 1)[0]:
        assert secret not in redact_url(text)


def test_redaction_keeps_urls_without_a_password() -> None:
    """Not an attack, the other side: URLs without credentials must stay exactly as they are
    (an operator needs them to find a camera)."""
    for url in ("rtsp://cam:554/x", "rtsp://user@cam/x", "/var/clips/a.mp4", "rtsp://cam/a@b"):
        assert redact_url(url) == url


# -- low: retention of the worker spool, push subscriptions ----------------------------------


def test_spool_drops_alerts_older_than_its_age_limit(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Attack (on privacy): a worker cut off from NATS for months keeps every alert and its
    snapshot of people on local disk, and replays them all when it reconnects.

    Must happen: entries older than ``alerts.spool.max_age_s`` (a week by default) are dropped
    on replay, not published, with one ERROR line that counts them; younger ones are kept."""
    assert SpoolConfig().max_age_s == 7 * 86400
    now = [1_000_000.0]
    spool = AlertSpool(tmp_path / "spool", max_age_s=3600, clock=lambda: now[0])
    try:
        for n in range(3):
            spool.append(make_alert(GRID_A, "cam-a", n), tiny_jpeg())
        now[0] += 1800
        young = make_alert(GRID_A, "cam-a", 9)
        spool.append(young, None)
        now[0] += 1801  # the first three are now older than an hour, the last is not
        caplog.set_level(logging.ERROR, logger="gridwatch.alerts.spool")
        entry = spool.peek()
        assert entry is not None
        assert entry.alert.message_id == young.message_id
        assert spool.stats.expired == 3
        assert len(spool) == 1
        lines = [r.getMessage() for r in caplog.records if "EXPIRED" in r.getMessage()]
        assert len(lines) == 1
        assert "dropped 3 spooled alert(s)" in lines[0]
        assert not list((tmp_path / "spool").glob("*.jpg"))  # their snapshots are gone too
    finally:
        spool.close()


async def test_push_subscriptions_expire(js: JetStreamContext) -> None:
    """Attack (on privacy): a phone that was lost or handed on stays subscribed for ever, and
    its push endpoint is kept for ever, because ``gw_push_subs`` had no TTL.

    Must happen: the bucket is made with a TTL (90 days by default) and an existing bucket
    without one is converged on the notifier's configured TTL."""
    kv = await ensure_push_bucket(js)
    assert (await kv.status()).ttl == pytest.approx(DEFAULT_SUBSCRIPTION_TTL_S)
    await js.delete_key_value("gw_push_subs")
    await js.create_key_value(js_api.KeyValueConfig(bucket="gw_push_subs", history=1))
    await ensure_push_bucket(js, ttl_s=30 * DAY_S)
    info = await js.stream_info("KV_gw_push_subs")
    assert info.config.max_age == pytest.approx(30 * DAY_S)
    assert parse_config("grids: [{id: g1}]\n").notify.push_subscription_ttl_days == 90


# -- low: the camera registry's history of passwords ----------------------------------------


async def _all_stream_bytes(js: JetStreamContext, stream: str) -> list[bytes]:
    """Every message still stored in ``stream`` (every revision of every key)."""
    info = await js.stream_info(stream)
    out = []
    for seq in range(int(info.state.first_seq or 1), int(info.state.last_seq or 0) + 1):
        try:
            msg = await js.get_msg(stream, seq)
        except Exception:
            continue
        out.append(bytes(msg.data or b""))
    return out


async def test_camera_registry_keeps_no_history_of_passwords(js: JetStreamContext) -> None:
    """Attack: read old camera passwords from the registry's history (``gw_cameras`` keeps 16
    revisions of each camera, and ``camera history`` or anyone able to read the bucket saw
    every URL ever written, passwords in clear).

    Must happen: ``gw_cameras`` values hold URLs with the password redacted and name their
    credentials; the clear URLs live in ``gw_camera_secrets`` with one revision per key, so
    after a password change the old password is stored nowhere; the registry (CLI) and a
    worker's hot reload still get the clear URL of the current revision."""
    config = parse_config("grids: [{id: g1}]\n")
    reg = await CameraRegistry.open(js)
    cam = CameraConfig(id="cam-1", grid="g1", url="rtsp://admin:old-pw@10.0.0.7/ch1",
                       sub_url="rtsp://admin:old-pw@10.0.0.7/ch2")  # fmt: skip
    await reg.create(cam)
    assert (await reg.get("cam-1")).camera == cam

    seen: list[CameraConfig] = []

    async def apply(cameras: list[CameraConfig]) -> dict[str, list[str]]:
        seen[:] = cameras
        return {}

    watcher, task = await RegistryWatcher.start(
        reg_w := await CameraRegistry.open(js), config, apply
    )
    try:
        assert [c.url for c in seen] == [cam.url]
        await reg.edit(
            "cam-1",
            lambda c: c.model_copy(
                update={"url": "rtsp://admin:new-pw@10.0.0.7/ch1", "sub_url": None}
            ),
            change="password",
        )
        await reg.edit("cam-1", lambda c: c.model_copy(update={"name": "Gate"}), change="name")
        await wait_until(lambda: [c.name for c in seen] == ["Gate"])
        assert seen[0].url == "rtsp://admin:new-pw@10.0.0.7/ch1"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert reg_w is watcher.registry

    cameras_raw = await _all_stream_bytes(js, f"KV_{BUCKET}")
    secrets_raw = await _all_stream_bytes(js, f"KV_{SECRETS_BUCKET}")
    assert len(cameras_raw) == 3  # the history is kept...
    assert not any(b"pw@" in raw for raw in cameras_raw)  # ...without any password
    assert all(b"admin:***@10.0.0.7" in raw for raw in cameras_raw)
    assert not any(b"old-pw" in raw for raw in cameras_raw + secrets_raw)
    assert sum(b"new-pw" in raw for raw in secrets_raw) == 1
    assert (await js.stream_info(f"KV_{SECRETS_BUCKET}")).config.max_msgs_per_subject == 1
    history = await reg.history("cam-1")
    assert all("pw@" not in json.dumps(h.camera) for h in history)
    assert (await reg.get("cam-1")).camera.url == "rtsp://admin:new-pw@10.0.0.7/ch1"

    # removing the camera removes its credentials
    await reg.remove("cam-1")
    secrets_kv = await js.key_value(SECRETS_BUCKET)
    with pytest.raises(NoKeysError):
        await secrets_kv.keys()
    assert not any(b"new-pw" in raw for raw in await _all_stream_bytes(js, f"KV_{SECRETS_BUCKET}"))

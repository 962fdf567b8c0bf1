"""The services the smoke tests only ever ran as an unrestricted account, run here under their
own restricted NATS identities against a real nats-server started from ``gridwatch
nats-config``'s output: the worker with the camera registry and leases (``service: worker``)
and the notifier (``service: notifier``).

Why it matters: a permission the generator forgot shows up in production only, as a worker
that never claims a camera or a notifier that never pushes, while every test that runs as an
unrestricted ``service`` account passes. Each test asserts that the service does its whole
job, and that the server logged no permissions violation for any connection (the server's
log, and the clients' error callbacks).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gridwatch.alerts.publisher import AlertPublisher
from gridwatch.alerts.streams import ensure_alert_infra
from gridwatch.auth.natsconf import write_nats_config
from gridwatch.cases.client import CaseClient
from gridwatch.cases.service import CaseService
from gridwatch.config import GridwatchConfig, parse_config
from gridwatch.leases.records import LEASES_BUCKET, WORKERS_BUCKET
from gridwatch.notify.local_endpoint import LocalPushService, WebhookReceiver
from gridwatch.notify.notifier import Notifier
from gridwatch.notify.subscriptions import register_subscription
from gridwatch.notify.webpush import VapidKey
from gridwatch.registry.store import CameraRegistry
from gridwatch.worker import Worker
from gridwatch_devtools.nats_server import NatsServer
from tests.plugins.dispatch import (
    GRID_A,
    GRID_B,
    UserConnections,
    _hash,
    make_alert,
    password,
    wait_until,
)
from tests.plugins.rtsp_fixtures import DemoClipFactory

pytestmark = pytest.mark.timeout(150)

USERS: dict[str, str] = {
    "svc-worker": "role: service, service: worker",
    "svc-notifier": "role: service, service: notifier",
    "svc-cases": "role: service, service: [cases, snapshots]",
    "svc-console": "role: service, service: console",
    "op-zhang": "role: operator",
    "aux-li": f"role: responder, grid: {GRID_A}",
    "lead-wang": f"role: grid_leader, grid: {GRID_A}",
    "aux-zhao": f"role: responder, grid: {GRID_B}",
    "admin": "role: admin",
}
SECRET = "hook-secret-456"
APRON = "[[0.05, 0.40], [0.95, 0.40], [0.95, 0.98], [0.05, 0.98]]"
FAST_LEASES = "ttl_s: 3.0, renew_s: 1.0, margin_s: 0.5, settle_s: 0.2, tick_s: 0.1"


def config_text(extra: str = "") -> str:
    users = "\n".join(
        f'  - {{name: {name}, {attrs}, password_hash: "{_hash(name)}"}}'
        for name, attrs in USERS.items()
    )
    return (
        f"grids: [{{id: {GRID_A}, name: Grid A}}, {{id: {GRID_B}, name: Grid B}}]\n"
        f"users:\n{users}\n{extra}\n"
    )


def violations_in_log(server: NatsServer) -> list[str]:
    """The server's own record of refused publishes and subscriptions."""
    assert server.log_file is not None
    text = server.log_file.read_text(errors="replace")
    return [line for line in text.splitlines() if "violation" in line.lower()]


def client_violations(users: UserConnections) -> dict[str, list[str]]:
    return {
        u: [e for e in errs if "violation" in e.lower()]
        for u, errs in users.errors.items()
        if any("violation" in e.lower() for e in errs)
    }


@contextlib.asynccontextmanager
async def secured(cfg: GridwatchConfig, tmp_path: Path) -> AsyncIterator[NatsServer]:
    conf = write_nats_config(cfg, tmp_path / "nats.conf")
    # -DV is not needed: nats-server logs every permissions violation at its default level
    async with NatsServer(config_file=conf, store_dir=tmp_path / "store") as server:
        yield server


def test_the_server_log_names_a_violation(tmp_path: Path) -> None:
    """Guard of the guard: the checks below look for permissions violations in nats-server's
    log. A refused publish by a restricted identity must appear there, or a clean log would
    prove nothing."""

    async def main() -> None:
        cfg = parse_config(config_text(), "svc-identities.yaml")
        async with secured(cfg, tmp_path) as server:
            users = UserConnections(server)
            try:
                nc = await users.connect("svc-notifier")
                await nc.publish("gw.v1.alerts.grid-a.cam-1.crowding", b"forged")
                await nc.flush(timeout=2)
                await wait_until(lambda: bool(violations_in_log(server)), within=5)
                assert "svc-notifier" in violations_in_log(server)[0]
                await wait_until(lambda: bool(client_violations(users)), within=5)
            finally:
                await users.close()

    asyncio.run(main())


async def test_a_worker_with_registry_and_leases_runs_as_service_worker(
    tmp_path: Path, demo_clip: DemoClipFactory
) -> None:
    """Threat: every worker host holds an unrestricted NATS account (it could purge the audit,
    rewrite the case opener, change the camera registry). The worker runs here as a
    ``service: worker`` identity with the camera registry (gw_cameras, its credentials bucket)
    and leases (gw_leases, gw_workers) on: it creates its streams and buckets, follows the
    registry, claims the camera's lease, analyses the video, publishes alerts with snapshots
    and health, and on shutdown hands its lease back, without a single permissions
    violation. It may read the camera registry but not change it."""
    clip = demo_clip(12.0)
    extra = (
        "registry: {enabled: true}\n"
        f"leases: {{enabled: true, worker_id: w1, capacity: 4, {FAST_LEASES},"
        f" journal: '{tmp_path / 'w1.journal'}'}}\n"
        f"alerts: {{spool: {{dir: '{tmp_path / 'spool'}'}}}}\n"
    )
    cfg = parse_config(config_text(extra), "svc-identities.yaml")
    async with secured(cfg, tmp_path) as server:
        wcfg = cfg.model_copy(
            update={
                "nats": cfg.nats.model_copy(
                    update={
                        "url": server.url,
                        "user": "svc-worker",
                        "password": password("svc-worker"),
                    }
                )
            }
        )
        users = UserConnections(server)
        stop = asyncio.Event()
        worker = Worker(wcfg, health_interval_s=1.0)
        task = asyncio.create_task(worker.run(stop))
        try:
            await asyncio.wait_for(worker.ready.wait(), 90)
            admin = await users.connect("admin")
            alerts: list[Any] = []
            health: list[Any] = []

            async def on_alert(msg: Any) -> None:
                alerts.append(msg)

            async def on_health(msg: Any) -> None:
                health.append(msg)

            await admin.subscribe("gw.v1.alerts.>", cb=on_alert)
            await admin.subscribe("gw.v1.health.>", cb=on_health)

            # an admin registers a camera (as `gridwatch camera add` does): the worker picks it up
            camera = parse_config(
                config_text(
                    "cameras:\n"
                    f"  - {{id: cam-a, grid: {GRID_A}, url: '{clip}', loop: true,"
                    f" analysis_fps: 2, zones: [{{id: apron, polygon: {APRON}}}],"
                    " rules: [{type: crowding, zone: apron, min_count: 3, min_duration_s: 1,"
                    " clear_after_s: 3600}]}\n"
                ),
                "camera.yaml",
            ).cameras[0]
            reg = await CameraRegistry.open(admin.jetstream())
            await reg.create(camera, by="admin")

            await wait_until(lambda: "cam-a" in worker.pipelines, within=20)
            assert worker.leases is not None
            assert worker.leases.running == {"cam-a"}
            await wait_until(lambda: bool(alerts), within=60)
            await wait_until(lambda: bool(health), within=10)
            await wait_until(lambda: worker.published >= 1, within=10)  # acknowledged

            # a camera whose URL holds a password: its credentials (gw_camera_secrets) are
            # readable by the worker identity, which needs them to connect
            locked = camera.model_copy(
                update={"id": "cam-locked", "url": "rtsp://viewer:s3cret@127.0.0.1:9/x",
                        "enabled": False}
            )  # fmt: skip
            await reg.create(locked, by="admin")
            worker_nc = await users.connect("svc-worker")
            mine = await CameraRegistry.open(worker_nc.jetstream(), create=False)
            urls = {r.camera.id: r.camera.url for r in await mine.cameras()}
            assert urls["cam-locked"] == locked.url

            # read-only registry: the worker's identity cannot change a camera
            with pytest.raises(Exception):  # noqa: B017, PT011 - refused by the server
                await worker_nc.jetstream(timeout=0.5).publish("$KV.gw_cameras.cam-a", b"{}")
            assert set(client_violations(users)) == {"svc-worker"}
            users.errors["svc-worker"].clear()
            refused = violations_in_log(server)
            assert len(refused) == 1, refused
            assert "$KV.gw_cameras.cam-a" in refused[0]
        finally:
            stop.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 60)
        try:
            # the lease was handed back at shutdown (a CAS delete by the worker identity)
            js = (await users.connect("admin")).jetstream()
            leases = await js.key_value(LEASES_BUCKET)
            held = [k for k in await _keys(leases) if (await _live(leases, k))]
            assert held == [], held
            workers = await js.key_value(WORKERS_BUCKET)
            assert [k for k in await _keys(workers) if await _live(workers, k)] == []
            assert violations_in_log(server)[1:] == []
            assert client_violations(users) == {}
        finally:
            await users.close()


async def _keys(kv: Any) -> list[str]:
    try:
        return list(await kv.keys())
    except Exception:  # nats.js.errors.NoKeysError: an empty bucket
        return []


async def _live(kv: Any, key: str) -> bool:
    try:
        entry = await kv.get(key)
    except Exception:  # deleted or purged
        return False
    return entry.operation not in ("DEL", "PURGE") and bool(entry.value)


async def test_the_notifier_runs_as_service_notifier(tmp_path: Path) -> None:
    """Threat: the notifier's host holds an unrestricted account. The notifier runs here as a
    ``service: notifier`` identity next to the worker and case service under theirs: it
    creates its buckets (gw_push_subs, gw_notify_sent) and its durable consumers on GW_ALERTS
    and GW_CASES, pushes a raised alert to the on-duty people of the alert's grid (who
    registered their phones themselves) and calls the webhook, then pushes a case dispatched
    by the command centre to the responder, and records every delivery, without a single
    permissions violation."""
    vapid = VapidKey.generate()
    async with LocalPushService() as push, WebhookReceiver(SECRET.encode()) as hook:
        extra = f"""
notify:
  public_base_url: https://gw.example.cn
  push_allow_endpoints: ["http://127.0.0.1"]
  webhooks:
    - {{name: hotline, url: "{hook.url}", secret: {SECRET}, events: [alert.raised],
        backoff_initial_s: 0.05, max_attempts: 3}}
"""
        cfg = parse_config(config_text(extra), "svc-identities.yaml")
        async with secured(cfg, tmp_path) as server:
            users = UserConnections(server)
            notifier: Notifier | None = None
            cases: CaseService | None = None
            try:
                worker = await users.connect("svc-worker")
                await asyncio.wait_for(ensure_alert_infra(worker.jetstream()), 10)
                cases = CaseService(await users.connect("svc-cases"), cfg)
                await asyncio.wait_for(cases.start(), 15)
                notifier = Notifier(await users.connect("svc-notifier"), cfg, vapid=vapid)
                await asyncio.wait_for(notifier.start(), 20)

                subs = {}
                for name in ("aux-li", "lead-wang", "aux-zhao"):
                    nc = await users.connect(name)
                    subs[name] = push.subscribe(vapid.application_server_key)
                    await register_subscription(nc.jetstream(), name, subs[name])
                sid = {n: s["endpoint"].rsplit("/", 1)[1] for n, s in subs.items()}
                await wait_until(lambda: len(notifier.subscriptions) == 3, within=10)

                alert = make_alert(GRID_A, "cam-a", 1, count=9)
                await AlertPublisher(worker).publish(alert)
                await wait_until(lambda: len(push.received) >= 2 and len(hook.received) >= 1)
                assert {p.subscription_id for p in push.received} == {
                    sid["aux-li"],
                    sid["lead-wang"],
                }
                assert hook.received[0].body["alert"]["id"] == alert.id

                # a case event: the command centre dispatches the case to aux-li
                await wait_until(lambda: len(cases.cases) == 1, within=10)
                op = await users.connect("op-zhang")
                centre = CaseClient(op, "op-zhang", grid=GRID_A)
                await centre.acknowledge(alert.id)
                await centre.dispatch(alert.id, "aux-li")
                await wait_until(
                    lambda: any(p.payload.get("kind") == "dispatched" for p in push.received)
                )
                last = [p for p in push.received if p.payload.get("kind") == "dispatched"]
                assert [p.subscription_id for p in last] == [sid["aux-li"]]
                await wait_until(lambda: notifier.stats.pushes >= 3)

                # every delivery was recorded (gw_notify_sent): a replay sends nothing again
                await notifier.deliver(notifier.plan_alert(alert))
                assert notifier.stats.skipped_duplicates == 3
                await asyncio.sleep(0.3)
                assert client_violations(users) == {}
                assert violations_in_log(server) == []
            finally:
                if notifier is not None:
                    await notifier.stop()
                if cases is not None:
                    await cases.stop()
                await users.close()


async def test_the_console_runs_as_service_console(tmp_path: Path) -> None:
    """Threat: the console's host holds an unrestricted account because the console only ever
    ran as one. The console runs here as a ``service: console`` identity beside the case and
    snapshot services and a worker's alert path under theirs: it starts (the streams it reads
    were made by their owners), an operator logs in and sees an alert, its case, its snapshot
    and acknowledges it, without a single permissions violation."""
    import aiohttp
    import cv2
    import numpy as np
    from aiohttp import web

    from gridwatch.alerts.snapshot_service import SnapshotService
    from gridwatch.alerts.snapshots import SnapshotStore, snapshot_name_for
    from gridwatch.console.app import create_app
    from gridwatch.console.cameras import CameraDirectory

    cfg = parse_config(
        config_text(f'cameras: [{{id: cam-a, grid: {GRID_A}, url: "rtsp://127.0.0.1:9/a"}}]\n'),
        "svc-identities.yaml",
    )
    async with secured(cfg, tmp_path) as server:
        users = UserConnections(server)
        cases: CaseService | None = None
        snaps: SnapshotService | None = None
        runner: web.AppRunner | None = None
        try:
            worker = await users.connect("svc-worker")
            infra = await asyncio.wait_for(ensure_alert_infra(worker.jetstream()), 10)
            cases = CaseService(await users.connect("svc-cases"), cfg)
            await asyncio.wait_for(cases.start(), 15)
            snaps = SnapshotService(await users.connect("svc-cases"), cfg)
            await snaps.start()

            console_nc = await users.connect("svc-console")
            app = create_app(cfg, console_nc, cameras=CameraDirectory(cfg, console_nc))
            runner = web.AppRunner(app, access_log=None)
            await asyncio.wait_for(runner.setup(), 30)
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

            alert = make_alert(GRID_A, "cam-a", 1, count=9)
            alert = alert.model_copy(update={"snapshot": snapshot_name_for(alert)})
            ok, buf = cv2.imencode(".jpg", np.full((96, 160, 3), 128, np.uint8))
            assert ok
            jpeg = buf.tobytes()
            publisher = AlertPublisher(worker, snapshots=SnapshotStore(infra.snapshots))
            await publisher.publish_with_snapshot(alert, jpeg)
            await wait_until(lambda: len(cases.cases) == 1, within=10)

            async with aiohttp.ClientSession(
                base_url=f"http://127.0.0.1:{port}",
                cookie_jar=aiohttp.CookieJar(unsafe=True),
                timeout=aiohttp.ClientTimeout(total=30),
            ) as http:
                login = {"name": "op-zhang", "password": password("op-zhang")}
                async with http.post("/login", json=login) as r:
                    assert r.status == 200, await r.text()
                    csrf = {"X-CSRF-Token": (await r.json())["csrf"]}
                async with http.get(f"/api/alerts/{GRID_A}/{alert.id}") as r:
                    assert r.status == 200, await r.text()
                    detail = await r.json()
                assert detail["messages"][0]["id"] == alert.id
                snap = detail["messages"][0]["snapshot"]
                async with http.get(f"/api/snapshots/{GRID_A}/{snap}") as r:
                    assert r.status == 200, await r.text()
                    assert (await r.read()).startswith(b"\xff\xd8")
                async with http.post(
                    f"/api/cases/{GRID_A}/{alert.id}/acknowledge", headers=csrf, json={}
                ) as r:
                    assert r.status == 200, await r.text()
                async with http.get("/api/cases") as r:
                    assert r.status == 200, await r.text()
            await asyncio.sleep(0.3)
            assert client_violations(users) == {}
            assert violations_in_log(server) == []
        finally:
            if runner is not None:
                await runner.cleanup()
            if snaps is not None:
                await snaps.stop()
            if cases is not None:
                await cases.stop()
            await users.close()

"""Case bundles under the real, restricted NATS identities (issue 14 item 4).

A bundle needs the audit stream and full pictures, which people may not read themselves: the
operator who exports cannot read GW_AUDIT or the snapshot store with their own login. The
console's service identity (``service: console``) assembles it, asking the snapshot service
(``service: [cases, snapshots]``) for the pictures as the person. This runs that path on a
nats-server started from ``gridwatch nats-config``'s output and expects the whole bundle with
no permissions violation from any service, the operator's own attempt at the audit stream
refused, and roles that may not see full pictures refused (and audited) by the exporter itself,
whatever the HTTP layer in front of it does.
"""

from __future__ import annotations

import asyncio
import io
import json
import zipfile
from pathlib import Path

import nats.errors
import nats.js.errors
import pytest
from nats.aio.client import Client as NATS

from gridwatch.alerts.publisher import AlertPublisher
from gridwatch.alerts.snapshot_service import SnapshotService
from gridwatch.alerts.snapshots import SnapshotStore
from gridwatch.alerts.streams import ensure_alert_infra
from gridwatch.auth.subjects import AUDIT_STREAM
from gridwatch.cases.bundle import verify_bundle
from gridwatch.cases.client import CaseClient
from gridwatch.cases.service import CaseService
from gridwatch.console.audit import AuditLog
from gridwatch.console.backend import ConsoleBackend
from gridwatch.console.case_export import CaseExporter, ExportError
from tests.plugins.dispatch import make_alert, tiny_jpeg, wait_until
from tests.security.test_nats_permissions import GRID_A, _server

pytestmark = pytest.mark.timeout(90)


async def read_audit(nc: NATS) -> bytes:
    sub = await nc.jetstream().subscribe(
        "gw.v1.audit.>", stream=AUDIT_STREAM, ordered_consumer=True
    )
    return bytes((await sub.next_msg(timeout=3)).data)


async def test_the_console_identity_exports_what_people_may_not_read(tmp_path: Path) -> None:
    async with _server(tmp_path) as (cfg, _, logins):
        users = {u.name: u for u in cfg.users}
        worker = await logins.connect("svc-worker")
        infra = await asyncio.wait_for(ensure_alert_infra(worker.jetstream()), 10)
        pub = AlertPublisher(worker, snapshots=SnapshotStore(infra.snapshots))
        svc = await logins.connect("svc-casesnaps")
        cases, snaps = CaseService(svc, cfg), SnapshotService(svc, cfg)
        await asyncio.wait_for(cases.start(), 15)
        await asyncio.wait_for(snaps.start(), 15)
        try:
            jpeg = tiny_jpeg(160, 120, 60)
            alert = make_alert(GRID_A, "cam-a", 1, snapshot=True)
            await pub.publish_with_snapshot(alert, jpeg)
            await wait_until(lambda: len(cases.cases) == 1, within=10)
            op = await logins.connect("op-zhang")
            await CaseClient(op, "op-zhang").acknowledge(alert.id)

            console = await logins.connect("svc-console")
            audit = AuditLog(console.jetstream(), timeout=5.0)
            exporter = CaseExporter(ConsoleBackend(console, timeout=5.0), audit, cfg)
            bundle = await exporter.export(users["op-zhang"], GRID_A, alert.id, client="test")
            assert verify_bundle(bundle.data).ok
            with zipfile.ZipFile(io.BytesIO(bundle.data)) as zf:
                assert zf.read(f"snapshots/cam-a/{alert.id}/raised-0.jpg") == jpeg
                history = json.loads(zf.read("history.json"))
                records = [a["record"] for a in json.loads(zf.read("audit.json"))]
            assert [(e["type"], e["actor"]) for e in history] == [
                ("opened", "system"),
                ("acknowledged", "op-zhang"),
            ]
            assert [(r["kind"], r["user"]) for r in records] == [("snapshot_full_view", "op-zhang")]

            # who may not see full pictures gets nothing, from the exporter itself
            for name in ("aux-li", "lead-wang", "admin"):
                with pytest.raises(ExportError) as refused:
                    await exporter.export(users[name], GRID_A, alert.id)
                assert refused.value.code == "forbidden"
            assert snaps.full_views == 1  # (the operator's export only)

            # the operator's own login cannot read the audit stream the bundle came from
            with pytest.raises((nats.errors.Error, nats.js.errors.Error, TimeoutError)):
                await asyncio.wait_for(read_audit(op), 10)
            await wait_until(lambda: bool(logins.violations["op-zhang"]), within=5)

            for user in ("svc-worker", "svc-casesnaps", "svc-console"):
                assert logins.violations[user] == [], (user, logins.violations[user])
            assert audit.written == 4  # the export, and the three refusals
        finally:
            await snaps.stop()
            await cases.stop()

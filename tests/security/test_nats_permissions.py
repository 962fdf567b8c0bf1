"""NATS least privilege, tried against a real nats-server started from ``gridwatch
nats-config``'s output.

Every cell of the permission matrix (docs/security.md, rendered by
:func:`gridwatch.auth.natsconf.render_matrix`) is tried as its identity: an allowed publish or
subscription must go through without a permissions violation, a denied one must be refused by
the server. Then the attacks of issue 13 end to end: rewriting the services' durable consumers,
reading other grids through the JetStream API, and the services working under their own,
restricted identities.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
from pathlib import Path
from typing import Any

import nats
import nats.errors
import pytest
from nats.aio.client import Client as NATS
from nats.js import api as js_api

from gridwatch.alerts.publisher import AlertPublisher
from gridwatch.alerts.snapshots import SnapshotStore
from gridwatch.alerts.streams import ensure_alert_infra
from gridwatch.alerts.subjects import ALERTS_STREAM, alert_filter
from gridwatch.alerts.tail import iter_alerts
from gridwatch.auth.natsconf import (
    CAPABILITIES,
    permission_matrix,
    render_matrix,
    write_nats_config,
)
from gridwatch.auth.subjects import (
    CASE_OPENER_DURABLE,
    CASES_STREAM,
    NOTIFIER_CASES_DURABLE,
    PUSH_SUBS_KV,
)
from gridwatch.bus.connect import connect as bus_connect
from gridwatch.cases.client import CaseClient, CaseRequestError
from gridwatch.cases.service import CaseService
from gridwatch.config import GridwatchConfig, parse_config
from gridwatch_devtools.nats_server import NatsServer
from tests.plugins.dispatch import _hash, make_alert, password, tiny_jpeg, wait_until

pytestmark = pytest.mark.timeout(60)

GRID_A, GRID_B = "grid-a", "grid-b"
SERVICES = ("worker", "cases", "snapshots", "notifier", "console", "gb28181")
USERS: dict[str, dict[str, str]] = {
    "op-zhang": {"role": "operator"},
    "aux-li": {"role": "responder", "grid": GRID_A},
    "lead-wang": {"role": "grid_leader", "grid": GRID_A},
    "lead-sun": {"role": "grid_leader", "grid": GRID_B},
    **{f"svc-{k}": {"role": "service", "service": k} for k in SERVICES},
    "svc-casesnaps": {"role": "service", "service": "[cases, snapshots]"},
    "admin": {"role": "admin"},
    "svc": {"role": "service"},
}
ROOT = Path(__file__).resolve().parents[2]


def _config() -> GridwatchConfig:
    lines = [
        f"grids: [{{id: {GRID_A}, name: A}}, {{id: {GRID_B}, name: B}}]",
        "nats: {user: svc}",
        "users:",
    ]
    for name, attrs in USERS.items():
        extra = "".join(f", {k}: {v}" for k, v in attrs.items())
        lines.append(f'  - {{name: {name}{extra}, password_hash: "{_hash(name)}"}}')
    return parse_config("\n".join(lines) + "\n", "security-test.yaml")


class Logins:
    """Connections as configured users; each records the server's permission violations."""

    def __init__(self, server: NatsServer) -> None:
        self.server = server
        self.clients: list[NATS] = []
        self.violations: dict[str, list[str]] = {}

    async def connect(self, user: str) -> NATS:
        seen = self.violations.setdefault(user, [])

        async def on_error(e: Exception) -> None:
            if "permissions violation" in str(e).lower():
                seen.append(str(e))

        nc = await asyncio.wait_for(
            bus_connect(
                self.server.url,
                user=user,
                password=password(user),
                name=f"sec-{user}",
                error_cb=on_error,
                connect_timeout=3.0,
                max_reconnect_attempts=0,
            ),
            10,
        )
        self.clients.append(nc)
        return nc

    async def close(self) -> None:
        for nc in reversed(self.clients):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(nc.close(), 5)


@contextlib.asynccontextmanager
async def _server(tmp_path: Path) -> Any:
    cfg = _config()
    conf = write_nats_config(cfg, tmp_path / "nats.conf")
    async with NatsServer(config_file=conf, store_dir=tmp_path / "store") as server:
        logins = Logins(server)
        try:
            yield cfg, server, logins
        finally:
            await logins.close()


def test_security_doc_holds_the_generated_matrix() -> None:
    """Attack: a reader trusts docs/security.md while the code says otherwise. The matrix in
    the document must be exactly what the permission generator renders today."""
    doc = (ROOT / "docs" / "security.md").read_text(encoding="utf-8")
    assert render_matrix() in doc, "regenerate: python -m gridwatch.auth.natsconf"


async def test_every_cell_of_the_matrix_on_a_real_server(tmp_path: Path) -> None:
    """Attack: every capability of the matrix (joining the services' queues, forging alerts,
    case events or audit records, purging GW_AUDIT, stream and consumer info, re-creating the
    services' durable consumers, reading other grids or other users' replies...) tried as every
    role and service identity. What the matrix allows must not be refused by nats-server; what
    it denies must be refused (a permissions violation)."""
    async with _server(tmp_path) as (_cfg, _srv, logins):
        from gridwatch.auth.natsconf import matrix_identities

        identities = matrix_identities(GRID_A)
        matrix = permission_matrix(identities, own=GRID_A, other=GRID_B, someone="lead-sun")
        mismatches: list[str] = []
        for col, ident in enumerate(identities):
            name = ident.user.name
            nc = await logins.connect(name)
            subjects: list[tuple[str, str, bool]] = []
            for cap, row in matrix:
                subject = cap.subject(name, ident.user.grid or GRID_A, GRID_B, "lead-sun")
                subjects.append((cap.action, subject, row[col]))
                if cap.action == "sub":
                    await nc.subscribe(subject)
                else:
                    await nc.publish(subject, b"")
            await nc.flush(timeout=2)
            await asyncio.sleep(0.15)  # violations arrive asynchronously
            await nc.flush(timeout=2)
            # nats.py lower-cases the server's message: 'permissions violation for publish to "x"'
            refused = " ".join(logins.violations[name]).lower()
            for action, subject, ok in subjects:
                kind = "subscription" if action == "sub" else "publish"
                was_refused = f'{kind} to "{subject.lower()}"' in refused
                if was_refused == ok:
                    what = "refused" if was_refused else "allowed"
                    mismatches.append(f"{ident.label}: {action} {subject} {what}")
            await nc.close()
        assert not mismatches, "\n".join(mismatches)
        assert len(CAPABILITIES) >= 40


async def test_a_responder_cannot_rewrite_the_case_opener(tmp_path: Path) -> None:
    """Attack (issue 13, 1): a grid A responder re-creates gw_case_opener (and the notifier's
    durables) with a filter of grid A only, by the named create subject, by the bare create with
    the name in the body, and by the legacy durable API. Every attempt must be refused, and the
    case service must go on opening cases for grid B."""
    async with _server(tmp_path) as (cfg, _s, logins):
        svc = await logins.connect("svc-casesnaps")
        worker = await logins.connect("svc-worker")
        await asyncio.wait_for(ensure_alert_infra(worker.jetstream()), 10)
        service = CaseService(svc, cfg)
        await asyncio.wait_for(service.start(), 15)
        try:
            li = await logins.connect("aux-li")
            js = li.jetstream(timeout=0.5)
            grid_a = alert_filter(GRID_A)
            attempts = [
                js_api.ConsumerConfig(name=CASE_OPENER_DURABLE, filter_subject=grid_a),
                js_api.ConsumerConfig(durable_name=CASE_OPENER_DURABLE, filter_subject=grid_a),
                js_api.ConsumerConfig(name="gw_notifier", filter_subject=grid_a),
            ]
            for cfg_ in attempts:
                with pytest.raises((nats.errors.TimeoutError, TimeoutError)):
                    await js.add_consumer(ALERTS_STREAM, cfg_)
            with pytest.raises((nats.errors.TimeoutError, TimeoutError)):
                await js.add_consumer(
                    CASES_STREAM,
                    js_api.ConsumerConfig(
                        name=NOTIFIER_CASES_DURABLE, filter_subject=f"gw.v1.cases.{GRID_A}.>"
                    ),
                )
            body = {
                "stream_name": ALERTS_STREAM,
                "config": {"name": CASE_OPENER_DURABLE, "filter_subject": grid_a},
            }
            with pytest.raises((nats.errors.TimeoutError, TimeoutError)):
                await li.request(
                    f"$JS.API.CONSUMER.CREATE.{ALERTS_STREAM}", json.dumps(body).encode(), 0.5
                )
            # the opener still reads every grid
            admin = await logins.connect("admin")
            info = await admin.jetstream().consumer_info(ALERTS_STREAM, CASE_OPENER_DURABLE)
            assert info.config.filter_subject in (None, "", "gw.v1.alerts.>")
            pub = AlertPublisher(worker)
            alert_b = make_alert(GRID_B, "cam-b", 1)
            await pub.publish(alert_b)
            await wait_until(lambda: f"{GRID_B}.{alert_b.id}" in service.cases, within=10)
        finally:
            await service.stop()


async def test_a_responder_learns_nothing_of_other_grids_from_the_jetstream_api(
    tmp_path: Path,
) -> None:
    """Attack (issue 13, 9): a responder asks STREAM.INFO of GW_ALERTS / GW_CASES with
    subjects_filter '>' (every grid's subjects), the info of the case opener (city-wide counts)
    and of KV_gw_push_subs (who subscribed). All must be refused, while the responder's own
    tail of their grid (named consumer, no stream info) still works, new and replayed."""
    async with _server(tmp_path) as (_cfg, _s, logins):
        worker = await logins.connect("svc-worker")
        infra = await asyncio.wait_for(ensure_alert_infra(worker.jetstream()), 10)
        pub = AlertPublisher(worker, snapshots=SnapshotStore(infra.snapshots))
        a1, b1 = make_alert(GRID_A, "cam-a", 1), make_alert(GRID_B, "cam-b", 2)
        await pub.publish(a1)
        await pub.publish(b1)
        li = await logins.connect("aux-li")
        for subject in (
            f"$JS.API.STREAM.INFO.{ALERTS_STREAM}",
            f"$JS.API.STREAM.INFO.{CASES_STREAM}",
            f"$JS.API.STREAM.INFO.KV_{PUSH_SUBS_KV}",
            f"$JS.API.CONSUMER.INFO.{ALERTS_STREAM}.{CASE_OPENER_DURABLE}",
            "$JS.API.INFO",
            f"$JS.API.CONSUMER.LIST.{ALERTS_STREAM}",
        ):
            with pytest.raises((nats.errors.TimeoutError, TimeoutError)):
                await li.request(subject, json.dumps({"subjects_filter": ">"}).encode(), 0.5)
        # what a responder is meant to do still works: replay, then live
        seen = []
        async for alert in iter_alerts(li, grid=GRID_A, since=dt.timedelta(days=1)):
            seen.append(alert.id)
            break
        assert seen == [a1.id]
        stop = asyncio.Event()
        got: list[str] = []

        async def follow() -> None:
            async for alert in iter_alerts(li, grid=GRID_A, stop=stop):
                got.append(alert.id)

        task = asyncio.create_task(follow())
        await asyncio.sleep(0.5)
        a2 = make_alert(GRID_A, "cam-a", 3)
        await pub.publish(make_alert(GRID_B, "cam-b", 4))
        await pub.publish(a2)
        await wait_until(lambda: got == [a2.id], within=10)
        stop.set()
        await asyncio.wait_for(task, 5)
        assert not [v for v in logins.violations["aux-li"] if "CONSUMER.CREATE" in v]


async def test_the_services_work_under_their_own_identities(tmp_path: Path) -> None:
    """Attack surface: a service account that can do everything (any worker host could purge
    the audit or rewrite the case opener). Each service runs here as its own restricted
    identity (worker, cases+snapshots, console): what it needs must work without a single
    permissions violation. The reserved grid _all lists cases but changes none."""
    async with _server(tmp_path) as (cfg, _s, logins):
        worker = await logins.connect("svc-worker")
        infra = await asyncio.wait_for(ensure_alert_infra(worker.jetstream()), 10)
        pub = AlertPublisher(worker, snapshots=SnapshotStore(infra.snapshots))
        svc = await logins.connect("svc-casesnaps")
        from gridwatch.alerts.snapshot_service import SnapshotService

        cases, snaps = CaseService(svc, cfg), SnapshotService(svc, cfg)
        await asyncio.wait_for(cases.start(), 15)
        await asyncio.wait_for(snaps.start(), 15)
        try:
            alert = make_alert(GRID_A, "cam-a", 1, snapshot=True)
            await pub.publish_with_snapshot(alert, tiny_jpeg())
            await wait_until(lambda: len(cases.cases) == 1, within=10)

            from gridwatch.console.backend import ConsoleBackend

            console = ConsoleBackend(await logins.connect("svc-console"), timeout=3.0)
            li = cfg.users[[u.name for u in cfg.users].index("aux-li")]
            assert [c.id for c in await console.list_cases(li, GRID_A, None)] == [alert.id]
            case = await console.get_case(li, GRID_A, alert.id)
            assert case is not None
            assert len(await console.history(GRID_A, alert.id)) >= 1
            assert [a.id for _, a in await console.alert_messages(GRID_A, alert.id, case)] == [
                alert.id
            ]
            data, variant = await console.snapshot(li, GRID_A, alert.snapshot, full=False)
            assert data[:2] == b"\xff\xd8"
            assert variant == "blurred"
            sub = {"endpoint": "https://push.example/x", "keys": {"p256dh": "k", "auth": "a"}}
            assert (await console.register_push(li, sub)).startswith("aux-li.")

            # an operator's change through _all goes to the case's grid; a raw one is refused
            op = await logins.connect("op-zhang")
            raw = CaseClient(op, "op-zhang")
            with pytest.raises(CaseRequestError) as e:
                await raw._request(raw_cmd("acknowledge", alert.id))
            assert e.value.code == "invalid"
            acked = await CaseClient(op, "op-zhang").acknowledge(alert.id)
            assert acked.acknowledged_by == "op-zhang"
            for user in ("svc-worker", "svc-casesnaps", "svc-console", "op-zhang"):
                assert logins.violations[user] == [], (user, logins.violations[user])
        finally:
            await snaps.stop()
            await cases.stop()


def raw_cmd(op: str, case_id: str) -> Any:
    from gridwatch.cases.model import CaseCommand

    return CaseCommand(op=op, case_id=case_id)  # type: ignore[arg-type]


async def test_a_kindless_service_is_flagged(tmp_path: Path) -> None:
    """Attack: a deployment keeps an unrestricted 'service' account on every worker host.
    ``gridwatch config check`` must warn about it (it stays valid, deprecated)."""
    from gridwatch.auth.natsconf import security_warnings

    warnings = security_warnings(_config())
    assert len(warnings) == 1
    assert "'svc'" in warnings[0]


_unused = nats  # imported for its error types


async def test_nats_config_with_tls_refuses_plain_clients(tmp_path: Path) -> None:
    """Attack: a passive listener on the network reads alerts and passwords off the wire. With
    certificates from `gridwatch nats-certs`, `gridwatch nats-config --tls-*` makes the client
    port TLS-only (a plain connection fails, a client trusting the CA works) and a cluster
    node's routes TLS with both ends verified; the real nats-server starts from that output."""
    from typer.testing import CliRunner

    from gridwatch.cli.main import app

    cfg_file = tmp_path / "gw.yaml"
    lines = [f"grids: [{{id: {GRID_A}, name: A}}]", "users:"]
    lines.append(
        f'  - {{name: aux-li, role: responder, grid: {GRID_A}, password_hash: "{_hash("aux-li")}"}}'
    )
    cfg_file.write_text("\n".join(lines) + "\n")
    runner = CliRunner()
    certs = tmp_path / "certs"
    r = runner.invoke(
        app, ["nats-certs", "--out", str(certs), "--host", "nats-1", "--san", "127.0.0.1"]
    )
    assert r.exit_code == 0, r.output
    assert (certs / "nats-1-key.pem").stat().st_mode & 0o077 == 0
    tls = [
        "--tls-cert", str(certs / "nats-1.pem"),
        "--tls-key", str(certs / "nats-1-key.pem"),
        "--tls-ca", str(certs / "ca.pem"),
    ]  # fmt: skip
    for name, extra in (
        ("single.conf", []),
        ("node.conf", ["--cluster-name", "gw", "--cluster-listen", "127.0.0.1:-1",
                       "--route", "nats-2:6222", "--route", "nats-3:6222"]),
    ):  # fmt: skip
        out = tmp_path / name
        r = runner.invoke(
            app, ["nats-config", "-c", str(cfg_file), "-o", str(out), "--listen", "127.0.0.1:-1",
                  *tls, *extra],
        )  # fmt: skip
        assert r.exit_code == 0, r.output
        conf = json.loads(out.read_text())
        assert conf["tls"]["ca_file"].endswith("ca.pem")
        if extra:
            assert conf["cluster"]["tls"]["verify"] is True
            assert conf["cluster"]["routes"] == ["tls://nats-2:6222", "tls://nats-3:6222"]
            # a lone node of a 3-node cluster never gets a JetStream quorum: parse it only
            import subprocess

            from gridwatch_devtools.nats_server import find_nats_server

            check = subprocess.run(  # noqa: ASYNC221 - a parse check, well under a second
                [str(find_nats_server()), "-c", str(out), "-t"], capture_output=True, timeout=10
            )
            assert check.returncode == 0, check.stderr
            continue
        async with NatsServer(config_file=out, store_dir=tmp_path / f"store-{name}") as server:
            url = server.url.replace("nats://", "tls://")
            with pytest.raises(Exception):  # noqa: B017, PT011 - plain TCP is refused, any error
                await asyncio.wait_for(
                    nats.connect(
                        server.url, user="aux-li", password=password("aux-li"),
                        max_reconnect_attempts=0, connect_timeout=1, allow_reconnect=False,
                        tls=None, tls_hostname=None,
                        error_cb=_quiet,
                    ),
                    5,
                )  # fmt: skip
            nc = await bus_connect(
                url, user="aux-li", password=password("aux-li"), name="tls-test",
                tls_ca_file=str(certs / "ca.pem"), max_reconnect_attempts=0, error_cb=_quiet,
            )  # fmt: skip
            assert nc.is_connected
            await nc.close()


async def _quiet(e: Exception) -> None:
    return None

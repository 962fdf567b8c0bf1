"""The bus layer's runtime pieces without a server: connect()'s options, the service base's
stop, the durable pull loop's ack/nak (the real-server paths are in the integration tests)."""

from __future__ import annotations

import asyncio
from typing import Any

import nats
import nats.errors
import nats.js.errors
import pytest

from gridwatch.bus import connect as bus_connect
from gridwatch.bus.consumers import pull_loop
from gridwatch.bus.service import Service


class _FakeNats:
    is_draining = False
    is_closed = False

    def __init__(self) -> None:
        self.flushed: list[float] = []
        self.subs: list[_FakeSub] = []

    async def flush(self, timeout: float) -> None:  # noqa: ASYNC109 - nats.py's signature
        self.flushed.append(timeout)

    async def subscribe(self, subject: str, *, queue: str, cb: Any) -> _FakeSub:
        sub = _FakeSub(subject)
        self.subs.append(sub)
        return sub


class _FakeSub:
    def __init__(self, subject: str) -> None:
        self.subject = subject
        self.unsubscribed = 0

    async def unsubscribe(self) -> None:
        self.unsubscribed += 1


async def _capture(monkeypatch: pytest.MonkeyPatch, **kwargs: Any) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    async def fake_connect(**opts: Any) -> _FakeNats:
        seen.update(opts)
        return _FakeNats()

    monkeypatch.setattr(nats, "connect", fake_connect)
    await bus_connect.connect("nats://a:4222, nats://b:4222", name="t", **kwargs)
    return seen


async def test_connect_logs_in_with_the_users_inbox_and_reconnects_forever(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("GW_NATS_USER", raising=False)
    monkeypatch.delenv("GW_NATS_PASSWORD", raising=False)
    monkeypatch.delenv("GW_NATS_TLS_CA", raising=False)
    opts = await _capture(monkeypatch, config_user="op-ann", config_password="pw")
    assert opts["servers"] == ["nats://a:4222", "nats://b:4222"]
    assert (opts["user"], opts["password"]) == ("op-ann", "pw")
    assert opts["inbox_prefix"] == "_INBOX.op-ann"
    assert opts["max_reconnect_attempts"] == -1
    assert opts["allow_reconnect"]
    assert "tls" not in opts


async def test_connect_env_beats_config_and_fail_fast_never_reconnects(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GW_NATS_USER", "gw-worker")
    monkeypatch.setenv("GW_NATS_PASSWORD", "secret")
    monkeypatch.delenv("GW_NATS_TLS_CA", raising=False)
    opts = await _capture(monkeypatch, config_user="op-ann", fail_fast=True)
    assert opts["user"] == "gw-worker"
    assert opts["inbox_prefix"] == "_INBOX.gw-worker"
    assert opts["max_reconnect_attempts"] == 0
    assert not opts["allow_reconnect"]
    assert "disconnected_cb" not in opts


async def test_connect_anonymous_has_no_login(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GW_NATS_USER", raising=False)
    monkeypatch.delenv("GW_NATS_PASSWORD", raising=False)
    opts = await _capture(monkeypatch, reconnects=2)
    assert "user" not in opts
    assert "inbox_prefix" not in opts
    assert opts["max_reconnect_attempts"] == 2


async def test_service_stop_is_idempotent_and_bounded() -> None:
    nc = _FakeNats()

    class Stubborn(Service):
        stop_timeout_s = 0.05

        async def _on_start(self) -> None:
            await self.subscribe("x.>", cb=self._cb)
            self.spawn(self._forever(), name="stubborn")

        async def _cb(self, msg: Any) -> None:
            return None

        async def _forever(self) -> None:
            while True:
                try:
                    await asyncio.sleep(10)
                except asyncio.CancelledError:
                    await asyncio.sleep(0.2)  # ignores the first cancel for a moment
                    return

    svc = Stubborn(nc, name="stubborn")  # type: ignore[arg-type]
    await svc.start()
    assert not svc.stopping
    await svc.stop()
    await svc.stop()
    assert svc.stopping
    assert nc.subs[0].unsubscribed == 1


class _Msg:
    def __init__(self, subject: str) -> None:
        self.subject = subject
        self.acked = 0
        self.naks: list[float] = []

    async def ack(self) -> None:
        self.acked += 1

    async def nak(self, delay: float) -> None:
        self.naks.append(delay)


async def test_pull_loop_acks_handled_naks_failed_and_resubscribes() -> None:
    good, bad = _Msg("a.good"), _Msg("a.bad")
    batches: list[Any] = [nats.js.errors.NotFoundError(), [good, bad]]
    subscribed = 0
    done = asyncio.Event()

    class _PSub:
        async def fetch(self, batch: int, timeout: float) -> list[_Msg]:  # noqa: ASYNC109
            if not batches:
                done.set()
                raise nats.errors.TimeoutError
            item = batches.pop(0)
            if isinstance(item, Exception):
                raise item
            return list(item)

    async def subscribe() -> _PSub:
        nonlocal subscribed
        subscribed += 1
        return _PSub()

    async def handle(msg: Any) -> None:
        if msg is bad:
            raise ValueError("not yet")

    await pull_loop(
        subscribe, handle, stopping=done.is_set, name="t", retry_wait=0.0, nak_delay=3.0
    )
    assert subscribed == 2  # the consumer was gone once
    assert (good.acked, good.naks) == (1, [])
    assert (bad.acked, bad.naks) == (0, [3.0])

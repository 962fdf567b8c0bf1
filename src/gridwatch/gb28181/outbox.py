"""Alarm delivery to the superior: each ``raised`` alert once, and none lost.

Alerts come from ``GW_ALERTS`` through the cascade's own *durable* pull consumer
(``gw_gb28181``, explicit acks, one message in flight so alarms keep their order). A message is
acked only after one of:

* the superior answered 2xx to the Alarm MESSAGE, and the alert id was recorded in KV
  ``gw_gb28181_sent`` (**sent**);
* the id was already there: a redelivery after a crash between the 200 and the ack, or a
  restart (**duplicate**: not sent again);
* it is older than ``max_alarm_age_s`` (capped by the record's lifetime, so an expired record
  can never let an alarm through twice) when it comes up (**expired**);
* the guard is off (ResetGuard from the superior): **gated**, not sent, also not later;
* not an alarm for the cascade: updated/cleared messages, cameras without a channel id
  (**skipped**);
* the superior refused the body outright (400/415/488: retrying will not help): **failed**.

Anything else (no registration, a timeout, the superior's process gone, 5xx) is retried in
place with capped back-off, the JetStream ack deadline pushed out each time; stopping the
service naks the message, which JetStream re-delivers to the next run. The Call-ID of an
alarm's MESSAGE is derived from the alert id, so a superior that got a copy whose 200 was lost
sees the retry as the same call.

The only window for a double is a crash between the superior's 200 and the KV record (a few
milliseconds); a crash anywhere else loses nothing and doubles nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js import api as js_api
from nats.js.kv import KeyValue

from gridwatch.alerts.tail import parse_alert
from gridwatch.bus.catalog import GB28181_SENT_TTL_S
from gridwatch.bus.consumers import pull_loop
from gridwatch.bus.names import ALERTS_STREAM, GB28181_DURABLE, alert_filter
from gridwatch.gb28181.sip import SipMessage
from gridwatch.gb28181.transport import SipTimeout, SipTransportError
from gridwatch.model import Alert, IncidentState

log = logging.getLogger(__name__)

PERMANENT_FAILURES = frozenset({400, 413, 415, 488})
"""Responses to an Alarm that retrying cannot change: the body itself is refused."""
NOT_REGISTERED = frozenset({401, 403, 404, 407})
"""Responses meaning the superior does not (any more) know us: re-register, then retry."""
ACK_WAIT_S = 30.0


@dataclass(slots=True)
class OutboxStats:
    sent: int = 0
    duplicates: int = 0
    expired: int = 0
    gated: int = 0
    skipped: int = 0
    failed: int = 0
    retries: int = 0
    pending: int = 0
    """Alerts in GW_ALERTS not yet done by the cascade (consumer pending + in flight)."""
    last_sent_at: float | None = None
    last_error: str = ""


def alarm_call_id(alert_id: str, host: str) -> str:
    """The Call-ID of an alert's Alarm MESSAGE: the same on every retry.

    >>> alarm_call_id("ab12", "10.0.0.5")
    'gw-alarm-ab12@10.0.0.5'
    """
    return f"gw-alarm-{alert_id}@{host}"


class AlarmOutbox:
    """See the module docstring.

    ``body_for(alert)``: the MANSCDP Alarm body, or None when the alert is not for the
    cascade. ``send(body, call_id)``: the superior's final response (raises
    :class:`SipTimeout`/:class:`SipTransportError`). ``ready``: set while registered.
    ``guard_on()``: the guard state. ``on_not_registered()``: the superior forgot us.
    """

    def __init__(
        self,
        js: JetStreamContext,
        sent_kv: KeyValue,
        *,
        body_for: Callable[[Alert], bytes | None],
        send: Callable[[bytes, str], Awaitable[SipMessage]],
        ready: asyncio.Event,
        guard_on: Callable[[], bool],
        on_not_registered: Callable[[], None],
        local_host: str,
        max_alarm_age_s: float,
        retry_base_s: float = 0.5,
        retry_cap_s: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.js = js
        self.sent_kv = sent_kv
        self.body_for = body_for
        self.send = send
        self.ready = ready
        self.guard_on = guard_on
        self.on_not_registered = on_not_registered
        self.local_host = local_host
        self.max_age_s = min(max_alarm_age_s, GB28181_SENT_TTL_S)
        self.retry_base_s = retry_base_s
        self.retry_cap_s = min(retry_cap_s, ACK_WAIT_S / 3)
        self.clock = clock
        self.stats = OutboxStats()
        self._stopping = False
        self._psub: Any = None

    async def subscribe(self) -> Any:
        """Create (or bind to) the durable consumer; waits for ``GW_ALERTS`` to exist."""
        cfg = js_api.ConsumerConfig(
            durable_name=GB28181_DURABLE,
            ack_policy=js_api.AckPolicy.EXPLICIT,
            deliver_policy=js_api.DeliverPolicy.NEW,
            ack_wait=ACK_WAIT_S,
            max_ack_pending=1,
            filter_subject=alert_filter(),
        )
        for attempt in range(120):
            try:
                self._psub = await self.js.pull_subscribe(
                    alert_filter(), durable=GB28181_DURABLE, stream=ALERTS_STREAM, config=cfg
                )
                return self._psub
            except nats.js.errors.NotFoundError:
                if attempt == 0:
                    log.info("stream %s does not exist yet; waiting", ALERTS_STREAM)
                await asyncio.sleep(0.5)
        raise RuntimeError(f"stream {ALERTS_STREAM} never appeared")

    async def run(self) -> None:
        """Consume until :meth:`stop` (or cancellation)."""
        psub = self._psub or await self.subscribe()

        async def again() -> Any:
            return psub

        await pull_loop(
            again, self._handle, stopping=lambda: self._stopping, name="gb28181", batch=1, ack=False
        )

    def stop(self) -> None:
        self._stopping = True

    async def unsubscribe(self) -> None:
        psub, self._psub = self._psub, None
        if psub is not None:
            with contextlib.suppress(Exception):
                await psub.unsubscribe()

    async def refresh_pending(self) -> None:
        """Update ``stats.pending`` from the consumer's info."""
        if self._psub is None:
            return
        with contextlib.suppress(Exception):
            info = await self._psub.consumer_info()
            self.stats.pending = int(info.num_pending or 0) + int(info.num_ack_pending or 0)

    # -- one message ---------------------------------------------------------------------------

    async def _handle(self, msg: Msg) -> None:
        try:
            done = await self._deliver(msg)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.shield(msg.nak())
            raise
        if done:
            with contextlib.suppress(Exception):
                await msg.ack_sync(timeout=5)
        else:
            with contextlib.suppress(Exception):
                await msg.nak()

    async def _already_sent(self, alert_id: str) -> bool:
        try:
            await self.sent_kv.get(alert_id)
            return True
        except nats.js.errors.KeyNotFoundError:
            return False

    def _too_old(self, alert: Alert) -> bool:
        return self.clock() - alert.observed_at.timestamp() > self.max_age_s

    async def _deliver(self, msg: Msg) -> bool:
        """True: done with the message (ack); False: stopping before it was done (nak)."""
        alert = parse_alert(msg)
        if alert is None or alert.state is not IncidentState.RAISED:
            self.stats.skipped += alert is not None
            return True
        body = self.body_for(alert)
        if body is None:
            self.stats.skipped += 1
            return True
        if await self._already_sent(alert.id):
            self.stats.duplicates += 1
            log.info("alarm %s was sent before: not again", alert.id)
            return True
        failures = 0
        while not self._stopping:
            if self._too_old(alert):
                self.stats.expired += 1
                log.warning("alarm %s expired before the superior took it", alert.id)
                return True
            if not self.guard_on():
                self.stats.gated += 1
                log.info("guard off: alarm %s not sent", alert.id)
                return True
            if not self.ready.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.ready.wait(), self.retry_cap_s)
                with contextlib.suppress(Exception):
                    await msg.in_progress()
                continue
            outcome = await self._send_once(alert, body)
            if outcome is not None:
                return outcome
            failures += 1
            self.stats.retries += 1
            delay = min(self.retry_cap_s, self.retry_base_s * 2 ** min(failures - 1, 10))
            with contextlib.suppress(Exception):
                await msg.in_progress()
            await asyncio.sleep(delay)
        return False

    async def _send_once(self, alert: Alert, body: bytes) -> bool | None:
        """One attempt: True done (sent or refused for good), None try again."""
        try:
            resp = await self.send(body, alarm_call_id(alert.id, self.local_host))
        except (SipTimeout, SipTransportError) as e:
            self.stats.last_error = f"{type(e).__name__}: {e}"
            log.info("alarm %s not delivered yet: %s", alert.id, e)
            return None
        status = resp.status or 0
        if 200 <= status < 300:
            self.stats.sent += 1
            self.stats.last_sent_at = self.clock()
            record = f"{alert.message_id}|{dt.datetime.now(dt.UTC).isoformat()}".encode()
            try:
                await self.sent_kv.put(alert.id, record)
            except (nats.errors.Error, nats.js.errors.Error) as e:
                log.warning("record of alarm %s not stored: %s", alert.id, e)
            log.info("alarm %s (%s, camera %s) sent", alert.id, alert.type, alert.camera_id)
            return True
        self.stats.last_error = f"{status} {resp.reason}"
        if status in PERMANENT_FAILURES:
            self.stats.failed += 1
            log.error("superior refused alarm %s: %s %s", alert.id, status, resp.reason)
            return True
        if status in NOT_REGISTERED:
            self.on_not_registered()
        log.info("alarm %s answered %s %s; retrying", alert.id, status, resp.reason)
        return None

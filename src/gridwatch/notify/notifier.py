"""The notifier: alerts and case events in, Web Pushes and signed webhooks out, each once.

It reads GW_ALERTS and GW_CASES through *durable* pull consumers with explicit acks, so a
restart resumes where it stopped and a crash re-delivers what was not finished. Each delivery
(one message to one subscription of one person, or to one webhook) has an idempotency key,
``sha256(<message id>|<channel>|<recipient>)``, recorded in KV bucket ``gw_notify_sent`` once it
succeeded and checked before sending: a re-delivered message does not push twice. Beyond that,
the push carries ``Topic`` (the push service replaces an undelivered push of the same alert)
and the payload's ``tag`` is the alert id (the phone replaces rather than stacks the
notification), and webhooks carry the key as ``X-Gridwatch-Delivery``: the few milliseconds
between a send and its record are covered at the receiving end too.

Who gets what:

* alert **raised** in grid G: a push to every on-duty user of G whose role is in
  ``notify.notify_roles`` (``on_duty`` and, if set, inside their ``duty_schedule``);
* case **escalated** to ``grid_leader``: the grid's leaders (on duty or not: it is an
  escalation); to ``command_centre``: the operators;
* case **dispatched**: the responder sent;
* **webhooks**: every event they list in ``events`` (``alert.raised``, ``case.escalated``, ...),
  for the grids they list.

The push links to the console and to the snapshot, blurred unless the recipient's role is in
``notify.full_snapshot_roles``. The payload stays far below the 4 KB Web Push limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import api as js_api
from nats.js.kv import KeyValue
from pydantic import ValidationError

from gridwatch.alerts.subjects import ALERTS_STREAM, alert_filter
from gridwatch.alerts.tail import parse_alert
from gridwatch.auth.models import UserConfig
from gridwatch.auth.subjects import (
    CASES_STREAM,
    NOTIFIER_CASES_DURABLE,
    NOTIFIER_DURABLE,
    case_filter,
)
from gridwatch.bus.consumers import pull_loop
from gridwatch.bus.infra import NOTIFY_SENT_TTL_S, ensure_kv, ensure_push_bucket, notify_sent_kv
from gridwatch.cases.model import CaseEvent, CaseEventType
from gridwatch.config import GridwatchConfig
from gridwatch.model import Alert, IncidentState
from gridwatch.notify.webhook import post_webhook
from gridwatch.notify.webpush import PushResult, VapidKey, WebPushSender, push_session
from gridwatch.rules.schedule import Schedule

log = logging.getLogger(__name__)

SENT_TTL_S = NOTIFY_SENT_TTL_S
MAX_DELIVER = 4


@dataclass(frozen=True, slots=True)
class Delivery:
    key: str
    channel: str
    """``push`` or ``webhook:<name>``."""
    recipient: str
    """User name (push) or webhook name."""
    payload: dict[str, Any]
    event: str
    subscription_key: str | None = None
    subscription: dict[str, Any] | None = None


@dataclass(slots=True)
class NotifierStats:
    pushes: int = 0
    webhooks: int = 0
    skipped_duplicates: int = 0
    failures: int = 0
    subscriptions_removed: int = 0
    messages: int = 0


def delivery_key(message_id: str, channel: str, recipient: str) -> str:
    return hashlib.sha256(f"{message_id}|{channel}|{recipient}".encode()).hexdigest()[:40]


class Notifier:
    """See the module docstring. ``vapid`` None disables Web Push (webhooks still go)."""

    def __init__(
        self,
        nc: NATS,
        config: GridwatchConfig,
        *,
        vapid: VapidKey | None = None,
        session: aiohttp.ClientSession | None = None,
        clock: Callable[[], float] = time.time,
        concurrency: int = 64,
    ) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.config = config
        self.vapid = vapid
        self.clock = clock
        self._own_session = session is None
        self._session = session
        self._sem = asyncio.Semaphore(concurrency)
        self.stats = NotifierStats()
        self.subscriptions: dict[str, dict[str, dict[str, Any]]] = {}
        """user -> subscription key -> subscription."""
        self._subs_kv: KeyValue | None = None
        self._sent_kv: KeyValue | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._inflight: set[asyncio.Task[None]] = set()
        self._push: WebPushSender | None = None
        self._push_session: aiohttp.ClientSession | None = None
        self._schedules = {
            name: Schedule.from_config(windows, config.tzinfo())
            for name, windows in config.schedules.items()
        }
        self._subs_loaded = asyncio.Event()
        self._psubs: list[Any] = []
        self._stopping = False

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self._subs_kv = await ensure_push_bucket(
            self.js, ttl_s=self.config.notify.push_subscription_ttl_days * 86400
        )
        self._sent_kv = await ensure_kv(self.js, notify_sent_kv())
        if self._session is None:
            self._session = aiohttp.ClientSession()
        if self.vapid is not None:
            n = self.config.notify
            # pushes go to endpoints browsers chose: their own session, which connects to
            # public addresses only (webhooks, configured by the admin, use self._session)
            self._push_session = push_session(n.push_allow_endpoints)
            self._push = WebPushSender(
                self.vapid,
                subject=n.vapid_subject,
                session=self._push_session,
                timeout_s=n.push_timeout_s,
                max_attempts=n.push_max_attempts,
                allow_endpoints=n.push_allow_endpoints,
            )
        self._tasks.append(asyncio.create_task(self._watch_subscriptions(), name="push-subs"))
        await asyncio.wait_for(self._subs_loaded.wait(), 10)
        # consumers exist before start() returns: nothing published afterwards is missed
        alerts = await self._consumer(ALERTS_STREAM, NOTIFIER_DURABLE, alert_filter())
        cases = await self._consumer(CASES_STREAM, NOTIFIER_CASES_DURABLE, case_filter())
        self._psubs = [alerts, cases]
        self._tasks.append(asyncio.create_task(self._consume(alerts, self._on_alert_msg)))
        self._tasks.append(asyncio.create_task(self._consume(cases, self._on_case_msg)))

    async def stop(self) -> None:
        self._stopping = True
        for t in self._tasks:
            t.cancel()
        if self._tasks:
            # bounded: a stop must never hang on a task stuck in a client library call
            _, stuck = await asyncio.wait(self._tasks, timeout=5.0)
            for t in stuck:
                log.warning("notifier task %s did not stop in time", t.get_name())
        self._tasks = []
        # drop our interest, so the server does not hand the next message to a pull request
        # of this (stopped) notifier that is still waiting out its expiry
        for psub in self._psubs:
            with contextlib.suppress(Exception):
                await psub.unsubscribe()
        self._psubs = []
        if self._inflight:
            await asyncio.wait(self._inflight, timeout=10)
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None
        if self._push_session is not None:
            await self._push_session.close()
            self._push_session = None

    async def __aenter__(self) -> Notifier:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- subscriptions -----------------------------------------------------------------------

    async def _watch_subscriptions(self) -> None:
        assert self._subs_kv is not None
        while True:
            try:
                watcher = await self._subs_kv.watchall()
                fresh: dict[str, dict[str, dict[str, Any]]] = {}
                initial = True
                async for entry in watcher:
                    if entry is None:  # end of the initial values
                        self.subscriptions, initial = fresh, False
                        self._subs_loaded.set()
                        continue
                    target = fresh if initial else self.subscriptions
                    user = entry.key.split(".", 1)[0]
                    if entry.operation in ("DEL", "PURGE") or entry.value is None:
                        target.get(user, {}).pop(entry.key, None)
                        continue
                    with contextlib.suppress(ValueError):
                        target.setdefault(user, {})[entry.key] = json.loads(entry.value)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.info("push subscription watch restarts (%s)", e)
                await asyncio.sleep(1.0)

    def recipients(self, grid: str, roles: list[str], *, on_duty_only: bool) -> list[UserConfig]:
        now = self.clock()
        out = []
        for u in self.config.users:
            if u.role not in roles:
                continue
            if u.grid_scoped and u.grid != grid:
                continue
            if on_duty_only and not self.on_duty(u, now):
                continue
            out.append(u)
        return out

    def on_duty(self, user: UserConfig, now: float) -> bool:
        if not user.on_duty:
            return False
        if user.duty_schedule is None:
            return True
        sched = self._schedules.get(user.duty_schedule)
        return sched is None or sched.is_active(now)

    # -- consuming -----------------------------------------------------------------------------

    async def _consumer(self, stream: str, durable: str, subject: str) -> Any:
        cfg = js_api.ConsumerConfig(
            durable_name=durable,
            ack_policy=js_api.AckPolicy.EXPLICIT,
            deliver_policy=js_api.DeliverPolicy.NEW,
            ack_wait=60.0,
            max_deliver=MAX_DELIVER,
            max_ack_pending=1024,
            filter_subject=subject,
        )
        for attempt in range(60):
            try:
                return await self.js.pull_subscribe(
                    subject, durable=durable, stream=stream, config=cfg
                )
            except nats.js.errors.NotFoundError:
                if attempt == 0:
                    log.info("stream %s does not exist yet; waiting", stream)
                await asyncio.sleep(0.5)
        raise RuntimeError(f"stream {stream} never appeared")

    async def _consume(self, psub: Any, handler: Callable[[Msg], Awaitable[None]]) -> None:
        async def subscribe() -> Any:
            return psub  # made in start(): nothing published after start() is missed

        async def dispatch(msg: Msg) -> None:  # acked by _handle, in a task of its own
            await self._sem.acquire()
            task = asyncio.create_task(self._handle(msg, handler))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)

        await pull_loop(
            subscribe,
            dispatch,
            stopping=lambda: self._stopping,
            name="notifier",
            batch=1,
            ack=False,
        )

    async def _handle(self, msg: Msg, handler: Callable[[Msg], Awaitable[None]]) -> None:
        try:
            self.stats.messages += 1
            await handler(msg)
            await msg.ack()
        except _Retry as e:
            delivered = msg.metadata.num_delivered or 1
            if delivered >= MAX_DELIVER:
                log.error("giving up on %s after %d deliveries: %s", msg.subject, delivered, e)
                with contextlib.suppress(Exception):
                    await msg.ack()
            else:
                with contextlib.suppress(Exception):
                    await msg.nak(delay=2.0 * delivered)
        except Exception:
            log.exception("notifying %s failed", msg.subject)
            with contextlib.suppress(Exception):
                await msg.nak(delay=2.0)
        finally:
            self._sem.release()

    # -- planning --------------------------------------------------------------------------------

    def _links(self, grid: str, alert_id: str, snapshot: str | None, role: str) -> dict[str, str]:
        base = self.config.notify.public_base_url.rstrip("/")
        out = {"url": f"{base}/m/cases/{grid}/{alert_id}"}
        if snapshot:
            variant = "full" if role in self.config.notify.full_snapshot_roles else "blurred"
            out["snapshot_url"] = (
                f"{base}/m/snapshots/{grid}/{quote(snapshot, safe='')}?variant={variant}"
            )
        return out

    def _grid_name(self, grid: str) -> str:
        try:
            return self.config.grid(grid).name or grid
        except KeyError:
            return grid

    def _pushes(
        self,
        message_id: str,
        users: list[UserConfig],
        event: str,
        build: Callable[[UserConfig], dict[str, Any]],
    ) -> list[Delivery]:
        out = []
        for u in users:
            for skey, sub in self.subscriptions.get(u.name, {}).items():
                out.append(
                    Delivery(
                        key=delivery_key(message_id, "push", skey),
                        channel="push",
                        recipient=u.name,
                        payload=build(u),
                        event=event,
                        subscription_key=skey,
                        subscription=sub,
                    )
                )
        return out

    def _webhooks(
        self, message_id: str, grid: str, event: str, body: dict[str, Any]
    ) -> list[Delivery]:
        return [
            Delivery(
                key=delivery_key(message_id, f"webhook:{h.name}", h.name),
                channel=f"webhook:{h.name}",
                recipient=h.name,
                payload={
                    "event": event,
                    "delivery": delivery_key(message_id, h.name, h.name),
                    **body,
                },
                event=event,
            )
            for h in self.config.notify.webhooks
            if event in h.events and (h.grids is None or grid in h.grids)
        ]

    def plan_alert(self, alert: Alert) -> list[Delivery]:
        event = f"alert.{alert.state.value}"
        out = self._webhooks(
            alert.message_id, alert.grid_id, event, {"alert": alert.model_dump(mode="json")}
        )
        if alert.state is not IncidentState.RAISED:
            return out

        def build(u: UserConfig) -> dict[str, Any]:
            return {
                "v": 1,
                "kind": "alert",
                "tag": alert.id,
                "title": f"{alert.type}: {alert.camera_name or alert.camera_id}",
                "body": f"{alert.count} people · {self._grid_name(alert.grid_id)}",
                "alert_id": alert.id,
                "grid": alert.grid_id,
                "type": alert.type,
                "severity": alert.severity,
                "camera": alert.camera_name,
                "camera_id": alert.camera_id,
                "count": alert.count,
                "observed_at": alert.observed_at.isoformat(),
                **self._links(alert.grid_id, alert.id, alert.snapshot, u.role),
            }

        users = self.recipients(
            alert.grid_id, list(self.config.notify.notify_roles), on_duty_only=True
        )
        return out + self._pushes(alert.message_id, users, event, build)

    def plan_case(self, ev: CaseEvent, case_info: dict[str, Any] | None = None) -> list[Delivery]:
        event = f"case.{ev.type.value}"
        out = self._webhooks(
            ev.message_id, ev.grid_id, event, {"case_event": ev.model_dump(mode="json")}
        )
        users: list[UserConfig] = []
        if ev.type is CaseEventType.ESCALATED:
            if ev.target == "grid_leader":
                users = self.recipients(ev.grid_id, ["grid_leader"], on_duty_only=False)
            elif ev.target == "command_centre":
                users = self.recipients(ev.grid_id, ["operator"], on_duty_only=False)
            title = f"ESCALATED (level {ev.level}): {ev.deadline} deadline missed"
        elif ev.type is CaseEventType.DISPATCHED and ev.responder:
            users = [u for u in self.config.users if u.name == ev.responder]
            title = f"Dispatched to you by {ev.actor}"
        else:
            return out

        def build(u: UserConfig) -> dict[str, Any]:
            return {
                "v": 1,
                "kind": ev.type.value,
                "tag": ev.case_id,
                "title": title,
                "body": f"case {ev.case_id[:8]} · {self._grid_name(ev.grid_id)}",
                "alert_id": ev.case_id,
                "grid": ev.grid_id,
                **self._links(ev.grid_id, ev.case_id, None, u.role),
            }

        return out + self._pushes(ev.message_id, users, event, build)

    # -- sending ---------------------------------------------------------------------------------

    async def _on_alert_msg(self, msg: Msg) -> None:
        alert = parse_alert(msg)
        if alert is not None:
            await self.deliver(self.plan_alert(alert), urgent=alert.severity == "critical")

    async def _on_case_msg(self, msg: Msg) -> None:
        try:
            ev = CaseEvent.model_validate_json(msg.data)
        except ValidationError as e:
            log.warning("skipping unparseable case event on %s: %s", msg.subject, e)
            return
        await self.deliver(self.plan_case(ev), urgent=ev.type is CaseEventType.ESCALATED)

    async def _already_sent(self, key: str) -> bool:
        assert self._sent_kv is not None
        try:
            await self._sent_kv.get(key)
            return True
        except nats.js.errors.KeyNotFoundError:
            return False

    async def deliver(self, deliveries: list[Delivery], *, urgent: bool = False) -> None:
        """Send what has not been sent yet; raise :class:`_Retry` if something should be
        tried again later (the message is then re-delivered)."""
        results = await asyncio.gather(*(self._one(d, urgent) for d in deliveries))
        failed = [d for d, ok in zip(deliveries, results, strict=True) if not ok]
        if failed:
            raise _Retry(f"{len(failed)} of {len(deliveries)} deliveries failed")

    async def _one(self, d: Delivery, urgent: bool) -> bool:
        assert self._sent_kv is not None
        assert self._session is not None
        if await self._already_sent(d.key):
            self.stats.skipped_duplicates += 1
            log.debug("%s to %s already sent", d.event, d.recipient)
            return True
        body = json.dumps(d.payload, ensure_ascii=False, separators=(",", ":")).encode()
        if d.channel == "push":
            if self._push is None or d.subscription is None:
                return True
            outcome = await self._push.send(
                d.subscription,
                body,
                ttl_s=self.config.notify.push_ttl_s,
                topic=str(d.payload.get("tag", ""))[:32] or None,
                urgency="high" if urgent else "normal",
            )
            if outcome.result is PushResult.GONE:
                await self._remove_subscription(d)
                return True
            if outcome.result is PushResult.FAILED:
                self.stats.failures += 1
                log.warning(
                    "push %s to %s failed: %s %s",
                    d.event,
                    d.recipient,
                    outcome.status,
                    outcome.detail[:100],
                )
                # a 4xx other than 429 will not get better by retrying
                return outcome.status is not None and outcome.status < 500 and outcome.status != 429
            self.stats.pushes += 1
        else:
            hook = next(h for h in self.config.notify.webhooks if f"webhook:{h.name}" == d.channel)
            result = await post_webhook(self._session, hook, d.event, body, d.key)
            if not result.ok:
                self.stats.failures += 1
                return False
            self.stats.webhooks += 1
        try:
            await self._sent_kv.put(d.key, f"{d.event}|{d.recipient}|{self.clock():.3f}".encode())
        except (nats.errors.Error, nats.js.errors.Error) as e:
            log.warning("idempotency record of %s not stored: %s", d.key, e)
        return True

    async def _remove_subscription(self, d: Delivery) -> None:
        assert self._subs_kv is not None
        assert d.subscription_key is not None
        self.stats.subscriptions_removed += 1
        log.info("push subscription %s of %s is gone: removing it", d.subscription_key, d.recipient)
        self.subscriptions.get(d.recipient, {}).pop(d.subscription_key, None)
        with contextlib.suppress(Exception):
            await self._subs_kv.delete(d.subscription_key)


class _Retry(Exception):
    """Some deliveries of a message failed transiently: have JetStream re-deliver it."""

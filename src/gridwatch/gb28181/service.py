"""``gridwatch gb28181 serve``: gridwatch as a lower platform of a GB/T 28181 superior.

One process wires the parts: the SIP endpoint (:mod:`.transport`), the registration with its
keepalives (:mod:`.registration`), the alarm outbox on ``GW_ALERTS`` (:mod:`.outbox`), and the
answers to what the superior asks:

* **Catalog**: the config's cameras that have a channel id, as channels (type 132) inside
  their grid's virtual organisation (216) under the grid's business group (215), status ON/OFF
  from the workers' camera health (``gw.v1.health.<camera>``; no report for
  ``HEALTH_STALE_S``: OFF), paged by ``catalog_page_size`` with ``SumNum`` the total;
* **DeviceInfo**, **DeviceStatus** (guard and alarm duty status), **OPTIONS**;
* **DeviceControl** ``SetGuard``/``ResetGuard`` (stored in KV ``gw_gb28181``, so the guard
  survives restarts; off: alarms are counted as gated and not sent) and ``ResetAlarm``.

Requests are accepted only from the superior's id (From user); anything else gets 403. Each
query is answered 200 at once and then with its Response MESSAGE(s), as the standard asks.

Every few seconds the service writes its :class:`~.metrics.CascadeStatus` to KV ``gw_gb28181``
(``gridwatch status`` reads it) and serves the same figures as Prometheus metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.kv import KeyValue

from gridwatch.bus.catalog import gb28181_kv, gb28181_sent_kv
from gridwatch.bus.infra import ensure_kv
from gridwatch.bus.messages import CameraHealth
from gridwatch.bus.names import HEALTH_PREFIX
from gridwatch.bus.service import Service
from gridwatch.config import GridwatchConfig
from gridwatch.gb28181 import manscdp
from gridwatch.gb28181.alarm_map import alarm_code, describe_zh, local_time, priority
from gridwatch.gb28181.metrics import (
    GUARD_KEY,
    STATUS_KEY,
    CascadeStatus,
    MetricsServer,
    read_status,
)
from gridwatch.gb28181.outbox import AlarmOutbox
from gridwatch.gb28181.registration import MANSCDP_TYPE, Identity, Registration
from gridwatch.gb28181.settings import Gb28181Settings
from gridwatch.gb28181.sip import SipMessage, build_response, header_uri
from gridwatch.gb28181.transport import SipEndpoint, SipTimeout, SipTransportError
from gridwatch.model import Alert

log = logging.getLogger(__name__)

HEALTH_STALE_S = 120.0
STATUS_EVERY_S = 5.0
ALLOW = "REGISTER, MESSAGE, OPTIONS"


@dataclass(frozen=True, slots=True)
class Channel:
    """A camera as the superior sees it."""

    camera_id: str
    channel_id: str
    name: str
    grid: str
    lon: float | None
    lat: float | None
    zones: dict[str, str]
    """Zone id → name (for the Chinese description)."""


def route_address(host: str, port: int) -> str:
    """The local address of the interface that routes to ``host`` (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect((host, port))
            return str(s.getsockname()[0])
        except OSError:
            return "127.0.0.1"


def channels_of(config: GridwatchConfig, settings: Gb28181Settings) -> list[Channel]:
    """The cameras that take part in the cascade (those with a channel id)."""
    out = []
    for cam in config.cameras:
        cid = settings.channel_id(cam.id, getattr(cam, "gb28181_id", None))
        if cid is None:
            continue
        zones = {z.id: (getattr(z, "name", "") or z.id) for z in cam.zones}
        out.append(Channel(cam.id, cid, cam.name or cam.id, cam.grid, cam.lon, cam.lat, zones))
    return out


async def cascade_view(config: GridwatchConfig, nc: NATS, camera_ids: list[str]) -> dict[str, Any]:
    """What the console's cameras page shows: the cascade's last report (None: it never ran)
    and the channel id of each of ``camera_ids`` that is in the cascade."""
    settings = config.gb28181
    wanted = set(camera_ids)
    channels = (
        {c.camera_id: c.channel_id for c in channels_of(config, settings) if c.camera_id in wanted}
        if settings is not None
        else {}
    )
    try:
        report = await asyncio.wait_for(read_status(nc.jetstream(timeout=2.0)), 3.0)
    except (nats.errors.Error, nats.js.errors.Error, TimeoutError) as e:
        return {"status": None, "error": type(e).__name__, "channels": channels}
    return {
        "status": None if report is None else report.model_dump(mode="json"),
        "channels": channels,
    }


class Gb28181Service(Service):
    """See the module docstring. ``timeout_s``, ``backoff_base_s`` and ``retry_base_s`` are
    for tests (SIP Timer F, registration and alarm back-off)."""

    def __init__(
        self,
        nc: NATS,
        config: GridwatchConfig,
        *,
        settings: Gb28181Settings | None = None,
        timeout_s: float | None = None,
        backoff_base_s: float = 1.0,
        backoff_cap_s: float = 60.0,
        retry_base_s: float = 0.5,
        metrics_host: str | None = None,
        metrics_port: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(nc, name="gb28181")
        s = settings or getattr(config, "gb28181", None)
        if s is None:
            raise ValueError("the config has no gb28181: section")
        self.settings: Gb28181Settings = s
        self.config = config
        self.clock = clock
        self.js = nc.jetstream()
        sup = s.superior
        self.local_host = s.local_host or route_address(sup.host, sup.port)
        self.channels = channels_of(config, s)
        self._by_camera = {c.camera_id: c for c in self.channels}
        self.time_zone = s.effective_time_zone(config.timezone)
        self.alarm_table = s.alarm_table()
        self.endpoint = SipEndpoint(
            transport=sup.transport,
            remote=(sup.host, sup.port),
            handler=self.handle,
            local_host=s.local_host or "0.0.0.0",
            local_port=s.local_port,
            timeout_s=timeout_s,
        )
        self.registration = Registration(
            self.endpoint,
            Identity(
                device_id=s.device_id,
                password=s.resolved_password(),
                superior_id=sup.id,
                superior_domain=sup.domain,
                transport=sup.transport,
                local_host=self.local_host,
                version=s.version,
            ),
            expires_s=s.expires_s,
            keepalive_s=s.keepalive_s,
            keepalive_timeout_count=s.keepalive_timeout_count,
            backoff_base_s=backoff_base_s,
            backoff_cap_s=backoff_cap_s,
            keepalive_body=lambda sn: manscdp.keepalive(sn, s.device_id),
            clock=clock,
        )
        self.health: dict[str, tuple[bool, float]] = {}
        self.guard_on = True
        self.active_alarms: dict[str, float] = {}
        self.queries: dict[str, int] = {}
        self.outbox: AlarmOutbox | None = None
        self._retry_base_s = retry_base_s
        self._state_kv: KeyValue | None = None
        self._metrics = MetricsServer(self.status) if metrics_port is not None else None
        self._metrics_addr = (metrics_host or "127.0.0.1", metrics_port or 0)
        self._replies: set[asyncio.Task[None]] = set()

    # -- lifecycle ---------------------------------------------------------------------------

    async def _on_start(self) -> None:
        self._state_kv = await ensure_kv(self.js, gb28181_kv(replicas=self.config.nats.replicas))
        sent_kv = await ensure_kv(self.js, gb28181_sent_kv(replicas=self.config.nats.replicas))
        await self._load_guard()
        await self.subscribe(f"{HEALTH_PREFIX}.*", cb=self._on_health)
        await self.endpoint.start()
        self.outbox = AlarmOutbox(
            self.js,
            sent_kv,
            body_for=self.alarm_body,
            send=self._send_alarm,
            ready=self.registration.registered,
            guard_on=lambda: self.guard_on,
            on_not_registered=self.registration.report_lost,
            local_host=self.local_host,
            max_alarm_age_s=self.settings.max_alarm_age_s,
            retry_base_s=self._retry_base_s,
            clock=self.clock,
        )
        # the consumer exists before start() returns: nothing published afterwards is missed
        await self.outbox.subscribe()
        self.spawn(self.registration.run(), name="gb28181-registration")
        self.spawn(self.outbox.run(), name="gb28181-outbox")
        self.spawn(self._report_loop(), name="gb28181-status")
        if self._metrics is not None:
            self._metrics.serve(*self._metrics_addr)
        log.info(
            "GB/T 28181 cascade %s → %s:%d/%s, %d channels, local %s:%d",
            self.settings.device_id,
            self.settings.superior.host,
            self.settings.superior.port,
            self.settings.superior.transport,
            len(self.channels),
            self.local_host,
            self.endpoint.via_port,
        )

    async def stop(self) -> None:
        if self.outbox is not None:
            self.outbox.stop()
        await super().stop()

    async def _on_stop(self) -> None:
        for t in list(self._replies):
            t.cancel()
        await self.registration.stop()
        if self.outbox is not None:
            await self.outbox.unsubscribe()
        await self._publish_status()
        await self.endpoint.close()
        if self._metrics is not None:
            self._metrics.close()

    # -- status ------------------------------------------------------------------------------

    def status(self) -> CascadeStatus:
        r = self.registration.status
        o = self.outbox.stats if self.outbox is not None else None
        return CascadeStatus(
            device_id=self.settings.device_id,
            superior=self.registration.identity.superior_uri,
            transport=self.settings.superior.transport,
            state=r.state.value,
            registered_since=r.registered_since,
            granted_expires_s=r.granted_expires_s,
            last_keepalive_ok=r.last_keepalive_ok,
            keepalives_sent=r.keepalives_sent,
            keepalives_unanswered=r.keepalives_unanswered,
            registrations=r.registrations,
            refreshes=r.refreshes,
            registration_failures=r.failures,
            last_error=r.last_error or (o.last_error if o else ""),
            guard_on=self.guard_on,
            channels=len(self.channels),
            sent=o.sent if o else 0,
            pending=o.pending if o else 0,
            failed=o.failed if o else 0,
            duplicates=o.duplicates if o else 0,
            expired=o.expired if o else 0,
            gated=o.gated if o else 0,
            retries=o.retries if o else 0,
            last_alarm_at=o.last_sent_at if o else None,
            queries=dict(self.queries),
            updated_at=self.clock(),
        )

    async def _publish_status(self) -> None:
        if self._state_kv is None:
            return
        if self.outbox is not None:
            await self.outbox.refresh_pending()
        with contextlib.suppress(nats.errors.Error, nats.js.errors.Error, TimeoutError):
            await self._state_kv.put(STATUS_KEY, self.status().model_dump_json().encode())

    async def _report_loop(self) -> None:
        while True:
            await self._publish_status()
            await asyncio.sleep(STATUS_EVERY_S)

    # -- guard and health --------------------------------------------------------------------

    async def _load_guard(self) -> None:
        assert self._state_kv is not None
        try:
            entry = await self._state_kv.get(GUARD_KEY)
            self.guard_on = (entry.value or b"on") != b"off"
        except nats.js.errors.KeyNotFoundError:
            self.guard_on = True
        log.info("guard is %s", "on" if self.guard_on else "off")

    async def set_guard(self, on: bool) -> None:
        """Arm or disarm; stored first, so a restart keeps what the superior decided."""
        assert self._state_kv is not None
        await self._state_kv.put(GUARD_KEY, b"on" if on else b"off")
        self.guard_on = on
        log.info("guard set %s by the superior", "on" if on else "off")

    async def _on_health(self, msg: Msg) -> None:
        h = CameraHealth.from_json(msg.data)
        if h is not None:
            self.health[h.camera_id] = (bool(h.online), self.clock())

    def online(self, camera_id: str) -> bool:
        seen = self.health.get(camera_id)
        return seen is not None and seen[0] and self.clock() - seen[1] < HEALTH_STALE_S

    # -- alarms ------------------------------------------------------------------------------

    def alarm_body(self, alert: Alert) -> bytes | None:
        """The Alarm MESSAGE body of ``alert``; None if its camera is not in the cascade."""
        ch = self._by_camera.get(alert.camera_id)
        if ch is None:
            return None
        code = alarm_code(alert.type, self.alarm_table)
        zone = ch.zones.get(alert.zone_id or "") if alert.zone_id else None
        return manscdp.alarm_notify(
            self.registration.next_sn(),
            ch.channel_id,
            priority(alert.severity),
            code.method,
            local_time(alert.observed_at, self.time_zone),
            describe_zh(alert, zone_name=zone),
            ch.lon,
            ch.lat,
            code.alarm_type,
            code.event_type,
        )

    async def _send_alarm(self, body: bytes, call_id: str) -> SipMessage:
        await self.endpoint.connect()
        resp = await self.endpoint.request(self.registration.message(body, call_id=call_id))
        if resp.status is not None and 200 <= resp.status < 300:
            with contextlib.suppress(manscdp.ManscdpError):
                self.active_alarms[manscdp.parse_request(body).device_id] = self.clock()
        return resp

    # -- requests from the superior -------------------------------------------------------------

    async def handle(self, req: SipMessage) -> SipMessage | None:
        """Answer one request from the superior (the transport sends the response)."""
        if req.method == "ACK":
            return None
        sender = header_uri(req.headers.get("from") or "")
        user = sender.split(":", 1)[-1].split("@", 1)[0]
        if user != self.settings.superior.id:
            log.warning("refusing %s from %s (not our superior)", req.method, sender)
            return build_response(req, 403, "Forbidden")
        if req.method == "OPTIONS":
            self._count("OPTIONS")
            return build_response(req, 200, "OK", extra=(("Allow", ALLOW),))
        if req.method != "MESSAGE":
            return build_response(req, 405, "Method Not Allowed", extra=(("Allow", ALLOW),))
        try:
            q = manscdp.parse_request(req.body)
        except manscdp.ManscdpError as e:
            log.info("bad MANSCDP body from the superior: %s", e)
            return build_response(req, 400, "Bad Request")
        self._count(q.cmd_type)
        if q.root == "Query" and q.cmd_type in ("Catalog", "DeviceInfo", "DeviceStatus"):
            self._reply_later(self._answer_query(q))
        elif q.root == "Control" and q.cmd_type == "DeviceControl":
            self._reply_later(self._control(q))
        return build_response(req, 200, "OK")

    def _count(self, cmd: str) -> None:
        self.queries[cmd] = self.queries.get(cmd, 0) + 1

    def _reply_later(self, coro: Coroutine[Any, Any, None]) -> None:
        async def run() -> None:
            try:
                await coro
            except (SipTimeout, SipTransportError) as e:
                log.info("answer to the superior not delivered: %s", e)

        task = asyncio.create_task(run(), name="gb28181-answer")
        self._replies.add(task)
        task.add_done_callback(self._replies.discard)

    async def _send(self, body: bytes) -> None:
        await self.endpoint.connect()
        resp = await self.endpoint.request(self.registration.message(body))
        if resp.status is None or resp.status >= 300:
            log.info("superior answered %s %s to our response", resp.status, resp.reason)

    def catalog_items(self) -> list[manscdp.CatalogItem]:
        s = self.settings
        grids = {c.grid for c in self.channels}
        names = {g.id: g.name or g.id for g in self.config.grids if g.id in grids}
        items = manscdp.grid_items(s.device_id, {g: names.get(g, g) for g in sorted(grids)})
        for c in self.channels:
            items.append(
                manscdp.channel_item(
                    c.channel_id,
                    c.name,
                    device_id=s.device_id,
                    grid=c.grid,
                    online=self.online(c.camera_id),
                    longitude=c.lon,
                    latitude=c.lat,
                    civil_code=s.effective_civil_code(),
                )
            )
        return items

    async def _answer_query(self, q: manscdp.ManscdpRequest) -> None:
        s = self.settings
        if q.cmd_type == "Catalog":
            for page in manscdp.catalog_pages(
                q.sn, s.device_id, self.catalog_items(), s.catalog_page_size
            ):
                await self._send(page)
        elif q.cmd_type == "DeviceInfo":
            await self._send(manscdp.device_info(q.sn, s.device_id, channels=len(self.channels)))
        else:
            await self._send(
                manscdp.device_status(
                    q.sn,
                    s.device_id,
                    online=True,
                    guard_on=self.guard_on,
                    alarm_ids=list(self.active_alarms),
                )
            )

    async def _control(self, q: manscdp.ManscdpRequest) -> None:
        ok = True
        try:
            if q.guard_cmd == "SetGuard":
                await self.set_guard(True)
            elif q.guard_cmd == "ResetGuard":
                await self.set_guard(False)
            elif q.alarm_cmd == "ResetAlarm":
                if q.device_id in (self.settings.device_id, ""):
                    self.active_alarms.clear()
                else:
                    self.active_alarms.pop(q.device_id, None)
            else:
                ok = False
        except (nats.errors.Error, nats.js.errors.Error) as e:
            log.warning("control %s not applied: %s", q.fields, e)
            ok = False
        await self._send(manscdp.control_response(q.sn, self.settings.device_id, ok))


__all__ = [
    "MANSCDP_TYPE",
    "Channel",
    "Gb28181Service",
    "cascade_view",
    "channels_of",
    "route_address",
]

"""SIP over UDP and TCP for a lower platform: one socket towards the superior platform,
client transactions with RFC 3261 timers, server transactions that absorb retransmissions.

Why this shape: a lower platform talks to exactly one peer (the superior), so one endpoint
holds one UDP socket (or one TCP connection it opens and re-opens) and matches responses to
its requests by the top Via's branch and the CSeq method (RFC 3261 §17.1.3). Over UDP a
request is retransmitted after T1 (500 ms), doubling up to T2 (4 s), and given up after
Timer F (64 × T1 = 32 s; configurable, a keepalive gives up sooner); over TCP it is sent once.
A request the superior sends us (Catalog query, DeviceControl, OPTIONS) goes to the handler,
whose response is kept for 64 × T1 and sent again when the same request (same branch) is
retransmitted, so the handler runs once per request, not once per copy.

A lost TCP connection (or an ICMP error, where the kernel reports one: Linux does not for an
unconnected UDP socket, which this is so that the superior may answer from any port) fails the
pending transactions at once; otherwise a dead superior shows as Timer F expiring. Either way
the sender backs off and the alarm waits in JetStream.

>>> TransactionKey.of_request(build_request("MESSAGE", "sip:a", from_uri="sip:b", from_tag="t",
...     to_uri="sip:a", call_id="c", cseq=3, via_host="h", via_port=1, transport="udp",
...     branch="z9hG4bKx"))
TransactionKey(branch='z9hG4bKx', method='MESSAGE')
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from gridwatch.gb28181.sip import (
    SipMessage,
    SipParseError,
    StreamFramer,
    build_request,
    build_response,
    parse,
)

log = logging.getLogger(__name__)

__all__ = [
    "RequestHandler",
    "SipEndpoint",
    "SipTimeout",
    "SipTransportError",
    "TransactionKey",
    "build_request",
]

T1_S = 0.5
T2_S = 4.0
RESPONSE_CACHE_S = 64 * T1_S
MAX_PENDING = 256
"""Client transactions in flight at most (a bounded table: more is refused, never queued)."""

RequestHandler = Callable[[SipMessage], Awaitable[SipMessage | None]]
"""Answers a request from the superior; None: no response (e.g. an ACK)."""


class SipTransportError(ConnectionError):
    """The request could not be sent, or the peer is unreachable."""


class SipTimeout(TimeoutError):
    """No final response within the transaction's timeout (Timer F)."""


@dataclass(frozen=True, slots=True)
class TransactionKey:
    """What matches a response to its request: top Via branch and CSeq method."""

    branch: str
    method: str

    @classmethod
    def of_request(cls, msg: SipMessage) -> TransactionKey:
        return cls(msg.branch or "", (msg.method or "").upper())

    @classmethod
    def of_response(cls, msg: SipMessage) -> TransactionKey:
        return cls(msg.branch or "", msg.cseq[1])


@dataclass(slots=True)
class TransportStats:
    sent: int = 0
    received: int = 0
    retransmits: int = 0
    timeouts: int = 0
    unmatched_responses: int = 0
    parse_errors: int = 0
    refused: int = 0


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, endpoint: SipEndpoint) -> None:
        self.endpoint = endpoint

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
        self.endpoint._on_bytes(data, addr)

    def error_received(self, exc: Exception) -> None:
        self.endpoint._on_unreachable(exc)


class SipEndpoint:
    """One transport (``udp`` or ``tcp``) between us and the superior at ``remote``.

    ``local_host``/``local_port``: where UDP binds (0: any free port); TCP connects from an
    ephemeral port. ``timeout_s``: a client transaction's Timer F.
    """

    def __init__(
        self,
        *,
        transport: Literal["udp", "tcp"],
        remote: tuple[str, int],
        handler: RequestHandler,
        local_host: str = "0.0.0.0",
        local_port: int = 0,
        t1_s: float = T1_S,
        timeout_s: float | None = None,
    ) -> None:
        self.transport = transport
        self.remote = remote
        self.handler = handler
        self.local_host = local_host
        self.local_port = local_port
        self.t1_s = t1_s
        self.t2_s = max(T2_S, t1_s)
        self.timeout_s = timeout_s if timeout_s is not None else 64 * t1_s
        self.stats = TransportStats()
        self._udp: asyncio.DatagramTransport | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._connect_lock = asyncio.Lock()
        self._pending: dict[TransactionKey, asyncio.Future[SipMessage]] = {}
        self._answered: dict[TransactionKey, tuple[float, SipMessage | None]] = {}
        self._handlers: set[asyncio.Task[None]] = set()
        self._closed = False

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind the UDP socket (TCP connects on the first send)."""
        if self.transport == "udp":
            loop = asyncio.get_running_loop()
            udp, _ = await loop.create_datagram_endpoint(
                lambda: _Udp(self), local_addr=(self.local_host, self.local_port)
            )
            self._udp = udp
            self.local_port = int(udp.get_extra_info("sockname")[1])

    async def close(self) -> None:
        self._closed = True
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(SipTransportError("transport closed"))
        self._pending.clear()
        for t in list(self._handlers):
            t.cancel()
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        await self._drop_tcp()

    async def _drop_tcp(self) -> None:
        task, self._reader_task = self._reader_task, None
        writer, self._writer = self._writer, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)

    async def connect(self) -> None:
        """Over TCP, open the connection now (so Via and Contact name its real local port);
        a no-op over UDP. Raises :class:`SipTransportError`."""
        if self.transport == "tcp":
            await self._tcp()

    @property
    def via_port(self) -> int:
        """The port our Via and Contact name (the UDP port, or TCP's local port)."""
        if self._writer is not None:
            sock = self._writer.get_extra_info("sockname")
            if sock:
                return int(sock[1])
        return self.local_port

    async def _tcp(self) -> asyncio.StreamWriter:
        async with self._connect_lock:
            if self._writer is not None and not self._writer.is_closing():
                return self._writer
            await self._drop_tcp()
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(*self.remote), self.timeout_s
                )
            except (OSError, TimeoutError) as e:
                raise SipTransportError(f"cannot connect to {self.remote}: {e}") from e
            self._writer = writer
            self._reader_task = asyncio.create_task(self._read_tcp(reader), name="sip-tcp-read")
            self.local_port = int(writer.get_extra_info("sockname")[1])
            return writer

    async def _read_tcp(self, reader: asyncio.StreamReader) -> None:
        framer = StreamFramer()
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                try:
                    messages = framer.feed(data)
                except SipParseError as e:
                    self.stats.parse_errors += 1
                    log.warning("closing the SIP TCP connection: %s", e)
                    break
                for msg in messages:
                    self._on_message(msg, None)
        except (OSError, asyncio.IncompleteReadError) as e:
            log.info("SIP TCP connection lost: %s", e)
        finally:
            self._on_unreachable(ConnectionResetError("TCP connection closed"))
            writer, self._writer = self._writer, None
            if writer is not None:
                writer.close()

    # -- sending -----------------------------------------------------------------------------

    async def _send(self, msg: SipMessage, addr: tuple[str, int] | None = None) -> None:
        data = msg.serialize()
        self.stats.sent += 1
        if self.transport == "udp":
            if self._udp is None:
                raise SipTransportError("transport not started or closed")
            self._udp.sendto(data, addr or self.remote)
            return
        writer = await self._tcp()
        try:
            writer.write(data)
            await writer.drain()
        except OSError as e:
            await self._drop_tcp()
            raise SipTransportError(f"TCP send failed: {e}") from e

    async def request(self, msg: SipMessage, *, timeout_s: float | None = None) -> SipMessage:
        """Send ``msg`` and return its final response (provisional ones are skipped).

        Raises :class:`SipTimeout` after ``timeout_s`` (Timer F) and
        :class:`SipTransportError` when it cannot be sent or the superior is unreachable."""
        if self._closed:
            raise SipTransportError("transport closed")
        key = TransactionKey.of_request(msg)
        if len(self._pending) >= MAX_PENDING:
            self.stats.refused += 1
            raise SipTransportError(f"{MAX_PENDING} transactions in flight")
        fut: asyncio.Future[SipMessage] = asyncio.get_running_loop().create_future()
        self._pending[key] = fut
        limit = timeout_s if timeout_s is not None else self.timeout_s
        deadline = time.monotonic() + limit
        interval = self.t1_s
        try:
            await self._send(msg)
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    self.stats.timeouts += 1
                    raise SipTimeout(f"no response to {msg.method} within {limit:g} s")
                wait = min(interval, left) if self.transport == "udp" else left
                try:
                    return await asyncio.wait_for(asyncio.shield(fut), wait)
                except TimeoutError:
                    if self.transport == "udp" and time.monotonic() < deadline:
                        self.stats.retransmits += 1
                        await self._send(msg)
                        interval = min(interval * 2, self.t2_s)
        finally:
            self._pending.pop(key, None)
            if not fut.done():
                fut.cancel()

    # -- receiving ---------------------------------------------------------------------------

    def _on_unreachable(self, exc: Exception) -> None:
        """ICMP unreachable (UDP) or a lost connection (TCP): fail what is in flight."""
        log.debug("SIP peer unreachable: %s", exc)
        for fut in list(self._pending.values()):
            if not fut.done():
                fut.set_exception(SipTransportError(f"superior unreachable: {exc}"))

    def _on_bytes(self, data: bytes, addr: tuple[str, int]) -> None:
        if not data.strip():
            return  # CRLF keep-alive
        try:
            msg = parse(data)
        except SipParseError as e:
            self.stats.parse_errors += 1
            log.debug("dropping a datagram from %s: %s", addr, e)
            return
        self._on_message(msg, addr)

    def _on_message(self, msg: SipMessage, addr: tuple[str, int] | None) -> None:
        self.stats.received += 1
        if not msg.is_request:
            key = TransactionKey.of_response(msg)
            fut = self._pending.get(key)
            if fut is None:
                self.stats.unmatched_responses += 1
                return
            if (msg.status or 0) >= 200 and not fut.done():
                fut.set_result(msg)
            return
        key = TransactionKey.of_request(msg)
        now = time.monotonic()
        self._answered = {k: v for k, v in self._answered.items() if v[0] > now}
        if key in self._answered:  # a retransmission: answer it again, do not handle again
            cached = self._answered[key][1]
            if cached is not None:
                self._spawn(self._send_quietly(cached, addr))
            return
        self._answered[key] = (now + RESPONSE_CACHE_S, None)
        self._spawn(self._handle(key, msg, addr))

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)

    async def _send_quietly(self, msg: SipMessage, addr: tuple[str, int] | None) -> None:
        try:
            await self._send(msg, addr)
        except SipTransportError as e:
            log.info("response not sent: %s", e)

    async def _handle(
        self, key: TransactionKey, msg: SipMessage, addr: tuple[str, int] | None
    ) -> None:
        resp: SipMessage | None
        try:
            resp = await self.handler(msg)
        except Exception:
            log.exception("handling %s failed", msg.method)
            resp = build_response(msg, 500, "Server Internal Error")
        self._answered[key] = (time.monotonic() + RESPONSE_CACHE_S, resp)
        if resp is not None:
            await self._send_quietly(resp, addr)

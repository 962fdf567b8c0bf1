"""The SIP transport on real sockets: UDP retransmission with T1 doubling, Timer F, responses
matched by branch, retransmitted requests answered from the cache (the handler runs once), and
TCP framing both ways."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from gridwatch.gb28181.sip import SipMessage, StreamFramer, build_request, build_response, parse
from gridwatch.gb28181.transport import SipEndpoint, SipTimeout

pytestmark = pytest.mark.timeout(30)


def _request(branch: str = "z9hG4bKt1", method: str = "MESSAGE") -> SipMessage:
    return build_request(
        method,
        "sip:34020000002000000002@3402000000",
        from_uri="sip:34020000002000000001@3402000000",
        from_tag="f1",
        to_uri="sip:34020000002000000002@3402000000",
        call_id="c1",
        cseq=1,
        via_host="127.0.0.1",
        via_port=5060,
        transport="udp",
        branch=branch,
        body=b"<x/>",
    )


class _Peer(asyncio.DatagramProtocol):
    """A UDP peer that records what arrives (and when) and answers on demand."""

    def __init__(self) -> None:
        self.got: list[tuple[float, SipMessage, tuple[str, int]]] = []
        self.answer_after = 10**6
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        msg = parse(data)
        self.got.append((time.monotonic(), msg, addr))
        if msg.is_request and len(self.got) >= self.answer_after:
            assert self.transport is not None
            self.transport.sendto(build_response(msg, 200, "OK", to_tag="t").serialize(), addr)


async def _peer() -> tuple[_Peer, asyncio.DatagramTransport, int]:
    loop = asyncio.get_running_loop()
    udp, peer = await loop.create_datagram_endpoint(_Peer, local_addr=("127.0.0.1", 0))
    return peer, udp, int(udp.get_extra_info("sockname")[1])


async def _no_handler(msg: SipMessage) -> SipMessage | None:
    raise AssertionError("no request expected")


async def test_udp_retransmits_with_t1_doubling_until_answered() -> None:
    peer, udp, port = await _peer()
    peer.answer_after = 3
    ep = SipEndpoint(transport="udp", remote=("127.0.0.1", port), handler=_no_handler, t1_s=0.1)
    await ep.start()
    try:
        resp = await ep.request(_request())
    finally:
        await ep.close()
        udp.close()
    assert resp.status == 200
    times = [t for t, _m, _a in peer.got]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(times) == 3
    assert 0.08 < gaps[0] < 0.18  # T1
    assert 0.18 < gaps[1] < 0.3  # 2 x T1
    assert {m.branch for _t, m, _a in peer.got} == {"z9hG4bKt1"}  # the same transaction
    assert ep.stats.retransmits == 2


async def test_udp_timer_f_and_unmatched_responses() -> None:
    _, udp, port = await _peer()
    ep = SipEndpoint(
        transport="udp", remote=("127.0.0.1", port), handler=_no_handler, t1_s=0.05, timeout_s=0.4
    )
    await ep.start()
    try:
        t0 = time.monotonic()
        with pytest.raises(SipTimeout):
            await ep.request(_request())
        assert 0.35 < time.monotonic() - t0 < 1.0
        # a response for another branch completes nothing
        stray = build_response(_request("z9hG4bKother"), 200, "OK").serialize()
        assert udp is not None
        udp.sendto(stray, ("127.0.0.1", ep.local_port))
        await asyncio.sleep(0.1)
        assert ep.stats.unmatched_responses == 1
    finally:
        await ep.close()
        udp.close()


async def test_retransmitted_request_is_handled_once_and_answered_twice() -> None:
    calls: list[SipMessage] = []

    async def handler(msg: SipMessage) -> SipMessage | None:
        calls.append(msg)
        return build_response(msg, 200, "OK", to_tag="me")

    peer, udp, port = await _peer()
    ep = SipEndpoint(transport="udp", remote=("127.0.0.1", port), handler=handler)
    await ep.start()
    try:
        data = _request("z9hG4bKq").serialize()
        udp.sendto(data, ("127.0.0.1", ep.local_port))
        await asyncio.sleep(0.1)
        udp.sendto(data, ("127.0.0.1", ep.local_port))  # the superior did not hear our 200
        await asyncio.sleep(0.1)
    finally:
        await ep.close()
        udp.close()
    assert len(calls) == 1
    answers = [m for _t, m, _a in peer.got if m.status == 200]
    assert len(answers) == 2
    assert answers[0].serialize() == answers[1].serialize()


async def test_tcp_request_and_incoming_request_on_one_connection() -> None:
    served: list[SipMessage] = []

    async def on_conn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        framer = StreamFramer()
        while data := await reader.read(65536):
            for msg in framer.feed(data):
                served.append(msg)
                if msg.is_request:
                    # answer, then ask something back on the same connection
                    writer.write(build_response(msg, 200, "OK", to_tag="s").serialize())
                    writer.write(_request("z9hG4bKback", "OPTIONS").serialize())
                    await writer.drain()

    server = await asyncio.start_server(on_conn, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]

    async def handler(msg: SipMessage) -> SipMessage | None:
        return build_response(msg, 200, "OK", to_tag="c")

    ep = SipEndpoint(transport="tcp", remote=("127.0.0.1", port), handler=handler, timeout_s=2)
    await ep.start()
    try:
        resp = await ep.request(_request())
        assert resp.status == 200
        for _ in range(50):
            if any(m.status == 200 for m in served):
                break
            await asyncio.sleep(0.02)
    finally:
        await ep.close()
        server.close()
        await server.wait_closed()
    assert [m.status for m in served if not m.is_request] == [200]  # our answer to OPTIONS
    assert ep.stats.retransmits == 0  # never over TCP

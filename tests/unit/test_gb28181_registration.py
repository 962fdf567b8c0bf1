"""Registration details that the real peers (SIPp, Kamailio) cannot show quickly: a registrar
that stops answering keepalives makes us register again from scratch (new Call-ID), and a
granted expiry in the Contact wins over the Expires header. A small UDP registrar on a real
socket stands in (pure protocol logic; the digest itself is verified by SIPp and Kamailio in
the integration tests)."""

from __future__ import annotations

import asyncio

import pytest

from gridwatch.gb28181 import manscdp
from gridwatch.gb28181.registration import Identity, Registration, RegState
from gridwatch.gb28181.sip import SipMessage, build_response, parse
from gridwatch.gb28181.transport import SipEndpoint

pytestmark = pytest.mark.timeout(30)

OUR_ID = "34020000002000000001"


class _Registrar(asyncio.DatagramProtocol):
    """Grants every REGISTER (Contact ``expires`` = ``granted``); answers keepalives while
    ``answer_keepalives``."""

    def __init__(self, granted: int) -> None:
        self.granted = granted
        self.answer_keepalives = True
        self.registers: list[SipMessage] = []
        self.keepalives = 0
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        msg = parse(data)
        assert self.transport is not None
        if msg.method == "REGISTER":
            self.registers.append(msg)
            contact = f"{msg.headers['contact']};expires={self.granted}"
            resp = build_response(
                msg, 200, "OK", to_tag="r", extra=(("Contact", contact), ("Expires", "3600"))
            )
            self.transport.sendto(resp.serialize(), addr)
        elif msg.method == "MESSAGE":
            self.keepalives += 1
            if self.answer_keepalives:
                self.transport.sendto(build_response(msg, 200, "OK").serialize(), addr)


async def test_unanswered_keepalives_mean_register_again_with_a_new_call_id() -> None:
    loop = asyncio.get_running_loop()
    udp, registrar = await loop.create_datagram_endpoint(
        lambda: _Registrar(granted=600), local_addr=("127.0.0.1", 0)
    )
    port = udp.get_extra_info("sockname")[1]

    async def no_requests(msg: SipMessage) -> SipMessage | None:
        return None

    ep = SipEndpoint(transport="udp", remote=("127.0.0.1", port), handler=no_requests, t1_s=0.05)
    await ep.start()
    reg = Registration(
        ep,
        Identity(OUR_ID, "pw", "34020000002000000002", "3402000000", "udp", "127.0.0.1"),
        expires_s=3600,
        keepalive_s=0.15,
        keepalive_timeout_count=2,
        keepalive_body=lambda sn: manscdp.keepalive(sn, OUR_ID),
        backoff_base_s=0.05,
    )
    task = asyncio.create_task(reg.run())
    try:
        for _ in range(100):
            if reg.status.last_keepalive_ok:
                break
            await asyncio.sleep(0.02)
        assert reg.status.state is RegState.REGISTERED
        assert reg.status.granted_expires_s == 600  # Contact's expires, not the header's
        first_call = reg.status.call_id
        registrar.answer_keepalives = False
        for _ in range(200):
            if len(registrar.registers) >= 2:
                break
            await asyncio.sleep(0.02)
        for _ in range(100):
            if reg.registered.is_set():
                break
            await asyncio.sleep(0.01)
        assert reg.status.lost == 1
        assert reg.status.keepalives_unanswered >= 2
        assert registrar.registers[1].call_id != first_call  # from scratch
        assert registrar.registers[1].cseq[0] == 1
    finally:
        task.cancel()
        await reg.stop(timeout_s=0.5)
        await ep.close()
        udp.close()
    assert registrar.registers[-1].headers["expires"] == "0"  # un-registered on stop

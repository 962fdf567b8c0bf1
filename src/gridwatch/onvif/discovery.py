"""ONVIF WS-Discovery: find cameras on the local network segment.

A Probe for ``dn:NetworkVideoTransmitter`` goes to the WS-Discovery multicast group
(239.255.255.250:3702); each ONVIF device answers with a ProbeMatch, unicast, naming its
endpoint (a ``urn:uuid``), its device-service URLs (XAddrs) and scopes (name, hardware,
location). The multicast TTL is 1: the probe never leaves the segment it is sent on, which is
also why discovery finds cameras only on the engineer's own segment (routers do not forward it).

The probe is sent twice, 200 ms apart (UDP may drop one; WS-Discovery asks for retransmission),
with the same MessageID, and answers are matched on ``RelatesTo`` and de-duplicated by
endpoint, so a device heard twice is listed once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import uuid
from dataclasses import dataclass, field
from urllib.parse import unquote

from gridwatch.onvif.soap import NS, SoapFault, envelope, find_text, parse_xml

__all__ = [
    "MULTICAST_GROUP",
    "MULTICAST_PORT",
    "DiscoveredDevice",
    "discover",
    "parse_probe_matches",
    "probe_message",
]

log = logging.getLogger(__name__)

MULTICAST_GROUP = "239.255.255.250"
MULTICAST_PORT = 3702
_PROBE_ACTION = "http://schemas.xmlsoap.org/ws/2005/04/discovery/Probe"
_TO = "urn:schemas-xmlsoap-org:ws:2005:04:discovery"


@dataclass
class DiscoveredDevice:
    """One ONVIF device that answered a probe."""

    endpoint: str
    """Its stable identity (``urn:uuid:…``)."""
    address: str
    """The IP address the answer came from."""
    xaddrs: list[str]
    """Device-service URLs (``http://ip/onvif/device_service``)."""
    scopes: list[str] = field(default_factory=list)
    types: list[str] = field(default_factory=list)

    def scope(self, kind: str) -> str | None:
        """The value of an ``onvif://www.onvif.org/<kind>/<value>`` scope (URL-decoded)."""
        prefix = f"onvif://www.onvif.org/{kind}/"
        for s in self.scopes:
            if s.startswith(prefix):
                return unquote(s[len(prefix) :])
        return None

    @property
    def name(self) -> str | None:
        return self.scope("name")

    @property
    def hardware(self) -> str | None:
        return self.scope("hardware")

    @property
    def location(self) -> str | None:
        return self.scope("location")


def probe_message(message_id: str) -> bytes:
    """The WS-Discovery Probe for network video transmitters."""
    header = (
        f"<a:MessageID>{message_id}</a:MessageID><a:To>{_TO}</a:To>"
        f"<a:Action>{_PROBE_ACTION}</a:Action>"
    )
    body = "<d:Probe><d:Types>dn:NetworkVideoTransmitter</d:Types></d:Probe>"
    return envelope(body, header)


def parse_probe_matches(data: bytes, sender: str, message_id: str | None) -> list[DiscoveredDevice]:
    """Devices in a ProbeMatches answer; [] for anything else (or an answer to another probe)."""
    try:
        root = parse_xml(data)
    except SoapFault:
        return []
    relates = find_text(root, "s:Header/a:RelatesTo")
    if message_id is not None and relates != message_id:
        return []
    out = []
    for match in root.iterfind("s:Body/d:ProbeMatches/d:ProbeMatch", NS):
        endpoint = find_text(match, "a:EndpointReference/a:Address") or ""
        xaddrs = (find_text(match, "d:XAddrs") or "").split()
        if not endpoint and not xaddrs:
            continue
        out.append(
            DiscoveredDevice(
                endpoint=endpoint or xaddrs[0],
                address=sender,
                xaddrs=xaddrs,
                scopes=(find_text(match, "d:Scopes") or "").split(),
                types=(find_text(match, "d:Types") or "").split(),
            )
        )
    return out


class _Collector(asyncio.DatagramProtocol):
    def __init__(self, message_id: str) -> None:
        self.message_id = message_id
        self.found: dict[str, DiscoveredDevice] = {}

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        for dev in parse_probe_matches(data, str(addr[0]), self.message_id):
            if dev.endpoint not in self.found:
                log.debug("ONVIF device %s at %s", dev.endpoint, dev.address)
                self.found[dev.endpoint] = dev

    def error_received(self, exc: Exception) -> None:
        log.debug("discovery socket: %s", exc)


def _socket(interface: str | None) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, struct.pack("b", 1))
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
    if interface:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(interface))
    sock.bind((interface or "0.0.0.0", 0))
    sock.setblocking(False)
    return sock


async def discover(
    timeout_s: float = 3.0,
    *,
    interface: str | None = None,
    group: tuple[str, int] = (MULTICAST_GROUP, MULTICAST_PORT),
) -> list[DiscoveredDevice]:
    """Probe the segment and collect answers for ``timeout_s`` seconds.

    ``interface`` is the IPv4 address of the interface to probe from (default: the one the
    routing table picks for multicast). Returns devices sorted by address.
    """
    message_id = f"urn:uuid:{uuid.uuid4()}"
    loop = asyncio.get_running_loop()
    sock = _socket(interface)
    transport, collector = await loop.create_datagram_endpoint(
        lambda: _Collector(message_id), sock=sock
    )
    try:
        message = probe_message(message_id)
        transport.sendto(message, group)
        await asyncio.sleep(min(0.2, timeout_s / 2))
        transport.sendto(message, group)
        await asyncio.sleep(max(0.0, timeout_s - 0.2))
    finally:
        with contextlib.suppress(Exception):
            transport.close()
    return sorted(collector.found.values(), key=lambda d: (d.address, d.endpoint))

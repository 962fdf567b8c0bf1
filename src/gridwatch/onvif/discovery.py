"""ONVIF WS-Discovery: find cameras on the local network segment (with ``wsdiscovery``).

A Probe for ``dn:NetworkVideoTransmitter`` goes to the WS-Discovery multicast group
(239.255.255.250:3702); each ONVIF device answers with a ProbeMatch, unicast, naming its
endpoint (a ``urn:uuid``), its device-service URLs (XAddrs) and scopes (name, hardware,
location). The multicast TTL is 1: the probe never leaves the segment it is sent on, which is
also why discovery finds cameras only on the engineer's own segment (routers do not forward it).

The protocol is the ``wsdiscovery`` package's (the one Home Assistant's ONVIF integration uses):
it repeats the probe as SOAP-over-UDP asks (UDP may drop one) and keeps one entry per endpoint,
so a device heard twice is listed once. Its API is blocking (threads and a sleep), so
:func:`discover` runs it in a worker thread. This module only turns its answers into
:class:`DiscoveredDevice` rows.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

__all__ = [
    "MULTICAST_GROUP",
    "MULTICAST_PORT",
    "NVT_NAMESPACE",
    "DiscoveredDevice",
    "device_from_service",
    "discover",
]

log = logging.getLogger(__name__)

MULTICAST_GROUP = "239.255.255.250"
MULTICAST_PORT = 3702
NVT_NAMESPACE = "http://www.onvif.org/ver10/network/wsdl"
"""The namespace of the ``NetworkVideoTransmitter`` type that ONVIF cameras announce."""


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
        """The value of an ``onvif://www.onvif.org/<kind>/<value>`` scope (URL-decoded).

        >>> DiscoveredDevice("urn:uuid:1", "10.0.0.7", [],
        ...     ["onvif://www.onvif.org/name/Gate%20South"]).scope("name")
        'Gate South'
        """
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


def device_from_service(service: Any, sender: str | None = None) -> DiscoveredDevice:
    """A :class:`DiscoveredDevice` from a ``wsdiscovery.service.Service``.

    ``sender`` is the address the ProbeMatch came from; without it, the host of the first
    XAddr stands in (the same address on any camera not behind NAT).
    """
    xaddrs = [str(x) for x in service.getXAddrs() or []]
    endpoint = str(service.getEPR() or (xaddrs[0] if xaddrs else ""))
    if sender is None:
        sender = (urlsplit(xaddrs[0]).hostname or "") if xaddrs else ""
    return DiscoveredDevice(
        endpoint=endpoint,
        address=sender,
        xaddrs=xaddrs,
        scopes=[str(s.getValue()) for s in service.getScopes() or []],
        types=[
            f"{t.getNamespacePrefix()}:{t.getLocalname()}"
            if t.getNamespacePrefix()
            else str(t.getLocalname())
            for t in service.getTypes() or []
        ],
    )


def _search(timeout_s: float, interface: str | None) -> list[DiscoveredDevice]:
    """Probe and listen for ``timeout_s`` (blocking: wsdiscovery's threads and sleep)."""
    from wsdiscovery import QName
    from wsdiscovery.discovery import ThreadedWSDiscovery

    senders: dict[str, str] = {}
    probed_from: list[str] = []
    lock = threading.Lock()

    class _Discovery(ThreadedWSDiscovery):  # type: ignore[misc]
        """Probe from ``interface`` only (when given), and note who answered."""

        def _networkAddressAdded(self, addr: Any) -> None:
            if interface is None or str(addr) == interface:
                probed_from.append(str(addr))
                super()._networkAddressAdded(addr)

        def _handle_probematches(self, env: Any, addr: Any) -> None:
            with lock:
                for match in env.getProbeResolveMatches():
                    senders.setdefault(str(match.getEPR()), str(addr[0]))
            super()._handle_probematches(env, addr)

    wsd = _Discovery(ttl=1)  # the probe stays on this segment
    wsd.start()
    if not probed_from:
        log.warning("no interface has the address %s: nothing to probe from", interface or "(any)")
    try:
        services = wsd.searchServices(
            types=[QName(NVT_NAMESPACE, "NetworkVideoTransmitter", "dn")], timeout=timeout_s
        )
    finally:
        wsd.stop()
    with lock:
        found = {
            dev.endpoint: dev
            for dev in (device_from_service(s, senders.get(str(s.getEPR()))) for s in services)
        }
    for dev in found.values():
        log.debug("ONVIF device %s at %s", dev.endpoint, dev.address)
    return sorted(found.values(), key=lambda d: (d.address, d.endpoint))


async def discover(
    timeout_s: float = 3.0, *, interface: str | None = None
) -> list[DiscoveredDevice]:
    """Probe the segment and collect answers for ``timeout_s`` seconds.

    ``interface`` is the IPv4 address of the interface to probe from (default: every
    interface with an address). Returns devices sorted by address.
    """
    # wsdiscovery sleeps the whole timeout, then stops its threads (≤ 0.1 s each); the
    # margin only catches a hang in that shutdown.
    return await asyncio.wait_for(
        asyncio.to_thread(_search, timeout_s, interface), timeout=timeout_s + 10
    )

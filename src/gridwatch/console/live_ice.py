"""Pin a peer connection's ICE host candidates to one local address.

aioice (aiortc's ICE) offers a host candidate on every address of every interface except
127.0.0.1 and ::1, and has no setting to choose. That is wrong twice for gridwatch:

* a console on a multi-homed server (LAN, camera VLAN, container bridges) should offer only
  the address its browsers reach, not leak the others and make browsers probe them all;
* a test on one machine must connect over loopback, the one address aioice leaves out.

:func:`restrict_host_candidates` narrows one ``RTCPeerConnection`` (nothing global): it wraps
the per-connection method that gathers a component's candidates so it binds only ``host``.
It reaches one private attribute, ``RTCIceGatherer._connection`` (checked, with a clear error
when a newer aiortc renames it). Call it after the transceivers exist and before
``setLocalDescription`` (which gathers).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from aiortc import RTCIceGatherer, RTCPeerConnection

__all__ = ["check_ice_host", "restrict_host_candidates"]

_MARK = "_gridwatch_host_pinned"


def check_ice_host(host: str) -> str:
    """``host`` if it is an IP address literal (ICE binds sockets to it), else ValueError."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        raise ValueError(f"ice_host must be an IP address of this machine, got {host!r}") from None


def _gatherers(pc: RTCPeerConnection) -> Iterator[RTCIceGatherer]:
    transports = [t.sender.transport for t in pc.getTransceivers()]
    if pc.sctp is not None:
        transports.append(pc.sctp.transport)
    seen: set[int] = set()
    for dtls in transports:
        if dtls is None:
            continue
        gatherer = dtls.transport.iceGatherer
        if id(gatherer) not in seen:
            seen.add(id(gatherer))
            yield gatherer


def restrict_host_candidates(pc: RTCPeerConnection, host: str) -> None:
    """Make every ICE gatherer of ``pc`` offer a host candidate on ``host`` only."""
    host = check_ice_host(host)
    for gatherer in _gatherers(pc):
        connection: Any = getattr(gatherer, "_connection", None)
        original: Callable[..., Awaitable[Any]] | None = getattr(
            connection, "get_component_candidates", None
        )
        if original is None:
            raise RuntimeError(
                "this aiortc/aioice has no RTCIceGatherer._connection.get_component_candidates:"
                " ice_host cannot be applied (gridwatch was written against aiortc 1.16)"
            )
        if getattr(connection, _MARK, False):
            continue

        async def only_host(
            component: int,
            addresses: list[str],
            _original: Callable[..., Awaitable[Any]] = original,
            **kwargs: Any,
        ) -> Any:
            return await _original(component=component, addresses=[host], **kwargs)

        setattr(connection, "get_component_candidates", only_host)  # noqa: B010
        setattr(connection, _MARK, True)

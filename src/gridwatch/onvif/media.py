"""ONVIF device and media services: what a discovered camera is, and its RTSP URIs.

``fetch_device`` asks a device (at a discovery XAddr) for its information and its media
profiles, and for each profile the RTSP URI (``GetStreamUri``, RTP-Unicast over RTSP). A
camera's first profile is usually its main stream and the second its sub-stream, which is what
``camera add --url … --sub-url …`` wants.

Calls are plain HTTP POSTs (``urllib``) with a WS-Security digest UsernameToken; every call has
a timeout. Credentials are never put into the URIs returned (the engineer decides where the
password goes); a failed login is reported as such, not as a generic error.
"""

from __future__ import annotations

import contextlib
import logging
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from typing import Any

from gridwatch.onvif.soap import (
    NS,
    SoapFault,
    envelope,
    fault_of,
    find_text,
    parse_xml,
    security_header,
)

__all__ = ["DeviceDetails", "MediaProfile", "OnvifError", "fetch_device"]

log = logging.getLogger(__name__)


class OnvifError(Exception):
    """A device could not be asked; ``kind`` is ``auth``, ``unreachable`` or ``protocol``."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass
class MediaProfile:
    token: str
    name: str
    encoding: str | None
    width: int | None
    height: int | None
    fps: float | None
    rtsp_uri: str | None


@dataclass
class DeviceDetails:
    xaddr: str
    manufacturer: str | None = None
    model: str | None = None
    firmware: str | None = None
    serial: str | None = None
    profiles: list[MediaProfile] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _post(
    url: str, body: str, user: str | None, password: str | None, timeout_s: float
) -> ET.Element:
    header = security_header(user, password or "") if user else ""
    req = urllib.request.Request(
        url,
        data=envelope(body, header),
        headers={"Content-Type": "application/soap+xml; charset=utf-8"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            data = resp.read(2_000_000)
    except urllib.error.HTTPError as exc:
        data = exc.read(2_000_000)
        fault = None
        with contextlib.suppress(SoapFault):
            fault = fault_of(parse_xml(data))
        if exc.code in (401, 403) or (fault is not None and fault.not_authorized):
            raise OnvifError(
                "auth",
                f"{url}: the device refused the user name or password — check --user and "
                "--password (and that the camera's clock is roughly right: digest logins "
                "expire)",
            ) from None
        raise OnvifError("protocol", f"{url}: HTTP {exc.code}: {fault or exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise OnvifError("unreachable", f"{url}: {reason}") from None
    root = parse_xml(data)
    fault = fault_of(root)
    if fault is not None:
        kind = "auth" if fault.not_authorized else "protocol"
        raise OnvifError(kind, f"{url}: {fault}")
    return root


def _media_xaddr(device_xaddr: str, user: str | None, pw: str | None, timeout_s: float) -> str:
    root = _post(
        device_xaddr,
        "<tds:GetCapabilities><tds:Category>Media</tds:Category></tds:GetCapabilities>",
        user,
        pw,
        timeout_s,
    )
    return find_text(root, ".//tt:Media/tt:XAddr") or device_xaddr


def _profiles(media: str, user: str | None, pw: str | None, timeout_s: float) -> list[MediaProfile]:
    root = _post(media, "<trt:GetProfiles/>", user, pw, timeout_s)
    out = []
    for prof in root.iterfind(".//trt:Profiles", NS):
        token = prof.get("token") or ""
        enc = prof.find("tt:VideoEncoderConfiguration", NS)
        width = height = None
        fps = None
        encoding = None
        if enc is not None:
            encoding = find_text(enc, "tt:Encoding")
            w, h = (
                find_text(enc, "tt:Resolution/tt:Width"),
                find_text(enc, "tt:Resolution/tt:Height"),
            )
            width, height = (int(w) if w else None), (int(h) if h else None)
            rate = find_text(enc, "tt:RateControl/tt:FrameRateLimit")
            fps = float(rate) if rate else None
        uri_root = _post(
            media,
            "<trt:GetStreamUri><trt:StreamSetup><tt:Stream>RTP-Unicast</tt:Stream>"
            "<tt:Transport><tt:Protocol>RTSP</tt:Protocol></tt:Transport></trt:StreamSetup>"
            f"<trt:ProfileToken>{token}</trt:ProfileToken></trt:GetStreamUri>",
            user,
            pw,
            timeout_s,
        )
        out.append(
            MediaProfile(
                token=token,
                name=find_text(prof, "tt:Name") or token,
                encoding=encoding,
                width=width,
                height=height,
                fps=fps,
                rtsp_uri=find_text(uri_root, ".//tt:Uri"),
            )
        )
    return out


def fetch_device(
    xaddr: str, *, user: str | None, password: str | None, timeout_s: float = 5.0
) -> DeviceDetails:
    """Device information and media profiles with their RTSP URIs (blocking)."""
    details = DeviceDetails(xaddr=xaddr)
    info = _post(xaddr, "<tds:GetDeviceInformation/>", user, password, timeout_s)
    resp = info.find(".//tds:GetDeviceInformationResponse", NS)
    if resp is not None:
        details.manufacturer = find_text(resp, "tds:Manufacturer")
        details.model = find_text(resp, "tds:Model")
        details.firmware = find_text(resp, "tds:FirmwareVersion")
        details.serial = find_text(resp, "tds:SerialNumber")
    media = _media_xaddr(xaddr, user, password, timeout_s)
    details.profiles = _profiles(media, user, password, timeout_s)
    return details

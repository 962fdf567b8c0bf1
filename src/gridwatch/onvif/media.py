"""ONVIF device and media services: what a discovered camera is, and its RTSP URIs.

``fetch_device`` asks a device (at a discovery XAddr) for its information and its media
profiles, and for each profile the RTSP URI (``GetStreamUri``, RTP-Unicast over RTSP). A
camera's first profile is usually its main stream and the second its sub-stream, which is what
``camera add --url … --sub-url …`` wants.

The SOAP is ``onvif-zeep-async``'s (zeep with the ONVIF WSDLs shipped inside the package, so
nothing is downloaded at run time; the client Home Assistant's ONVIF integration uses): SOAP
1.2 over HTTP with a WS-Security digest UsernameToken, the media service's address from the
device's GetServices (GetCapabilities on older devices). Every call has a timeout.
Credentials are never put into the URIs returned (the engineer decides where the password
goes); a failed login, an unreachable device and an answer that is not ONVIF are each reported
as such (:class:`OnvifError` ``kind``), not as a generic error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from onvif import ONVIFCamera

__all__ = ["DeviceDetails", "MediaProfile", "OnvifError", "fetch_device", "fetch_device_async"]

log = logging.getLogger(__name__)

T = TypeVar("T")

_AUTH_SUBCODES = frozenset({"NotAuthorized", "FailedAuthentication", "InvalidSecurity"})
_STREAM_SETUP = {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}}


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


def _auth_error(url: str) -> OnvifError:
    return OnvifError(
        "auth",
        f"{url}: the device refused the user name or password — check --user and "
        "--password (and that the camera's clock is roughly right: digest logins expire)",
    )


def _fault_subcodes(fault: Any) -> list[str]:
    codes = [str(getattr(q, "localname", q) or "") for q in (fault.subcodes or [])]
    if fault.code:
        codes.append(str(fault.code).rsplit(":", 1)[-1])
    return codes


@contextlib.asynccontextmanager
async def _asking(url: str, timeout_s: float) -> AsyncIterator[None]:
    """Turn what zeep/aiohttp raise while talking to ``url`` into :class:`OnvifError`."""
    import aiohttp
    from onvif import ONVIFError
    from zeep.exceptions import Error as ZeepError
    from zeep.exceptions import Fault, TransportError

    try:
        yield
    except Fault as exc:
        codes = _fault_subcodes(exc)
        if _AUTH_SUBCODES.intersection(codes):
            raise _auth_error(url) from None
        if not codes:  # an error answer that is XML but no SOAP fault (a web page, say)
            raise OnvifError("protocol", f"{url}: not an ONVIF device service") from None
        raise OnvifError("protocol", f"{url}: SOAP fault: {exc.message or codes[-1]}") from None
    except TransportError as exc:
        if exc.status_code in (401, 403):
            raise _auth_error(url) from None
        raise OnvifError(
            "protocol", f"{url}: not an ONVIF device service (HTTP {exc.status_code})"
        ) from None
    except TimeoutError:
        raise OnvifError("unreachable", f"{url}: no answer within {timeout_s:g}s") from None
    except (aiohttp.ClientError, OSError) as exc:
        raise OnvifError("unreachable", f"{url}: {exc}") from None
    except ONVIFError as exc:
        raise OnvifError("protocol", f"{url}: {exc}") from None
    except ZeepError as exc:  # XML that is not a SOAP answer, or not the expected one
        raise OnvifError("protocol", f"{url}: not an ONVIF device service: {exc}") from None


def _camera(xaddr: str, user: str | None, password: str | None) -> ONVIFCamera:
    """An ``ONVIFCamera`` whose device service is exactly ``xaddr``.

    The library builds the device-service URL from host and port with the standard path
    (``/onvif/device_service``); a discovered XAddr is used as given instead.
    """
    from onvif import ONVIFCamera

    parts = urlsplit(xaddr)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OnvifError("protocol", f"{xaddr}: not an http(s) device-service URL")
    port = parts.port or (443 if parts.scheme == "https" else 80)

    class _Camera(ONVIFCamera):  # type: ignore[misc]
        def get_definition(self, name: str, port_type: str | None = None) -> tuple[str, str, str]:
            defined: tuple[str, str, str] = super().get_definition(name, port_type)
            if name == "devicemgmt":
                return (xaddr, defined[1], defined[2])
            return defined

    # no_cache: the WSDLs are the package's own files (no SQLite cache of downloads needed)
    return _Camera(parts.hostname, port, user or "", password or "", no_cache=True)


def _text(obj: Any, *path: str) -> str | None:
    for name in path:
        obj = getattr(obj, name, None)
        if obj is None:
            return None
    text = str(obj).strip()
    return text or None


def _number(obj: Any, *path: str) -> float | None:
    text = _text(obj, *path)
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


async def fetch_device_async(
    xaddr: str, *, user: str | None, password: str | None, timeout_s: float = 5.0
) -> DeviceDetails:
    """Device information and media profiles with their RTSP URIs."""
    details = DeviceDetails(xaddr=xaddr)
    cam = _camera(xaddr, user, password)

    async def ask(url: str, call: Awaitable[T]) -> T:
        async with _asking(url, timeout_s):
            return await asyncio.wait_for(call, timeout_s)

    try:
        async with _asking(xaddr, timeout_s):
            devicemgmt = await cam.create_devicemgmt_service()
        info = await ask(xaddr, devicemgmt.GetDeviceInformation())
        details.manufacturer = _text(info, "Manufacturer")
        details.model = _text(info, "Model")
        details.firmware = _text(info, "FirmwareVersion")
        details.serial = _text(info, "SerialNumber")
        await ask(xaddr, cam.update_xaddrs())
        async with _asking(xaddr, timeout_s):
            media = await cam.create_media_service()
        media_url = str(media.xaddr)
        for prof in await ask(media_url, media.GetProfiles()) or []:
            token = str(getattr(prof, "token", "") or "")
            enc = getattr(prof, "VideoEncoderConfiguration", None)
            uri = await ask(
                media_url, media.GetStreamUri({"StreamSetup": _STREAM_SETUP, "ProfileToken": token})
            )
            width = _number(enc, "Resolution", "Width")
            height = _number(enc, "Resolution", "Height")
            details.profiles.append(
                MediaProfile(
                    token=token,
                    name=_text(prof, "Name") or token,
                    encoding=_text(enc, "Encoding"),
                    width=int(width) if width is not None else None,
                    height=int(height) if height is not None else None,
                    fps=_number(enc, "RateControl", "FrameRateLimit"),
                    rtsp_uri=_text(uri, "Uri"),
                )
            )
    finally:
        with contextlib.suppress(Exception):
            await cam.close()
    return details


def fetch_device(
    xaddr: str, *, user: str | None, password: str | None, timeout_s: float = 5.0
) -> DeviceDetails:
    """Device information and media profiles with their RTSP URIs (blocking)."""
    return asyncio.run(fetch_device_async(xaddr, user=user, password=password, timeout_s=timeout_s))

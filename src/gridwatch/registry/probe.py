"""Probe a camera stream before it is registered: can it be opened, and what does it send?

An ops engineer adding a camera wants to know *now* that the URL is wrong, not to find out
from a worker's health report later. ``probe_stream`` opens the stream the way a worker does
(PyAV over RTSP/TCP, open and read timeouts), decodes the first picture and reports codec,
resolution, frame rate, GOP length (keyframe interval: how long a worker waits for its first
frame after connecting) and the time to the first frame. The first picture is the snapshot
an engineer draws zones on; privacy masks are painted on it before it leaves this function.

Failures are turned into a :class:`ProbeError` whose ``kind`` names the problem and whose
message says how to fix it, with any password in the URL replaced by ``***``: FFmpeg quotes
the URL in its errors, credentials included.
"""

from __future__ import annotations

import errno
import logging
import socket
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import av
import av.error
import cv2
import numpy as np
import numpy.typing as npt

from gridwatch.ingest.masks import PrivacyMasker
from gridwatch.ingest.reader import RTSP_OPTIONS, is_network_url
from gridwatch.ingest.urls import redact_text, redact_url, url_host

__all__ = ["ProbeError", "ProbeKind", "ProbeResult", "classify_error", "probe_stream"]

log = logging.getLogger(__name__)

ProbeKind = Literal[
    "refused",
    "unreachable",
    "unknown_host",
    "timeout",
    "auth",
    "not_found",
    "not_rtsp",
    "no_video",
    "unsupported_codec",
    "file_missing",
    "error",
]

# Codecs a worker decodes in software at a sensible cost; anything else is refused by `add`.
SUPPORTED_CODECS = frozenset({"h264", "hevc", "mjpeg", "mpeg4", "vp8", "vp9", "av1"})


class ProbeError(Exception):
    """The stream could not be used; ``kind`` says why, the message how to fix it."""

    def __init__(self, kind: ProbeKind, message: str) -> None:
        super().__init__(message)
        self.kind: ProbeKind = kind


@dataclass
class ProbeResult:
    """What a stream sends. Times are seconds from the start of the probe."""

    url: str
    """Redacted: safe to print."""
    codec: str
    profile: str | None
    width: int
    height: int
    fps: float | None
    gop_frames: int | None
    """Frames from one keyframe to the next; None when not measured or not seen in time."""
    gop_s: float | None
    open_s: float
    first_frame_s: float
    sub_url: str | None = None
    """The camera's configured sub-stream (redacted), when probing a registered camera."""
    sub_stream: ProbeResult | None = None
    snapshot: str | None = None
    """Where the first picture was written, if it was."""
    image: npt.NDArray[np.uint8] | None = field(default=None, repr=False, compare=False)
    """The first picture (BGR, privacy masks applied)."""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("image", None)
        d["sub_stream_configured"] = self.sub_url is not None
        if self.sub_stream is not None:
            d["sub_stream"] = self.sub_stream.to_dict()
        return d


def _fix_for(kind: ProbeKind, url: str, timeout_s: float) -> str:
    host = url_host(url) or "the camera"
    return {
        "refused": f"nothing accepts connections at {host} on that port: check the port "
        "(RTSP is usually 554) and that the camera's RTSP service is enabled",
        "unreachable": f"{host} cannot be reached from this machine: check the address and "
        "the network path (VLAN, routing, firewall)",
        "unknown_host": f"the host name {host!r} does not resolve: check its spelling or use "
        "the camera's IP address",
        "timeout": f"{host} did not answer within {timeout_s:g}s: check that the address is a "
        "camera's RTSP port and that it is up, or give a longer --timeout for a slow link",
        "auth": "the camera refused the user name or password (401): check them in the URL "
        "(rtsp://user:password@host/...), and percent-encode special characters in the "
        "password (@ → %40, : → %3A)",
        "not_found": "the camera has no stream at that path (404): check the path; for ONVIF "
        "cameras `gridwatch camera discover --user U --password P` lists the stream URIs",
        "not_rtsp": f"{host} answered, but not as an RTSP camera: check the port and scheme",
        "no_video": "the source has no video stream: check the URL (channel/stream path)",
        "unsupported_codec": "set the camera (or its sub-stream) to H.264 or H.265 in its web "
        "interface",
        "file_missing": "no such video file: check the path (files are for tests and demos)",
        "error": "see the message; `gridwatch camera probe URL --log-level debug` shows more",
    }[kind]


def classify_error(exc: BaseException, url: str, elapsed_s: float, timeout_s: float) -> ProbeError:
    """Map what FFmpeg/PyAV raised to a :class:`ProbeError` (pure: unit-tested on its own)."""
    kind: ProbeKind
    code = getattr(exc, "errno", None)
    if isinstance(exc, ProbeError):
        return exc
    if isinstance(exc, av.error.HTTPUnauthorizedError | av.error.HTTPForbiddenError):
        kind = "auth"
    elif isinstance(exc, av.error.HTTPNotFoundError):
        kind = "not_found"
    elif isinstance(exc, ConnectionRefusedError) or code == errno.ECONNREFUSED:
        kind = "refused"
    elif code in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN):
        kind = "unreachable"
    elif isinstance(exc, TimeoutError) or code == errno.ETIMEDOUT:
        kind = "timeout"
    elif isinstance(exc, FileNotFoundError) and not is_network_url(url):
        kind = "file_missing"
    elif isinstance(exc, av.error.InvalidDataError):
        # FFmpeg says "invalid data" both for a silent peer (after the read timeout) and for
        # a peer that answers something that is not RTSP (at once)
        kind = "timeout" if elapsed_s >= 0.8 * timeout_s else "not_rtsp"
    else:
        kind = "error"
    what = redact_text(str(exc)) or type(exc).__name__
    return ProbeError(kind, f"{redact_url(url)}: {what} — {_fix_for(kind, url, timeout_s)}")


def _resolve(url: str, timeout_s: float) -> None:
    """Fail early and clearly on a host name that does not resolve."""
    host = url_host(url)
    if not host or not is_network_url(url):
        return
    try:
        socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ProbeError(
            "unknown_host", f"{redact_url(url)}: {exc} — {_fix_for('unknown_host', url, timeout_s)}"
        ) from None


def _open(url: str, timeout_s: float) -> Any:
    if is_network_url(url):
        return av.open(url, options=dict(RTSP_OPTIONS), timeout=(timeout_s, timeout_s))
    path = url.removeprefix("file://")
    if not Path(path).exists():
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
    return av.open(path)


def probe_stream(
    url: str,
    *,
    timeout_s: float = 10.0,
    gop_window_s: float = 6.0,
    masks: Sequence[Sequence[tuple[float, float]]] = (),
    snapshot: Path | None = None,
) -> ProbeResult:
    """Open ``url``, decode its first picture, measure its GOP for up to ``gop_window_s``.

    Blocking (run it in a thread from async code). ``gop_window_s=0`` skips the GOP
    measurement (``camera add`` only needs to know the stream opens and decodes). ``masks``
    are painted on the picture; ``snapshot`` is where to write it as JPEG.
    """
    t0 = time.monotonic()
    try:
        _resolve(url, timeout_s)
        container = _open(url, timeout_s)
    except Exception as exc:
        raise classify_error(exc, url, time.monotonic() - t0, timeout_s) from None
    open_s = time.monotonic() - t0
    try:
        if not container.streams.video:
            raise ProbeError(
                "no_video", f"{redact_url(url)}: no video stream — {_fix_for('no_video', url, 0)}"
            )
        stream = container.streams.video[0]
        ctx = stream.codec_context
        codec = str(ctx.name or "")
        if codec not in SUPPORTED_CODECS:
            raise ProbeError(
                "unsupported_codec",
                f"{redact_url(url)}: the video codec is {codec or 'unknown'}, which workers do "
                f"not decode (supported: {', '.join(sorted(SUPPORTED_CODECS))}) — "
                + _fix_for("unsupported_codec", url, 0),
            )
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else None
        image, first_frame_s, gop = _read(container, stream, t0, timeout_s, gop_window_s)
    except ProbeError:
        raise
    except Exception as exc:
        raise classify_error(exc, url, time.monotonic() - t0, timeout_s) from None
    finally:
        container.close()
    PrivacyMasker(masks).apply_image(image)
    written: str | None = None
    if snapshot is not None:
        ok, buf = cv2.imencode(".jpg", image, [int(cv2.IMWRITE_JPEG_QUALITY), 90])
        if not ok:
            raise ProbeError("error", "OpenCV could not encode the snapshot")
        snapshot.parent.mkdir(parents=True, exist_ok=True)
        snapshot.write_bytes(buf.tobytes())
        written = str(snapshot)
    result = ProbeResult(
        url=redact_url(url),
        codec=codec,
        profile=str(ctx.profile) if ctx.profile else None,
        width=int(image.shape[1]),
        height=int(image.shape[0]),
        fps=round(fps, 3) if fps else None,
        gop_frames=gop,
        gop_s=round(gop / fps, 3) if gop and fps else None,
        open_s=round(open_s, 3),
        first_frame_s=round(first_frame_s, 3),
        snapshot=written,
        image=image,
    )
    log.debug("probe %s: %s", result.url, result.to_dict())
    return result


def _read(
    container: Any, stream: Any, t0: float, timeout_s: float, gop_window_s: float
) -> tuple[npt.NDArray[np.uint8], float, int | None]:
    """Decode until the first picture, then count packets between keyframes (no decoding)."""
    image: npt.NDArray[np.uint8] | None = None
    first_frame_s = 0.0
    keyframes_at: list[int] = []  # packet index (from the first picture's) of each keyframe
    n = 0
    gop_deadline = float("inf")
    for packet in container.demux(stream):
        if packet.size == 0:
            continue
        if image is None:
            if time.monotonic() - t0 > timeout_s + 1:
                raise TimeoutError(errno.ETIMEDOUT, "no picture decoded in time")
            frames = packet.decode()
            if not frames:
                continue
            image = np.ascontiguousarray(frames[0].to_ndarray(format="bgr24"))
            first_frame_s = time.monotonic() - t0
            if gop_window_s <= 0:
                break
            gop_deadline = time.monotonic() + gop_window_s
            if packet.is_keyframe:
                keyframes_at.append(0)
            n = 1
            continue
        if packet.is_keyframe:
            keyframes_at.append(n)
            if len(keyframes_at) >= 2:
                break
        n += 1
        if time.monotonic() > gop_deadline:
            break
    if image is None:
        raise ProbeError("no_video", "the stream ended before a picture could be decoded")
    gop = keyframes_at[1] - keyframes_at[0] if len(keyframes_at) >= 2 else None
    return image, first_frame_s, gop

"""A small ONVIF camera for tests and demos: WS-Discovery responder plus device/media services.

It answers what ``gridwatch camera discover`` asks, over the real protocols (UDP multicast,
SOAP over HTTP with a WS-Security digest login), so discovery is tested against the wire
format rather than against mocks. It is not a general ONVIF implementation: it knows the five
operations gridwatch uses and serves the RTSP URIs it is given (point them at an
:class:`~gridwatch.embedded.rtsp_server.RtspServer` to make a complete fake camera).

Run it where its multicast cannot reach a real network: the tests start it inside a network
namespace of their own (``python -m gridwatch.onvif.simulator --ip 10.77.0.2 ...``, which
prints ``READY <device url>`` and exits when its stdin closes).
"""

from __future__ import annotations

import argparse
import base64
import hmac
import logging
import socket
import struct
import sys
import threading
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote
from xml.sax.saxutils import escape

from gridwatch.onvif.discovery import MULTICAST_GROUP, MULTICAST_PORT
from gridwatch.onvif.soap import (
    NS,
    SoapFault,
    envelope,
    find_text,
    local_name,
    parse_xml,
    password_digest,
)

__all__ = ["OnvifSimulator", "SimProfile"]

log = logging.getLogger(__name__)


@dataclass
class SimProfile:
    token: str
    name: str
    rtsp_uri: str
    width: int = 768
    height: int = 576
    fps: int = 10
    encoding: str = "H264"


@dataclass
class OnvifSimulator:
    """Serve one simulated camera on ``ip`` until :meth:`stop`."""

    ip: str
    profiles: list[SimProfile]
    user: str = "admin"
    password: str = "admin"
    name: str = "gridwatch-sim"
    hardware: str = "SimCam-1"
    location: str = "test-bench"
    http_port: int = 0
    endpoint: str = field(default_factory=lambda: f"urn:uuid:{uuid.uuid4()}")
    _threads: list[threading.Thread] = field(default_factory=list, repr=False)
    _udp: socket.socket | None = field(default=None, repr=False)
    _http: ThreadingHTTPServer | None = field(default=None, repr=False)
    _stopping: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def device_url(self) -> str:
        assert self._http is not None
        return f"http://{self.ip}:{self._http.server_address[1]}/onvif/device_service"

    def start(self) -> OnvifSimulator:
        self._http = ThreadingHTTPServer((self.ip, self.http_port), self._handler())
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
        udp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        udp.bind(("", MULTICAST_PORT))
        mreq = struct.pack("4s4s", socket.inet_aton(MULTICAST_GROUP), socket.inet_aton(self.ip))
        udp.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
        udp.settimeout(0.2)
        self._udp = udp
        for target, name in ((self._http.serve_forever, "http"), (self._discovery, "ws-disc")):
            t = threading.Thread(target=target, name=f"onvif-sim-{name}", daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
        for t in self._threads:
            t.join(5)
        if self._udp is not None:
            self._udp.close()

    # -- WS-Discovery ----------------------------------------------------------------------------

    def _scopes(self) -> str:
        return " ".join(
            f"onvif://www.onvif.org/{k}/{quote(v)}"  # scopes are space-separated
            for k, v in (
                ("type", "video_encoder"),
                ("name", self.name),
                ("hardware", self.hardware),
                ("location", self.location),
            )
        )

    def _discovery(self) -> None:
        assert self._udp is not None
        while not self._stopping.is_set():
            try:
                data, addr = self._udp.recvfrom(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                root = parse_xml(data)
            except SoapFault:
                continue
            if root.find("s:Body/d:Probe", NS) is None:
                continue
            types = find_text(root, "s:Body/d:Probe/d:Types") or ""
            if types and "NetworkVideoTransmitter" not in types:
                continue
            relates = find_text(root, "s:Header/a:MessageID") or ""
            header = (
                f"<a:MessageID>urn:uuid:{uuid.uuid4()}</a:MessageID>"
                f"<a:RelatesTo>{escape(relates)}</a:RelatesTo>"
                "<a:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:To>"
                "<a:Action>http://schemas.xmlsoap.org/ws/2005/04/discovery/ProbeMatches</a:Action>"
            )
            body = (
                "<d:ProbeMatches><d:ProbeMatch>"
                f"<a:EndpointReference><a:Address>{self.endpoint}</a:Address></a:EndpointReference>"
                "<d:Types>dn:NetworkVideoTransmitter tds:Device</d:Types>"
                f"<d:Scopes>{escape(self._scopes())}</d:Scopes>"
                f"<d:XAddrs>{self.device_url}</d:XAddrs>"
                "<d:MetadataVersion>1</d:MetadataVersion>"
                "</d:ProbeMatch></d:ProbeMatches>"
            )
            try:
                self._udp.sendto(envelope(body, header), addr)
            except OSError as exc:
                log.debug("ws-discovery reply to %s failed: %s", addr, exc)

    # -- SOAP services ---------------------------------------------------------------------------

    def _authorized(self, root: ET.Element) -> bool:
        token = root.find("s:Header/wsse:Security/wsse:UsernameToken", NS)
        if token is None:
            return False
        user = find_text(token, "wsse:Username")
        digest = find_text(token, "wsse:Password") or ""
        nonce = find_text(token, "wsse:Nonce") or ""
        created = find_text(token, "wsu:Created") or ""
        try:
            expected = password_digest(self.password, base64.b64decode(nonce), created)
        except ValueError:
            return False
        return user == self.user and hmac.compare_digest(expected, digest)

    def _answer(self, op: str) -> str:
        if op == "GetDeviceInformation":
            return (
                "<tds:GetDeviceInformationResponse><tds:Manufacturer>gridwatch</tds:Manufacturer>"
                f"<tds:Model>{escape(self.hardware)}</tds:Model>"
                "<tds:FirmwareVersion>1.0</tds:FirmwareVersion>"
                f"<tds:SerialNumber>{self.endpoint[-12:]}</tds:SerialNumber>"
                "<tds:HardwareId>1</tds:HardwareId></tds:GetDeviceInformationResponse>"
            )
        if op == "GetCapabilities":
            return (
                "<tds:GetCapabilitiesResponse><tds:Capabilities><tt:Media>"
                f"<tt:XAddr>{self.device_url.replace('device_service', 'media_service')}"
                "</tt:XAddr></tt:Media></tds:Capabilities></tds:GetCapabilitiesResponse>"
            )
        if op == "GetProfiles":
            profiles = "".join(
                f'<trt:Profiles token="{escape(p.token)}" fixed="true">'
                f"<tt:Name>{escape(p.name)}</tt:Name><tt:VideoEncoderConfiguration>"
                f"<tt:Encoding>{p.encoding}</tt:Encoding><tt:Resolution><tt:Width>{p.width}"
                f"</tt:Width><tt:Height>{p.height}</tt:Height></tt:Resolution><tt:RateControl>"
                f"<tt:FrameRateLimit>{p.fps}</tt:FrameRateLimit></tt:RateControl>"
                "</tt:VideoEncoderConfiguration></trt:Profiles>"
                for p in self.profiles
            )
            return f"<trt:GetProfilesResponse>{profiles}</trt:GetProfilesResponse>"
        raise KeyError(op)

    def _stream_uri(self, root: ET.Element) -> str:
        token = find_text(root, "s:Body/trt:GetStreamUri/trt:ProfileToken")
        for p in self.profiles:
            if p.token == token:
                return (
                    "<trt:GetStreamUriResponse><trt:MediaUri>"
                    f"<tt:Uri>{escape(p.rtsp_uri)}</tt:Uri><tt:InvalidAfterConnect>false"
                    "</tt:InvalidAfterConnect><tt:Timeout>PT0S</tt:Timeout>"
                    "</trt:MediaUri></trt:GetStreamUriResponse>"
                )
        raise KeyError(token)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        sim = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                log.debug("onvif-sim http: " + format, *args)

            def _send(self, status: int, body: str) -> None:
                data = envelope(body)
                self.send_response(status)
                self.send_header("Content-Type", "application/soap+xml; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _fault(self, status: int, subcode: str, text: str) -> None:
                self._send(
                    status,
                    "<s:Fault><s:Code><s:Value>s:Sender</s:Value><s:Subcode>"
                    f"<s:Value>ter:{subcode}</s:Value></s:Subcode></s:Code>"
                    f'<s:Reason><s:Text xml:lang="en">{escape(text)}</s:Text></s:Reason>'
                    "</s:Fault>",
                )

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    root = parse_xml(self.rfile.read(min(length, 1_000_000)))
                except SoapFault as exc:
                    self._fault(400, "WellFormed", str(exc))
                    return
                body = root.find("s:Body", NS)
                op = local_name(body[0].tag) if body is not None and len(body) else ""
                if not sim._authorized(root):
                    self._fault(400, "NotAuthorized", "Sender not Authorized")
                    return
                try:
                    answer = sim._stream_uri(root) if op == "GetStreamUri" else sim._answer(op)
                except KeyError:
                    self._fault(400, "ActionNotSupported", f"{op} is not supported")
                    return
                self._send(200, answer)

        return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ip", required=True, help="Interface address to serve on.")
    parser.add_argument("--rtsp", action="append", default=[], help="Profile RTSP URI (repeat).")
    parser.add_argument("--user", default="admin")
    parser.add_argument("--password", default="admin")
    parser.add_argument("--name", default="gridwatch-sim")
    args = parser.parse_args(argv)
    profiles = [
        SimProfile(f"profile_{i}", "main" if i == 0 else f"sub{i}", uri)
        for i, uri in enumerate(args.rtsp or ["rtsp://127.0.0.1:554/main"])
    ]
    sim = OnvifSimulator(
        args.ip, profiles, user=args.user, password=args.password, name=args.name
    ).start()
    print(f"READY {sim.device_url} {sim.endpoint}", flush=True)
    try:
        sys.stdin.read()  # until the parent closes our stdin (or dies)
    finally:
        sim.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

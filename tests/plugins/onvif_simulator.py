"""A small ONVIF camera for tests: WS-Discovery responder plus device/media services.

It answers what ``gridwatch camera discover`` asks, over the real protocols, so discovery is
tested against the wire format rather than against mocks: WS-Discovery Probes as the
``wsdiscovery`` package sends them (UDP multicast, SOAP 1.2), and SOAP 1.2 over HTTP as zeep
(``onvif-zeep-async``) sends it, with a WS-Security UsernameToken whose PasswordDigest it
checks (a wrong password, a replayed nonce or a stale ``Created`` get the ``ter:NotAuthorized``
fault a camera sends). It is not a general ONVIF implementation: it knows the operations
gridwatch uses and serves the RTSP URIs it is given (point them at an RTSP server to make a
complete fake camera). It is test equipment, not part of the shipped package.

Run it where its multicast cannot reach a real network: the tests start it inside a network
namespace of their own (``python -m tests.plugins.onvif_simulator --ip 10.77.0.2 ...`` from the
repository root, which prints ``READY <device url> <endpoint>``, and when its stdin closes
prints ``REQUESTS <op> …`` (``op!`` for a refused login) and exits). ``discovery=False``
serves only the SOAP services (safe on loopback).
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import hashlib
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

__all__ = ["OnvifSimulator", "SimProfile", "password_digest"]

log = logging.getLogger(__name__)

MULTICAST_GROUP = "239.255.255.250"
MULTICAST_PORT = 3702
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
NS = {
    "s": SOAP12,
    "a": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "d": "http://schemas.xmlsoap.org/ws/2005/04/discovery",
    "dn": "http://www.onvif.org/ver10/network/wsdl",
    "tds": "http://www.onvif.org/ver10/device/wsdl",
    "trt": "http://www.onvif.org/ver10/media/wsdl",
    "tt": "http://www.onvif.org/ver10/schema",
    "ter": "http://www.onvif.org/ver10/error",
    "wsse": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd",
    "wsu": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd",
}
_PW_DIGEST = (
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0"
    "#PasswordDigest"
)
CLOCK_SKEW = dt.timedelta(minutes=5)
"""How far a token's ``Created`` may be from the simulator's clock (as cameras allow)."""


def password_digest(password: str, nonce: bytes, created: str) -> str:
    """WS-Security PasswordDigest: Base64(SHA-1(nonce + created + password)).

    >>> password_digest("secret", b"0123456789abcdef", "2026-11-26T10:00:00Z")
    'PpjYlzjw18H27koyaEqSLTYniN8='
    """
    sha = hashlib.sha1(nonce + created.encode() + password.encode(), usedforsecurity=False)
    return base64.b64encode(sha.digest()).decode()


def envelope(body: str, header: str = "") -> bytes:
    """A SOAP 1.2 envelope around ``body`` (and ``header``), every prefix of :data:`NS` bound."""
    ns = " ".join(f'xmlns:{p}="{u}"' for p, u in NS.items())
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><s:Envelope {ns}><s:Header>{header}</s:Header>'
        f"<s:Body>{body}</s:Body></s:Envelope>"
    ).encode()


def parse_xml(data: bytes) -> ET.Element | None:
    """The document, or None for one that is not XML or has a DTD (no entity expansion)."""
    if b"<!doctype" in data[:2048].lower() or b"<!entity" in data.lower():
        return None
    try:
        return ET.fromstring(data)
    except ET.ParseError:
        return None


def _text(elem: ET.Element, path: str) -> str | None:
    found = elem.find(path, NS)
    return None if found is None or found.text is None else found.text.strip()


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _parse_created(created: str) -> dt.datetime | None:
    try:
        when = dt.datetime.fromisoformat(created.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


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
    discovery: bool = True
    endpoint: str = field(default_factory=lambda: f"urn:uuid:{uuid.uuid4()}")
    requests: list[str] = field(default_factory=list)
    """The operations asked for, in order (``op`` or ``op!`` when refused)."""
    _threads: list[threading.Thread] = field(default_factory=list, repr=False)
    _udp: socket.socket | None = field(default=None, repr=False)
    _http: ThreadingHTTPServer | None = field(default=None, repr=False)
    _stopping: threading.Event = field(default_factory=threading.Event, repr=False)
    _nonces: set[str] = field(default_factory=set, repr=False)
    _probes: set[str] = field(default_factory=set, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def device_url(self) -> str:
        assert self._http is not None
        return f"http://{self.ip}:{self._http.server_address[1]}/onvif/device_service"

    @property
    def media_url(self) -> str:
        return self.device_url.replace("device_service", "media_service")

    def start(self) -> OnvifSimulator:
        self._http = ThreadingHTTPServer((self.ip, self.http_port), self._handler())
        targets = [(self._http.serve_forever, "http")]
        if self.discovery:
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
            udp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            udp.bind(("", MULTICAST_PORT))
            mreq = struct.pack("4s4s", socket.inet_aton(MULTICAST_GROUP), socket.inet_aton(self.ip))
            udp.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
            udp.settimeout(0.2)
            self._udp = udp
            targets.append((self._discovery, "ws-disc"))
        for target, name in targets:
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

    def __enter__(self) -> OnvifSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- WS-Discovery ----------------------------------------------------------------------------

    def _scopes(self) -> str:
        return " ".join(
            f"onvif://www.onvif.org/{k}/{quote(v)}"  # scopes are space-separated
            for k, v in (
                ("type", "video_encoder"),
                ("Profile", "Streaming"),
                ("name", self.name),
                ("hardware", self.hardware),
                ("location", self.location),
            )
        )

    def probe_match(self, data: bytes) -> bytes | None:
        """The ProbeMatches answer to a Probe datagram, or None (not a probe for an NVT, or a
        retransmission of one already answered)."""
        root = parse_xml(data)
        if (
            root is None
            or _local(root.tag) != "Envelope"
            or root.find("s:Body/d:Probe", NS) is None
        ):
            return None
        types = _text(root, "s:Body/d:Probe/d:Types") or ""
        if types and not any(
            t.rsplit(":", 1)[-1] == "NetworkVideoTransmitter" for t in types.split()
        ):
            return None
        message_id = _text(root, "s:Header/a:MessageID") or ""
        with self._lock:
            if message_id in self._probes:  # SOAP-over-UDP repeats a probe: answer it once
                return None
            self._probes.add(message_id)
        header = (
            f"<a:MessageID>urn:uuid:{uuid.uuid4()}</a:MessageID>"
            f"<a:RelatesTo>{escape(message_id)}</a:RelatesTo>"
            "<a:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:To>"
            "<a:Action>http://schemas.xmlsoap.org/ws/2005/04/discovery/ProbeMatches</a:Action>"
            '<d:AppSequence InstanceId="1" MessageNumber="1"/>'
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
        return envelope(body, header)

    def _discovery(self) -> None:
        assert self._udp is not None
        while not self._stopping.is_set():
            try:
                data, addr = self._udp.recvfrom(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            answer = self.probe_match(data)
            if answer is None:
                continue
            try:
                self._udp.sendto(answer, addr)
            except OSError as exc:
                log.debug("ws-discovery reply to %s failed: %s", addr, exc)

    # -- SOAP services ---------------------------------------------------------------------------

    def authorized(self, root: ET.Element, now: dt.datetime | None = None) -> bool:
        """Whether the request carries a valid digest UsernameToken for our user (once)."""
        token = root.find("s:Header/wsse:Security/wsse:UsernameToken", NS)
        if token is None:
            return False
        password = token.find("wsse:Password", NS)
        if password is None or password.get("Type", _PW_DIGEST) != _PW_DIGEST:
            return False  # a plain-text password is refused: digest logins only
        digest = (password.text or "").strip()
        nonce = _text(token, "wsse:Nonce") or ""
        created = _text(token, "wsu:Created") or ""
        when = _parse_created(created)
        if when is None or abs((now or dt.datetime.now(dt.UTC)) - when) > CLOCK_SKEW:
            return False
        try:
            expected = password_digest(self.password, base64.b64decode(nonce), created)
        except ValueError:
            return False
        if _text(token, "wsse:Username") != self.user or not hmac.compare_digest(expected, digest):
            return False
        with self._lock:
            if nonce in self._nonces:  # a replayed token
                return False
            self._nonces.add(nonce)
        return True

    def _video_encoder(self, p: SimProfile) -> str:
        return (
            f'<tt:VideoEncoderConfiguration token="vec_{escape(p.token)}">'
            f"<tt:Name>{escape(p.name)}</tt:Name><tt:UseCount>1</tt:UseCount>"
            f"<tt:Encoding>{p.encoding}</tt:Encoding>"
            f"<tt:Resolution><tt:Width>{p.width}</tt:Width><tt:Height>{p.height}</tt:Height>"
            "</tt:Resolution><tt:Quality>4</tt:Quality>"
            f"<tt:RateControl><tt:FrameRateLimit>{p.fps}</tt:FrameRateLimit>"
            "<tt:EncodingInterval>1</tt:EncodingInterval><tt:BitrateLimit>2048</tt:BitrateLimit>"
            "</tt:RateControl>"
            "<tt:H264><tt:GovLength>50</tt:GovLength><tt:H264Profile>Main</tt:H264Profile></tt:H264>"
            "<tt:Multicast><tt:Address><tt:Type>IPv4</tt:Type><tt:IPv4Address>0.0.0.0"
            "</tt:IPv4Address></tt:Address><tt:Port>0</tt:Port><tt:TTL>1</tt:TTL>"
            "<tt:AutoStart>false</tt:AutoStart></tt:Multicast>"
            "<tt:SessionTimeout>PT60S</tt:SessionTimeout></tt:VideoEncoderConfiguration>"
        )

    def answer(self, op: str, root: ET.Element) -> str:
        """The response body for ``op``; KeyError for an operation (or profile) it lacks."""
        if op == "GetDeviceInformation":
            return (
                "<tds:GetDeviceInformationResponse><tds:Manufacturer>gridwatch</tds:Manufacturer>"
                f"<tds:Model>{escape(self.hardware)}</tds:Model>"
                "<tds:FirmwareVersion>1.0</tds:FirmwareVersion>"
                f"<tds:SerialNumber>{self.endpoint[-12:]}</tds:SerialNumber>"
                "<tds:HardwareId>1</tds:HardwareId></tds:GetDeviceInformationResponse>"
            )
        if op == "GetServices":
            services = "".join(
                f"<tds:Service><tds:Namespace>{NS[p]}</tds:Namespace><tds:XAddr>{url}</tds:XAddr>"
                "<tds:Version><tt:Major>2</tt:Major><tt:Minor>60</tt:Minor></tds:Version>"
                "</tds:Service>"
                for p, url in (("tds", self.device_url), ("trt", self.media_url))
            )
            return f"<tds:GetServicesResponse>{services}</tds:GetServicesResponse>"
        if op == "GetCapabilities":
            return (
                "<tds:GetCapabilitiesResponse><tds:Capabilities>"
                f"<tt:Device><tt:XAddr>{self.device_url}</tt:XAddr></tt:Device>"
                f"<tt:Media><tt:XAddr>{self.media_url}</tt:XAddr></tt:Media>"
                "</tds:Capabilities></tds:GetCapabilitiesResponse>"
            )
        if op == "GetProfiles":
            profiles = "".join(
                f'<trt:Profiles token="{escape(p.token)}" fixed="true">'
                f"<tt:Name>{escape(p.name)}</tt:Name>{self._video_encoder(p)}</trt:Profiles>"
                for p in self.profiles
            )
            return f"<trt:GetProfilesResponse>{profiles}</trt:GetProfilesResponse>"
        if op == "GetStreamUri":
            token = _text(root, "s:Body/trt:GetStreamUri/trt:ProfileToken")
            p = next((p for p in self.profiles if p.token == token), None)
            if p is None:
                raise KeyError(token)
            return (
                "<trt:GetStreamUriResponse><trt:MediaUri>"
                f"<tt:Uri>{escape(p.rtsp_uri)}</tt:Uri><tt:InvalidAfterConnect>false"
                "</tt:InvalidAfterConnect><tt:InvalidAfterReboot>false</tt:InvalidAfterReboot>"
                "<tt:Timeout>PT0S</tt:Timeout></trt:MediaUri></trt:GetStreamUriResponse>"
            )
        raise KeyError(op)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        sim = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as zeep's aiohttp session expects

            def log_message(self, format: str, *args: object) -> None:
                log.debug("onvif-sim http: " + format, *args)

            def _send(self, status: int, body: str) -> None:
                data = envelope(body)
                self.send_response(status)
                self.send_header("Content-Type", "application/soap+xml; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _fault(self, code: str, subcode: str, text: str) -> None:
                self._send(
                    400,
                    f"<s:Fault><s:Code><s:Value>s:{code}</s:Value><s:Subcode>"
                    f"<s:Value>ter:{subcode}</s:Value></s:Subcode></s:Code>"
                    f'<s:Reason><s:Text xml:lang="en">{escape(text)}</s:Text></s:Reason>'
                    "</s:Fault>",
                )

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                root = parse_xml(self.rfile.read(min(length, 1_000_000)))
                if root is None:
                    self._fault("Sender", "WellFormed", "not well-formed XML (or has a DTD)")
                    return
                if root.tag != f"{{{SOAP12}}}Envelope":
                    version = "SOAP 1.1" if root.tag == f"{{{SOAP11}}}Envelope" else "not SOAP"
                    self._fault("VersionMismatch", "WrongSoapVersion", f"{version}: want 1.2")
                    return
                body = root.find("s:Body", NS)
                op = _local(body[0].tag) if body is not None and len(body) else ""
                if not sim.authorized(root):
                    sim.requests.append(f"{op}!")
                    self._fault("Sender", "NotAuthorized", "Sender not Authorized")
                    return
                sim.requests.append(op)
                try:
                    answer = sim.answer(op, root)
                except KeyError:
                    self._fault("Receiver", "ActionNotSupported", f"{op} is not supported")
                    return
                self._send(200, answer)

        return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
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
        print("REQUESTS", *sim.requests, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""WS-Discovery messages as ``wsdiscovery`` builds and parses them, against the simulated camera,
without any network; and the simulator's WS-Security check (what proves the client logs in)."""

from __future__ import annotations

import base64
import datetime as dt
import xml.etree.ElementTree as ET

from wsdiscovery import QName
from wsdiscovery.actions import constructProbe
from wsdiscovery.message import createSOAPMessage, parseSOAPMessage
from wsdiscovery.service import Service

from gridwatch.onvif.discovery import NVT_NAMESPACE, device_from_service
from tests.plugins.onvif_simulator import NS, OnvifSimulator, SimProfile, envelope, password_digest

NOW = dt.datetime(2026, 11, 26, 10, 0, tzinfo=dt.UTC)


def sim(**kw: object) -> OnvifSimulator:
    s = OnvifSimulator("10.0.0.7", [SimProfile("p0", "main", "rtsp://10.0.0.7/main")], **kw)  # type: ignore[arg-type]
    s._http = type("Fake", (), {"server_address": ("10.0.0.7", 80)})()  # type: ignore[assignment]
    return s


def probe(local: str = "NetworkVideoTransmitter") -> bytes:
    env = constructProbe([QName(NVT_NAMESPACE, local, "dn")], [])
    return str(createSOAPMessage(env)).encode()


def test_the_probe_wsdiscovery_sends_is_answered_with_what_it_parses() -> None:
    camera = sim(name="Gate South", hardware="DS-2CD", location="school 9")
    answer = camera.probe_match(probe())
    assert answer is not None
    env = parseSOAPMessage(answer, "10.0.0.7")
    (match,) = env.getProbeResolveMatches()
    service = Service(match.getTypes(), match.getScopes(), match.getXAddrs(), match.getEPR(), 0)
    dev = device_from_service(service, "10.0.0.7")
    assert dev.endpoint == camera.endpoint
    assert dev.address == "10.0.0.7"
    assert dev.xaddrs == ["http://10.0.0.7:80/onvif/device_service"]
    assert (dev.name, dev.hardware, dev.location) == ("Gate South", "DS-2CD", "school 9")
    assert {t.getFullname() for t in service.getTypes()} >= {
        f"{NVT_NAMESPACE}:NetworkVideoTransmitter"
    }
    assert "dn:NetworkVideoTransmitter" in dev.types


def test_without_a_sender_the_xaddr_host_stands_in() -> None:
    service = Service([], [], ["http://10.0.0.9/onvif/device_service"], "urn:uuid:cam-9", 0)
    dev = device_from_service(service)
    assert (dev.endpoint, dev.address, dev.name) == ("urn:uuid:cam-9", "10.0.0.9", None)


def test_the_simulator_answers_each_probe_once_and_only_for_cameras() -> None:
    camera = sim()
    message = probe()
    assert camera.probe_match(message) is not None
    assert camera.probe_match(message) is None  # the SOAP-over-UDP repeat of the same probe
    assert camera.probe_match(probe("Printer")) is None
    assert camera.probe_match(b"<x/>") is None
    assert camera.probe_match(b'<!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>') is None


def token(password: str, *, nonce: bytes = b"0123456789abcdef", created: str = "") -> ET.Element:
    created = created or NOW.strftime("%Y-%m-%dT%H:%M:%SZ")
    digest = password_digest(password, nonce, created)
    header = (
        f"<wsse:Security><wsse:UsernameToken><wsse:Username>admin</wsse:Username>"
        f'<wsse:Password Type="http://docs.oasis-open.org/wss/2004/01/'
        f'oasis-200401-wss-username-token-profile-1.0#PasswordDigest">{digest}</wsse:Password>'
        f"<wsse:Nonce>{base64.b64encode(nonce).decode()}</wsse:Nonce>"
        f"<wsu:Created>{created}</wsu:Created></wsse:UsernameToken></wsse:Security>"
    )
    return ET.fromstring(envelope("<tds:GetDeviceInformation/>", header))


def test_password_digest_is_the_ws_security_one() -> None:
    assert password_digest("secret", b"0123456789abcdef", "2026-11-26T10:00:00Z") == (
        "PpjYlzjw18H27koyaEqSLTYniN8="
    )


def test_the_simulator_checks_the_digest_once_and_the_clock() -> None:
    camera = sim(password="s3cret")
    assert not camera.authorized(token("wrong"), now=NOW)
    assert camera.authorized(token("s3cret"), now=NOW)
    assert not camera.authorized(token("s3cret"), now=NOW)  # the same nonce again: a replay
    assert camera.authorized(token("s3cret", nonce=b"another nonce 16"), now=NOW)
    stale = token("s3cret", nonce=b"a third nonce 16")
    assert not camera.authorized(stale, now=NOW + dt.timedelta(minutes=6))
    no_token = ET.fromstring(envelope("<tds:GetDeviceInformation/>"))
    assert not camera.authorized(no_token, now=NOW)
    assert no_token.find("s:Body/tds:GetDeviceInformation", NS) is not None

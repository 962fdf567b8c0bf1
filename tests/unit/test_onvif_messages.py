"""WS-Discovery and ONVIF SOAP messages, without any network: building, parsing, digests."""

from __future__ import annotations

import base64
import datetime as dt

import pytest

from gridwatch.onvif.discovery import parse_probe_matches, probe_message
from gridwatch.onvif.soap import (
    NS,
    SoapFault,
    envelope,
    fault_of,
    find_text,
    parse_xml,
    password_digest,
    security_header,
)

MATCH = """<?xml version="1.0" encoding="UTF-8"?>
<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"
  xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing"
  xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery">
 <s:Header><a:RelatesTo>urn:uuid:probe-1</a:RelatesTo></s:Header>
 <s:Body><d:ProbeMatches><d:ProbeMatch>
  <a:EndpointReference><a:Address>urn:uuid:cam-7</a:Address></a:EndpointReference>
  <d:Types>dn:NetworkVideoTransmitter</d:Types>
  <d:Scopes>onvif://www.onvif.org/name/Gate%20South onvif://www.onvif.org/hardware/DS-2CD
   onvif://www.onvif.org/location/school-9</d:Scopes>
  <d:XAddrs>http://10.0.0.7/onvif/device_service http://[fe80::1]/onvif/device_service</d:XAddrs>
 </d:ProbeMatch></d:ProbeMatches></s:Body></s:Envelope>"""


def test_probe_message_is_a_ws_discovery_probe() -> None:
    root = parse_xml(probe_message("urn:uuid:probe-1"))
    assert find_text(root, "s:Header/a:MessageID") == "urn:uuid:probe-1"
    assert find_text(root, "s:Body/d:Probe/d:Types") == "dn:NetworkVideoTransmitter"


def test_probe_matches_are_parsed_and_matched_to_our_probe() -> None:
    (dev,) = parse_probe_matches(MATCH.encode(), "10.0.0.7", "urn:uuid:probe-1")
    assert dev.endpoint == "urn:uuid:cam-7"
    assert dev.address == "10.0.0.7"
    assert dev.xaddrs[0] == "http://10.0.0.7/onvif/device_service"
    assert len(dev.xaddrs) == 2
    assert (dev.name, dev.hardware, dev.location) == ("Gate South", "DS-2CD", "school-9")
    assert parse_probe_matches(MATCH.encode(), "10.0.0.7", "urn:uuid:other") == []
    assert parse_probe_matches(b"not xml", "10.0.0.7", None) == []


def test_documents_with_a_dtd_are_refused() -> None:
    evil = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>'
    with pytest.raises(SoapFault, match="DTD"):
        parse_xml(evil)


def test_usernametoken_digest_is_verifiable() -> None:
    now = dt.datetime(2026, 11, 26, 10, 0, tzinfo=dt.UTC)
    root = parse_xml(envelope("<x/>", security_header("admin", "s3cret", now=now)))
    token = root.find("s:Header/wsse:Security/wsse:UsernameToken", NS)
    assert token is not None
    nonce = base64.b64decode(find_text(token, "wsse:Nonce") or "")
    created = find_text(token, "wsu:Created") or ""
    assert created == "2026-11-26T10:00:00Z"
    assert find_text(token, "wsse:Password") == password_digest("s3cret", nonce, created)
    assert b"s3cret" not in envelope("<x/>", security_header("admin", "s3cret"))


def test_faults_say_whether_credentials_were_the_problem() -> None:
    body = (
        "<s:Fault><s:Code><s:Value>s:Sender</s:Value><s:Subcode><s:Value>ter:NotAuthorized"
        "</s:Value></s:Subcode></s:Code><s:Reason><s:Text>Sender not Authorized</s:Text>"
        "</s:Reason></s:Fault>"
    )
    fault = fault_of(parse_xml(envelope(body)))
    assert fault is not None
    assert fault.not_authorized
    assert "not Authorized" in str(fault)
    assert fault_of(parse_xml(envelope("<ok/>"))) is None

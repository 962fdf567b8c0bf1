"""The little SOAP that ONVIF needs: envelopes, WS-Security UsernameToken, safe XML parsing.

Why hand-written instead of zeep/onvif-zeep: discovery and "give me the RTSP URIs" are five
operations with fixed request bodies; a WSDL toolkit would add a dependency tree, WSDL fetching
and seconds of start-up for that. The standard library's ``xml.etree`` parses the answers;
documents with a DTD are refused outright (no entity expansion from a device on the network).

>>> digest = password_digest("secret", b"0123456789abcdef", "2026-11-26T10:00:00Z")
>>> digest
'PpjYlzjw18H27koyaEqSLTYniN8='
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape

__all__ = [
    "NS",
    "SoapFault",
    "envelope",
    "find_text",
    "local_name",
    "parse_xml",
    "password_digest",
    "security_header",
]

NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "a": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "d": "http://schemas.xmlsoap.org/ws/2005/04/discovery",
    "dn": "http://www.onvif.org/ver10/network/wsdl",
    "tds": "http://www.onvif.org/ver10/device/wsdl",
    "trt": "http://www.onvif.org/ver10/media/wsdl",
    "tt": "http://www.onvif.org/ver10/schema",
    "wsse": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd",
    "wsu": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd",
}
_PW_DIGEST = (
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0"
    "#PasswordDigest"
)
_B64 = (
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary"
)


class SoapFault(Exception):
    """A SOAP fault or an unusable answer; ``not_authorized`` for a credentials problem."""

    def __init__(self, message: str, *, not_authorized: bool = False) -> None:
        super().__init__(message)
        self.not_authorized = not_authorized


def password_digest(password: str, nonce: bytes, created: str) -> str:
    """WS-Security PasswordDigest: Base64(SHA-1(nonce + created + password))."""
    sha = hashlib.sha1(nonce + created.encode() + password.encode(), usedforsecurity=False)
    return base64.b64encode(sha.digest()).decode()


def security_header(user: str, password: str, *, now: dt.datetime | None = None) -> str:
    """A ``wsse:Security`` header with a digest UsernameToken (the password is not sent)."""
    nonce = os.urandom(16)
    created = (now or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return (
        f'<wsse:Security xmlns:wsse="{NS["wsse"]}" xmlns:wsu="{NS["wsu"]}">'
        "<wsse:UsernameToken>"
        f"<wsse:Username>{escape(user)}</wsse:Username>"
        f'<wsse:Password Type="{_PW_DIGEST}">{password_digest(password, nonce, created)}'
        "</wsse:Password>"
        f'<wsse:Nonce EncodingType="{_B64}">{base64.b64encode(nonce).decode()}</wsse:Nonce>'
        f"<wsu:Created>{created}</wsu:Created>"
        "</wsse:UsernameToken></wsse:Security>"
    )


def envelope(body: str, header: str = "") -> bytes:
    """A SOAP 1.2 envelope around ``body`` (and ``header``), UTF-8 encoded."""
    ns = " ".join(f'xmlns:{p}="{u}"' for p, u in NS.items() if p in ("s", "a", "d", "dn", "tds"))
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><s:Envelope {ns} xmlns:trt="{NS["trt"]}" '
        f'xmlns:tt="{NS["tt"]}"><s:Header>{header}</s:Header><s:Body>{body}</s:Body>'
        "</s:Envelope>"
    ).encode()


def parse_xml(data: bytes) -> ET.Element:
    """Parse a device's XML; refuse DTDs (entity expansion) and say what was wrong."""
    head = data[:2048].lower()
    if b"<!doctype" in head or b"<!entity" in data.lower():
        raise SoapFault("refusing an XML document with a DTD")
    try:
        return ET.fromstring(data)
    except ET.ParseError as exc:
        raise SoapFault(f"not XML: {exc}") from None


def local_name(tag: str) -> str:
    """``{namespace}Name`` → ``Name``."""
    return tag.rsplit("}", 1)[-1]


def find_text(elem: ET.Element, path: str) -> str | None:
    """Text of the first element at ``path`` (prefixes from :data:`NS`), stripped, or None."""
    found = elem.find(path, NS)
    if found is None or found.text is None:
        return None
    return found.text.strip()


def fault_of(root: ET.Element) -> SoapFault | None:
    """The SOAP fault in a response envelope, if it is one."""
    fault = root.find("s:Body/s:Fault", NS)
    if fault is None:
        return None
    codes = [
        local_name(v.text or "").split(":")[-1]
        for v in fault.iter()
        if local_name(v.tag) == "Value" and v.text
    ]
    reason = " ".join(
        (t.text or "").strip() for t in fault.iter() if local_name(t.tag) == "Text"
    ).strip()
    not_auth = any(c in ("NotAuthorized", "FailedAuthentication") for c in codes)
    return SoapFault(reason or "/".join(codes) or "SOAP fault", not_authorized=not_auth)

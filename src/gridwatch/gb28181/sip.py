"""SIP messages (RFC 3261) as much as a GB/T 28181 lower platform needs: parse, serialize,
TCP framing and building requests and responses.

Why a small codec of our own rather than a SIP stack: a lower platform only sends REGISTER and
MESSAGE and answers MESSAGE/OPTIONS; the whole state machine is a few hundred lines on top of
this, while full stacks bring dialog layers (and threads) we would have to work around. What
is here follows RFC 3261 where platforms are strict (Via/From/To/Call-ID/CSeq copied into
responses, a ``z9hG4bK`` branch, Content-Length from the body's *bytes*) and is lenient where
devices are sloppy (compact header names, folded lines, bare ``\\n`` line ends).

>>> req = build_request("MESSAGE", "sip:34020000002000000001@3402000000",
...     from_uri="sip:34020000002000000002@3402000000", from_tag="a1",
...     to_uri="sip:34020000002000000001@3402000000", call_id="c1", cseq=2,
...     via_host="10.0.0.5", via_port=5060, transport="udp",
...     body=b"<x/>", content_type="Application/MANSCDP+xml")
>>> msg = parse(req.serialize())
>>> msg.method, msg.headers["i"], msg.headers["content-length"], msg.body
('MESSAGE', 'c1', '4', b'<x/>')
>>> build_response(msg, 200, "OK", to_tag="b2").serialize().splitlines()[0]
b'SIP/2.0 200 OK'
"""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal

COMPACT_FORMS = {
    "i": "call-id",
    "f": "from",
    "t": "to",
    "v": "via",
    "l": "content-length",
    "c": "content-type",
    "m": "contact",
    "k": "supported",
    "s": "subject",
    "e": "content-encoding",
}
"""RFC 3261 §7.3.3 compact header names → full names (lower case)."""

MAX_MESSAGE_BYTES = 256 * 1024
"""A message larger than this is refused (a catalog page is a few KiB; a stream that grows
past this without a complete message is garbage or an attack, not SIP)."""

Transport = Literal["udp", "tcp"]

_START_RE = re.compile(r"^([A-Za-z]+) (\S+) SIP/2\.0$")
_STATUS_RE = re.compile(r"^SIP/2\.0 (\d{3})(?: (.*))?$")
_TAG_RE = re.compile(r";\s*tag=([^;>\s,]+)", re.IGNORECASE)
_BRANCH_RE = re.compile(r";\s*branch=([^;\s,]+)", re.IGNORECASE)


class SipParseError(ValueError):
    """Bytes that are not a SIP message we can use (the reason says what is wrong)."""


def _key(name: str) -> str:
    low = name.strip().lower()
    return COMPACT_FORMS.get(low, low)


class Headers:
    """An ordered multi-dict of header fields: case-insensitive, compact names equal full ones.

    >>> h = Headers([("Via", "SIP/2.0/UDP a"), ("v", "SIP/2.0/UDP b"), ("Call-ID", "x")])
    >>> h["i"], h.get_all("VIA"), "call-id" in h, len(h)
    ('x', ['SIP/2.0/UDP a', 'SIP/2.0/UDP b'], True, 3)
    >>> h.set("Call-ID", "y"); h["I"]
    'y'
    """

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str]] = [(n, v) for n, v in items]

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(list(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Headers) and self._items == other._items

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of ``name`` (any case, compact or full form)."""
        k = _key(name)
        for n, v in self._items:
            if _key(n) == k:
                return v
        return default

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name`` in order (comma-joined values are not split)."""
        k = _key(name)
        return [v for n, v in self._items if _key(n) == k]

    def add(self, name: str, value: str) -> None:
        self._items.append((name, value))

    def set(self, name: str, value: str) -> None:
        """Replace every ``name`` field by one, at the place of the first (or at the end)."""
        k = _key(name)
        out: list[tuple[str, str]] = []
        done = False
        for n, v in self._items:
            if _key(n) == k:
                if not done:
                    out.append((name, value))
                    done = True
            else:
                out.append((n, v))
        if not done:
            out.append((name, value))
        self._items = out

    def remove(self, name: str) -> None:
        k = _key(name)
        self._items = [(n, v) for n, v in self._items if _key(n) != k]

    def copy(self) -> Headers:
        return Headers(self._items)


@dataclass
class SipMessage:
    """A request (``method``, ``uri``) or a response (``status``, ``reason``)."""

    method: str | None = None
    uri: str | None = None
    status: int | None = None
    reason: str = ""
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    @property
    def is_request(self) -> bool:
        return self.method is not None

    @property
    def call_id(self) -> str:
        return self.headers.get("call-id") or ""

    @property
    def cseq(self) -> tuple[int, str]:
        """``(number, method)`` of the CSeq header; ``(0, "")`` if it is missing or bad."""
        raw = (self.headers.get("cseq") or "").split()
        if len(raw) == 2 and raw[0].isdigit():
            return int(raw[0]), raw[1].upper()
        return 0, ""

    @property
    def from_tag(self) -> str | None:
        return header_tag(self.headers.get("from") or "")

    @property
    def to_tag(self) -> str | None:
        return header_tag(self.headers.get("to") or "")

    @property
    def branch(self) -> str | None:
        """The branch of the top Via (a transaction's key)."""
        m = _BRANCH_RE.search((self.headers.get("via") or "").split(",")[0])
        return m.group(1) if m else None

    def serialize(self) -> bytes:
        """The wire bytes; Content-Length is always computed from ``body``.

        >>> SipMessage(status=200, reason="OK", body="是".encode("gb18030")).serialize()
        b'SIP/2.0 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\n\\xca\\xc7'
        """
        if self.method is not None:
            start = f"{self.method} {self.uri} SIP/2.0"
        elif self.status is not None:
            start = f"SIP/2.0 {self.status} {self.reason}".rstrip()
        else:
            raise ValueError("a SIP message needs a method or a status")
        lines = [start]
        lines += [f"{n}: {v}" for n, v in self.headers if _key(n) != "content-length"]
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + self.body


def header_tag(value: str) -> str | None:
    """The ``tag`` parameter of a From/To value.

    >>> header_tag('<sip:1@d>;tag=abc'), header_tag("<sip:1@d>")
    ('abc', None)
    """
    m = _TAG_RE.search(value.rsplit(">", 1)[-1] if ">" in value else value)
    return m.group(1) if m else None


def header_uri(value: str) -> str:
    """The URI of a From/To/Contact value.

    >>> header_uri('"x" <sip:1@d:5060>;tag=a'), header_uri("sip:1@d;tag=a")
    ('sip:1@d:5060', 'sip:1@d')
    """
    if "<" in value and ">" in value:
        return value[value.index("<") + 1 : value.index(">")]
    return value.split(";", 1)[0].strip()


def _decode_head(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        try:
            return data.decode("gb18030")  # some devices put GB2312 text in Subject
        except UnicodeDecodeError as exc:
            raise SipParseError(f"header bytes are neither UTF-8 nor GB18030: {exc}") from exc


def _split_head(data: bytes) -> tuple[bytes, bytes] | None:
    """Head and the rest, at the first empty line (CRLF CRLF, or bare LF LF)."""
    i = data.find(b"\r\n\r\n")
    j = data.find(b"\n\n")
    if i < 0 and j < 0:
        return None
    if i >= 0 and (j < 0 or i + 2 <= j):
        return data[:i], data[i + 4 :]
    return data[:j], data[j + 2 :]


def _parse_head(head: bytes) -> SipMessage:
    lines = _decode_head(head).replace("\r\n", "\n").split("\n")
    while lines and not lines[0].strip():
        lines.pop(0)  # keep-alive CRLFs before a message
    if not lines:
        raise SipParseError("empty message")
    start, msg = lines[0].strip(), SipMessage()
    if m := _STATUS_RE.match(start):
        msg.status, msg.reason = int(m.group(1)), m.group(2) or ""
    elif m := _START_RE.match(start):
        msg.method, msg.uri = m.group(1).upper(), m.group(2)
    else:
        raise SipParseError(f"not a SIP start line: {start[:80]!r}")
    unfolded: list[str] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t"):
            if not unfolded:
                raise SipParseError("a continuation line before the first header")
            unfolded[-1] += " " + line.strip()
        elif line.strip():
            unfolded.append(line)
    for line in unfolded:
        name, sep, value = line.partition(":")
        if not sep or not name.strip() or " " in name.strip():
            raise SipParseError(f"bad header line: {line[:80]!r}")
        msg.headers.add(name.strip(), value.strip())
    return msg


def _content_length(msg: SipMessage) -> int | None:
    raw = msg.headers.get("content-length")
    if raw is None:
        return None
    if not raw.isdigit():
        raise SipParseError(f"bad Content-Length {raw!r}")
    return int(raw)


def parse(data: bytes) -> SipMessage:
    """Parse one datagram (or one framed TCP message); raise :class:`SipParseError`.

    Without Content-Length (allowed on UDP) the body is the rest of the datagram; with one,
    a shorter body is an error (truncated datagram) and extra bytes are ignored.

    >>> m = parse(b"SIP/2.0 401 Unauthorized\\r\\nv: SIP/2.0/UDP h;branch=z9hG4bK1\\r\\n"
    ...           b"WWW-Authenticate: Digest realm=\\"r\\",\\r\\n nonce=\\"n\\"\\r\\n"
    ...           b"l: 0\\r\\n\\r\\n")
    >>> m.status, m.branch, m.headers["www-authenticate"]
    (401, 'z9hG4bK1', 'Digest realm="r", nonce="n"')
    """
    if len(data) > MAX_MESSAGE_BYTES:
        raise SipParseError(f"message of {len(data)} bytes is larger than {MAX_MESSAGE_BYTES}")
    parts = _split_head(data)
    if parts is None:
        head, rest = data, b""
    else:
        head, rest = parts
    msg = _parse_head(head)
    n = _content_length(msg)
    if n is None:
        msg.body = rest
    elif len(rest) < n:
        raise SipParseError(f"body has {len(rest)} bytes, Content-Length says {n}")
    else:
        msg.body = rest[:n]
    return msg


class StreamFramer:
    """Cuts a TCP byte stream into messages by Content-Length (RFC 3261 §18.3).

    >>> f = StreamFramer()
    >>> wire = parse(b"OPTIONS sip:a SIP/2.0\\r\\nl: 3\\r\\n\\r\\nabc").serialize()
    >>> f.feed(b"\\r\\n\\r\\n" + wire[:10]), [m.body for m in f.feed(wire[10:] + wire)]
    ([], [b'abc', b'abc'])
    """

    def __init__(self, max_bytes: int = MAX_MESSAGE_BYTES) -> None:
        self._buf = bytearray()
        self._max = max_bytes

    def feed(self, data: bytes) -> list[SipMessage]:
        """Add received bytes; return the messages they complete (possibly none).

        Raises :class:`SipParseError` when the stream cannot be SIP; the connection should then
        be closed (there is no way to find the next message boundary).
        """
        self._buf += data
        out: list[SipMessage] = []
        while True:
            while self._buf[:2] == b"\r\n":  # RFC 5626 keep-alive CRLFs
                del self._buf[:2]
            while self._buf[:1] == b"\n":
                del self._buf[:1]
            parts = _split_head(bytes(self._buf))
            if parts is None:
                if len(self._buf) > self._max:
                    raise SipParseError(f"no header end within {self._max} bytes")
                return out
            head, rest = parts
            msg = _parse_head(head)
            n = _content_length(msg) or 0
            if len(head) + n > self._max:
                raise SipParseError(f"message of {len(head) + n} bytes exceeds {self._max}")
            if len(rest) < n:
                return out
            msg.body = rest[:n]
            del self._buf[: len(self._buf) - len(rest) + n]
            out.append(msg)

    @property
    def pending(self) -> int:
        """Bytes received but not yet part of a complete message."""
        return len(self._buf)


def new_call_id(host: str | None = None) -> str:
    """A fresh, globally unique Call-ID."""
    cid = uuid.uuid4().hex
    return f"{cid}@{host}" if host else cid


def new_tag() -> str:
    """A fresh From/To tag (RFC 3261 §19.3: at least 32 bits of randomness)."""
    return secrets.token_hex(6)


def new_branch() -> str:
    """A fresh Via branch with the RFC 3261 magic cookie.

    >>> new_branch().startswith("z9hG4bK"), new_branch() != new_branch()
    (True, True)
    """
    return "z9hG4bK" + secrets.token_hex(10)


def _name_addr(uri: str, tag: str | None) -> str:
    return f"<{uri}>" + (f";tag={tag}" if tag else "")


def build_request(
    method: str,
    uri: str,
    *,
    from_uri: str,
    from_tag: str,
    to_uri: str,
    to_tag: str | None = None,
    call_id: str,
    cseq: int,
    via_host: str,
    via_port: int,
    transport: Transport | str,
    contact: str | None = None,
    expires: int | None = None,
    body: bytes = b"",
    content_type: str | None = None,
    extra: Iterable[tuple[str, str]] = (),
    branch: str | None = None,
    user_agent: str | None = "gridwatch",
) -> SipMessage:
    """A request with a fresh branch (``rport`` asked for, so NATed replies find us)."""
    h = Headers()
    h.add(
        "Via",
        f"SIP/2.0/{transport.upper()} {via_host}:{via_port};rport;branch={branch or new_branch()}",
    )
    h.add("From", _name_addr(from_uri, from_tag))
    h.add("To", _name_addr(to_uri, to_tag))
    h.add("Call-ID", call_id)
    h.add("CSeq", f"{cseq} {method.upper()}")
    h.add("Max-Forwards", "70")
    if contact is not None:
        h.add("Contact", contact if contact.startswith("<") else f"<{contact}>")
    if expires is not None:
        h.add("Expires", str(expires))
    if user_agent:
        h.add("User-Agent", user_agent)
    for name, value in extra:
        h.add(name, value)
    if content_type is not None:
        h.add("Content-Type", content_type)
    return SipMessage(method=method.upper(), uri=uri, headers=h, body=body)


def build_response(
    request: SipMessage,
    status: int,
    reason: str,
    *,
    to_tag: str | None = None,
    extra: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
    content_type: str | None = None,
) -> SipMessage:
    """A response to ``request``: every Via in order, From, Call-ID and CSeq copied, To copied
    with ``to_tag`` added when it has none (RFC 3261 §8.2.6.2; 100 Trying gets no tag).

    >>> req = parse(b"MESSAGE sip:a SIP/2.0\\r\\nVia: SIP/2.0/UDP x;branch=z9hG4bK1\\r\\n"
    ...             b"Via: SIP/2.0/UDP y;branch=z9hG4bK2\\r\\nf: <sip:b>;tag=1\\r\\n"
    ...             b"t: <sip:a>\\r\\n"
    ...             b"i: c\\r\\nCSeq: 7 MESSAGE\\r\\n\\r\\n")
    >>> r = build_response(req, 200, "OK", to_tag="z")
    >>> r.headers.get_all("via")
    ['SIP/2.0/UDP x;branch=z9hG4bK1', 'SIP/2.0/UDP y;branch=z9hG4bK2']
    >>> r.headers["to"], r.cseq
    ('<sip:a>;tag=z', (7, 'MESSAGE'))
    """
    h = Headers()
    for name, value in request.headers:
        if _key(name) == "via":
            h.add("Via", value)
    h.add("From", request.headers.get("from") or "")
    to = request.headers.get("to") or ""
    if to_tag and status > 100 and header_tag(to) is None:
        to = f"{to};tag={to_tag}"
    h.add("To", to)
    h.add("Call-ID", request.call_id)
    h.add("CSeq", request.headers.get("cseq") or "")
    for name, value in extra:
        h.add(name, value)
    if content_type is not None:
        h.add("Content-Type", content_type)
    return SipMessage(status=status, reason=reason, headers=h, body=body)

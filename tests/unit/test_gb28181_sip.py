"""SIP parse/serialize round trips, compact and folded headers, TCP framing, responses."""

from __future__ import annotations

import pytest

from gridwatch.gb28181.sip import (
    Headers,
    SipMessage,
    SipParseError,
    StreamFramer,
    build_request,
    build_response,
    new_branch,
    new_call_id,
    new_tag,
    parse,
)

OURS = "34020000002000000001"
SUP = "34020000002000000002"

COMPACT_FOLDED = (
    b"MESSAGE sip:34020000002000000001@3402000000 SIP/2.0\r\n"
    b"v: SIP/2.0/UDP 10.0.0.1:5060;rport;branch=z9hG4bK776asdhds\r\n"
    b"Via: SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bKproxy\r\n"
    b"f: <sip:34020000002000000002@3402000000>;tag=1928301774\r\n"
    b"t: <sip:34020000002000000001@3402000000>\r\n"
    b"i: a84b4c76e66710@10.0.0.1\r\n"
    b"CSeq: 20 MESSAGE\r\n"
    b"Subject: folded\r\n"
    b"  over two lines\r\n"
    b"\tand three\r\n"
    b"c: Application/MANSCDP+xml\r\n"
    b"l: 5\r\n"
    b"\r\n"
    b"<a/>\n"
)


def test_compact_forms_and_folded_lines() -> None:
    m = parse(COMPACT_FOLDED)
    assert m.is_request
    assert m.method == "MESSAGE"
    assert m.uri.startswith("sip:" + OURS)
    assert m.call_id == "a84b4c76e66710@10.0.0.1"
    assert m.headers["Call-ID"] == m.headers["i"] == m.headers["CALL-ID"]
    assert m.headers["content-type"] == "Application/MANSCDP+xml"
    assert m.headers["subject"] == "folded over two lines and three"
    assert m.headers.get_all("via") == [
        "SIP/2.0/UDP 10.0.0.1:5060;rport;branch=z9hG4bK776asdhds",
        "SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bKproxy",
    ]
    assert m.branch == "z9hG4bK776asdhds"
    assert m.from_tag == "1928301774"
    assert m.to_tag is None
    assert m.cseq == (20, "MESSAGE")
    assert m.body == b"<a/>\n"


def test_round_trip_is_stable() -> None:
    once = parse(COMPACT_FOLDED).serialize()
    twice = parse(once).serialize()
    assert once == twice
    again = parse(once)
    assert again.headers.get_all("Via") == parse(COMPACT_FOLDED).headers.get_all("v")
    assert again.body == b"<a/>\n"


def test_content_length_from_body_bytes_not_characters() -> None:
    body = "<Name>北区 摄像机</Name>".encode("gb18030")
    m = SipMessage(
        method="MESSAGE", uri="sip:x", headers=Headers([("Content-Length", "1")]), body=body
    )
    wire = m.serialize()
    assert f"Content-Length: {len(body)}\r\n".encode() in wire
    assert wire.count(b"Content-Length") == 1
    assert parse(wire).body == body


def test_response_line_and_bare_lf() -> None:
    m = parse(b"SIP/2.0 200 OK\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\nContent-Length: 0\n\n")
    assert not m.is_request
    assert m.status == 200
    assert m.reason == "OK"
    assert m.body == b""
    m = parse(b"SIP/2.0 403\r\nl: 0\r\n\r\n")
    assert m.status == 403
    assert m.reason == ""


def test_no_content_length_on_udp_takes_the_rest() -> None:
    assert parse(b"OPTIONS sip:a SIP/2.0\r\nCSeq: 1 OPTIONS\r\n\r\nxyz").body == b"xyz"


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"", "empty"),
        (b"HELLO\r\n\r\n", "start line"),
        (b"OPTIONS sip:a SIP/2.0\r\nbad header\r\n\r\n", "bad header"),
        (b"OPTIONS sip:a SIP/2.0\r\n folded first\r\n\r\n", "continuation"),
        (b"OPTIONS sip:a SIP/2.0\r\nl: 10\r\n\r\nshort", "Content-Length says 10"),
        (b"OPTIONS sip:a SIP/2.0\r\nl: ten\r\n\r\n", "bad Content-Length"),
        (b"OPTIONS sip:a SIP/2.0\r\nX: \xff\xff\xff\r\n\r\n", "neither UTF-8 nor GB18030"),
    ],
)
def test_parse_errors(data: bytes, fragment: str) -> None:
    with pytest.raises(SipParseError, match=fragment):
        parse(data)


def _wire(n: int) -> bytes:
    return build_request(
        "MESSAGE",
        f"sip:{SUP}@3402000000",
        from_uri=f"sip:{OURS}@3402000000",
        from_tag="t",
        to_uri=f"sip:{SUP}@3402000000",
        call_id=f"c{n}",
        cseq=n,
        via_host="10.0.0.5",
        via_port=5060,
        transport="tcp",
        body=("报警" * n).encode("gb18030"),
        content_type="Application/MANSCDP+xml",
    ).serialize()


def test_tcp_framing_byte_by_byte_and_coalesced() -> None:
    stream = b"\r\n\r\n".join(_wire(n) for n in range(1, 6))  # keep-alive CRLFs between
    framer = StreamFramer()
    got = []
    for i in range(len(stream)):
        got += framer.feed(stream[i : i + 1])
    assert [m.call_id for m in got] == ["c1", "c2", "c3", "c4", "c5"]
    assert [m.body.decode("gb18030") for m in got] == ["报警" * n for n in range(1, 6)]
    assert framer.pending == 0
    framer = StreamFramer()
    assert [m.cseq[0] for m in framer.feed(stream + _wire(6)[:30])] == [1, 2, 3, 4, 5]
    assert framer.pending == 30
    assert [m.cseq[0] for m in framer.feed(_wire(6)[30:])] == [6]


def test_tcp_framing_refuses_garbage_and_huge_messages() -> None:
    with pytest.raises(SipParseError):
        StreamFramer().feed(b"GARBAGE\r\n\r\n")
    with pytest.raises(SipParseError, match="exceeds"):
        StreamFramer(max_bytes=1000).feed(b"MESSAGE sip:a SIP/2.0\r\nl: 5000\r\n\r\n")
    with pytest.raises(SipParseError, match="no header end"):
        StreamFramer(max_bytes=100).feed(b"MESSAGE sip:a SIP/2.0\r\nX: " + b"y" * 200)


def test_build_request_register() -> None:
    req = build_request(
        "register",
        "sip:34020000002000000002@3402000000",
        from_uri=f"sip:{OURS}@3402000000",
        from_tag="ft",
        to_uri=f"sip:{OURS}@3402000000",
        call_id="cid",
        cseq=1,
        via_host="192.168.1.5",
        via_port=15060,
        transport="udp",
        contact=f"sip:{OURS}@192.168.1.5:15060",
        expires=3600,
        extra=[("X-GB-ver", "3.0")],
    )
    m = parse(req.serialize())
    assert m.method == "REGISTER"
    via = m.headers["via"]
    assert via.startswith("SIP/2.0/UDP 192.168.1.5:15060;rport;branch=z9hG4bK")
    assert m.headers["from"] == f"<sip:{OURS}@3402000000>;tag=ft"
    assert m.headers["to"] == f"<sip:{OURS}@3402000000>"
    assert m.headers["contact"] == f"<sip:{OURS}@192.168.1.5:15060>"
    assert m.headers["expires"] == "3600"
    assert m.headers["x-gb-ver"] == "3.0"
    assert m.headers["max-forwards"] == "70"
    assert m.cseq == (1, "REGISTER")
    assert m.headers["content-length"] == "0"


def test_build_response_copies_rfc3261_headers() -> None:
    req = parse(COMPACT_FOLDED)
    r = parse(build_response(req, 200, "OK", to_tag="abc", extra=[("Server", "gw")]).serialize())
    assert r.status == 200
    assert r.headers.get_all("via") == req.headers.get_all("via")
    assert r.headers["from"] == req.headers["from"]
    assert r.headers["to"] == req.headers["to"] + ";tag=abc"
    assert r.call_id == req.call_id
    assert r.cseq == req.cseq
    assert r.headers["server"] == "gw"
    trying = build_response(req, 100, "Trying", to_tag="abc")
    assert trying.to_tag is None  # 100 never gets a To tag
    tagged = parse(
        COMPACT_FOLDED.replace(b"t: <sip:34020000002000000001@3402000000>", b"t: <sip:x>;tag=keep")
    )
    assert build_response(tagged, 200, "OK", to_tag="new").to_tag == "keep"


def test_fresh_identifiers() -> None:
    assert len({new_call_id() for _ in range(100)}) == 100
    assert new_call_id("10.0.0.5").endswith("@10.0.0.5")
    assert len({new_tag() for _ in range(100)}) == 100
    assert all(new_branch().startswith("z9hG4bK") for _ in range(10))


def test_headers_multidict() -> None:
    h = Headers()
    h.add("Via", "a")
    h.add("v", "b")
    h.add("X", "1")
    h.set("VIA", "c")
    assert list(h) == [("VIA", "c"), ("X", "1")]
    h.remove("x")
    assert "X" not in h
    assert len(h) == 1
    with pytest.raises(KeyError):
        h["missing"]
    assert h.copy() == h

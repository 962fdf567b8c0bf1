"""SIP digest authentication against the RFC 2617 vectors."""

from __future__ import annotations

import hashlib

import pytest

from gridwatch.gb28181.digest import (
    Challenge,
    DigestError,
    authorization,
    digest_response,
    parse_challenge,
)

RFC_CHALLENGE = (
    'Digest realm="testrealm@host.com", qop="auth,auth-int", '
    'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
)


def test_rfc2617_section_3_5_vector() -> None:
    ch = parse_challenge(RFC_CHALLENGE)
    assert ch.realm == "testrealm@host.com"
    assert ch.qop == ("auth", "auth-int")
    assert ch.opaque == "5ccc069c403ebaf9f0171e9517f40e41"
    header = authorization(
        ch,
        method="GET",
        uri="/dir/index.html",
        username="Mufasa",
        password="Circle Of Life",
        nc=1,
        cnonce="0a4f113b",
    )
    assert 'response="6629fae49393a05397450978507c4ef1"' in header
    assert "qop=auth," in header
    assert "nc=00000001" in header
    assert 'cnonce="0a4f113b"' in header
    assert 'opaque="5ccc069c403ebaf9f0171e9517f40e41"' in header


def test_without_qop_is_rfc2069() -> None:
    """No qop: response = MD5(HA1:nonce:HA2), written out independently here."""
    ch = parse_challenge('Digest realm="3402000000",nonce="9bd055",algorithm=MD5')
    user, pw, uri = "34020000002000000001", "12345678", "sip:34020000002000000002@3402000000"

    def md5(s: str) -> str:
        return hashlib.md5(s.encode()).hexdigest()

    expected = md5(f"{md5(f'{user}:3402000000:{pw}')}:9bd055:{md5(f'REGISTER:{uri}')}")
    header = authorization(ch, method="REGISTER", uri=uri, username=user, password=pw)
    assert f'response="{expected}"' in header
    assert "qop" not in header
    assert "cnonce" not in header
    assert "opaque" not in header


def test_fresh_cnonce_each_time_with_qop() -> None:
    ch = Challenge(realm="r", nonce="n", qop=("auth",))
    a = authorization(ch, method="REGISTER", uri="sip:x", username="u", password="p")
    b = authorization(ch, method="REGISTER", uri="sip:x", username="u", password="p")
    assert a != b  # different cnonce, different response
    with pytest.raises(DigestError):
        digest_response(ch, method="REGISTER", uri="sip:x", username="u", password="p")


@pytest.mark.parametrize(
    "header",
    ['Basic realm="x"', 'Digest realm="x"', 'Digest realm="x", nonce="n", algorithm=SHA-256'],
)
def test_unusable_challenges(header: str) -> None:
    with pytest.raises(DigestError):
        parse_challenge(header)


def test_quoted_commas_and_stale() -> None:
    ch = parse_challenge('Digest nonce="a,b", realm="r \\"q\\"", stale=TRUE, qop=auth')
    assert ch.nonce == "a,b"
    assert ch.realm == 'r "q"'
    assert ch.stale
    assert ch.qop == ("auth",)

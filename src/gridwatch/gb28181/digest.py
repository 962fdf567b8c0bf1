"""SIP digest authentication (RFC 2617 / RFC 3261 §22) with MD5, as GB/T 28181 uses it.

The superior answers our first REGISTER with ``401`` and a ``WWW-Authenticate: Digest ...``
challenge; we repeat the REGISTER with an ``Authorization`` header whose ``response`` proves
the password without sending it. Username is our 20-digit device id.

The RFC 2617 §3.5 example (qop=auth):

>>> ch = parse_challenge('Digest realm="testrealm@host.com", qop="auth,auth-int", '
...     'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"')
>>> h = authorization(ch, method="GET", uri="/dir/index.html", username="Mufasa",
...                   password="Circle Of Life", nc=1, cnonce="0a4f113b")
>>> 'response="6629fae49393a05397450978507c4ef1"' in h
True
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

_PARAM_RE = re.compile(r'\s*([A-Za-z0-9_-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)\s*(?:,|$)')


class DigestError(ValueError):
    """A challenge we cannot answer (not Digest, no nonce, an algorithm other than MD5)."""


@dataclass(frozen=True, slots=True)
class Challenge:
    """A parsed ``WWW-Authenticate``/``Proxy-Authenticate`` Digest challenge."""

    realm: str
    nonce: str
    opaque: str | None = None
    algorithm: str = "MD5"
    qop: tuple[str, ...] = ()
    """Offered qop values; empty: RFC 2069 compatibility (no qop, no cnonce)."""
    stale: bool = False


def _params(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for m in _PARAM_RE.finditer(text):
        value = m.group(2)
        if value.startswith('"') and value.endswith('"') and len(value) >= 2:
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        out[m.group(1).lower()] = value
    return out


def parse_challenge(header: str) -> Challenge:
    """Parse a Digest challenge header value; raise :class:`DigestError` if unusable.

    >>> parse_challenge('Digest realm="3402000000", nonce="abc", algorithm=MD5')
    Challenge(realm='3402000000', nonce='abc', opaque=None, algorithm='MD5', qop=(), stale=False)
    """
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() != "digest":
        raise DigestError(f"unsupported authentication scheme {scheme!r} (only Digest)")
    p = _params(rest)
    if "nonce" not in p:
        raise DigestError("Digest challenge without a nonce")
    algorithm = p.get("algorithm", "MD5")
    if algorithm.upper() != "MD5":
        raise DigestError(f"unsupported digest algorithm {algorithm!r} (only MD5)")
    qop = tuple(q.strip() for q in p.get("qop", "").split(",") if q.strip())
    return Challenge(
        realm=p.get("realm", ""),
        nonce=p["nonce"],
        opaque=p.get("opaque"),
        algorithm=algorithm,
        qop=qop,
        stale=p.get("stale", "").lower() == "true",
    )


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


def digest_response(
    challenge: Challenge,
    *,
    method: str,
    uri: str,
    username: str,
    password: str,
    nc: int = 1,
    cnonce: str | None = None,
) -> str:
    """The ``response`` value (hex MD5); with qop=auth when the challenge offers it.

    >>> ch = Challenge(realm="r", nonce="n")
    >>> digest_response(ch, method="REGISTER", uri="sip:x", username="u", password="p")
    'f1360bea1a4221b5ee937bec4052dd1b'
    """
    ha1 = _md5(f"{username}:{challenge.realm}:{password}")
    ha2 = _md5(f"{method}:{uri}")
    if "auth" in challenge.qop:
        if cnonce is None:
            raise DigestError("qop=auth needs a cnonce")
        return _md5(f"{ha1}:{challenge.nonce}:{nc:08x}:{cnonce}:auth:{ha2}")
    return _md5(f"{ha1}:{challenge.nonce}:{ha2}")


def authorization(
    challenge: Challenge,
    *,
    method: str,
    uri: str,
    username: str,
    password: str,
    nc: int = 1,
    cnonce: str | None = None,
) -> str:
    """The ``Authorization`` header value answering ``challenge`` (a fresh cnonce if none).

    >>> ch = Challenge(realm="3402000000", nonce="n1")
    >>> authorization(ch, method="REGISTER", uri="sip:34020000002000000001@3402000000",
    ...               username="34020000002000000001", password="12345678")[:60]
    'Digest username="34020000002000000001", realm="3402000000", '
    """
    use_qop = "auth" in challenge.qop
    if use_qop and cnonce is None:
        cnonce = secrets.token_hex(8)
    response = digest_response(
        challenge,
        method=method,
        uri=uri,
        username=username,
        password=password,
        nc=nc,
        cnonce=cnonce,
    )
    parts = [
        f'username="{username}"',
        f'realm="{challenge.realm}"',
        f'nonce="{challenge.nonce}"',
        f'uri="{uri}"',
        f'response="{response}"',
        f"algorithm={challenge.algorithm}",
    ]
    if challenge.opaque is not None:
        parts.append(f'opaque="{challenge.opaque}"')
    if use_qop:
        parts += ["qop=auth", f"nc={nc:08x}", f'cnonce="{cnonce}"']
    return "Digest " + ", ".join(parts)

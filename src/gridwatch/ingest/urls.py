"""Camera URLs without their secrets, for anything a person or a log may read.

IP cameras put credentials in the RTSP URL (``rtsp://admin:pass@10.1.2.3/stream1``), and
FFmpeg repeats the URL in its error messages, so a password would otherwise end up in logs,
health reports, CLI tables and exports. Everything that shows a URL goes through here; the
clear URL is only ever handed to FFmpeg.

>>> redact_url("rtsp://admin:s3cret@10.0.0.7:554/Streaming/Channels/102")
'rtsp://admin:***@10.0.0.7:554/Streaming/Channels/102'
>>> redact_text("Connection refused: 'rtsp://u:p%40ss@cam/x' and rtsp://cam/y")
"Connection refused: 'rtsp://u:***@cam/x' and rtsp://cam/y"
>>> redact_text("open 'rtsp://u:p w'd@cam/x' failed")
"open 'rtsp://u:***@cam/x' failed"
>>> redact_url("rtsp://u:p@ss@cam:554/x")
'rtsp://u:***@cam:554/x'
>>> url_has_redacted_password("rtsp://admin:***@cam/x")
True

What counts as the password is what FFmpeg takes for it: everything between the first ``:``
after the user name and the *last* ``@`` of the authority (the authority ends at the first
``/``, ``?`` or ``#``, or the end of the line). So quotes, spaces, ``@`` and percent-escapes
in a password are redacted with it. In free text that can redact more than the password (an
``@`` later on the same line with no ``/`` in between): erring that way is intended. URLs
that were themselves percent-encoded (``rtsp%3A%2F%2Fu%3Apw%40cam``, a URL inside a query
string) are redacted too.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

__all__ = [
    "REDACTED",
    "redact_text",
    "redact_url",
    "url_has_redacted_password",
    "url_host",
]

REDACTED = "***"

# scheme://user:password@ — the password runs to the LAST '@' before the end of the authority
# (first '/', '?', '#' or line end), as FFmpeg splits it: quotes, spaces and '@' included.
_USERINFO = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^/?#\s:@'\"]*):(?P<pw>[^/?#\r\n]*)@")
# the same URL percent-encoded as a whole (inside a query string): %3A%2F%2F, %3A, %40
_ENCODED_USERINFO = re.compile(
    r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*%3A%2F%2F(?:(?!%3A|%40|%2F)[^/?#&\s'\"])*)"
    r"%3A(?P<pw>(?:(?!%2F)[^/?#&\r\n])*)%40",
    re.IGNORECASE,
)


def redact_text(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***``."""
    text = _USERINFO.sub(lambda m: f"{m.group('head')}:{REDACTED}@", text)
    return _ENCODED_USERINFO.sub(lambda m: f"{m.group('head')}%3A{REDACTED}%40", text)


def redact_url(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``; the user name is kept."""
    return redact_text(url)


def url_has_redacted_password(url: str) -> bool:
    """True for a URL whose password is the ``***`` placeholder (a redacted export)."""
    try:
        return urlsplit(url).password == REDACTED
    except ValueError:
        return False


def url_host(url: str) -> str | None:
    """The host of a network URL, or None for a file path or an unparsable URL."""
    try:
        return urlsplit(url).hostname if "://" in url else None
    except ValueError:
        return None

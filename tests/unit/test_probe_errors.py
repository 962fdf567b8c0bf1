"""What FFmpeg raises becomes a probe error that names the problem and the fix, and never
shows the password. The exceptions are the ones PyAV raised in tests/integration."""

from __future__ import annotations

import errno

import av.error
import pytest

from gridwatch.registry.probe import classify_error

URL = "rtsp://admin:s3cret@10.0.0.7:554/stream1"


@pytest.mark.parametrize(
    ("exc", "elapsed", "kind", "hint"),
    [
        (
            av.error.HTTPUnauthorizedError(825242872, "401 Unauthorized", URL),
            0.1,
            "auth",
            "percent-encode",
        ),
        (av.error.HTTPNotFoundError(875574520, "404 Not Found", URL), 0.1, "not_found", "path"),
        (av.error.ConnectionRefusedError(111, "Connection refused", URL), 0.0, "refused", "554"),
        (av.error.OSError(errno.EHOSTUNREACH, "No route to host", URL), 0.0, "unreachable", "VLAN"),
        (
            av.error.OSError(errno.ENETUNREACH, "Network is unreachable", URL),
            0.0,
            "unreachable",
            "routing",
        ),
        (av.error.InvalidDataError(1094995529, "Invalid data", URL), 5.0, "timeout", "--timeout"),
        (av.error.InvalidDataError(1094995529, "Invalid data", URL), 0.1, "not_rtsp", "scheme"),
        (TimeoutError(errno.ETIMEDOUT, "timed out"), 5.0, "timeout", "did not answer"),
    ],
)
def test_classification(exc: Exception, elapsed: float, kind: str, hint: str) -> None:
    err = classify_error(exc, URL, elapsed, timeout_s=5.0)
    assert err.kind == kind
    assert hint in str(err)
    assert "s3cret" not in str(err)
    assert "admin:***@10.0.0.7" in str(err)


def test_missing_file() -> None:
    err = classify_error(FileNotFoundError(2, "No such file", "/v/x.mp4"), "/v/x.mp4", 0, 5)
    assert err.kind == "file_missing"

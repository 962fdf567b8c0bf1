"""The live feed's back-pressure: a browser that stops reading is disconnected once its bounded
queue is full, and never holds up another browser's wall, which receives every update.

The fast reader runs in its own process (a plain HTTP client reading as fast as it can), so it
does not share the console's event loop; the stuck one is a socket with a tiny receive buffer
that is never read."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
from pathlib import Path

import pytest

from tests.plugins.console_stack import console_stack
from tests.plugins.dispatch import GRID_A, make_alert, password, wait_until

pytestmark = pytest.mark.timeout(120)

N_ALERTS = 150
NAME_BYTES = 16_000  # a long camera name makes every wall item ~30 kB: buffers fill fast

READER = r"""
import http.client, sys
host, port, cookie, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
conn = http.client.HTTPConnection(host, port, timeout=60)
conn.request("GET", "/api/events", headers={"Cookie": cookie})
resp = conn.getresponse()
with open(out, "w") as f:
    print("status", resp.status, file=f, flush=True)
    while True:
        line = resp.fp.readline()
        if not line:
            break
        if line.startswith(b"event:") or line.startswith(b'data: {"id"'):
            f.write(line[:80].decode(errors="replace") + "\n")
            f.flush()
"""


def _read_to_end(sock: socket.socket) -> None:
    """Read until EOF or a reset; a socket still open raises TimeoutError."""
    with contextlib.suppress(ConnectionResetError):
        while sock.recv(65536):
            pass


async def _login_cookie(stack, user: str) -> str:  # type: ignore[no-untyped-def]
    s = stack.client()
    async with s.post("/login", json={"name": user, "password": password(user)}) as r:
        assert r.status == 200
        return f"gw_session={r.cookies['gw_session'].value}"


async def test_a_stuck_browser_is_dropped_and_never_blocks_others(tmp_path: Path) -> None:
    async with console_stack(
        tmp_path, "sse_queue_size: 16, sse_write_timeout_s: 3, sse_heartbeat_s: 1"
    ) as stack:
        host, port = "127.0.0.1", int(stack.url.rsplit(":", 1)[1])
        stuck_cookie = await _login_cookie(stack, "op-zhang")
        fast_cookie = await _login_cookie(stack, "op-zhang")

        # the stuck browser: asks for the feed and then never reads
        stuck = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
        stuck.connect((host, port))
        request = f"GET /api/events HTTP/1.1\r\nHost: {host}:{port}\r\nCookie: {stuck_cookie}\r\n"
        stuck.sendall((request + "\r\n").encode())
        out = tmp_path / "fast.txt"
        fast = await asyncio.create_subprocess_exec(
            sys.executable, "-c", READER, host, str(port), fast_cookie, str(out)
        )
        try:
            await wait_until(lambda: stack.console.stats.clients == 2, within=20)
            await wait_until(lambda: out.exists() and "event: snapshot" in out.read_text())

            name = "Gate " + "x" * NAME_BYTES
            for n in range(N_ALERTS):
                alert = make_alert(GRID_A, "cam-a", n).model_copy(update={"camera_name": name})
                await stack.publisher.publish(alert)

            stats = stack.console.stats
            await wait_until(lambda: stats.slow_disconnects >= 1, within=30)
            await wait_until(lambda: out.read_text().count("event: item") >= N_ALERTS, within=60)
            assert stats.slow_disconnects >= 1
            assert stats.clients == 1  # the fast one is still connected ...
            assert fast.returncode is None
            # ... and got every alert (each one at least once: cases add more updates)
            text = out.read_text()
            assert text.startswith("status 200")
            assert text.count("event: snapshot") == 1  # never had to reconnect
            # the stuck one's connection was closed by the server (reading what was buffered
            # ends in EOF or a reset, not in a wait)
            stuck.settimeout(5)
            await asyncio.to_thread(_read_to_end, stuck)
        finally:
            stuck.close()
            fast.kill()
            await asyncio.wait_for(fast.wait(), 10)

"""`gridwatch demo` (what `./run demo` runs): an alert within a minute, the console shows it and
takes the printed login, Ctrl-C stops it all."""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import psutil
import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

REPO = Path(__file__).resolve().parents[2]


class Browser:
    """A cookie-keeping HTTP client, as a browser talks to the console (urllib only)."""

    def __init__(self, base: str) -> None:
        self.base = base.rstrip("/")
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )
        self.csrf = ""

    def request(
        self, method: str, path: str, body: Any = None, timeout: float = 10
    ) -> tuple[int, Any]:
        headers = {"Accept": "application/json", "X-CSRF-Token": self.csrf}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(self.base + path, data, headers, method=method)
        try:
            with self.opener.open(req, timeout=timeout) as r:
                raw = r.read()
                status = r.status
                kind = r.headers.get("Content-Type", "")
        except urllib.error.HTTPError as e:
            raw, status, kind = e.read(), e.code, e.headers.get("Content-Type", "")
        return status, json.loads(raw) if "json" in kind else raw.decode(errors="replace")

    def first_sse_snapshot(self, timeout: float = 20) -> dict[str, Any]:
        """The ``snapshot`` event the live wall sends first on ``/api/events``."""
        req = urllib.request.Request(self.base + "/api/events")
        with self.opener.open(req, timeout=timeout) as r:
            assert r.status == 200
            event = ""
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                line = r.readline().decode().rstrip("\n")
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:") and event == "snapshot":
                    data: dict[str, Any] = json.loads(line[5:])
                    return data
        raise AssertionError("no snapshot event on /api/events")


def check_console(output: str) -> None:
    """What a new user does with the printed lines: open the console, log in as the operator,
    see the alert on the wall and acknowledge it."""
    url = re.search(r"^  console:  (http://\S+/)", output, re.M)
    secret = re.search(r"log in as operator\s+password (\S+)", output)
    link = re.search(r"console: http://\S+/alerts/([^/\s]+)/(\w+)", output)
    assert url, output
    assert secret, output
    assert link, output
    grid, alert_id = link.groups()
    b = Browser(url.group(1))
    status, page = b.request("GET", "/login")
    assert status == 200
    assert "<form" in page
    status, body = b.request("POST", "/login", {"name": "operator", "password": "wrong"})
    assert status == 401, body
    status, body = b.request("POST", "/login", {"name": "operator", "password": secret.group(1)})
    assert status == 200, body
    b.csrf = body["csrf"]
    items = b.first_sse_snapshot()["items"]
    assert alert_id in {i["id"] for i in items}, items
    # the case service runs: the operator can acknowledge (its case opens within moments)
    deadline = time.monotonic() + 20
    while True:
        status, body = b.request("POST", f"/api/cases/{grid}/{alert_id}/acknowledge", {})
        if status == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert status == 200, body
    assert body["case"]["state"] == "acknowledged"


def test_demo_prints_a_crowding_alert_and_ctrl_c_stops_every_process() -> None:
    exe = Path(sys.executable).with_name("gridwatch")
    proc = subprocess.Popen(
        [str(exe), "demo", "--config", str(REPO / "configs" / "demo.yaml")],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "YOLO_OFFLINE": "1", "PYTHONUNBUFFERED": "1"},
        start_new_session=True,
    )
    lines: list[str] = []
    children: list[psutil.Process] = []
    try:
        assert proc.stdout is not None
        t0 = time.monotonic()
        raised_after = None
        while time.monotonic() - t0 < 120:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line.rstrip())
            if not children:
                children = psutil.Process(proc.pid).children(recursive=True)
            if "RAISED" in line and "crowding" in line:
                raised_after = time.monotonic() - t0
            if raised_after is not None and "/alerts/" in line:
                break  # the alert's console link follows its line
        output = "\n".join(lines)
        assert raised_after is not None, output
        assert raised_after < 60 + 15, output  # a minute after the model loaded
        assert "snapshot get school-09-south-gate/" in output
        check_console(output)
        children = psutil.Process(proc.pid).children(recursive=True) or children
        names = {c.name() for c in children}
        assert any("nats-server" in n for n in names), names
        assert any("python3" in n for n in names), names  # the GStreamer RTSP server
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        proc.wait(30)
        assert proc.returncode == 0, proc.stdout.read()
        _gone, alive = psutil.wait_procs(children, timeout=10)
        assert not alive, f"left running: {alive}"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)

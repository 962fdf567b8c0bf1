"""`gridwatch demo` (what `./run demo` runs): an alert within a minute, Ctrl-C stops it all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

REPO = Path(__file__).resolve().parents[2]


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
                break
        output = "\n".join(lines)
        assert raised_after is not None, output
        assert raised_after < 60 + 15, output  # a minute after the model loaded
        assert "snapshot get school-09-south-gate/" in output
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

"""The ONVIF discovery scenario, run by test_onvif_discovery.py inside `unshare -n`.

Two private network namespaces joined by a veth pair, nothing else: this process is the ops
engineer's side (10.77.0.1), a simulated ONVIF camera runs in a second namespace (10.77.0.2).
The WS-Discovery multicast goes over the veth and nowhere else, because there is nowhere else:
the namespaces have no other interface and no route out. The script refuses to run at all if
it finds itself in the namespace it was started from (argv[1] is that namespace's inode).

It prints one JSON object with what the `gridwatch` commands answered; the test asserts on it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

EXE = str(Path(sys.executable).with_name("gridwatch"))
OPS_IP, CAM_IP = "10.77.0.1", "10.77.0.2"


def sh(*cmd: str) -> None:
    subprocess.run(cmd, check=True, timeout=10, capture_output=True)


def gw(*args: str) -> dict[str, Any]:
    out = subprocess.run(
        [EXE, "camera", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "COLUMNS": "240"},  # a wide table: one line per profile
    )
    return {"rc": out.returncode, "stdout": out.stdout, "stderr": out.stderr}


def main() -> int:
    if str(os.stat("/proc/self/ns/net").st_ino) == sys.argv[1]:
        print(json.dumps({"refused": "not inside a private network namespace"}))
        return 3
    sh("ip", "link", "set", "lo", "up")
    # the camera's namespace: its process waits for "go" until its interface is configured
    cam = subprocess.Popen(
        ["unshare", "-n", "sh", "-c", 'read go && exec "$0" "$@"', sys.executable, "-m",
         "tests.plugins.onvif_simulator", "--ip", CAM_IP, "--user", "admin", "--password", "pw",
         "--name", "Gate South", "--rtsp", f"rtsp://{CAM_IP}:554/main",
         "--rtsp", f"rtsp://{CAM_IP}:554/sub"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert cam.stdin is not None
    assert cam.stdout is not None
    try:
        pid = str(cam.pid)
        sh("ip", "link", "add", "gw-ops", "type", "veth", "peer", "name", "gw-cam")
        sh("ip", "link", "set", "gw-cam", "netns", pid)
        sh("ip", "addr", "add", f"{OPS_IP}/24", "dev", "gw-ops")
        sh("ip", "link", "set", "gw-ops", "up")
        sh("ip", "route", "add", "224.0.0.0/4", "dev", "gw-ops")
        for cmd in (
            ("ip", "link", "set", "lo", "up"),
            ("ip", "addr", "add", f"{CAM_IP}/24", "dev", "gw-cam"),
            ("ip", "link", "set", "gw-cam", "up"),
        ):
            sh("nsenter", "-t", pid, "-n", *cmd)
        cam.stdin.write("go\n")
        cam.stdin.flush()
        ready = cam.stdout.readline().split()
        result: dict[str, Any] = {"ready": ready}
        result["anonymous"] = gw("discover", "--timeout", "1.5", "--json")
        result["with_login"] = gw(
            "discover", "--timeout", "1.5", "--json", "--user", "admin", "--password", "pw"
        )
        result["bad_login"] = gw(
            "discover", "--timeout", "1.5", "--json", "--user", "admin", "--password", "nope",
            "--interface", OPS_IP,
        )  # fmt: skip
        result["no_such_interface"] = gw("discover", "--timeout", "1", "--json", "--interface",
                                         "10.77.0.9")  # fmt: skip
        result["table"] = gw("discover", "--timeout", "1.5", "--user", "admin", "--password", "pw")
        # while we have a namespace: an address with no route to it
        sh("ip", "route", "add", "unreachable", "10.99.0.0/16")
        result["unreachable"] = gw(
            "probe", "rtsp://admin:pw@10.99.0.1/stream", "--json", "--no-snapshot"
        )
        cam.stdin.close()  # the simulator exits, listing the SOAP calls it was asked
        for line in cam.stdout.read().splitlines():
            if line.startswith("REQUESTS"):
                result["requests"] = line.split()[1:]
        print(json.dumps(result))
        return 0
    finally:
        cam.stdin.close()  # the simulator exits when its stdin closes
        try:
            cam.wait(10)
        except subprocess.TimeoutExpired:
            cam.kill()
            cam.wait(5)


if __name__ == "__main__":
    raise SystemExit(main())

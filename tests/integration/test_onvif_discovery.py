"""`gridwatch camera discover` finds an ONVIF camera and lists its RTSP URIs.

Only ever inside network namespaces the test creates (see onvif_netns_scenario.py): the
WS-Discovery probe is multicast, and a test must never send it on this machine's real
interfaces. Creating namespaces needs root (CAP_SYS_ADMIN); without it the test is skipped,
never run outside a namespace.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.timeout(120)

SCENARIO = Path(__file__).with_name("onvif_netns_scenario.py")
REPO = Path(__file__).resolve().parents[2]


def can_unshare() -> bool:
    if not (shutil.which("unshare") and shutil.which("ip") and shutil.which("nsenter")):
        return False
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, timeout=10, check=False)
    return probe.returncode == 0


@pytest.fixture(scope="module")
def scenario() -> dict[str, Any]:
    if not can_unshare():
        pytest.fail("needs root and util-linux unshare/nsenter to create network namespaces")
    host_netns = str(os.stat("/proc/self/ns/net").st_ino)
    out = subprocess.run(
        ["unshare", "-n", sys.executable, str(SCENARIO), host_netns],
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert out.returncode == 0, out.stdout + out.stderr
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_discovery_finds_the_camera(scenario: dict[str, Any]) -> None:
    ready = scenario["ready"]
    assert ready[0] == "READY"
    assert scenario["anonymous"]["rc"] == 0, scenario["anonymous"]["stderr"]
    (dev,) = json.loads(scenario["anonymous"]["stdout"])
    assert dev["address"] == "10.77.0.2"
    assert dev["xaddrs"] == [ready[1]]
    assert dev["endpoint"] == ready[2]
    assert dev["name"] == "Gate South"
    assert "device" not in dev  # no credentials, no profiles


def test_with_credentials_it_lists_the_rtsp_uris(scenario: dict[str, Any]) -> None:
    (dev,) = json.loads(scenario["with_login"]["stdout"])
    profiles = dev["device"]["profiles"]
    assert [(p["name"], p["rtsp_uri"]) for p in profiles] == [
        ("main", "rtsp://10.77.0.2:554/main"),
        ("sub1", "rtsp://10.77.0.2:554/sub"),
    ]
    assert profiles[0]["encoding"] == "H264"
    assert (profiles[0]["width"], profiles[0]["height"]) == (768, 576)
    assert dev["device"]["manufacturer"] == "gridwatch"
    table = scenario["table"]["stdout"]
    assert "rtsp://10.77.0.2:554/main" in table
    assert "Gate South" in table


def test_a_wrong_password_is_reported_as_such(scenario: dict[str, Any]) -> None:
    (dev,) = json.loads(scenario["bad_login"]["stdout"])
    assert dev["error"]["kind"] == "auth"
    assert "refused the user name or password" in dev["error"]["message"]
    assert "nope" not in scenario["bad_login"]["stdout"]


def test_an_interface_without_that_address_probes_nothing(scenario: dict[str, Any]) -> None:
    result = scenario["no_such_interface"]
    assert (result["rc"], json.loads(result["stdout"])) == (0, [])
    assert "no interface has the address 10.77.0.9" in result["stderr"]


def test_the_camera_checked_each_login(scenario: dict[str, Any]) -> None:
    """The simulated camera answers only requests whose WS-Security digest it verified: the
    calls with the right password all got through, the wrong one was refused at once."""
    listing = ["GetDeviceInformation", "GetServices", "GetProfiles", "GetStreamUri", "GetStreamUri"]
    assert scenario["requests"] == [*listing, "GetDeviceInformation!", *listing]


def test_probe_names_an_unreachable_host(scenario: dict[str, Any]) -> None:
    result = scenario["unreachable"]
    assert result["rc"] == 1
    answer = json.loads(result["stdout"])
    assert answer["kind"] == "unreachable"
    assert "cannot be reached from this machine" in answer["error"]
    assert "admin:***@10.99.0.1" in answer["error"]
    assert ":pw@" not in answer["error"]

"""`gridwatch camera calibrate` as an ops engineer runs it: a real process against a real
nats-server. It writes the camera's calibration into the registry (validated, with history),
and ``--check`` prints the distances it implies and the zones' areas in m²."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gridwatch_devtools.nats_server import NatsServer

pytestmark = pytest.mark.timeout(180)

EXE = str(Path(sys.executable).with_name("gridwatch"))

# A paved square seen from above at a slant: the image corners of a 10 m x 20 m rectangle
# (the far edge looks narrower), and its middle, at 10 m ahead and 5 m across.
POINTS = ["0.1,0.9=0,0", "0.9,0.9=10,0", "0.7,0.3=10,20", "0.3,0.3=0,20"]


@pytest.fixture
def gw(nats_server: NatsServer, tmp_path: Path):  # type: ignore[no-untyped-def]
    config = tmp_path / "deploy.yaml"
    config.write_text("grids: [{id: g1}]\n")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [EXE, "camera", *args, "--config", str(config), "--nats", nats_server.url],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    return run


def test_calibrate_writes_and_check_prints_distances_and_areas(gw) -> None:  # type: ignore[no-untyped-def]
    assert (
        gw("add", "sq", "--url", "rtsp://10.0.0.8/s", "--grid", "g1", "--no-probe").returncode == 0
    )
    zone = gw("zone", "set", "sq", "near", "--polygon", "0.1,0.9 0.9,0.9 0.9,0.6 0.1,0.6")
    assert zone.returncode == 0, zone.stderr

    # a metre rule is refused while the camera has no calibration, and --check says so
    out = gw("rule", "add", "sq", "density", "--zone", "near", "--set", "max_per_m2=2")
    assert out.returncode == 2
    assert "needs a calibration" in out.stderr
    out = gw("calibrate", "sq", "--check")
    assert out.returncode == 2
    assert "has no calibration" in out.stderr

    # degenerate points are refused and nothing is written
    out = gw("calibrate", "sq", "--point", "0.1,0.9=0,0", "--point", "0.5,0.9=5,0",
             "--point", "0.9,0.9=10,0", "--point", "0.3,0.3=0,20")  # fmt: skip
    assert out.returncode == 2
    assert "one line" in out.stderr

    args = [a for p in POINTS for a in ("--point", p)]
    out = gw("calibrate", "sq", *args)
    assert out.returncode == 0, out.stderr
    assert "calibration of camera sq set from points, reprojection error rms 0.000 m" in out.stdout

    shown = json.loads(gw("show", "sq", "--json").stdout)
    assert shown["change"] == "calibrate"
    second = shown["camera"]["calibration"]["points"][1]
    assert second == {"image": [0.9, 0.9], "ground": [10.0, 0.0]}

    out = gw("calibrate", "sq", "--check", "--between", "0.1,0.9", "0.9,0.9", "0.7,0.3")
    assert out.returncode == 0, out.stderr
    assert "distance 0.1,0.9 -> 0.9,0.9: 10.00 m" in out.stdout
    assert "distance 0.9,0.9 -> 0.7,0.3: 20.00 m" in out.stdout
    assert "reprojection error: rms 0.000 m" in out.stdout
    assert "zone near: " in out.stdout

    report = json.loads(gw("calibrate", "sq", "--check", "--json").stdout)
    # Worked by hand: the rectangle's sides meet at the vanishing point v = -0.3, so depth
    # along the picture is y(v) = 20 m x (0.9 - v) / (v + 0.3): the zone's far edge (v 0.6) is
    # 6.67 m ahead; metres per picture width grow as 1 / (v + 0.3): 12.5 at v 0.9, 16.67 at
    # 0.6, so the zone (0.8 of the width) is 10 m wide near and 13.33 m far: a trapezoid of
    # (10 + 13.33) / 2 x 6.67 = 77.78 m².
    assert report["zone_areas_m2"]["near"] == pytest.approx(77.78, abs=0.01)
    assert report["distances"] == []
    # now the metre rule builds
    out = gw("rule", "add", "sq", "density", "--zone", "near", "--set", "max_per_m2=2")
    assert out.returncode == 0, out.stderr

    # a camera model instead of points; --check with points previews without writing
    out = gw("calibrate", "sq", "--check", "--height", "6", "--tilt", "30", "--hfov", "70",
             "--between", "0.5,0.9", "0.5,0.6")  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "calibration from camera" in out.stdout
    shown = json.loads(gw("show", "sq", "--json").stdout)
    assert "points" in shown["camera"]["calibration"]

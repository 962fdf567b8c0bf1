"""`gridwatch camera ...` as an ops engineer runs it: a real process against a real nats-server.

Discovery is not here: it multicasts, so it is only ever run inside a network namespace (see
test_onvif_discovery.py).
"""

from __future__ import annotations

import asyncio
import csv
import json
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from gridwatch.registry.store import CameraRegistry
from gridwatch_devtools.nats_server import NatsServer
from tests.plugins.nats_fixtures import close_quietly, connect_flushed
from tests.plugins.rtsp_fixtures import DemoClipFactory

pytestmark = pytest.mark.timeout(180)

EXE = str(Path(sys.executable).with_name("gridwatch"))


@pytest.fixture
def gw(nats_server: NatsServer, tmp_path: Path):  # type: ignore[no-untyped-def]
    config = tmp_path / "deploy.yaml"
    config.write_text(
        "grids: [{id: g1}, {id: g2}]\n"
        "schedules: {school: [{days: [mon], between: ['07:00', '08:00']}]}\n"
    )

    def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [EXE, "camera", *args, "--config", str(config), "--nats", nats_server.url],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    return run


def write_csv(path: Path, bad: dict[int, tuple[str, str]]) -> None:
    rows = []
    for i in range(500):
        rows.append(
            {
                "id": f"cam-{i:03d}",
                "name": f"Camera {i}",
                "grid": "g1" if i % 2 else "g2",
                "url": f"rtsp://ops:pa55@10.2.{i // 200}.{i % 200 + 1}:554/Streaming/101",
                "lat": "40.65",
                "lon": "109.84",
                "analysis_fps": "2",
            }
        )
    for index, (column, value) in bad.items():
        rows[index][column] = value
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def listed(gw) -> list[dict[str, object]]:  # type: ignore[no-untyped-def]
    out = gw("list", "--json")
    assert out.returncode == 0, out.stderr
    result: list[dict[str, object]] = json.loads(out.stdout)
    return result


def test_import_500_rows_reports_every_bad_row_and_imports_nothing(gw, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "cameras.csv"
    # row index i is on line i + 2
    write_csv(path, {9: ("grid", "g7"), 120: ("url", "http://10.0.0.9/x"), 333: ("lat", "north"),
                     480: ("id", "cam-002")})  # fmt: skip
    out = gw("import", str(path))
    assert out.returncode == 2
    errors = [ln for ln in out.stderr.splitlines() if ln.startswith("error:")]
    assert [e.split(":")[2] for e in errors] == ["11", "122", "335", "482"], out.stderr
    assert f"{path}:11:" in errors[0]
    assert "unknown grid 'g7' (known: g1, g2)" in errors[0]
    assert "url must be rtsp://" in errors[1]
    assert "lat" in errors[2]
    assert "duplicate camera id 'cam-002' (first on line 4)" in errors[3]
    assert "4 bad row(s) of 500: nothing imported" in out.stderr
    assert "pa55" not in out.stderr
    assert listed(gw) == []

    out = gw("import", str(path), "--skip-bad", "--json")
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert len(summary["created"]) == 496
    assert summary["bad_rows"] == [11, 122, 335, 482]
    cameras = listed(gw)
    assert len(cameras) == 496
    assert all("pa55" not in str(c["url"]) for c in cameras)

    # the same file again changes nothing
    out = gw("import", str(path), "--skip-bad", "--json")
    assert json.loads(out.stdout)["unchanged"].__len__() == 496


async def registry_url(server: NatsServer, camera_id: str) -> str:
    nc = await connect_flushed(server.url)
    try:
        reg = await CameraRegistry.open(nc.jetstream())
        return (await reg.get(camera_id)).camera.url
    finally:
        await close_quietly(nc)


def test_export_and_import_round_trip_without_leaking_passwords(  # type: ignore[no-untyped-def]
    gw, nats_server: NatsServer, tmp_path: Path
) -> None:
    url = "rtsp://admin:s3cret@10.0.0.7/stream1"
    assert gw("add", "gate", "--url", url, "--grid", "g1", "--no-probe").returncode == 0
    assert (
        gw("zone", "set", "gate", "apron", "--polygon", "0.1,0.5 0.9,0.5 0.9,0.9").returncode == 0
    )
    export = tmp_path / "cameras.yaml"
    out = gw("export", "--out", str(export))
    assert out.returncode == 0, out.stderr
    text = export.read_text()
    assert "s3cret" not in text
    assert "admin:***@10.0.0.7" in text
    assert "polygon: [[0.1, 0.5], [0.9, 0.5], [0.9, 0.9]]" in text

    out = gw("import", str(export))
    assert out.returncode == 0, out.stderr
    assert "1 unchanged" in out.stdout

    export.write_text(text.replace("zones:", "name: Gate\n  zones:"))
    out = gw("import", str(export))
    assert out.returncode == 2
    assert "already exists in the registry with other settings (--update" in out.stderr
    out = gw("import", str(export), "--update")
    assert out.returncode == 0, out.stderr
    # the password survived the redacted round trip
    assert asyncio.run(registry_url(nats_server, "gate")) == url

    with_secrets = gw("export", "--include-credentials", "--format", "csv")
    assert "s3cret" in with_secrets.stdout


def test_edit_commands_validate_and_keep_history(gw) -> None:  # type: ignore[no-untyped-def]
    assert (
        gw("add", "c1", "--url", "rtsp://10.0.0.8/s", "--grid", "g2", "--no-probe").returncode == 0
    )
    out = gw("add", "c1", "--url", "rtsp://10.0.0.8/s", "--grid", "g2", "--no-probe")
    assert out.returncode == 2
    assert "duplicate id" in out.stderr
    out = gw("add", "c2", "--url", "rtsp://10.0.0.8/s", "--grid", "g9", "--no-probe")
    assert out.returncode == 2
    assert "unknown grid 'g9' (known: g1, g2)" in out.stderr

    out = gw("zone", "set", "c1", "z", "--polygon", "0,0 1,1 1,0 0,1")
    assert out.returncode == 2
    assert "crosses itself" in out.stderr
    assert "nothing changed" in out.stderr
    assert gw("zone", "set", "c1", "z", "--polygon", "0,0.5 1,0.5 1,1 0,1").returncode == 0
    assert gw("zone", "set", "c1", "home", "--mask", "--polygon", "0,0 .3,0 .3,.3").returncode == 0
    out = gw("rule", "add", "c1", "crowding", "--zone", "z", "--min-count", "0")
    assert out.returncode == 2
    assert "min_count" in out.stderr
    out = gw("rule", "add", "c1", "crowding", "--zone", "z", "--min-count", "4", "--schedule", "x")
    assert out.returncode == 2
    assert "unknown schedule 'x' (known: school)" in out.stderr
    out = gw("rule", "add", "c1", "crowding", "--zone", "z", "--min-count", "4",
             "--schedule", "school", "--set", "min_duration_s=20")  # fmt: skip
    assert out.returncode == 0, out.stderr
    out = gw("zone", "remove", "c1", "z")
    assert out.returncode == 2
    assert "used by rule(s) crowding/z" in out.stderr
    assert gw("disable", "c1").returncode == 0

    shown = json.loads(gw("show", "c1", "--json").stdout)
    cam = shown["camera"]
    assert cam["enabled"] is False
    assert cam["rules"] == [
        {"type": "crowding", "zone": "z", "min_count": 4, "min_duration_s": 20.0,
         "schedule": "school"}
    ]  # fmt: skip
    assert cam["privacy_masks"][0]["id"] == "home"
    assert shown["change"] == "disable"

    assert gw("rule", "remove", "c1", "crowding/z").returncode == 0
    assert gw("zone", "remove", "c1", "z").returncode == 0
    assert gw("enable", "c1").returncode == 0
    history = json.loads(gw("show", "c1", "--history", "--json").stdout)["history"]
    assert [h["change"] for h in history] == [
        "add", "zone set z", "mask set home", "rule add crowding/z", "disable",
        "rule remove crowding/z", "zone remove z", "enable",
    ]  # fmt: skip
    assert gw("remove", "c1").returncode == 0
    out = gw("show", "c1")
    assert out.returncode == 1
    assert "no camera 'c1'" in out.stderr
    history = json.loads(gw("show", "c1", "--history", "--json").stdout)["history"]
    assert history[-1]["operation"] == "delete"


def test_add_refuses_a_stream_that_cannot_be_opened(gw) -> None:  # type: ignore[no-untyped-def]
    out = gw("add", "dead", "--url", "rtsp://admin:hunter2@127.0.0.1:9/s", "--grid", "g1",
             "--probe-timeout", "2")  # fmt: skip
    assert out.returncode == 1
    assert "Connection refused" in out.stderr
    assert "--no-probe" in out.stderr
    assert "hunter2" not in out.stderr
    assert "admin:***@127.0.0.1" in out.stderr
    assert listed(gw) == []


def test_list_with_status_reads_worker_health(gw, nats_server: NatsServer) -> None:  # type: ignore[no-untyped-def]
    assert (
        gw("add", "h1", "--url", "rtsp://10.0.0.8/s", "--grid", "g1", "--no-probe").returncode == 0
    )

    async def publish_health() -> None:
        nc = await connect_flushed(nats_server.url)
        try:
            report = {"camera_id": "h1", "state": "online", "frames_analysed": 42, "last_error": ""}
            for _ in range(50):
                await nc.publish("gw.v1.health.h1", json.dumps(report).encode())
                await asyncio.sleep(0.1)
        finally:
            await close_quietly(nc)

    async def both() -> subprocess.CompletedProcess[str]:
        pub = asyncio.create_task(publish_health())
        out = await asyncio.to_thread(gw, "list", "--status", "--wait", "4", "--json")
        pub.cancel()
        return out

    out = asyncio.run(both())
    assert out.returncode == 0, out.stderr
    (row,) = json.loads(out.stdout)
    assert row["status"]["state"] == "online"
    assert row["status"]["frames_analysed"] == 42


def test_zone_image(gw, demo_clip: DemoClipFactory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    clip = demo_clip(4.0)
    assert gw("add", "z1", "--url", str(clip), "--grid", "g1").returncode == 0
    assert (
        gw(
            "zone", "set", "z1", "apron", "--polygon", "0.05,0.4 0.95,0.4 0.95,0.98 0.05,0.98"
        ).returncode
        == 0
    )
    assert (
        gw(
            "zone", "set", "z1", "win", "--mask", "--polygon", "0.4,0.0 0.8,0.0 0.8,0.2 0.4,0.2"
        ).returncode
        == 0
    )
    assert (
        gw("rule", "add", "z1", "crowding", "--zone", "apron", "--min-count", "4").returncode == 0
    )
    target = tmp_path / "zones.jpg"
    out = gw("zone-image", "z1", "--out", str(target))
    assert out.returncode == 0, out.stderr
    img = cv2.imread(str(target))
    assert img.shape == (576, 768, 3)
    h, w = img.shape[:2]
    inner = img[int(0.03 * h) : int(0.17 * h), int(0.45 * w) : int(0.75 * w)]
    assert inner.max() < 40  # the mask is black, not just outlined
    # the apron's outline is drawn in amber (BGR ≈ 0, 215, 255) on its top edge
    edge = img[int(0.4 * h) - 3 : int(0.4 * h) + 3, int(0.3 * w) : int(0.7 * w)].reshape(-1, 3)
    amber = (edge[:, 2] > 200) & (edge[:, 1] > 150) & (edge[:, 0] < 90)
    assert amber.mean() > 0.2

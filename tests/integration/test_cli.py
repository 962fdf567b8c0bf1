"""The `gridwatch` command as a user runs it: a real process, real exit codes."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pytest

from gridwatch.alerts.publisher import AlertPublisher
from gridwatch.alerts.streams import ensure_alert_infra
from gridwatch.model import Alert, IncidentState
from tests.plugins.nats_fixtures import connect_flushed

EXE = str(Path(sys.executable).with_name("gridwatch"))
REPO = Path(__file__).resolve().parents[2]


def gw(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EXE, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def test_help_lists_the_commands() -> None:
    out = gw("--help")
    assert out.returncode == 0
    for command in ("worker", "alerts", "config", "snapshot", "demo"):
        assert command in out.stdout
    tail_help = gw("alerts", "tail", "--help").stdout
    for option in ("--grid", "--camera", "--json", "--since"):
        assert option in tail_help


def test_config_check_ok() -> None:
    out = gw("config", "check", str(REPO / "configs" / "example.yaml"))
    assert out.returncode == 0
    assert "ok (1 grids, 1 cameras, 1 rules)" in out.stdout


def test_config_check_reports_every_error_and_fails(tmp_path: Path) -> None:
    bad = (REPO / "configs" / "example.yaml").read_text()
    bad = bad.replace("grid: kdl-shaoxian-01", "grid: nowhere").replace(
        "min_count: 6", "min_count: -6"
    )
    bad = bad.replace("analysis_fps: 2", "analysis_fps: 2\n    colour: red")
    path = tmp_path / "bad.yaml"
    path.write_text(bad)
    out = gw("config", "check", str(path))
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 3, out.stderr
    assert any(f"{path}:16:5: cameras[0].grid: unknown grid 'nowhere'" in ln for ln in lines)
    assert any("cameras[0].rules[0].min_count" in ln and f"{path}:24:44:" in ln for ln in lines)
    assert any("cameras[0].colour: unknown field 'colour'" in ln for ln in lines)


def test_worker_with_bad_config_exits_non_zero(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("cameras: [{id: x}]\n")
    out = gw("worker", "--config", str(path))
    assert out.returncode == 2
    assert "cameras[0].grid: required field is missing" in out.stderr


def test_bad_duration_is_a_usage_error() -> None:
    out = gw("alerts", "tail", "--since", "yesterday", "--nats", "nats://127.0.0.1:9")
    assert out.returncode == 2
    assert "not a duration" in out.stderr


def _alert(grid: str, camera: str, n: int) -> Alert:
    now = dt.datetime.now(dt.UTC)
    return Alert(
        id=f"incident{n}",
        message_id=f"incident{n}.raised.0",
        type="crowding",
        state=IncidentState.RAISED,
        sequence=0,
        camera_id=camera,
        camera_name=camera,
        grid_id=grid,
        zone_id="apron",
        started_at=now,
        observed_at=now,
        count=6,
        peak_count=6,
        boxes=[(0.1, 0.5, 0.2, 0.9)],
    )


@pytest.mark.timeout(60)
async def test_alerts_tail_replays_with_since_and_filters_by_grid(nats_server) -> None:  # type: ignore[no-untyped-def]
    nc = await connect_flushed(nats_server.url)
    try:
        await ensure_alert_infra(nc.jetstream())
        pub = AlertPublisher(nc)
        await pub.publish(_alert("grid-a", "cam-1", 1))
        await pub.publish(_alert("grid-b", "cam-2", 2))
        await pub.publish(_alert("grid-a", "cam-3", 3))
    finally:
        await nc.drain()
    proc = await asyncio.create_subprocess_exec(
        EXE, "alerts", "tail", "--grid", "grid-a", "--json", "--since", "10m",
        "--nats", nats_server.url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        lines = [await asyncio.wait_for(proc.stdout.readline(), 30) for _ in range(2)]
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 10)
    alerts = [Alert.model_validate(json.loads(line)) for line in lines]
    assert [a.camera_id for a in alerts] == ["cam-1", "cam-3"]
    assert all(a.grid_id == "grid-a" for a in alerts)


@pytest.mark.timeout(60)
async def test_alerts_tail_started_before_any_worker_waits_for_the_stream(nats_server) -> None:  # type: ignore[no-untyped-def]
    proc = await asyncio.create_subprocess_exec(
        EXE, "alerts", "tail", "--json", "--nats", nats_server.url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        assert proc.stdout is not None
        warning = await asyncio.wait_for(proc.stderr.readline(), 20)
        assert b"does not exist yet" in warning
        nc = await connect_flushed(nats_server.url)
        try:
            await ensure_alert_infra(nc.jetstream())
            await asyncio.sleep(2.5)  # the tail notices the stream and subscribes for NEW alerts
            await AlertPublisher(nc).publish(_alert("grid-a", "cam-9", 9))
        finally:
            await nc.drain()
        line = await asyncio.wait_for(proc.stdout.readline(), 20)
        assert Alert.model_validate_json(line).camera_id == "cam-9"
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 10)

"""The issue's "done when": while a worker runs, an ops engineer adds a camera with the CLI,
gets alerts from it within a minute, changes its zone and sees the change take effect, removes
it and sees the worker stop it, and the worker's other camera is never disturbed.

Everything is real: nats-server, GStreamer RTSP cameras serving the demo video, the offline
YOLOv8s model, the worker following the KV registry, and the `gridwatch` executable run as a
separate process (started without blocking the worker's event loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from gridwatch.alerts.tail import iter_alerts
from gridwatch.config import load_config
from gridwatch.model import Alert
from gridwatch.worker import Worker
from gridwatch_devtools.nats_server import NatsServer
from tests.plugins.nats_fixtures import close_quietly, connect_flushed
from tests.plugins.rtsp_fixtures import DemoClipFactory, RtspServerFactory

pytestmark = pytest.mark.timeout(240)

EXE = str(Path(sys.executable).with_name("gridwatch"))
APRON = "0.05,0.40 0.95,0.40 0.95,0.98 0.05,0.98"
CORNER = "0.0,0.0 0.05,0.0 0.05,0.05 0.0,0.05"  # sky: nobody ever stands there


async def gw(*args: str, within: float = 60) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        EXE, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), within)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return int(proc.returncode or 0), out.decode(), err.decode()


async def until(what: str, predicate: Callable[[], bool], within: float) -> float:
    """Seconds until ``predicate()`` holds (polled every 20 ms); fails after ``within``."""
    t0 = time.monotonic()
    while not predicate():
        if time.monotonic() - t0 > within:
            pytest.fail(f"{what}: not within {within:g}s")
        await asyncio.sleep(0.02)
    return time.monotonic() - t0


async def test_add_change_remove_a_camera_while_the_worker_runs(
    nats_server: NatsServer,
    rtsp_server: RtspServerFactory,
    demo_clip: DemoClipFactory,
    tmp_path: Path,
) -> None:
    clip = demo_clip(12.0)
    cams = rtsp_server({"steady": clip, "new": clip})
    config_file = tmp_path / "deploy.yaml"
    config_file.write_text(
        f"nats: {{url: '{nats_server.url}'}}\n"
        "grids: [{id: grid-a}, {id: grid-b}]\n"
        "registry: {enabled: true}\n"
    )
    seed = tmp_path / "seed.yaml"
    steady = f"{{id: steady, grid: grid-a, url: '{cams.url('steady')}', analysis_fps: 1}}"
    seed.write_text(f"cameras:\n  - {steady}\n")
    rc, out, err = await gw("camera", "import", str(seed), "--config", str(config_file))
    assert rc == 0, err
    assert "imported 1 new" in out

    cfg = load_config(config_file)
    stop = asyncio.Event()
    worker = Worker(cfg, health_interval_s=1.0)
    assert worker.use_registry
    task = asyncio.create_task(worker.run(stop))
    nc = await connect_flushed(nats_server.url)
    alerts: list[Alert] = []

    async def follow() -> None:
        async for alert in iter_alerts(nc, camera="new", since=None, stop=stop):
            alerts.append(alert)

    follower: asyncio.Task[None] | None = None
    try:
        await asyncio.wait_for(worker.ready.wait(), 90)
        assert set(worker.pipelines) == {"steady"}
        steady_reader = worker.readers["steady"]
        steady_pipe = worker.pipelines["steady"]
        follower = asyncio.create_task(follow())
        await until("steady analyses", lambda: steady_pipe.stats.analysed > 0, 30)
        steady_before = steady_pipe.stats.analysed

        # -- add: validated, probed, registered; the worker starts it --------------------------
        conf = ("--config", str(config_file))
        t_add = time.monotonic()
        rc, out, err = await gw(
            "camera", "add", "new", "--url", cams.url("new"), "--grid", "grid-b",
            "--name", "South gate", "--analysis-fps", "2", *conf,
        )  # fmt: skip
        cli_s = time.monotonic() - t_add
        assert rc == 0, err
        assert "added camera new" in out
        await until("new is started", lambda: "new" in worker.pipelines, 5 + cli_s)
        started_s = time.monotonic() - t_add
        await until("new analyses", lambda: worker.pipelines["new"].stats.analysed > 0, 30)
        first_frame_s = time.monotonic() - t_add
        print(
            f"\ncamera add → CLI done {cli_s:.2f}s (incl. probe), pipeline started "
            f"{started_s:.2f}s, first analysed frame {first_frame_s:.2f}s"
        )

        # -- zone and rule: each write reaches the running worker -------------------------------
        rc, _, err = await gw("camera", "zone", "set", "new", "apron", "--polygon", APRON, *conf)
        assert rc == 0, err
        rc, _, err = await gw(
            "camera", "rule", "add", "new", "crowding", "--zone", "apron", "--min-count", "3",
            "--set", "min_duration_s=1", "--set", "clear_after_s=3", *conf,
        )  # fmt: skip
        assert rc == 0, err
        await until(
            "rule reaches the worker",
            lambda: bool(getattr(worker.cameras.get("new"), "rules", None)),
            5,
        )
        await until("an alert from new", lambda: bool(alerts), 60 - (time.monotonic() - t_add))
        print(f"first alert from new {time.monotonic() - t_add:.1f}s after `camera add`")
        assert alerts[0].camera_id == "new"
        assert alerts[0].camera_name == "South gate"
        assert alerts[0].grid_id == "grid-b"
        assert alerts[0].count >= 3

        # -- change the zone to an empty corner: the new zone is what is counted ---------------
        old_pipe = worker.pipelines["new"]
        t_zone = time.monotonic()
        rc, _, err = await gw("camera", "zone", "set", "new", "apron", "--polygon", CORNER, *conf)
        assert rc == 0, err
        await until(
            "zone change reaches the worker",
            lambda: worker.pipelines.get("new") not in (None, old_pipe),
            5,
        )
        print(f"zone change live {time.monotonic() - t_zone:.2f}s after `camera zone set`")
        new_pipe = worker.pipelines["new"]
        assert new_pipe.camera.zones[0].polygon[1] == (0.05, 0.0)
        await until("new analyses again", lambda: new_pipe.stats.analysed >= 3, 30)
        assert new_pipe.stats.last_count == 0

        # -- remove: the worker stops it ---------------------------------------------------------
        reader_new = worker.readers["new"]
        t_rm = time.monotonic()
        rc, out, err = await gw("camera", "remove", "new", *conf)
        assert rc == 0, err
        await until("new is stopped", lambda: "new" not in worker.pipelines, 5)
        await until("new's reader exits", lambda: not reader_new.alive, 10)
        print(f"removal live {time.monotonic() - t_rm:.2f}s after `camera remove`")

        # -- the other camera never noticed ----------------------------------------------------
        assert worker.readers["steady"] is steady_reader
        assert worker.pipelines["steady"] is steady_pipe
        assert steady_reader.alive
        assert steady_reader.stats.opens == 1
        assert steady_pipe.stats.analysed > steady_before
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 30)
        if follower is not None:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await follower
        await close_quietly(nc)
    assert task.done()

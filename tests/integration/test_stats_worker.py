"""A real worker on a real RTSP camera (GStreamer serving the demo video, vtest: people
walking on a campus) publishes people-flow minutes to GW_STATS, rolls them up into quarters,
and ``gridwatch stats`` prints them as a table and as CSV.

The minute is shortened to 1 s (``stats.period_s``, a test setting), so a "quarter" is 15 s
and the test sees minutes close and a quarter rolled up within half a minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import datetime as dt
import io
import sys
from pathlib import Path

import pytest

from gridwatch.bus.names import STATS_STREAM
from gridwatch.config import parse_config
from gridwatch.detectors import build_detector
from gridwatch.detectors.base import Detector
from gridwatch.stats.query import read_stats
from gridwatch.worker import Worker
from gridwatch_devtools.nats_server import NatsServer
from tests.plugins.nats_fixtures import close_quietly, connect_flushed
from tests.plugins.rtsp_fixtures import RtspServerFactory

pytestmark = pytest.mark.timeout(240)

EXE = str(Path(sys.executable).with_name("gridwatch"))
CONFIG = """
grids: [{id: g1}]
stats: {period_s: 1, rollup_delay_s: 1, minute_retention_days: 0.01, heat_cols: 8, heat_rows: 6}
cameras:
  - id: gate
    grid: g1
    url: "URL"
    analysis_fps: 5
    zones:
      - {id: all, polygon: [[0, 0], [1, 0], [1, 1], [0, 1]]}
      - {id: left, polygon: [[0, 0], [0.5, 0], [0.5, 1], [0, 1]]}
    rules:
      - {type: crowding, zone: all, min_count: 50, min_duration_s: 5}
      - {type: line_crossing, id: mid, line: [[0, 0.5], [1, 0.5]], max_count: 1000}
"""


@pytest.fixture(scope="module")
def detector() -> Detector:
    return build_detector("default", 0.25, imgsz=640, threads=2)


async def _gw(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        EXE, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_a_worker_publishes_minutes_and_quarters_that_the_cli_prints(
    nats_server: NatsServer,
    rtsp_server: RtspServerFactory,
    demo_mp4: Path,
    detector: Detector,
) -> None:
    url = rtsp_server({"gate": demo_mp4}).url("gate")
    cfg = parse_config(CONFIG.replace("URL", url))
    began = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    stop = asyncio.Event()
    worker = Worker(cfg, nats_url=nats_server.url, detector=detector)
    task = asyncio.create_task(worker.run(stop))
    nc = await connect_flushed(nats_server.url)
    js = nc.jetstream()
    try:
        await asyncio.wait_for(worker.ready.wait(), 60)
        quarters = []
        for _ in range(120):  # the first (partial) quarter: within 15 s + delays of the start
            await asyncio.sleep(0.5)
            quarters = await read_stats(js, period="quarter", since=began, camera="gate")
            if quarters:
                break
        assert quarters, "no quarter was rolled up"
        assert worker.stats is not None
        assert worker.stats.stats.dropped == 0
        line_rule = worker.pipelines["gate"].rules.rules[1]
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 60)
    try:
        quarters = await read_stats(js, period="quarter", since=began, camera="gate")
        minutes = await read_stats(js, period="minute", since=began, camera="gate")
        assert len(minutes) >= 5
        for m in minutes:
            assert m.grid == "g1"
            assert (m.end - m.start).total_seconds() == 1
            assert 1 <= m.samples <= 7  # 5 fps, give or take a tick
            assert set(m.zones) == {"all", "left"}
            assert m.heat is not None
            assert len(m.heat.cells) == 48
        # the demo video shows about six people at a time
        assert sum(m.zones["all"].mean for m in minutes) / len(minutes) > 2
        assert max(m.zones["all"].max for m in minutes) >= 4
        # crossings are the line rule's own (the last, unfinished minute is not published)
        crossed = sum(m.lines["mid"].in_ + m.lines["mid"].out for m in minutes)
        counted = sum(c["in"] + c["out"] for c in line_rule.counts.values())  # type: ignore[attr-defined]
        assert 1 <= crossed <= counted
        # the quarter is the merge of its minutes, made once
        q = quarters[0]
        inside = [m for m in minutes if q.start <= m.start < q.end]
        assert q.samples == sum(m.samples for m in inside)
        mean = sum(m.samples * m.zones["all"].mean for m in inside) / q.samples
        assert q.zones["all"].mean == pytest.approx(mean, abs=2e-3)
        assert q.zones["all"].max == max(m.zones["all"].max for m in inside)
        assert q.lines["mid"].in_ == sum(m.lines["mid"].in_ for m in inside)
        assert q.heat is not None
        assert sum(q.heat.cells) == sum(sum(m.heat.cells) for m in inside if m.heat)
        # minute records carry their TTL (0.01 days), the quarters none
        msg = await js.get_last_msg(STATS_STREAM, "gw.v1.stats.g1.gate.minute")
        assert (msg.headers or {}).get("Nats-TTL") == "864"
        qmsg = await js.get_last_msg(STATS_STREAM, "gw.v1.stats.g1.gate.quarter")
        assert "Nats-TTL" not in (qmsg.headers or {})

        # the CLI: CSV rows are the records, one per zone and line
        since = began.isoformat()
        rc, out, err = await _gw(
            "stats", "--nats", nats_server.url, "--camera", "gate", "--period", "minute",
            "--since", since, "--csv",
        )  # fmt: skip
        assert rc == 0, err
        table = list(csv.DictReader(io.StringIO(out)))
        printed = {(r["start"], r["kind"], r["id"]) for r in table}
        want = {(m.model_dump(mode="json")["start"], "zone", "all") for m in minutes}
        assert want <= printed
        row = next(r for r in table if r["kind"] == "line")
        assert row["camera"] == "gate"
        assert row["grid"] == "g1"
        assert int(row["in"]) >= 0
        assert row["mean"] == ""
        # a table of the grid's quarters; another grid has none
        rc, out, err = await _gw(
            "stats", "--nats", nats_server.url, "--grid", "g1", "--period", "quarter",
            "--since", since,
        )  # fmt: skip
        assert rc == 0, err
        assert "people-flow statistics, quarter" in out
        assert f"{len(quarters)} records of 1 camera(s)" in out
        rc, out, _ = await _gw("stats", "--nats", nats_server.url, "--grid", "g2", "--since", since)
        assert rc == 0
        assert "no hour records of grid g2" in out
        rc, _, err = await _gw("stats", "--nats", nats_server.url, "--period", "week")
        assert rc == 2
        assert "--period" in err
    finally:
        await close_quietly(nc)

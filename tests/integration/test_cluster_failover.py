"""Issue 8, cluster test 1: three worker processes share 30 cameras through leases on a real
3-node NATS cluster; one is killed with SIGKILL, one shuts down, a new one joins.

Checked throughout, never by a single sample:

* **what the workers actually run** — each worker journals every camera start (before it
  starts) and stop (after it stopped) with CLOCK_MONOTONIC (``leases.journal``); the merged
  journals must show no camera on two workers at any instant (the killed worker's cameras end
  when the test saw it dead);
* **what the KV shows** — a watcher folds every revision of ``gw_workers`` (each worker's
  heartbeat lists what it runs) in stream order and checks, after each one, that no camera is
  listed by two workers.

Cheap but honest cameras: each camera is a real H.264 file (160x96, 5 fps, a still scene)
decoded in a real reader thread at its native rate and analysed by the real pipeline; the
motion gate finds no motion, so the detector (YOLOv3-tiny via OpenCV at 320, the cheapest
model the project ships) runs only on the gate's periodic refresh. That keeps 30 cameras
within a few percent of a core while every camera still goes through ingest → analysis.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import av
import numpy as np
import pytest
from nats.js.kv import KeyValue

from gridwatch.alerts.streams import ensure_alert_infra
from gridwatch.leases.journal import overlaps, read_intervals
from gridwatch.leases.kv import ensure_lease_buckets
from gridwatch.leases.records import WORKERS_BUCKET, WorkerRecord
from gridwatch_devtools.nats_cluster import NatsCluster
from tests.plugins.nats_fixtures import close_quietly, connect_flushed

pytestmark = pytest.mark.timeout(240)

EXE = str(Path(sys.executable).with_name("gridwatch"))
N_CAMERAS = 30
FAILOVER_S = 10.0  # the issue: a killed worker's cameras are re-owned within 10 s
HANDBACK_S = 5.0  # a graceful shutdown hands its cameras back "at once"
FAIR_SHARE_S = 60.0  # a new worker takes a fair share within a minute


def still_clip(path: Path, *, seconds: float = 4.0, fps: int = 5) -> Path:
    """A real H.264 file of a still scene (a gradient with a bright square)."""
    h, w = 96, 160
    img = np.zeros((h, w, 3), np.uint8)
    img[:, :, 1] = np.linspace(40, 200, w, dtype=np.uint8)[None, :]
    img[30:60, 60:100] = 230
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"g": str(fps * 2)}
        for _ in range(int(seconds * fps)):
            frame = av.VideoFrame.from_ndarray(img, format="bgr24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def worker_config(tmp: Path, name: str, cluster: NatsCluster, clip: Path) -> Path:
    cams = "\n".join(
        f"  - {{id: cam-{i:02d}, grid: g1, url: '{clip}', loop: true, analysis_fps: 1}}"
        for i in range(N_CAMERAS)
    )
    path = tmp / f"{name}.yaml"
    path.write_text(
        f"nats: {{url: '{cluster.url}', replicas: 3}}\n"
        "detector: {backend: darknet, model: default, imgsz: 320, threads: 1}\n"
        f"alerts: {{spool: {{dir: '{tmp / ('spool-' + name)}'}}}}\n"
        f"leases: {{enabled: true, worker_id: {name}, capacity: 40,"
        f" journal: '{tmp / (name + '.journal')}'}}\n"
        "grids: [{id: g1}]\n"
        f"cameras:\n{cams}\n"
    )
    return path


class Workers:
    """Worker processes, each logging to a file; all stopped at the end."""

    def __init__(self, tmp: Path, cluster: NatsCluster, clip: Path) -> None:
        self.tmp, self.cluster, self.clip = tmp, cluster, clip
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.dead_at: dict[str, float] = {}

    def start(self, name: str) -> None:
        cfg = worker_config(self.tmp, name, self.cluster, self.clip)
        log = (self.tmp / f"{name}.log").open("wb")
        self.procs[name] = subprocess.Popen(
            [EXE, "worker", "--config", str(cfg), "--log-level", "info"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )

    async def kill(self, name: str) -> float:
        proc = self.procs[name]
        proc.send_signal(signal.SIGKILL)
        # it runs nothing from here on (a killed process never returns to its code). Not the
        # time the wait below returns: under load (CI, 2 vCPUs) that came 1.9 s later, after
        # another worker had rightly taken the cameras over, and read as two owners
        self.dead_at[name] = time.monotonic()
        await asyncio.to_thread(proc.wait, 10)
        return self.dead_at[name]

    async def terminate(self, name: str, within: float = 30) -> float:
        proc = self.procs[name]
        t = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(proc.wait, within)
        self.dead_at[name] = time.monotonic()
        return t

    def log_tail(self, name: str, lines: int = 25) -> str:
        path = self.tmp / f"{name}.log"
        text = path.read_text(errors="replace").splitlines() if path.exists() else []
        return f"--- {name} ---\n" + "\n".join(text[-lines:])

    def tails(self) -> str:
        return "\n".join(self.log_tail(n) for n in self.procs)

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                with contextlib.suppress(Exception):
                    proc.wait(10)


@pytest.fixture
def workers(tmp_path: Path, nats_cluster: NatsCluster) -> Iterator[Workers]:
    ws = Workers(tmp_path, nats_cluster, still_clip(tmp_path / "still.mp4"))
    try:
        yield ws
    finally:
        ws.close()


def journals(tmp: Path) -> list[Path]:
    return sorted(tmp.glob("w*.journal"))


class KvFold:
    """Folds every gw_workers revision in stream order; records any camera listed twice."""

    def __init__(self) -> None:
        self.running: dict[str, set[str]] = {}
        self.violations: list[str] = []
        self.revisions = 0

    def note(self, entry: KeyValue.Entry) -> None:
        self.revisions += 1
        if entry.operation in ("DEL", "PURGE"):
            self.running.pop(entry.key, None)
            return
        self.running[entry.key] = set(WorkerRecord.decode(entry.value or b"").cameras)
        seen: dict[str, str] = {}
        for worker, cams in self.running.items():
            for cam in cams:
                if cam in seen:
                    self.violations.append(f"rev {entry.revision}: {cam} on {seen[cam]}+{worker}")
                seen[cam] = worker

    def counts(self) -> dict[str, int]:
        return {w: len(c) for w, c in sorted(self.running.items())}

    def owned(self) -> set[str]:
        return set().union(*self.running.values()) if self.running else set()


async def until(what: str, predicate: Callable[[], bool], within: float, tails: str = "") -> float:
    t0 = time.monotonic()
    while not predicate():
        if time.monotonic() - t0 > within:
            pytest.fail(f"{what}: not within {within:g}s\n{tails}")
        await asyncio.sleep(0.05)
    return time.monotonic() - t0


async def test_kill_shutdown_and_join_never_two_owners(
    nats_cluster: NatsCluster, workers: Workers, tmp_path: Path
) -> None:
    nc = await connect_flushed(nats_cluster.urls)  # type: ignore[arg-type]
    fold = KvFold()
    watch_task: asyncio.Task[None] | None = None
    try:
        # the streams first, as an operator's init step would: three workers creating the same
        # R3 streams at the same instant on a fresh cluster can time out (5 s API timeout)
        await ensure_alert_infra(nc.jetstream(timeout=30), replicas=3)
        await ensure_lease_buckets(nc.jetstream(timeout=30), replicas=3)
        for name in ("w1", "w2", "w3"):
            workers.start(name)

        async def follow() -> None:
            js = nc.jetstream()
            while True:
                try:
                    kv = await js.key_value(WORKERS_BUCKET)
                    break
                except Exception:
                    await asyncio.sleep(0.2)
            watcher = await kv.watchall()
            async for entry in watcher:
                if entry is not None:
                    fold.note(entry)

        watch_task = asyncio.create_task(follow())
        all_ids = {f"cam-{i:02d}" for i in range(N_CAMERAS)}

        # 1. three workers share the cameras evenly (capacity 40 each: 10 each)
        await until(
            "30 cameras running, 10 per worker",
            lambda: fold.owned() == all_ids and sorted(fold.counts().values()) == [10, 10, 10],
            120,
            workers.tails(),
        )

        # 2. SIGKILL one: its cameras run elsewhere within 10 s
        killed_at = await workers.kill("w1")
        failover = await until(
            "cameras of the killed worker re-owned",
            lambda: "w1" not in fold.running and fold.owned() == all_ids,
            30,
            workers.tails(),
        )
        failover = time.monotonic() - killed_at
        assert failover <= FAILOVER_S, f"re-owned after {failover:.1f}s\n{workers.tails()}"
        assert sorted(fold.counts().values()) == [15, 15]

        # 3. graceful shutdown: its cameras are handed back at once
        sent = await workers.terminate("w2")
        handback = await until(
            "cameras of the stopped worker re-owned",
            lambda: fold.owned() == all_ids and fold.counts() == {"w3": N_CAMERAS},
            30,
            workers.tails(),
        )
        handback = time.monotonic() - sent
        assert handback <= HANDBACK_S, f"handed back in {handback:.1f}s\n{workers.tails()}"

        # 4. a new worker takes its fair share (15 of 30) within a minute, without gaps
        joined = time.monotonic()
        workers.start("w4")
        await until(
            "the new worker's fair share",
            lambda: fold.counts() == {"w3": 15, "w4": 15} and fold.owned() == all_ids,
            FAIR_SHARE_S,
            workers.tails(),
        )
        fair_share = time.monotonic() - joined

        for name in ("w3", "w4"):
            await workers.terminate(name)
        await asyncio.sleep(0.5)  # the last deletes reach the watcher
        print(
            f"failover {failover:.1f}s, hand-back {handback:.1f}s, fair share {fair_share:.1f}s "
            f"(incl. process start), {fold.revisions} gw_workers revisions checked"
        )
    finally:
        if watch_task is not None:
            watch_task.cancel()
            with contextlib.suppress(BaseException):
                await watch_task
        await close_quietly(nc)

    assert not fold.violations, fold.violations[:5]
    files = journals(tmp_path)
    assert len(files) == 4
    intervals = read_intervals(files, open_until=workers.dead_at)
    assert set(intervals) == all_ids
    assert not overlaps(intervals), overlaps(intervals)[:3]
    # every camera ran on the killed worker, then elsewhere: the handovers really happened
    moved = {c for c, items in intervals.items() if len({w for w, _, _ in items}) >= 2}
    assert len(moved) >= 25

"""City scale, control plane only: 7,000 cameras and 300 workers sharing them through the real
lease code on a real 3-node NATS cluster (no video, no decoding: a "camera" is a name).

What runs for real: three clustered ``nats-server`` processes with ``gw_leases`` and
``gw_workers`` at replication 3, and 300 :class:`~gridwatch.leases.manager.LeaseManager`
instances, each with its own NATS connection, its own session, renewals, claims, releases and
fences. They live in ``--processes`` OS processes; the managers of one process share one
:class:`~gridwatch.leases.view.ClusterView` (one watch per bucket per process instead of one
per worker: 300 Python watchers would measure this 2-core machine's Python, not NATS). The
delivery fan-out a real fleet has, where every worker watches both buckets, is reported as a
computed figure next to the measured ones.

Phases and what each measures:

1. **assignment**: all workers start at once; time until every camera is held by a live
   session; the spread (max/mean cameras per worker) then and once rebalancing settles;
2. **steady**: ``--steady-s`` seconds of nothing happening: lease traffic, from the servers'
   ``/varz`` (messages and bytes in and out, all nodes, routes included) and from the
   managers' own counters (KV writes and reads);
3. **failure**: ``--kill-fraction`` of the workers die without a word (their loops stop, no
   release): time until every camera is held by a surviving worker;
4. **join**: as many new workers start: time until each holds its fair share (at least
   ``floor(cameras / workers)``), and the spread after.

    ./run bench scale [--workers 300] [--cameras 7000] [--processes 3] [--json out.json]

``--own-views`` gives every worker its own watches (as in production; use fewer workers),
``--single`` uses one server; ``GW_SIM_LOG=INFO`` shows the host processes' lease logs.
Results and their reading: docs/scaling.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import multiprocessing as mp
import os
import statistics
import sys
import time
from dataclasses import asdict, fields
from multiprocessing.connection import Connection
from typing import Any

from bench.slice import machine
from gridwatch.leases.assign import spread
from gridwatch.leases.kv import ensure_lease_buckets
from gridwatch.leases.manager import LeaseManager, LeaseStats
from gridwatch.leases.settings import LeaseConfig
from gridwatch.leases.view import ClusterView
from gridwatch_devtools.nats_cluster import NatsCluster
from gridwatch_devtools.nats_server import NatsServer

# -- a host process of simulated workers -------------------------------------------------------


def _host_main(conn: Connection, urls: list[str], spec: dict[str, Any]) -> None:
    """Entry point of a host process (spawned): run its workers until told to stop."""
    import logging

    logging.basicConfig(
        level=os.environ.get("GW_SIM_LOG", "ERROR"), format="%(asctime)s %(name)s %(message)s"
    )
    asyncio.run(_host(conn, urls, spec))


async def _host(conn: Connection, urls: list[str], spec: dict[str, Any]) -> None:
    import nats

    settings = LeaseConfig.model_validate(spec["settings"])
    cameras: list[str] = spec["cameras"]
    replicas: int = spec["replicas"]

    async def quiet(_: Exception) -> None:
        return None

    async def connect(name: str) -> Any:
        return await nats.connect(
            servers=urls, name=name, error_cb=quiet, max_reconnect_attempts=-1, connect_timeout=5
        )

    view_nc = await connect("sim-view")
    js = view_nc.jetstream(timeout=20)
    leases_kv, workers_kv = await ensure_lease_buckets(js, replicas=replicas)
    view = ClusterView(leases_kv, workers_kv, js, ttl_s=settings.ttl_s)
    await view.start()
    view.set_candidates(cameras)

    async def apply(_: list[str]) -> None:
        return None

    managers: dict[str, LeaseManager[str]] = {}
    conns = []
    for wid in spec["workers"] + spec["spares"]:
        nc = await connect(wid)
        conns.append(nc)
        managers[wid] = LeaseManager(
            nc.jetstream(timeout=5),
            settings,
            apply,
            key=str,
            view=None if spec["own_views"] else view,
            worker_id=wid,
            capacity=spec["capacity"],
            measure_cpu=False,
        )
    conn.send(("ready", None))
    while True:
        cmd, arg = await asyncio.to_thread(conn.recv)
        if cmd == "start":
            for wid in arg:
                await managers[wid].start()
                await managers[wid].set_cameras(cameras)
            conn.send(("ok", None))
        elif cmd == "kill":
            for wid in arg:
                await managers[wid].abort()
            conn.send(("ok", None))
        elif cmd == "health":
            dead = []
            for wid, m in managers.items():
                for t in m._tasks:
                    if t.done():
                        exc = None if t.cancelled() else t.exception()
                        dead.append((wid, t.get_name(), repr(exc)))
            conn.send(("health", dead))
        elif cmd == "stats":
            total = LeaseStats()
            for m in managers.values():
                for f in fields(LeaseStats):
                    mine, theirs = getattr(total, f.name), getattr(m.stats, f.name)
                    worst = f.name.startswith("longest")
                    setattr(total, f.name, max(mine, theirs) if worst else mine + theirs)
            conn.send(("stats", asdict(total)))
        elif cmd == "stop":
            for m in managers.values():
                await m.abort()
            await view.close()
            for nc in [*conns, view_nc]:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(nc.close(), 5)
            conn.send(("ok", None))
            return


class Host:
    """The parent's handle on one host process."""

    def __init__(self, urls: list[str], spec: dict[str, Any]) -> None:
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_host_main, args=(child, urls, spec), daemon=True)
        self.proc.start()
        self.workers: list[str] = spec["workers"]
        self.spares: list[str] = spec["spares"]

    async def call(self, cmd: str, arg: Any = None, within: float = 120) -> Any:
        self.conn.send((cmd, arg))
        ok = await asyncio.to_thread(self.conn.poll, within)
        if not ok:
            raise TimeoutError(f"host {self.proc.pid}: no answer to {cmd}")
        _, result = self.conn.recv()
        return result

    async def ready(self, within: float = 120) -> None:
        if not await asyncio.to_thread(self.conn.poll, within):
            raise TimeoutError(f"host {self.proc.pid} did not start")
        self.conn.recv()

    def close(self) -> None:
        if self.proc.is_alive():
            self.proc.terminate()
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)


# -- the observer ------------------------------------------------------------------------------


class Observer:
    """The parent's own view: who holds what, from the KV itself."""

    def __init__(self, view: ClusterView) -> None:
        self.view = view

    def holders(self, dead: set[str]) -> dict[str, int]:
        """Cameras held by live, not-killed workers, per worker (dead workers left out)."""
        counts: dict[str, int] = {}
        v = self.view
        for st in v.leases.values():
            w = v.session_worker.get(st.record.session)
            if w is not None and w not in dead:
                counts[w] = counts.get(w, 0) + 1
        return counts

    def covered(self, dead: set[str]) -> int:
        return sum(self.holders(dead).values())


async def until(pred: Any, within: float, step: float = 0.05) -> float:
    t0 = time.monotonic()
    while not pred():
        if time.monotonic() - t0 > within:
            raise TimeoutError(f"not within {within:g}s")
        await asyncio.sleep(step)
    return time.monotonic() - t0


def balanced(counts: dict[str, int], workers: list[str], target: int) -> bool:
    """Every worker within one camera of the even share: at most ``target``, at least
    ``target - 1`` (the floor) unless the cameras are fewer."""
    held = [counts.get(w, 0) for w in workers]
    return max(held) <= target and min(held) >= target - 1


def varz_totals(nodes: list[Any]) -> dict[str, float]:
    import urllib.request

    total = {"in_msgs": 0.0, "out_msgs": 0.0, "in_bytes": 0.0, "out_bytes": 0.0, "cpu": 0.0}
    for node in nodes:
        if not node.running:
            continue
        with urllib.request.urlopen(f"{node.monitor_url}/varz", timeout=5) as r:
            doc = json.loads(r.read())
        for k in total:
            total[k] += float(doc.get(k, 0))
    return total


# -- the run -----------------------------------------------------------------------------------


async def simulate(args: argparse.Namespace, nodes: list[Any], urls: list[str]) -> dict[str, Any]:
    import nats

    settings = LeaseConfig(enabled=True, capacity=args.capacity)
    cameras = [f"cam-{i:05d}" for i in range(args.cameras)]
    n_kill = max(1, round(args.workers * args.kill_fraction))
    names = [f"sim-{i:03d}" for i in range(args.workers)]
    spares = [f"new-{i:03d}" for i in range(n_kill)]
    hosts = []
    t_spawn = time.monotonic()
    for p in range(args.processes):
        spec = {
            "settings": settings.model_dump(),
            "cameras": cameras,
            "replicas": len(urls),
            "capacity": args.capacity,
            "workers": names[p :: args.processes],
            "spares": spares[p :: args.processes],
            "own_views": args.own_views,
        }
        hosts.append(Host(urls, spec))
    nc = await nats.connect(servers=urls, name="sim-observer")
    try:
        js = nc.jetstream(timeout=20)
        leases_kv, workers_kv = await ensure_lease_buckets(js, replicas=len(urls))
        view = ClusterView(leases_kv, workers_kv, js, ttl_s=settings.ttl_s)
        await view.start()
        view.set_candidates(cameras)
        obs = Observer(view)
        for h in hosts:
            await h.ready()
        spawn_s = time.monotonic() - t_spawn
        print(f"{args.processes} host processes up with {args.workers} workers in {spawn_s:.1f}s")

        # 1. assignment
        t0 = time.monotonic()
        await asyncio.gather(*(h.call("start", h.workers) for h in hosts))
        started_s = time.monotonic() - t0
        full_s = (
            await until(lambda: obs.covered(set()) == len(cameras), args.phase_timeout) + started_s
        )
        counts = obs.holders(set())
        spread_at_full = spread({w: counts.get(w, 0) for w in names})
        target = math.ceil(len(cameras) / args.workers)
        with contextlib.suppress(TimeoutError):
            await until(lambda: balanced(obs.holders(set()), names, target), args.phase_timeout)
        settled_s = time.monotonic() - t0
        counts = obs.holders(set())
        spread_settled = spread({w: counts.get(w, 0) for w in names})
        lo_hi = (min(counts.get(w, 0) for w in names), max(counts.get(w, 0) for w in names))
        print(
            f"assignment: {len(cameras)} cameras held after {full_s:.1f}s (spread "
            f"{spread_at_full:.2f}), balanced after {settled_s:.1f}s (spread {spread_settled:.2f},"
            f" {lo_hi[0]}-{lo_hi[1]} per worker)"
        )

        # 2. steady state traffic
        s0 = await asyncio.gather(*(h.call("stats") for h in hosts))
        v0, tv0 = await asyncio.to_thread(varz_totals, nodes), time.monotonic()
        await asyncio.sleep(args.steady_s)
        v1, tv1 = await asyncio.to_thread(varz_totals, nodes), time.monotonic()
        s1 = await asyncio.gather(*(h.call("stats") for h in hosts))
        dt = tv1 - tv0
        rates = {k: (v1[k] - v0[k]) / dt for k in v0 if k != "cpu"}
        server_cpu = v1["cpu"]  # /varz: each server's recent CPU %, summed over the nodes

        def delta(key: str) -> float:
            return (sum(s[key] for s in s1) - sum(s[key] for s in s0)) / dt

        writes, write_bytes, reads = delta("writes"), delta("write_bytes"), delta("reads")
        steady_counters = {k: round(delta(k), 1) for k in s0[0] if delta(k)}
        print(f"steady counters per second: {steady_counters}")
        watchers = (args.workers if args.own_views else args.processes) + 1
        print(
            f"steady: {writes:.0f} KV writes/s ({write_bytes / 1024:.1f} KiB/s), {reads:.1f} "
            f"reads/s; servers in {rates['in_msgs']:.0f} msg/s {rates['in_bytes'] / 1024:.0f} "
            f"KiB/s, out {rates['out_msgs']:.0f} msg/s {rates['out_bytes'] / 1024:.0f} KiB/s "
            f"({watchers} watchers); servers' CPU {server_cpu:.0f}% of a core in all"
        )

        # 3. failure of a fraction of the workers
        victims = names[:: max(1, args.workers // n_kill)][:n_kill]
        dead = set(victims)
        by_host = [[w for w in h.workers if w in dead] for h in hosts]
        held_by_victims = sum(obs.holders(set()).get(w, 0) for w in victims)
        t_kill = time.monotonic()
        await asyncio.gather(*(h.call("kill", ws) for h, ws in zip(hosts, by_host, strict=True)))
        reassign_s = await until(lambda: obs.covered(dead) == len(cameras), args.phase_timeout)
        reassign_s = time.monotonic() - t_kill
        counts = obs.holders(dead)
        alive = [w for w in names if w not in dead]
        spread_after_kill = spread({w: counts.get(w, 0) for w in alive})
        print(
            f"failure: {len(victims)} workers killed holding {held_by_victims} cameras; all "
            f"re-held after {reassign_s:.1f}s (spread {spread_after_kill:.2f})"
        )

        # 4. new workers join
        t_join = time.monotonic()
        await asyncio.gather(*(h.call("start", h.spares) for h in hosts))
        share = len(cameras) // args.workers
        join_s = await until(
            lambda: min(obs.holders(dead).get(w, 0) for w in spares) >= share,
            args.phase_timeout,
        )
        join_s = time.monotonic() - t_join
        counts = obs.holders(dead)
        members = alive + spares
        spread_after_join = spread({w: counts.get(w, 0) for w in members})
        print(
            f"join: {len(spares)} new workers hold their fair share ({share}+) after "
            f"{join_s:.1f}s (spread {spread_after_join:.2f})"
        )
        health = await asyncio.gather(*(h.call("health") for h in hosts))
        if any(health):
            print(f"dead manager loops: {[d for h in health for d in h][:5]}")
        await view.close()
        final = await asyncio.gather(*(h.call("stats") for h in hosts))
        totals = {
            k: max(s[k] for s in final) if k.startswith("longest") else sum(s[k] for s in final)
            for k in final[0]
        }
        print(
            f"sessions {totals['sessions']}, lapses {totals['lapses']}, lost sessions "
            f"{totals['lost_sessions']}, fences {totals['fences']}, longest gap between "
            f"renewals {totals['longest_renew_gap_s']:.1f}s"
        )
    finally:
        for h in hosts:
            with contextlib.suppress(Exception):
                await h.call("stop", within=30)
            h.close()
        with contextlib.suppress(Exception):
            await nc.close()

    per_worker_fanout = (writes + 0.0) * (args.workers)  # every worker watches both buckets
    return {
        "machine": machine(),
        "nats_nodes": len(urls),
        "workers": args.workers,
        "cameras": args.cameras,
        "processes": args.processes,
        "capacity": args.capacity,
        "settings": {
            "ttl_s": settings.ttl_s,
            "renew_s": settings.renew_s,
            "margin_s": settings.margin_s,
        },
        "full_assignment_s": round(full_s, 2),
        "balanced_s": round(settled_s, 2),
        "spread_at_full": round(spread_at_full, 3),
        "spread_balanced": round(spread_settled, 3),
        "steady_window_s": round(dt, 1),
        "kv_writes_per_s": round(writes, 1),
        "kv_write_bytes_per_s": round(write_bytes),
        "kv_reads_per_s": round(reads, 2),
        "server_in_msgs_per_s": round(rates["in_msgs"]),
        "server_out_msgs_per_s": round(rates["out_msgs"]),
        "server_in_bytes_per_s": round(rates["in_bytes"]),
        "server_out_bytes_per_s": round(rates["out_bytes"]),
        "watchers_in_sim": watchers,
        "server_cpu_percent": round(server_cpu, 1),
        "fanout_msgs_per_s_if_every_worker_watches": round(per_worker_fanout),
        "killed": len(victims),
        "cameras_of_killed": held_by_victims,
        "reassignment_s": round(reassign_s, 2),
        "spread_after_kill": round(spread_after_kill, 3),
        "joined": len(spares),
        "join_fair_share_s": round(join_s, 2),
        "spread_after_join": round(spread_after_join, 3),
        "totals": totals,
        "median_cameras_per_worker": statistics.median(counts.get(w, 0) for w in members),
    }


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="bench scale", description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=300)
    ap.add_argument("--cameras", type=int, default=7000)
    ap.add_argument("--processes", type=int, default=3, help="host processes for the workers")
    ap.add_argument("--capacity", type=int, default=48, help="cameras per worker at most")
    ap.add_argument("--kill-fraction", type=float, default=0.1)
    ap.add_argument("--steady-s", type=float, default=20.0)
    ap.add_argument("--phase-timeout", type=float, default=90.0)
    ap.add_argument("--single", action="store_true", help="one nats-server instead of three")
    ap.add_argument(
        "--own-views",
        action="store_true",
        help="every worker watches the buckets itself, as in production (heavy in Python: "
        "use with fewer workers, to check the computed fan-out)",
    )
    ap.add_argument("--json", help="write the figures to this file")
    args = ap.parse_args(argv)
    t0 = time.monotonic()
    server: NatsServer | NatsCluster = NatsServer() if args.single else NatsCluster(3)
    with server:
        if isinstance(server, NatsCluster):
            nodes, urls = server.nodes, server.urls
        else:
            nodes, urls = [server], [server.url]
        result = asyncio.run(simulate(args, nodes, urls))
    result["wall_s"] = round(time.monotonic() - t0, 1)
    print(json.dumps({k: v for k, v in result.items() if k != "totals"}, indent=2))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
    print(
        f"done in {result['wall_s']:.0f}s (load average {os.getloadavg()[0]:.2f})", file=sys.stderr
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

"""The daily summary's cost: reading and folding one grid's case events from GW_CASES
(:func:`gridwatch.console.summary.load_cases`) and computing the numbers (``summarize``), for a
busy day of ``--cases`` cases of five events each (opened, acknowledged, dispatched, on scene,
resolved), on a local nats-server (file storage).

    .venv/bin/python -m bench.console_summary [--cases 2000] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
import tempfile
import time
import zoneinfo
from pathlib import Path


async def run(n_cases: int, runs: int) -> list[tuple[float, float, int]]:
    import nats

    from gridwatch.auth.subjects import CASES_STREAM, case_subject
    from gridwatch.cases.model import CaseEvent, CaseEventType, Outcome, opened_event
    from gridwatch.cases.store import ensure_case_infra
    from gridwatch.console.summary import load_cases, summarize
    from gridwatch_devtools.nats_server import NatsServer

    tz = zoneinfo.ZoneInfo("Asia/Shanghai")
    steps = [
        (CaseEventType.ACKNOWLEDGED, 60),
        (CaseEventType.DISPATCHED, 90),
        (CaseEventType.ON_SCENE, 600),
        (CaseEventType.RESOLVED, 900),
    ]
    out = []
    with tempfile.TemporaryDirectory() as d:
        async with NatsServer(store_dir=Path(d)) as srv:
            nc = await nats.connect(srv.url)
            js = nc.jetstream()
            await ensure_case_infra(js, retention_days=30)
            end = dt.datetime.now(dt.UTC)
            start = end - dt.timedelta(hours=3)  # the events are stored now: a window before it
            for i in range(n_cases):
                t = start + dt.timedelta(seconds=i * 10_000 / n_cases)
                evs = [
                    opened_event(case_id=f"c{i}", grid_id="g1", at=t, type="crowding",
                                 camera_id="cam", camera_name="校门口", severity="warning")
                ]  # fmt: skip
                for v, (typ, off) in enumerate(steps, start=2):
                    evs.append(
                        CaseEvent(
                            case_id=f"c{i}",
                            grid_id="g1",
                            version=v,
                            type=typ,
                            at=t + dt.timedelta(seconds=off),
                            actor="op",
                            responder="aux" if typ is CaseEventType.DISPATCHED else None,
                            outcome=Outcome.HANDLED if typ is CaseEventType.RESOLVED else None,
                        )
                    )
                for ev in evs:
                    subject = case_subject("g1", ev.case_id)
                    await js.publish(subject, ev.model_dump_json().encode(), stream=CASES_STREAM)
            for _ in range(runs):
                t0 = time.perf_counter()
                cases, _ = await load_cases(js, "g1", start, end)
                t1 = time.perf_counter()
                summarize(cases, grid_id="g1", grid_name="g1", day=end.astimezone(tz).date(),
                          tz=tz)  # fmt: skip
                out.append((t1 - t0, time.perf_counter() - t1, len(cases)))
            await nc.close()
    return out


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="bench.console_summary", description=__doc__)
    p.add_argument("--cases", type=int, default=2000)
    p.add_argument("--runs", type=int, default=3)
    a = p.parse_args(argv)
    rows = asyncio.run(run(a.cases, a.runs))
    print("| events | cases folded | read + fold (s) | summarize (s) |\n|---|---|---|---|")
    for load_s, sum_s, n in rows:
        print(f"| {a.cases * 5} | {n} | {load_s:.2f} | {sum_s:.3f} |")
    return 0 if all(n == a.cases for *_, n in rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

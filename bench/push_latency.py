"""Push latency: from an alert raised to the push received and decrypted, on loopback.

The whole production path: AlertPublisher → JetStream (GW_ALERTS, file storage) → notifier
(durable pull consumer, idempotency check and record in KV) → Web Push (aes128gcm encryption,
VAPID signature) → a local push service that verifies the VAPID JWT and decrypts like a
browser. The case service runs beside it, opening a case per alert, as in a deployment.
Clock: one process, ``time.time()`` at ``publish()`` and at receipt.

    ./run bench push [--alerts 200] [--interval-ms 20] [--subscriptions 2]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))]


async def run(n_alerts: int, interval_s: float, n_subs: int) -> dict[str, list[float]]:
    import nats

    from gridwatch.alerts.publisher import AlertPublisher
    from gridwatch.alerts.streams import ensure_alert_infra
    from gridwatch.auth.passwords import hash_password
    from gridwatch.cases.service import CaseService
    from gridwatch.config import parse_config
    from gridwatch.model import Alert, IncidentEvent, IncidentState
    from gridwatch.notify.local_endpoint import LocalPushService
    from gridwatch.notify.notifier import Notifier
    from gridwatch.notify.subscriptions import ensure_push_bucket, register_subscription
    from gridwatch.notify.webpush import VapidKey
    from gridwatch_devtools.nats_server import NatsServer

    h = hash_password("x", rounds=4)
    cfg = parse_config(
        f"""
grids: [{{id: g1}}]
users:
  - {{name: aux-li, role: responder, grid: g1, password_hash: "{h}"}}
"""
    )
    vapid = VapidKey.generate()
    with tempfile.TemporaryDirectory() as tmp:
        async with NatsServer(store_dir=Path(tmp) / "js") as server, LocalPushService() as push:
            nc = await nats.connect(server.url)
            js = nc.jetstream()
            await ensure_alert_infra(js)
            await ensure_push_bucket(js)
            for _ in range(n_subs):
                await register_subscription(
                    js, "aux-li", push.subscribe(vapid.application_server_key)
                )
            nc_cases, nc_notify = await nats.connect(server.url), await nats.connect(server.url)
            cases = CaseService(nc_cases, cfg)
            await cases.start()
            notifier = Notifier(nc_notify, cfg, vapid=vapid)
            await notifier.start()
            pub = AlertPublisher(nc)
            sent: dict[str, float] = {}
            ack_ms: list[float] = []
            t_base = time.time()
            for i in range(n_alerts + 5):
                ev = IncidentEvent(
                    f"crowding/z{i}",
                    "crowding",
                    IncidentState.RAISED,
                    f"z{i}",
                    t_base + i,
                    t_base + i,
                    8,
                    8,
                    ((0.1, 0.2, 0.3, 0.9),),
                    0,
                )
                alert = Alert.from_event(
                    ev, camera_id="cam-1", camera_name="Gate", grid_id="g1", snapshot=None
                )
                t0 = time.time()
                await pub.publish(alert)
                ack_ms.append((time.time() - t0) * 1000)
                if i >= 5:  # the first few warm connections and caches up
                    sent[alert.id] = t0
                await asyncio.sleep(interval_s)
            want = (n_alerts + 5) * n_subs
            for _ in range(600):  # at most 30 s
                if len(push.received) >= want:
                    break
                await asyncio.sleep(0.05)
            e2e = [
                (r.received_at - sent[r.payload["alert_id"]]) * 1000
                for r in push.received
                if r.payload["alert_id"] in sent
            ]
            await notifier.stop()
            await cases.stop()
            for c in (nc, nc_cases, nc_notify):
                await c.drain()
            lost = n_alerts * n_subs - len(e2e)
            return {
                "e2e": e2e,
                "ack": ack_ms[5:],
                "lost": [float(lost)],
                "rejected": [float(len(push.rejected))],
            }


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="bench push", description=__doc__.split("\n\n")[0])
    p.add_argument("--alerts", type=int, default=200)
    p.add_argument("--interval-ms", type=float, default=20.0)
    p.add_argument("--subscriptions", type=int, default=2, help="phones of the responder")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    r = asyncio.run(run(args.alerts, args.interval_ms / 1000, args.subscriptions))
    print(
        f"push latency on loopback ({platform.processor() or platform.machine()}, "
        f"{args.alerts} alerts every {args.interval_ms:g} ms, {args.subscriptions} "
        f"subscription(s))"
    )
    print(f"{'measure':<44} {'n':>5} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for name, key in (
        ("alert published → JetStream ack", "ack"),
        ("alert published → push received, decrypted", "e2e"),
    ):
        v = r[key]
        if not v:
            print(f"{name:<44} {0:>5}")
            continue
        print(
            f"{name:<44} {len(v):>5} {statistics.median(v):>8.2f} {_pct(v, 90):>8.2f} "
            f"{_pct(v, 99):>8.2f} {max(v):>8.2f}"
        )
    print(
        f"pushes missing: {int(r['lost'][0])}, rejected by the push service: "
        f"{int(r['rejected'][0])}"
    )
    return 0 if r["lost"][0] == 0 and r["rejected"][0] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

"""``./run bench [NAME] [ARGS]``: run one benchmark (default ``multicam``).

Benchmarks:
  multicam  many cameras on this CPU: our worker (motion gate, regions, batching, OpenVINO)
          against the naive ultralytics and OpenCV loops on the same RTSP streams; capacity,
          frame age, region recall/CPU, decode CPU, with the default model and (where the shared
          COCO YOLOv8n INT8 is) with it (``--quick --json FILE``: ~8 minutes).
  counting  what counting over tracks (CrowdCounter + crowding rule) costs per analysed frame,
          on real detections (TownCentre, vtest), next to the detector's ms per frame.
  slice   the vertical slice: real RTSP camera → worker → JetStream; time to first alert,
          detector ms per frame, worker CPU, frame age.
  push    alert raised → Web Push received and decrypted on loopback (p50, p99).
  camera-add  `gridwatch camera add` → first analysed frame on a running worker, by stage.
  multiproc  cameras per machine with several `gridwatch worker` processes sharing them by
          leases (INT8, idle keyframes; figures from the workers' /metrics).
  shapes  OpenVINO CPU per image on the worker's recorded mix of input shapes: batches of any
          size 1-8 (before), of 1, 2, 4, 8 (now), one image a call.
  clips   evidence clips: decoder-thread CPU per camera with the packet ring off and on, the
          ring's memory per camera (640×360 and 1920×1080), remux + object-store put of a clip.
  stats   people-flow statistics: the minute accumulator's CPU per analysed frame, next to
          the camera's rules, on real people positions (ground truth of PETS09, TownCentre).
  scale   city scale, control plane only: 7,000 cameras, 300 workers, leases on a 3-node NATS
          cluster; assignment time, lease traffic, failover after 10% die, load spread.
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    name = argv[0] if argv and not argv[0].startswith("-") else "multicam"
    rest = argv[1:] if argv and not argv[0].startswith("-") else argv
    if name in ("-h", "--help", "help"):
        print(__doc__)
        return 0
    if name == "multicam":
        from bench.multicam import main as run_multicam

        return run_multicam(rest)
    if name == "counting":
        from bench.counting import main as run_counting

        return run_counting(rest)
    if name == "push":
        from bench.push_latency import main as run_push

        return run_push(rest)
    if name == "camera-add":
        from bench.camera_add_latency import main as run_camera_add

        return run_camera_add(rest)
    if name == "scale":
        from bench.scale_sim import main as run_scale

        return run_scale(rest)
    if name == "multiproc":
        from bench.multiproc import main as run_multiproc

        return run_multiproc(rest)
    if name == "shapes":
        from bench.batch_shapes import main as run_shapes

        return run_shapes(rest)
    if name == "clips":
        from bench.clips import main as run_clips

        return run_clips(rest)
    if name == "stats":
        from bench.stats import main as run_stats

        return run_stats(rest)
    if name == "slice":
        from bench.slice import main as run

        return run(rest)
    print(f"unknown benchmark {name!r}\n{__doc__}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

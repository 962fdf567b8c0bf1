"""An append-only record of which cameras a worker ran, and when (``leases.journal``).

One JSON line per event, flushed at once: ``{"worker", "camera", "event": "start"|"stop",
"mono", "wall"}``. ``start`` is written *before* the camera starts and ``stop`` *after* it has
stopped, so the intervals a journal describes always contain the real ones. ``mono`` is
CLOCK_MONOTONIC, comparable between processes of one host: the cluster tests merge the journals
of three worker processes and check that no camera's intervals overlap across workers.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import IO


class OwnershipJournal:
    """Thread-safe appender; one file may be shared by several workers."""

    def __init__(self, path: str | Path, worker: str) -> None:
        self.path = Path(path)
        self.worker = worker
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] | None = self.path.open("a", encoding="utf-8")
        self._lock = threading.Lock()

    def record(self, event: str, cameras: Iterable[str]) -> None:
        mono, wall = time.monotonic(), time.time()
        lines = [
            json.dumps(
                {"worker": self.worker, "camera": c, "event": event, "mono": mono, "wall": wall},
                separators=(",", ":"),
            )
            for c in sorted(cameras)
        ]
        if not lines:
            return
        with self._lock:
            if self._file is None:
                return
            self._file.write("\n".join(lines) + "\n")
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def read_intervals(
    paths: Iterable[str | Path], *, open_until: dict[str, float] | None = None
) -> dict[str, list[tuple[str, float, float]]]:
    """Camera -> ``(worker, start, stop)`` intervals from journal files (monotonic seconds).

    A camera still running at the end of a journal runs until ``open_until[worker]`` (the time
    the worker was seen dead or stopped), else until infinity.
    """
    open_until = open_until or {}
    started: dict[tuple[str, str], float] = {}
    out: dict[str, list[tuple[str, float, float]]] = {}
    for path in paths:
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            doc = json.loads(line)
            key = (str(doc["worker"]), str(doc["camera"]))
            if doc["event"] == "start":
                started[key] = float(doc["mono"])
            elif key in started:
                out.setdefault(key[1], []).append((key[0], started.pop(key), float(doc["mono"])))
    for (worker, camera), t0 in started.items():
        out.setdefault(camera, []).append((worker, t0, open_until.get(worker, float("inf"))))
    return out


def overlaps(
    intervals: dict[str, list[tuple[str, float, float]]],
) -> list[tuple[str, tuple[str, float, float], tuple[str, float, float]]]:
    """Pairs of intervals of one camera on two different workers that share an instant."""
    found = []
    for camera, items in intervals.items():
        items = sorted(items, key=lambda i: i[1])
        for i, a in enumerate(items):
            for b in items[i + 1 :]:
                if b[1] >= a[2]:
                    break
                if a[0] != b[0]:
                    found.append((camera, a, b))
    return found

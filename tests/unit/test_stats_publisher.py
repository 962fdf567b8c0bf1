"""The publisher's pure decisions: what it queues, fences and drops, which cameras get an
accumulator (NATS itself: tests/integration/test_stats_rollups.py)."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from typing import Any

from gridwatch.config import parse_config
from gridwatch.rules.engine import CameraRules
from gridwatch.stats.aggregate import CameraStats
from gridwatch.stats.model import StatsRecord
from gridwatch.stats.publisher import StatsPublisher
from gridwatch.stats.settings import StatsConfig

T = dt.datetime(2026, 12, 5, 8, tzinfo=dt.UTC)


def _record(camera: str) -> StatsRecord:
    return StatsRecord(
        camera=camera, grid="g", period="minute", start=T, end=T + dt.timedelta(minutes=1),
        samples=1,
    )  # fmt: skip


class _Leases:
    def __init__(self, mine: set[str]) -> None:
        self.mine = mine

    def may_publish(self, camera_id: str) -> bool:
        return camera_id in self.mine


def _publisher(owner: Any = None, queue_size: int = 4) -> StatsPublisher:
    return StatsPublisher(None, StatsConfig(queue_size=queue_size), owner=owner)  # type: ignore[arg-type]


def test_minutes_of_a_camera_whose_lease_was_lost_are_not_queued() -> None:
    pub = _publisher(SimpleNamespace(cameras={}, leases=_Leases({"a"})))
    pub.submit(_record("a"))
    pub.submit(_record("b"))
    assert pub.queue.qsize() == 1
    assert pub.queue.get_nowait().camera == "a"
    assert pub.stats.fenced == 1


def test_a_full_queue_drops_and_counts() -> None:
    pub = _publisher(queue_size=2)
    for _ in range(5):
        pub.submit(_record("a"))
    assert pub.queue.qsize() == 2
    assert pub.stats.dropped == 3


def test_only_cameras_that_see_people_get_an_accumulator() -> None:
    cfg = parse_config(
        """
grids: [{id: g}]
cameras:
  - {id: seen, grid: g, url: rtsp://h/x, zones: [{id: z, polygon: [[0, 0], [1, 0], [1, 1]]}],
     rules: [{type: crowding, zone: z, min_count: 3}]}
  - {id: tamper-only, grid: g, url: rtsp://h/y, rules: [{type: tamper}]}
"""
    )
    pub = _publisher()
    pipes = []
    for cam in cfg.cameras:
        rules = CameraRules(cam, cfg, person_classes={0})
        pipe = SimpleNamespace(camera=cam, rules=rules, people_stats=None)
        pub.attach(pipe, {0})  # type: ignore[arg-type]
        pipes.append(pipe)
    assert isinstance(pipes[0].people_stats, CameraStats)
    assert pipes[0].people_stats.acc.minute_s == 60
    assert pipes[1].people_stats is None

"""Publishing people-flow statistics: each closed minute, and the quarter, hour and day
rollups, to ``GW_STATS``.

The worker builds one :class:`StatsPublisher` (:func:`start_stats`) and attaches a
:class:`~gridwatch.stats.aggregate.CameraStats` to each camera's pipeline. Closed minutes go
through a bounded queue (a full queue drops the newest record and counts it: statistics never
hold up a camera) to one publishing task.

Rollups are idempotent. A period is rolled up ``rollup_delay_s`` after it ended (each coarser
level waits that much longer again, so its finer records are in): the worker that runs the
camera now reads the period's finer records back from the stream, merges them
(:func:`~gridwatch.stats.query.merge`) and publishes the result with ``Nats-Msg-Id``
``<camera>.<period>.<start>``. Before that it looks at the last record on the rollup's subject:
if the period is there already (made by this worker earlier, or by the camera's previous owner)
nothing is done. Whichever worker owns the camera and however often this runs, a period has one
record: the check covers any time, the message id covers two workers racing within the
stream's duplicate window.

Minute records carry a ``Nats-TTL`` of ``minute_retention_days``; the rollups live as long as
the stream keeps anything (``retention_days``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from gridwatch.bus.infra import ensure_stats_stream
from gridwatch.bus.names import STATS_STREAM, stats_subject
from gridwatch.stats.aggregate import CameraStats
from gridwatch.stats.model import (
    PERIOD_MINUTES,
    ROLLUP_SOURCE,
    Period,
    StatsRecord,
    period_bounds,
    period_seconds,
)
from gridwatch.stats.query import merge, read_stats
from gridwatch.stats.settings import StatsConfig
from gridwatch.tracking.counting import CountSettings

if TYPE_CHECKING:
    from gridwatch.config import CameraConfig, GridwatchConfig
    from gridwatch.leases.manager import LeaseManager
    from gridwatch.worker.pipeline import CameraPipeline

log = logging.getLogger(__name__)

ROLLUPS: tuple[Period, ...] = ("quarter", "hour", "day")
LOOKBACK = 2
"""Closed periods per level checked each round (the last one, and the one before it for a
worker that was not running when it closed)."""


class CameraOwner(Protocol):
    """What the publisher needs of the worker: the cameras it runs, and whether it may still
    publish for one (a camera whose lease lapsed may run elsewhere by now)."""

    cameras: dict[str, CameraConfig]
    leases: LeaseManager[CameraConfig] | None


@dataclass
class PublisherStats:
    published: int = 0
    duplicates: int = 0
    dropped: int = 0
    """Closed minutes not published: the queue was full, or NATS refused them repeatedly."""
    fenced: int = 0
    """Closed minutes of a camera whose lease this worker lost (its new owner publishes)."""
    rollups: int = 0


class StatsPublisher:
    """Publishes closed minutes and makes the rollups (see the module docstring)."""

    def __init__(
        self,
        js: JetStreamContext,
        settings: StatsConfig,
        *,
        counting: CountSettings | None = None,
        owner: CameraOwner | None = None,
    ) -> None:
        self.js = js
        self.settings = settings
        self.counting = counting
        self.owner = owner
        self.queue: asyncio.Queue[StatsRecord] = asyncio.Queue(maxsize=settings.queue_size)
        self.stats = PublisherStats()
        self.tasks: list[asyncio.Task[None]] = []
        self._rolled: dict[tuple[str, str], float] = {}
        """(camera, period) -> start of the last period known rolled up."""

    # -- minutes ------------------------------------------------------------------------------

    def attach(self, pipeline: CameraPipeline, person_classes: Collection[int] | None) -> None:
        """Give ``pipeline`` its accumulator (not for a camera whose rules need no detector:
        it sees no people, and zeros would claim it did)."""
        if not pipeline.rules.needs_detections:
            return
        s = self.settings
        pipeline.people_stats = CameraStats(
            pipeline.camera,
            pipeline.rules,
            self.submit,
            person_classes=person_classes,
            counting=self.counting,
            minute_s=s.period_s,
            heat_cols=s.heat_cols,
            heat_rows=s.heat_rows,
        )

    def submit(self, record: StatsRecord) -> None:
        """Queue a closed minute (never blocks; a full queue drops it, counted)."""
        leases = self.owner.leases if self.owner is not None else None
        if leases is not None and not leases.may_publish(record.camera):
            self.stats.fenced += 1
            return
        try:
            self.queue.put_nowait(record)
        except asyncio.QueueFull:
            self.stats.dropped += 1
            log.warning("stats queue full: minute %s of %s dropped", record.start, record.camera)

    async def publish(self, record: StatsRecord, *, attempts: int = 3) -> bool:
        """Store ``record`` (True), or find it stored already (False: a duplicate)."""
        headers = {"Nats-Msg-Id": record.msg_id()}
        if record.period == "minute":
            headers["Nats-TTL"] = str(self.settings.minute_ttl_s)
        for attempt in range(attempts):
            try:
                ack = await self.js.publish(record.subject(), record.to_json(), headers=headers)
                break
            except Exception as e:
                if attempt == attempts - 1:
                    raise
                log.info("stats publish of %s failed (%s); retrying", record.msg_id(), e)
                await asyncio.sleep(0.5 * (attempt + 1))
        if ack.duplicate:
            self.stats.duplicates += 1
            return False
        self.stats.published += 1
        return True

    async def run(self) -> None:
        """Publish queued minutes, one at a time, until cancelled."""
        while True:
            record = await self.queue.get()
            try:
                await self.publish(record)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                self.stats.dropped += 1
                log.error("stats minute %s not published: %s", record.msg_id(), e)

    # -- rollups ------------------------------------------------------------------------------

    async def rollup(
        self, grid: str, camera: str, period: Period, start: dt.datetime
    ) -> StatsRecord | None:
        """Make the ``period`` record of ``camera`` that starts at ``start`` from its finer
        records, unless the stream has it already. Returns what was published (None: it
        existed, or there was nothing to merge)."""
        subject = stats_subject(grid, camera, period)
        try:
            last = await self.js.get_last_msg(STATS_STREAM, subject)
            if last.data and StatsRecord.from_json(last.data).start >= start:
                return None
        except NotFoundError:
            pass
        m = self.settings.period_s
        source = ROLLUP_SOURCE[period]
        _, end = period_bounds(start.timestamp(), period, m)
        parts = await read_stats(
            self.js, period=source, since=start, until=end, grid=grid, camera=camera
        )
        if not parts:
            return None
        record = merge(parts, period=period, minute_s=m)
        if await self.publish(record):
            self.stats.rollups += 1
            log.info("stats %s of %s from %s: %d %s records", period, camera, start, len(parts),
                     source)  # fmt: skip
            return record
        return None

    async def rollup_due(self, cameras: Iterable[tuple[str, str]], now: float) -> int:
        """Roll up every period of ``cameras`` ((grid, camera) pairs) that is due at ``now``
        and not known done; the number of records published."""
        made = 0
        m = self.settings.period_s
        for grid, camera in cameras:
            for level, period in enumerate(ROLLUPS, start=1):
                length = period_seconds(period, m)
                wait = self.settings.rollup_delay_s * level
                latest, _ = period_bounds(now - wait - length, period, m)
                for back in range(LOOKBACK - 1, -1, -1):
                    start = latest - dt.timedelta(seconds=back * length)
                    key = (camera, period)
                    if self._rolled.get(key, -1.0) >= start.timestamp():
                        continue
                    if await self.rollup(grid, camera, period, start) is not None:
                        made += 1
                    self._rolled[key] = start.timestamp()
        return made

    async def run_rollups(self, interval_s: float | None = None) -> None:
        """Every ``interval_s`` (default: a quarter of a minute, at most 15 s), the rollups
        of the cameras this worker runs, until cancelled."""
        wait = interval_s or min(15.0, max(0.5, self.settings.period_s / 4))
        while True:
            await asyncio.sleep(wait)
            owner = self.owner
            if owner is None:
                continue
            cams = [(c.grid, c.id) for c in list(owner.cameras.values())]
            leases = owner.leases
            cams = [(g, c) for g, c in cams if leases is None or leases.may_publish(c)]
            try:
                await self.rollup_due(cams, time.time())
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("stats rollups failed this round: %s", e)

    def start(self) -> StatsPublisher:
        self.tasks = [
            asyncio.create_task(self.run(), name="stats-publish"),
            asyncio.create_task(self.run_rollups(), name="stats-rollups"),
        ]
        return self

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def start_stats(
    nc: NatsClient, config: GridwatchConfig, owner: CameraOwner
) -> StatsPublisher | None:
    """The worker's statistics: ``GW_STATS`` ensured and a started publisher (its tasks in
    ``.tasks``); None when ``stats.enabled`` is off or the stream cannot be made (logged:
    statistics are never a reason for cameras not to run)."""
    s = config.stats
    if not s.enabled:
        return None
    js = nc.jetstream(timeout=30.0)
    try:
        await ensure_stats_stream(
            js, max_age_s=s.retention_days * 86400, replicas=config.nats.replicas
        )
    except Exception as e:
        log.error("people-flow statistics are off: stream %s unavailable (%s)", STATS_STREAM, e)
        return None
    c = config.analysis.counting
    counting = (
        CountSettings(hold_s=c.hold_s, static_after_s=c.static_after_s, forget_s=c.forget_s)
        if c.enabled
        else None
    )
    return StatsPublisher(nc.jetstream(), s, counting=counting, owner=owner).start()


__all__ = ["PERIOD_MINUTES", "CameraOwner", "StatsPublisher", "start_stats"]

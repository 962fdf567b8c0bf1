"""A bounded local spool for alerts (and their snapshots) while NATS is unreachable.

"Nothing lost": a worker keeps raising alerts when the broker is down or being restarted. The
alert path is therefore: if the spool is empty and NATS is connected, publish directly (a few
attempts); otherwise, or when that fails, append the alert and its JPEG to the spool on disk.
A replay task publishes the spool's head, in order, whenever NATS is connected, and removes
an entry only once JetStream has acknowledged it. New alerts go behind spooled ones, so alerts
reach the stream in the order they were raised.

"Nothing doubled": an entry may be published twice (its first ack was lost, or the worker died
between the ack and the removal); each alert's ``Nats-Msg-Id`` makes JetStream store it once,
as long as the replay happens within the stream's duplicate window (``alerts.
duplicate_window_s``). An entry older than the window is still replayed, with a warning.

Layout: ``<seq>.jpg`` (optional) then ``<seq>.json`` written atomically (temporary file, fsync,
rename): a ``.json`` file is a complete entry; a ``.jpg`` without one is debris from a crash and
removed at start. The directory is locked (``flock``) so two workers cannot share it. Bounds:
``max_items`` entries and ``max_bytes`` on disk; when an entry would not fit, its snapshot is
dropped first (an alert without a picture beats no alert), then the alert itself, each with an
ERROR log line saying so. And ``max_age_s`` (``alerts.spool.max_age_s``, a week by default):
an entry spooled longer ago is dropped when the replay reaches it, not published (a week-old
alert dispatches nobody, and its snapshot shows people), with one ERROR line counting what
was dropped; ``stats.expired`` counts them too.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from nats.aio.client import Client as NATS

from gridwatch.alerts.publisher import AlertPublisher, PublishError, PublishResult
from gridwatch.alerts.snapshots import SnapshotStore
from gridwatch.model import Alert

log = logging.getLogger(__name__)


def default_spool_dir() -> Path:
    base = os.environ.get("GRIDWATCH_CACHE")
    return (Path(base) if base else Path.home() / ".cache" / "gridwatch") / "spool"


@dataclass(frozen=True, slots=True)
class SpoolEntry:
    seq: int
    alert: Alert
    jpeg: bytes | None
    spooled_at: float
    size: int


@dataclass(slots=True)
class SpoolStats:
    spooled: int = 0
    replayed: int = 0
    dropped_alerts: int = 0
    dropped_snapshots: int = 0
    expired: int = 0
    high_water: int = 0
    last_full_log: float = field(default=0.0)


class SpoolFullError(RuntimeError):
    """The spool is at ``max_items`` or ``max_bytes``: the alert was not kept."""


class AlertSpool:
    """The on-disk FIFO (see the module docstring). Methods are blocking: call them in a thread
    from async code (they write and fsync files)."""

    def __init__(
        self,
        directory: str | os.PathLike[str] | None,
        *,
        max_items: int = 10000,
        max_bytes: int = 512 * 1024 * 1024,
        max_age_s: float | None = 7 * 86400.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.dir = Path(directory) if directory is not None else default_spool_dir() / "worker"
        self.max_items = max_items
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self.clock = clock
        self.stats = SpoolStats()
        self._lock_file: IO[bytes] | None = None
        try:
            self._lock(self.dir)
        except RuntimeError:
            if directory is not None:
                raise
            # the default directory is taken by another worker on this host (or a parallel
            # test run): use a private one rather than refuse to start
            self.dir = Path(tempfile.mkdtemp(prefix="worker-", dir=self.dir.parent))
            log.warning("default spool in use by another process; spooling to %s", self.dir)
            self._lock(self.dir)
        self._sizes: dict[int, int] = {}
        for tmp in self.dir.glob("*.tmp"):
            tmp.unlink(missing_ok=True)
        for p in self.dir.glob("*.json"):
            with contextlib.suppress(ValueError):
                seq = int(p.stem)
                jpg = p.with_suffix(".jpg")
                self._sizes[seq] = p.stat().st_size + (jpg.stat().st_size if jpg.exists() else 0)
        for jpg in self.dir.glob("*.jpg"):
            with contextlib.suppress(ValueError):
                if int(jpg.stem) not in self._sizes:
                    jpg.unlink(missing_ok=True)  # crash between the picture and its entry
        self._next = max(self._sizes, default=0) + 1
        if self._sizes:
            log.warning("spool %s holds %d alerts from before: replaying them", self.dir, len(self))

    def _lock(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        lock_file = (directory / ".lock").open("ab")
        try:
            fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            lock_file.close()
            raise RuntimeError(f"spool {directory} is in use by another process") from e
        self._lock_file = lock_file

    def close(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def __len__(self) -> int:
        return len(self._sizes)

    @property
    def size_bytes(self) -> int:
        return sum(self._sizes.values())

    def _write(self, path: Path, data: bytes) -> None:
        tmp = path.with_name(path.name + ".tmp")
        with tmp.open("wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)

    def append(self, alert: Alert, jpeg: bytes | None) -> None:
        """Keep ``alert`` (and ``jpeg``) for replay; raises :class:`SpoolFullError` if full."""
        meta = json.dumps({"alert": alert.model_dump(mode="json"), "spooled_at": self.clock()})
        meta_b = meta.encode()
        if len(self) >= self.max_items:
            self._full(alert, f"{len(self)} alerts (max_items)")
        used = self.size_bytes
        if jpeg is not None and used + len(meta_b) + len(jpeg) > self.max_bytes:
            self.stats.dropped_snapshots += 1
            log.error(
                "alert spool %s full (%d bytes): keeping alert %s WITHOUT its snapshot",
                self.dir,
                used,
                alert.message_id,
            )
            jpeg = None
        if used + len(meta_b) > self.max_bytes:
            self._full(alert, f"{used} bytes (max_bytes)")
        seq = self._next
        self._next += 1
        if jpeg is not None:
            self._write(self.dir / f"{seq:012d}.jpg", jpeg)
        self._write(self.dir / f"{seq:012d}.json", meta_b)
        self._sizes[seq] = len(meta_b) + (len(jpeg) if jpeg is not None else 0)
        self.stats.spooled += 1
        self.stats.high_water = max(self.stats.high_water, len(self))

    def _full(self, alert: Alert, why: str) -> None:
        self.stats.dropped_alerts += 1
        log.error(
            "ALERT LOST: spool %s is full (%s); alert %s (%s, grid %s) dropped. "
            "NATS has been unreachable too long or the spool is too small.",
            self.dir,
            why,
            alert.message_id,
            alert.type,
            alert.grid_id,
        )
        raise SpoolFullError(why)

    def peek(self) -> SpoolEntry | None:
        """The oldest entry, or None when empty. Entries older than ``max_age_s`` on the way
        are removed (see the module docstring)."""
        expired: list[tuple[str, float]] = []
        try:
            return self._peek(expired)
        finally:
            if expired:
                self.stats.expired += len(expired)
                oldest = min(at for _, at in expired)
                log.error(
                    "ALERTS EXPIRED: dropped %d spooled alert(s) older than %.0fs from spool %s "
                    "instead of replaying them (oldest spooled %.0fs ago; %d expired in all): %s",
                    len(expired),
                    self.max_age_s or 0.0,
                    self.dir,
                    self.clock() - oldest,
                    self.stats.expired,
                    ", ".join(m for m, _ in expired[:5]) + (" ..." if len(expired) > 5 else ""),
                )

    def _peek(self, expired: list[tuple[str, float]]) -> SpoolEntry | None:
        while self._sizes:
            seq = min(self._sizes)
            path = self.dir / f"{seq:012d}.json"
            try:
                meta = json.loads(path.read_bytes())
                alert = Alert.model_validate(meta["alert"])
            except (OSError, ValueError, KeyError) as e:
                log.error("spool entry %s is unreadable (%s): moving it aside", path, e)
                with contextlib.suppress(OSError):
                    path.rename(path.with_suffix(".bad"))
                self._sizes.pop(seq, None)
                continue
            spooled_at = float(meta.get("spooled_at", 0.0))
            if self.max_age_s is not None and self.clock() - spooled_at > self.max_age_s:
                expired.append((alert.message_id, spooled_at))
                self.remove(SpoolEntry(seq, alert, None, spooled_at, self._sizes[seq]))
                continue
            jpg = path.with_suffix(".jpg")
            jpeg = jpg.read_bytes() if jpg.exists() else None
            return SpoolEntry(seq, alert, jpeg, spooled_at, self._sizes[seq])
        return None

    def remove(self, entry: SpoolEntry) -> None:
        (self.dir / f"{entry.seq:012d}.json").unlink(missing_ok=True)
        (self.dir / f"{entry.seq:012d}.jpg").unlink(missing_ok=True)
        self._sizes.pop(entry.seq, None)


StoredCallback = Callable[[Alert, PublishResult], None]


class SpoolingPublisher:
    """The worker's alert output: :class:`AlertPublisher` with the spool behind it.

    :meth:`publish` and :meth:`publish_with_snapshot` return the JetStream result, or None when
    the alert was spooled (``on_stored`` is called for it once the replay has stored it; for a
    direct publish the caller has the result). Run :meth:`run_replay` as a task.
    """

    def __init__(
        self,
        nc: NATS,
        spool: AlertSpool,
        *,
        snapshots: SnapshotStore | None = None,
        direct_attempts: int = 3,
        ack_timeout: float = 2.0,
        direct_timeout_s: float = 10.0,
        duplicate_window_s: float = 120.0,
        on_stored: StoredCallback | None = None,
    ) -> None:
        self.nc = nc
        self.spool = spool
        self.duplicate_window_s = duplicate_window_s
        self.direct_timeout_s = direct_timeout_s
        self.on_stored = on_stored
        self.direct = AlertPublisher(
            nc,
            snapshots=snapshots,
            max_attempts=direct_attempts,
            ack_timeout=ack_timeout,
            backoff_max=0.5,
        )
        self.replayer = AlertPublisher(
            nc, snapshots=snapshots, max_attempts=2, ack_timeout=ack_timeout, backoff_max=0.5
        )
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self.direct_published = 0

    async def publish(self, alert: Alert) -> PublishResult | None:
        return await self._deliver(alert, None)

    async def publish_with_snapshot(self, alert: Alert, jpeg: bytes) -> PublishResult | None:
        return await self._deliver(alert, jpeg)

    async def _deliver(self, alert: Alert, jpeg: bytes | None) -> PublishResult | None:
        async with self._lock:  # one at a time: the order alerts were raised in is kept
            if len(self.spool) == 0 and self.nc.is_connected:
                try:
                    result = await self._direct(alert, jpeg)
                    self.direct_published += 1
                    return result
                except PublishError as e:
                    log.warning("alert %s goes to the spool: %s", alert.message_id, e)
            try:
                await asyncio.to_thread(self.spool.append, alert, jpeg)
            except SpoolFullError:
                return None
            if len(self.spool) == 1 or len(self.spool) % 100 == 0:
                log.warning(
                    "NATS unreachable: %d alert(s) spooled in %s", len(self.spool), self.spool.dir
                )
            self._wake.set()
            return None

    async def _direct(self, alert: Alert, jpeg: bytes | None) -> PublishResult:
        """Publish now, but give up (PublishError) as soon as the connection drops or
        ``direct_timeout_s`` passes: a snapshot put can otherwise wait for acks a long time
        while the alerts behind it could already be safe in the spool. An abandoned attempt
        that was stored after all is dropped as a duplicate when the spool replays it."""
        task = asyncio.ensure_future(
            self.direct.publish(alert)
            if jpeg is None
            else self.direct.publish_with_snapshot(alert, jpeg)
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.direct_timeout_s
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=0.05)
                if done:
                    return task.result()
                if not self.nc.is_connected or loop.time() > deadline:
                    why = "connection lost" if not self.nc.is_connected else "timed out"
                    raise PublishError(f"alert {alert.message_id}: {why}", attempts=1)
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task

    async def run_replay(self, poll_s: float = 0.5) -> None:
        """Publish spooled alerts, oldest first, whenever NATS is connected. Runs until
        cancelled."""
        failures = 0
        while True:
            if len(self.spool) == 0 or not self.nc.is_connected:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), poll_s)
                continue
            entry = await asyncio.to_thread(self.spool.peek)
            if entry is None:
                continue
            age = self.spool.clock() - entry.spooled_at
            try:
                if entry.jpeg is None:
                    result = await self.replayer.publish(entry.alert)
                else:
                    result = await self.replayer.publish_with_snapshot(entry.alert, entry.jpeg)
            except PublishError as e:
                failures += 1
                delay = min(5.0, 0.2 * 2 ** min(failures, 5))
                log.info(
                    "spool replay of %s failed (%s); retrying in %.1fs",
                    entry.alert.message_id,
                    e,
                    delay,
                )
                await asyncio.sleep(delay)
                continue
            failures = 0
            if age > self.duplicate_window_s and not result.duplicate:
                log.warning(
                    "replayed alert %s spooled %.0fs ago, beyond the %.0fs duplicate window: "
                    "if its first publish was stored after all, it is now stored twice",
                    entry.alert.message_id,
                    age,
                    self.duplicate_window_s,
                )
            await asyncio.to_thread(self.spool.remove, entry)
            self.spool.stats.replayed += 1
            if len(self.spool) == 0:
                log.info("spool drained: %d alert(s) replayed", self.spool.stats.replayed)
            if self.on_stored is not None:
                self.on_stored(entry.alert, result)

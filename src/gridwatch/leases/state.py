"""The state one worker's lease manager holds, and the converge that turns it into cameras.

The manager (:mod:`gridwatch.leases.manager`, where the protocol is described) is built in
layers, one module each, so every part of the protocol reads on its own: this base holds the
session, the owned leases and the running cameras, counts KV reads and writes, and converges
the worker on exactly the cameras it may run (:meth:`LeaseState._apply_now`, the only caller of
``apply``); :mod:`gridwatch.leases.session` keeps the session alive on top of it,
:mod:`gridwatch.leases.claims` claims, fences and hands back leases on top of that.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Generic, TypeVar

from nats.js import JetStreamContext

from gridwatch.leases.journal import OwnershipJournal
from gridwatch.leases.kv import read_current
from gridwatch.leases.records import default_worker_id, utc_now
from gridwatch.leases.settings import LeaseConfig
from gridwatch.leases.stats import LeaseStats
from gridwatch.leases.view import ClusterView

T = TypeVar("T")
Changes = dict[str, list[str]]


class LeaseState(Generic[T]):
    """What a :class:`~gridwatch.leases.manager.LeaseManager` holds: its session, its leases,
    its running cameras; and the one function that runs cameras (:meth:`_apply_now`)."""

    def __init__(
        self,
        js: JetStreamContext,
        settings: LeaseConfig,
        apply: Callable[[list[T]], Awaitable[object]],
        *,
        key: Callable[[T], str],
        eligible: Callable[[T], bool] | None = None,
        view: ClusterView | None = None,
        replicas: int = 1,
        worker_id: str | None = None,
        capacity: int | None = None,
        running_now: Callable[[], Iterable[str]] | None = None,
        measure_cpu: bool = True,
        op_timeout_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.js = js
        self.settings = settings
        self.apply = apply
        self.key = key
        self.eligible = eligible or (lambda _: True)
        self.view = view
        self._own_view = view is None
        self.replicas = replicas
        self.worker_id = (
            worker_id or os.environ.get("GW_WORKER_ID") or settings.worker_id or default_worker_id()
        )
        self.capacity = capacity if capacity is not None else settings.resolved_capacity()
        self.running_now = running_now
        self.measure_cpu = measure_cpu
        self.op_timeout_s = op_timeout_s
        self.clock = clock
        self.rng = rng or random.Random()
        self.stats = LeaseStats()
        self.journal = (
            OwnershipJournal(settings.journal, self.worker_id) if settings.journal else None
        )

        self.session: str | None = None
        self.session_rev = 0
        self.deadline = 0.0
        """Monotonic time the session's leases can expire: last acked renewal sent + ttl."""
        self.owned: dict[str, int] = {}
        """Camera -> revision of its lease naming this session."""
        self.running: set[str] = set()
        self._objects: dict[str, T] = {}
        self._applied: dict[str, T] = {}
        self._releasing: set[str] = set()
        self._claimed_at: dict[str, float] = {}
        self._suspended = False
        self._opened_at = 0.0
        self._ready_announced = False
        self._next_rebalance = 0.0
        self._closing = False
        self._apply_lock = asyncio.Lock()
        self._session_lock = asyncio.Lock()
        self._announce = asyncio.Event()
        self._waker: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._started_wall = utc_now()
        self._cpu_mark = (time.monotonic(), time.process_time())
        self.opened = asyncio.Event()
        """Set once the first session is open."""

    # -- what the worker asks ------------------------------------------------------------------

    def valid(self) -> bool:
        """Whether this worker may run its cameras now."""
        return (
            self.session is not None
            and not self._suspended
            and self.clock() < self.deadline - self.settings.margin_s
        )

    # -- KV access, counted --------------------------------------------------------------------

    async def _write(self, aw: Awaitable[int], nbytes: int) -> int:
        self.stats.writes += 1
        self.stats.write_bytes += nbytes
        return await aw

    async def _read(self, bucket: str, key: str) -> tuple[int, bytes | None]:
        self.stats.reads += 1
        cur = await read_current(self.js, bucket, key, wait_s=self.op_timeout_s)
        return cur.revision, cur.value

    # -- running cameras -----------------------------------------------------------------------

    async def _apply_now(self) -> Changes:
        """Converge the worker on exactly the cameras it may run now."""
        async with self._apply_lock:
            if self.valid():
                wanted = {c for c in self.owned if c in self._objects and c not in self._releasing}
            else:
                wanted = set()
            added = wanted - self.running
            removed = self.running - wanted
            changed = {c for c in wanted & self.running if self._objects[c] != self._applied.get(c)}
            if not (added or removed or changed):
                return {"started": [], "stopped": [], "restarted": []}
            if self.journal is not None:
                self.journal.record("start", added)
            result = await self.apply([self._objects[c] for c in sorted(wanted)])
            self.running = wanted
            self._applied = {c: self._objects[c] for c in wanted}
            if self.journal is not None:
                self.journal.record("stop", removed)
            if added or removed:
                self._announce.set()  # the heartbeat lists what runs: tell the others now
            if isinstance(result, dict):
                return {k: list(v) for k, v in result.items()}
            return {
                "started": sorted(added),
                "stopped": sorted(removed),
                "restarted": sorted(changed),
            }

"""A worker's local picture of ``gw_workers`` and ``gw_leases``, kept current by two KV watches.

The view is advisory: it tells a worker *which* writes to attempt (fence this worker, claim that
camera), never that a write is safe. Safety comes from compare-and-set on the revision the view
saw, and from a read at the stream leader before claiming a camera from a session believed dead
(:mod:`gridwatch.leases.manager`). A stale view therefore costs time, never correctness.

What it derives, incrementally (a city has thousands of cameras; a full scan per change would
not keep up with a start-up claim storm):

* **liveness**: each worker key's revision and the local monotonic time it was first seen. A
  worker whose revision has not changed for its ``ttl_s`` of *our* clock is expired; no clock
  needs to agree with any other machine's, only to run at about the same rate.
* **free cameras**: candidates with no lease, or whose lease names an ended session (its worker
  key deleted or replaced), or a session never seen alive for ``ttl_s``.
* **counts and fair targets** per live worker, cached until membership changes.

Self-healing like the registry watcher: a watch that falls silent while its stream moves on is
replaced by a fresh one, whose snapshot is diffed against what the view holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import nats.errors
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from gridwatch.leases.aio import cancel_and_wait
from gridwatch.leases.assign import fair_floors, fair_targets, rendezvous
from gridwatch.leases.kv import stream_of
from gridwatch.leases.records import LEASES_BUCKET, WORKERS_BUCKET, LeaseRecord, WorkerRecord

log = logging.getLogger(__name__)

SHORT_FOR_S = 1.0
"""A worker counts as short of its floor only after this long: views lag each other by
milliseconds, and a hand-back triggered by a glimpse would only move cameras around."""
_ENDED_KEEP = 100_000
"""Ended session ids remembered (a session id is never reused; this only bounds memory)."""


@dataclass
class WorkerState:
    record: WorkerRecord
    revision: int
    seen: float
    """Local monotonic time this revision was first seen: the start of its TTL here."""


@dataclass
class LeaseState:
    record: LeaseRecord
    revision: int
    seen: float


class FreeSet:
    """A set with O(1) add, remove and random sampling (a list plus positions): hundreds of
    managers draw from thousands of free cameras at start-up, many times a second."""

    def __init__(self) -> None:
        self._items: list[str] = []
        self._pos: dict[str, int] = {}

    def add(self, item: str) -> None:
        if item not in self._pos:
            self._pos[item] = len(self._items)
            self._items.append(item)

    def discard(self, item: str) -> None:
        i = self._pos.pop(item, None)
        if i is None:
            return
        last = self._items.pop()
        if i < len(self._items):
            self._items[i] = last
            self._pos[last] = i

    def sample(self, n: int, rng: random.Random) -> list[str]:
        if n >= len(self._items):
            return list(self._items)
        return [self._items[i] for i in rng.sample(range(len(self._items)), n)]

    def __contains__(self, item: object) -> bool:
        return item in self._pos

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._items))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FreeSet):
            return set(self._items) == set(other._items)
        if isinstance(other, set | frozenset):
            return set(self._items) == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True)
class Standing:
    """Derived facts shared by the managers of a process (see :meth:`ClusterView.standing`)."""

    live: dict[str, WorkerState]
    expired: list[str]
    targets: dict[str, int]
    floors: dict[str, int]
    short: set[str]
    """Ready live workers holding fewer cameras than their floor (for SHORT_FOR_S or more)."""
    room: set[str]
    """Ready live workers holding fewer cameras than their target."""


class ClusterView:
    """Follows both buckets; shared by every lease manager of a process."""

    def __init__(
        self,
        leases_kv: KeyValue,
        workers_kv: KeyValue,
        js: JetStreamContext,
        *,
        ttl_s: float,
        check_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.js = js
        self.ttl_s = ttl_s
        self.check_s = check_s
        self.clock = clock
        self._kvs = {LEASES_BUCKET: leases_kv, WORKERS_BUCKET: workers_kv}
        self.workers: dict[str, WorkerState] = {}
        self.leases: dict[str, LeaseState] = {}
        self.worker_revs: dict[str, int] = {}
        """Last revision of every worker key seen, removals included."""
        self.lease_revs: dict[str, int] = {}
        """Last revision of every lease key seen, removals included (what a claim CASes on)."""
        self.session_worker: dict[str, str] = {}
        self.by_session: dict[str, set[str]] = {}
        self.ended: OrderedDict[str, None] = OrderedDict()
        self.candidates: set[str] = set()
        self.free = FreeSet()
        self._unknown: dict[str, float] = {}  # camera -> since when its holder is unknown
        self.synced = asyncio.Event()
        self._synced_buckets: set[str] = set()
        self._wakers: list[asyncio.Event] = []
        self._members_version = 0
        self._lease_version = 0
        self._short_since: dict[str, float] = {}
        self._quantum = min(0.25, ttl_s / 8)
        self._standing: tuple[tuple[int, int, int, int], Standing] | None = None
        self._fencers_cache: dict[str, tuple[int, dict[str, int]]] = {}
        self._max_rev: dict[str, int] = {LEASES_BUCKET: 0, WORKERS_BUCKET: 0}
        self._tasks: list[asyncio.Task[None]] = []
        self.resyncs = 0
        self.entries_seen = 0

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self, *, sync_timeout_s: float = 30.0) -> ClusterView:
        """Start both watches and wait (bounded) for their first snapshots."""
        for bucket in (WORKERS_BUCKET, LEASES_BUCKET):
            self._tasks.append(asyncio.create_task(self._run(bucket), name=f"view-{bucket}"))
        self._tasks.append(asyncio.create_task(self._tick_loop(), name="view-tick"))
        try:
            await asyncio.wait_for(self.synced.wait(), sync_timeout_s)
        except TimeoutError:
            log.warning("lease view: no full snapshot within %.0fs; carrying on", sync_timeout_s)
        return self

    async def close(self) -> None:
        await cancel_and_wait(self._tasks)
        self._tasks.clear()

    def waker(self) -> asyncio.Event:
        """An event set whenever a camera may have become free or membership changed."""
        ev = asyncio.Event()
        self._wakers.append(ev)
        return ev

    def _wake(self) -> None:
        for ev in self._wakers:
            ev.set()

    # -- candidates ----------------------------------------------------------------------------

    def set_candidates(self, ids: Iterable[str]) -> None:
        """The cameras that should run somewhere (registry or config, enabled ones)."""
        new = set(ids)
        gone = self.candidates - new
        added = new - self.candidates
        self.candidates = new
        for c in gone:
            self.free.discard(c)
            self._unknown.pop(c, None)
        for c in added:
            self._refresh(c)
        if added:
            self._wake()

    # -- queries -------------------------------------------------------------------------------

    def session_live(self, session: str) -> bool:
        return session in self.session_worker

    def held_by(self, session: str) -> set[str]:
        return self.by_session.get(session, set())

    def _ttl_of(self, st: WorkerState) -> float:
        # the owner stops on its own TTL: never judge it by a shorter one
        return max(self.ttl_s, st.record.ttl_s)

    def standing(self) -> Standing:
        """Liveness, targets and who is short or has room, computed once per change (and per
        clock quantum) and shared by every manager of the process: O(workers) per change,
        not per manager and tick."""
        key = (
            self._members_version,
            self._lease_version,
            int(self.clock() / self._quantum),
            len(self.candidates),
        )
        if self._standing is not None and self._standing[0] == key:
            return self._standing[1]
        now = self.clock()
        live: dict[str, WorkerState] = {}
        expired: list[str] = []
        for w, st in self.workers.items():
            if now - st.seen < self._ttl_of(st):
                live[w] = st
            else:
                expired.append(w)
        caps = {w: st.record.capacity for w, st in live.items()}
        targets = fair_targets(caps, len(self.candidates))
        floors = fair_floors(caps, len(self.candidates))
        short, room = set(), set()
        short_since: dict[str, float] = {}
        for w, st in live.items():
            if not st.record.ready:
                continue
            held = len(self.by_session.get(st.record.session, ()))
            if held < floors.get(w, 0):
                # short for a while, not just between a hand-back and the claim it allows
                short_since[w] = self._short_since.get(w, now)
                if now - short_since[w] >= SHORT_FOR_S:
                    short.add(w)
            if held < targets.get(w, 0):
                room.add(w)
        self._short_since = short_since
        result = Standing(live, expired, targets, floors, short, room)
        self._standing = (key, result)
        return result

    def expired(self, now: float | None = None) -> list[str]:
        """Workers whose key has not changed for their TTL on our clock."""
        if now is None:
            return self.standing().expired
        return [w for w, st in self.workers.items() if now - st.seen >= self._ttl_of(st)]

    def expired_for(self, worker: str, now: float | None = None) -> float:
        """Seconds ``worker`` has been expired here (negative: not yet)."""
        st = self.workers.get(worker)
        if st is None:
            return -1.0
        now = self.clock() if now is None else now
        return now - st.seen - self._ttl_of(st)

    def live_workers(self) -> dict[str, WorkerState]:
        return self.standing().live

    def targets(self, extra: dict[str, int] | None = None) -> dict[str, int]:
        """Fair targets (rounded up) over live workers, plus ``extra`` worker -> capacity."""
        if not extra:
            return self.standing().targets
        caps = {w: st.record.capacity for w, st in self.live_workers().items()} | extra
        return fair_targets(caps, len(self.candidates))

    def floors(self, extra: dict[str, int] | None = None) -> dict[str, int]:
        """Rounded-down fair shares over live workers, plus ``extra``."""
        if not extra:
            return self.standing().floors
        caps = {w: st.record.capacity for w, st in self.live_workers().items()} | extra
        return fair_floors(caps, len(self.candidates))

    def someone_short(self, excluding: str) -> bool:
        """Whether a ready live worker other than ``excluding`` holds less than its floor."""
        short = self.standing().short
        return len(short) > (1 if excluding in short else 0)

    def has_room(self, excluding: str) -> bool:
        """Whether some ready live worker other than ``excluding`` holds less than its target."""
        room = self.standing().room
        return len(room) > (1 if excluding in room else 0)

    def fencer_rank(self, dead: str, me: str) -> int:
        """My place among live workers in the rendezvous order for fencing ``dead``."""
        cached = self._fencers_cache.get(dead)
        if cached is None or cached[0] != self._members_version:
            order = rendezvous(dead, [w for w in self.live_workers() if w != dead])
            cached = (self._members_version, {w: i for i, w in enumerate(order)})
            self._fencers_cache[dead] = cached
        return cached[1].get(me, len(cached[1]))

    def pick_free(self, n: int, rng: random.Random) -> list[str]:
        """Up to ``n`` free cameras, at random: workers racing for the same free cameras would
        mostly collide; random picks rarely do, and CAS settles the rest."""
        if n <= 0 or not self.free:
            return []
        return self.free.sample(n, rng)

    # -- applying entries ----------------------------------------------------------------------

    def _end_session(self, session: str) -> None:
        self.session_worker.pop(session, None)
        self.ended[session] = None
        while len(self.ended) > _ENDED_KEEP:
            self.ended.popitem(last=False)
        for c in list(self.by_session.get(session, ())):
            self._refresh(c)
        self._members_changed()

    def _members_changed(self) -> None:
        self._members_version += 1
        self._wake()

    def _put_worker(self, key: str, raw: bytes, rev: int) -> None:
        try:
            rec = WorkerRecord.decode(raw)
        except ValueError as exc:
            log.warning("gw_workers.%s rev %d ignored: %s", key, rev, exc)
            return
        old = self.workers.get(key)
        if (old is not None and old.revision == rev) or rec.session in self.ended:
            return  # the same revision again, or a late renewal of a session that has ended
        self.worker_revs[key] = max(rev, self.worker_revs.get(key, 0))
        now = self.clock()
        self.workers[key] = WorkerState(rec, rev, now)
        if old is not None and old.record.session != rec.session:
            self._end_session(old.record.session)
        if rec.session not in self.session_worker:
            self.session_worker[rec.session] = key
            for c in list(self.by_session.get(rec.session, ())):
                self._refresh(c)
            self._members_changed()
        elif old is not None and (old.record.capacity, old.record.ready) != (
            rec.capacity,
            rec.ready,
        ):
            self._members_changed()

    def _del_worker(self, key: str) -> None:
        old = self.workers.pop(key, None)
        if old is not None:
            self._end_session(old.record.session)

    def _put_lease(self, key: str, raw: bytes, rev: int) -> None:
        self.lease_revs[key] = rev
        try:
            rec = LeaseRecord.decode(raw)
        except ValueError as exc:
            log.warning("gw_leases.%s rev %d ignored: %s", key, rev, exc)
            return
        old = self.leases.get(key)
        if old is not None:
            self._unindex(key, old.record.session)
        self.leases[key] = LeaseState(rec, rev, self.clock())
        self.by_session.setdefault(rec.session, set()).add(key)
        self._lease_version += 1
        self._refresh(key)

    def _del_lease(self, key: str, rev: int) -> None:
        self.lease_revs[key] = rev
        old = self.leases.pop(key, None)
        if old is not None:
            self._unindex(key, old.record.session)
            self._lease_version += 1
        self._refresh(key)

    def _unindex(self, camera: str, session: str) -> None:
        held = self.by_session.get(session)
        if held is not None:
            held.discard(camera)
            if not held:
                del self.by_session[session]

    def _refresh(self, camera: str) -> None:
        """Recompute whether ``camera`` is free."""
        was_free = camera in self.free
        free = False
        if camera in self.candidates:
            lease = self.leases.get(camera)
            if lease is None or lease.record.session in self.ended:
                free = True
                self._unknown.pop(camera, None)
            elif lease.record.session in self.session_worker:
                self._unknown.pop(camera, None)
            else:  # a session never seen alive: free once it stays unknown for a TTL
                since = self._unknown.setdefault(camera, lease.seen)
                free = self.clock() - since >= self.ttl_s
        if free:
            self.free.add(camera)
            if not was_free:
                self._wake()
        else:
            self.free.discard(camera)

    def note_entry(self, bucket: str, entry: KeyValue.Entry) -> None:
        rev = int(entry.revision or 0)
        self._max_rev[bucket] = max(self._max_rev[bucket], rev)
        self.entries_seen += 1
        removed = entry.operation in ("DEL", "PURGE")
        if bucket == WORKERS_BUCKET:
            # never move backwards: our own writes and reads at the leader run ahead of the
            # watch, which then delivers the revisions in between
            if rev <= self.worker_revs.get(entry.key, 0):
                return
            if removed:
                self.worker_revs[entry.key] = rev
                self._del_worker(entry.key)
            else:
                self._put_worker(entry.key, entry.value or b"", rev)
        elif rev <= self.lease_revs.get(entry.key, 0):
            return
        elif removed:
            self._del_lease(entry.key, rev)
        else:
            self._put_lease(entry.key, entry.value or b"", rev)

    def note_snapshot(self, bucket: str, entries: dict[str, KeyValue.Entry]) -> None:
        """A fresh watch's full state: apply it, and remove what is no longer there."""
        known = self.workers if bucket == WORKERS_BUCKET else self.leases
        revs = self.worker_revs if bucket == WORKERS_BUCKET else self.lease_revs
        covered = max((int(e.revision or 0) for e in entries.values()), default=0)
        for key in [k for k in known if k not in entries and revs.get(k, 0) <= covered]:
            if bucket == WORKERS_BUCKET:
                self._del_worker(key)
            else:
                self._del_lease(key, 0)  # no message left for the key at all
        for entry in sorted(entries.values(), key=lambda e: int(e.revision or 0)):
            self.note_entry(bucket, entry)

    def forget_session(self, key: str, session: str) -> None:
        """A fence or a read at the leader showed ``session`` ended: apply it now."""
        st = self.workers.get(key)
        if st is not None and st.record.session == session:
            self._del_worker(key)
        elif session not in self.ended:
            self.ended[session] = None
            for c in list(self.by_session.get(session, ())):
                self._refresh(c)

    def note_lease_written(self, camera: str, record: LeaseRecord | None, rev: int) -> None:
        """Our own successful write, applied before the watch delivers it (if it is newer)."""
        if rev <= self.lease_revs.get(camera, 0):
            return
        if record is None:
            self._del_lease(camera, rev)
        else:
            self._put_lease(camera, record.encode(), rev)

    def note_lease_current(self, camera: str, rev: int, raw: bytes | None) -> None:
        """A read at the leader (after a lost race): apply it if it is newer than the view."""
        if rev <= self.lease_revs.get(camera, 0):
            return
        if raw is None:
            self._del_lease(camera, rev)
        else:
            self._put_lease(camera, raw, rev)

    def note_worker_seen(self, key: str, raw: bytes, rev: int) -> None:
        if rev > self.worker_revs.get(key, 0):
            self._put_worker(key, raw, rev)

    # -- periodic ------------------------------------------------------------------------------

    async def _tick_loop(self) -> None:
        """Re-evaluate time-based facts: expiries change targets, unknown sessions time out."""
        expired_before: set[str] = set()
        while True:
            await asyncio.sleep(min(0.25, self.ttl_s / 8))
            expired = set(self.expired())
            if expired != expired_before:
                expired_before = expired
                self._members_changed()
            for c in list(self._unknown):
                self._refresh(c)

    # -- watching ------------------------------------------------------------------------------

    async def _run(self, bucket: str) -> None:
        backoff = 0.2
        while True:
            try:
                await self._follow(bucket)
                backoff = 0.2
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("lease view: %s watch failed (%s: %s)", bucket, type(exc).__name__, exc)
                await asyncio.sleep(backoff)
                backoff = min(5.0, backoff * 2)
            self.resyncs += 1

    async def _follow(self, bucket: str) -> None:
        kv = self._kvs[bucket]
        watcher = await asyncio.wait_for(kv.watchall(), 10)
        try:
            snapshot: dict[str, KeyValue.Entry] = {}
            while True:
                item = await watcher.updates(timeout=10)  # type: ignore[no-untyped-call]
                if item is None:
                    break
                if isinstance(item, KeyValue.Entry):
                    snapshot[item.key] = item
            self.note_snapshot(bucket, snapshot)
            self._synced_buckets.add(bucket)
            if len(self._synced_buckets) == len(self._kvs):
                self.synced.set()
            behind = 0
            while True:
                try:
                    item = await watcher.updates(timeout=self.check_s)  # type: ignore[no-untyped-call]
                except nats.errors.TimeoutError:
                    info = await asyncio.wait_for(self.js.stream_info(stream_of(bucket)), 10)
                    last = int(info.state.last_seq or 0)
                    behind = behind + 1 if last > self._max_rev[bucket] else 0
                    if behind >= 2:
                        log.info(
                            "lease view: %s watch is behind (%d > %d); resyncing",
                            bucket,
                            last,
                            self._max_rev[bucket],
                        )
                        return
                    continue
                if isinstance(item, KeyValue.Entry):
                    behind = 0
                    self.note_entry(bucket, item)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(watcher.stop(), 5)  # type: ignore[no-untyped-call]

"""One worker's side of the lease protocol: its session, its claims, its hand-backs.

The protocol (the full argument is in docs/scaling.md):

1. **Session.** The worker creates ``gw_workers.<id>`` (CAS on "absent") with a fresh session id
   and renews it every ``renew_s`` (CAS on its last revision). Its *local deadline* is the
   monotonic time it *sent* its last acknowledged renewal plus ``ttl_s``.
2. **Claim.** A camera with no lease, or whose lease names an ended session, is claimed with a
   CAS write of ``gw_leases.<camera>`` = (worker, session) on the revision the worker saw. When
   the lease names a session, the worker first reads that session's key *at the stream leader*:
   if the key still holds that session, the camera is not free, whatever the local view says.
3. **Never two owners.** A worker runs a camera only while ``now < deadline - margin_s``; when it
   cannot renew in time, it stops every camera *before* the deadline. Another worker may end the
   silent session only by deleting its key with CAS on the revision it has watched, unchanged,
   for ``ttl_s`` of its own clock; that revision was sent before it was seen, so by then the
   silent worker's deadline has passed and its cameras are stopped. Once the key is deleted, the
   session can never renew again (its CAS fails), so its leases are dead for good.
4. **Hand back.** Graceful release is stop the camera, announce (a renewal listing what runs),
   then delete the lease with CAS: the next owner starts only after the previous one stopped.
5. **Fair share, no churn.** Each worker's target is its capacity's share of the cameras,
   rounded up; a worker under target claims free cameras, a worker over target hands back a
   few per ``rebalance_s`` and only while some ready worker has room. A healthy owner at or under
   its target never loses a camera.

``apply`` is the worker's converge function (``Worker.apply_cameras``); the manager calls it
with exactly the cameras it may run, and is the only caller while leases are on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from nats.js import JetStreamContext

from gridwatch.leases.aio import cancel_and_wait
from gridwatch.leases.journal import OwnershipJournal
from gridwatch.leases.kv import (
    CasConflict,
    cas_delete,
    cas_put,
    ensure_lease_buckets,
    read_current,
)
from gridwatch.leases.records import (
    LEASES_BUCKET,
    WORKERS_BUCKET,
    LeaseRecord,
    WorkerRecord,
    default_worker_id,
    new_session,
    utc_now,
)
from gridwatch.leases.settings import LeaseConfig
from gridwatch.leases.view import ClusterView

log = logging.getLogger(__name__)

T = TypeVar("T")
Changes = dict[str, list[str]]


@dataclass
class LeaseStats:
    """Counters of one manager (the simulator sums them for traffic figures)."""

    sessions: int = 0
    renewals: int = 0
    renew_failures: int = 0
    lapses: int = 0
    """Times the local deadline came before a renewal: every camera stopped, lease kept."""
    lost_sessions: int = 0
    """Times the session was found fenced or replaced."""
    claims: int = 0
    claim_conflicts: int = 0
    claims_refused_alive: int = 0
    releases: int = 0
    fences: int = 0
    fence_conflicts: int = 0
    writes: int = 0
    write_bytes: int = 0
    reads: int = 0
    fenced_alerts: int = 0
    """Alerts not sent because the camera's lease was no longer certainly ours."""
    longest_renew_gap_s: float = 0.0
    """Longest time between two acknowledged renewals (sent times) of a session."""


class LeaseManager(Generic[T]):
    """Holds a session in ``gw_workers`` and the leases of the cameras this worker runs."""

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

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> LeaseManager[T]:
        """Ensure the buckets (and a view, unless one is shared), then run the loops."""
        if self.view is None:
            leases_kv, workers_kv = await ensure_lease_buckets(self.js, replicas=self.replicas)
            self.view = ClusterView(leases_kv, workers_kv, self.js, ttl_s=self.settings.ttl_s)
            await self.view.start()
        self._waker = self.view.waker()
        for name, coro in (
            ("session", self._session_loop()),
            ("guard", self._guard_loop()),
            ("reconcile", self._reconcile_loop()),
        ):
            self._tasks.append(asyncio.create_task(coro, name=f"leases-{name}-{self.worker_id}"))
        log.info(
            "leases: worker %s, capacity %d, ttl %.1fs, renew every %.1fs",
            self.worker_id,
            self.capacity,
            self.settings.ttl_s,
            self.settings.renew_s,
        )
        return self

    async def close(self, *, release: bool = True, within_s: float = 10.0) -> None:
        """Stop every camera, then hand every lease back at once and end the session."""
        self._closing = True
        await self._cancel_tasks()
        try:
            await asyncio.wait_for(self._shutdown(release), within_s)
        except Exception as exc:
            log.warning("leases: shutdown incomplete (%s: %s)", type(exc).__name__, exc)
            self.session = None
            with contextlib.suppress(Exception):
                await self._apply_now()
        if self._own_view and self.view is not None:
            await self.view.close()
        if self.journal is not None:
            self.journal.close()

    async def abort(self) -> None:
        """Die without a word (the simulator's SIGKILL): loops stop, nothing is written."""
        self._closing = True
        await self._cancel_tasks()
        self.session = None
        self.running.clear()

    async def _cancel_tasks(self) -> None:
        await cancel_and_wait(self._tasks)
        self._tasks.clear()

    async def _shutdown(self, release: bool) -> None:
        self._releasing.update(self.owned)
        await self._apply_now()  # every camera stopped before any lease is given up
        if not release or self.session is None:
            self.session = None
            return
        await self._renew()  # announce: nothing runs here any more
        await asyncio.gather(*(self._delete_lease(c) for c in list(self.owned)))
        with contextlib.suppress(Exception):
            await self._write(
                cas_delete(
                    self.js,
                    WORKERS_BUCKET,
                    self.worker_id,
                    self.session_rev,
                    wait_s=self.op_timeout_s,
                ),
                0,
            )
        log.info("leases: session %s of %s ended, leases handed back", self.session, self.worker_id)
        self.session = None

    # -- what the worker asks ------------------------------------------------------------------

    def valid(self) -> bool:
        """Whether this worker may run its cameras now."""
        return (
            self.session is not None
            and not self._suspended
            and self.clock() < self.deadline - self.settings.margin_s
        )

    def may_publish(self, camera: str) -> bool:
        """Whether ``camera``'s lease is certainly still ours (alerts from it may go out)."""
        return camera in self.owned and self.session is not None and self.clock() < self.deadline

    async def set_cameras(self, cameras: list[T]) -> Changes:
        """The cameras that should run somewhere (``RegistryWatcher``'s apply, or the config's);
        this worker runs the ones it holds leases on. Returns what changed here."""
        self._objects = {self.key(c): c for c in cameras if self.eligible(c)}
        if self.view is not None:
            self.view.set_candidates(self._objects)
        if self._waker is not None:
            self._waker.set()
        return await self._apply_now()

    # -- the session ---------------------------------------------------------------------------

    def _record(self, session: str) -> WorkerRecord:
        cameras = self.running_now() if self.running_now is not None else self.running
        return WorkerRecord(
            worker=self.worker_id,
            session=session,
            capacity=self.capacity,
            ready=self._is_ready(),
            cameras=tuple(sorted(cameras)),
            held=len(self.owned),
            cpu_percent=self._cpu_percent() if self.measure_cpu else None,
            host=socket.gethostname(),
            pid=os.getpid(),
            started=self._started_wall,
            ttl_s=self.settings.ttl_s,
            renew_s=self.settings.renew_s,
        )

    def _cpu_percent(self) -> float | None:
        mono, cpu = time.monotonic(), time.process_time()
        last_mono, last_cpu = self._cpu_mark
        self._cpu_mark = (mono, cpu)
        return round(100.0 * (cpu - last_cpu) / (mono - last_mono), 1) if mono > last_mono else None

    def _is_ready(self) -> bool:
        return (
            self.session is not None
            and self.view is not None
            and self.view.synced.is_set()
            and self.clock() >= self._opened_at + self.settings.settle_s
        )

    async def _write(self, aw: Awaitable[int], nbytes: int) -> int:
        self.stats.writes += 1
        self.stats.write_bytes += nbytes
        return await aw

    async def _read(self, bucket: str, key: str) -> tuple[int, bytes | None]:
        self.stats.reads += 1
        cur = await read_current(self.js, bucket, key, wait_s=self.op_timeout_s)
        return cur.revision, cur.value

    async def _session_loop(self) -> None:
        while True:
            if self.session is None:
                try:
                    await self._open_session()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning(
                        "leases: cannot open a session (%s: %s); retrying", type(exc).__name__, exc
                    )
                    await asyncio.sleep(min(1.0, self.settings.renew_s))
                    continue
            ok = await self._renew_announced(self.settings.renew_s)
            if not ok:
                await asyncio.sleep(min(0.5, self.settings.renew_s / 2))

    async def _renew_announced(self, wait_s: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._announce.wait(), wait_s)
        self._announce.clear()
        return await self._renew()

    async def _open_session(self) -> None:
        """Create our worker key with a new session; wait out an old session of this id."""
        assert self.view is not None
        session = new_session()
        watched: tuple[int, float] | None = None
        while True:
            rev, raw = await self._read(WORKERS_BUCKET, self.worker_id)
            if raw is None:
                break
            # the id is held by another session (this worker's previous life, or a duplicate
            # id): wait until it has been silent for its TTL, then fence it like any other
            ttl = self.settings.ttl_s
            with contextlib.suppress(ValueError):
                ttl = max(ttl, WorkerRecord.decode(raw).ttl_s)
            now = self.clock()
            if watched is None or watched[0] != rev:
                if watched is None:
                    log.warning(
                        "leases: worker id %s has a live session; waiting up to %.0fs",
                        self.worker_id,
                        ttl,
                    )
                watched = (rev, now)
            elif now - watched[1] >= ttl:
                with contextlib.suppress(CasConflict):
                    await self._write(
                        cas_delete(
                            self.js, WORKERS_BUCKET, self.worker_id, rev, wait_s=self.op_timeout_s
                        ),
                        0,
                    )
                continue
            await asyncio.sleep(min(0.5, self.settings.renew_s / 2))
        t_send = self.clock()
        self.session = session  # the record names it; valid() stays false until acked
        self.deadline = 0.0
        raw_new = self._record(session).encode()
        try:
            new_rev = await self._write(
                cas_put(
                    self.js, WORKERS_BUCKET, self.worker_id, raw_new, rev, wait_s=self.op_timeout_s
                ),
                len(raw_new),
            )
        except CasConflict:
            self.session = None
            raise
        except Exception:
            # outcome unknown: adopt the key only if it holds our session
            back_rev, back = await self._read(WORKERS_BUCKET, self.worker_id)
            if back is None or WorkerRecord.decode(back).session != session:
                self.session = None
                raise
            new_rev = back_rev
        self.session_rev = new_rev
        self.deadline = t_send + self.settings.ttl_s
        self._opened_at = t_send
        self._suspended = False
        self._ready_announced = False
        self.stats.sessions += 1
        self.view.note_worker_seen(self.worker_id, raw_new, new_rev)
        self.opened.set()
        log.info("leases: %s opened session %s", self.worker_id, session)

    async def _renew(self) -> bool:
        """One renewal (also the announcement of what runs here); True when acknowledged."""
        async with self._session_lock:
            session = self.session
            if session is None or self.view is None:
                return False
            t_send = self.clock()
            raw = self._record(session).encode()
            try:
                rev = await self._write(
                    cas_put(
                        self.js,
                        WORKERS_BUCKET,
                        self.worker_id,
                        raw,
                        self.session_rev,
                        wait_s=max(0.5, min(self.settings.renew_s, self.settings.ttl_s / 3)),
                    ),
                    len(raw),
                )
            except CasConflict:
                return await self._after_renew_conflict(session)
            except Exception as exc:
                self.stats.renew_failures += 1
                log.debug("leases: renewal failed (%s: %s)", type(exc).__name__, exc)
                return False
            if self.session != session:
                return False
            self.session_rev = rev
            gap = t_send - (self.deadline - self.settings.ttl_s)
            self.stats.longest_renew_gap_s = max(self.stats.longest_renew_gap_s, round(gap, 3))
            self.deadline = max(self.deadline, t_send + self.settings.ttl_s)
            self.stats.renewals += 1
            self.view.note_worker_seen(self.worker_id, raw, rev)
            if self._suspended:
                self._suspended = False
                log.warning("leases: %s renewed again; resuming its cameras", self.worker_id)
                if self._waker is not None:
                    self._waker.set()
            return True

    async def _after_renew_conflict(self, session: str) -> bool:
        try:
            rev, raw = await self._read(WORKERS_BUCKET, self.worker_id)
        except Exception:
            return False
        if raw is not None:
            with contextlib.suppress(ValueError):
                if WorkerRecord.decode(raw).session == session:
                    self.session_rev = rev  # our own write whose ack was lost
                    return False
        await self._session_lost("fenced" if raw is None else "taken over by another session")
        return False

    async def _session_lost(self, why: str) -> None:
        log.warning(
            "leases: session %s of %s was %s: stopping %d cameras",
            self.session,
            self.worker_id,
            why,
            len(self.running),
        )
        self.stats.lost_sessions += 1
        self.session = None
        self.owned.clear()
        self._releasing.clear()
        await self._apply_now()

    async def _guard_loop(self) -> None:
        """Stop every camera before the lease can expire when renewals do not get through."""
        while True:
            if self.session is None or self._suspended:
                await asyncio.sleep(self.settings.tick_s)
                continue
            stop_at = self.deadline - self.settings.margin_s
            now = self.clock()
            if now >= stop_at:
                self._suspended = True
                self.stats.lapses += 1
                log.warning(
                    "leases: %s could not renew for %.1fs: stopping %d cameras before "
                    "its leases can expire",
                    self.worker_id,
                    now - (self.deadline - self.settings.ttl_s),
                    len(self.running),
                )
                await self._apply_now()
                continue
            await asyncio.sleep(min(stop_at - now, 1.0))

    # -- claims, releases, fences --------------------------------------------------------------

    async def _reconcile_loop(self) -> None:
        assert self._waker is not None
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._waker.wait(), self.settings.tick_s)
            self._waker.clear()
            try:
                await self._reconcile()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("leases: reconcile failed")
                await asyncio.sleep(self.settings.tick_s)

    async def _reconcile(self) -> None:
        view = self.view
        session = self.session
        if view is None or session is None or not self.valid() or not view.synced.is_set():
            return
        now = self.clock()
        self._sync_owned(session)
        await self._fence_expired(now)
        gone = [c for c in self.owned if c not in self._objects and c not in self._releasing]
        if gone:
            await self._release(gone)
        if self._releasing:
            await self._finish_releases()
        held = len(self.owned) - len(self._releasing)
        standing = view.standing()
        extra = None if self.worker_id in standing.live else {self.worker_id: self.capacity}
        target = view.targets(extra).get(self.worker_id, 0)
        floor = view.floors(extra).get(self.worker_id, 0)
        ready = self._is_ready()
        if ready and not self._ready_announced:
            self._ready_announced = True
            self._announce.set()
        surplus = 0
        if now >= self._next_rebalance and held > floor:
            if held > target and view.has_room(self.worker_id):
                surplus = min(held - target, self.settings.release_batch)
            elif view.someone_short(self.worker_id):
                surplus = 1  # from the rounding slack to a worker below its floor
        if surplus:
            self._next_rebalance = now + self.settings.rebalance_s
            victims = sorted(
                (c for c in self.owned if c not in self._releasing),
                key=lambda c: self._claimed_at.get(c, 0.0),
                reverse=True,
            )[:surplus]
            await self._release(victims)
        elif (
            held < target
            and ready
            and (held < floor or not view.someone_short(self.worker_id))
            and (held < floor or self._my_turn(len(view.free), len(standing.room)))
        ):
            picks = view.pick_free(min(target - held, self.settings.claim_batch), self.rng)
            if picks:
                dead_cache: dict[str, asyncio.Future[bool]] = {}
                await asyncio.gather(*(self._claim(c, dead_cache) for c in picks))
        await self._apply_now()  # also resumes the cameras after a renewal came back

    def _my_turn(self, free: int, claimants: int) -> bool:
        """Damp the herd: when a few cameras come free and many workers have room for them
        (at scale, hundreds are one camera under their rounded-up target), each tries this
        round with a probability that makes about two attempts per free camera (a worker below
        its floor always tries). The first claim reaches every view within milliseconds."""
        if claimants <= 2 * max(1, free):
            return True
        return self.rng.random() < 2 * max(1, free) / claimants

    def _sync_owned(self, session: str) -> bool:
        """Adopt leases that name us (a claim whose ack was lost); drop ones the KV shows taken
        (only possible after our session ended, or by hand)."""
        assert self.view is not None
        changed = False
        now = self.clock()
        for c in self.view.held_by(session):
            if c not in self.owned:
                self.owned[c] = self.view.leases[c].revision
                self._claimed_at[c] = now
                changed = True
        for c, rev in list(self.owned.items()):
            st = self.view.leases.get(c)
            if self.view.lease_revs.get(c, 0) > rev and (
                st is None or st.record.session != session
            ):
                log.warning(
                    "leases: the lease on %s was removed or taken (rev %d)",
                    c,
                    self.view.lease_revs.get(c, 0),
                )
                self.owned.pop(c, None)
                self._releasing.discard(c)
                changed = True
        return changed

    async def _fence_expired(self, now: float) -> None:
        assert self.view is not None
        for w in self.view.expired():
            if w == self.worker_id:
                continue
            rank = self.view.fencer_rank(w, self.worker_id)
            if self.view.expired_for(w, now) >= min(rank, 3) * self.settings.renew_s:
                await self._fence(w)

    async def _fence(self, worker: str) -> None:
        """End a silent worker's session: delete its key with CAS on the revision watched."""
        assert self.view is not None
        st = self.view.workers.get(worker)
        if st is None:
            return
        silent = self.clock() - st.seen
        try:
            await self._write(
                cas_delete(self.js, WORKERS_BUCKET, worker, st.revision, wait_s=self.op_timeout_s),
                0,
            )
        except CasConflict:
            self.stats.fence_conflicts += 1
            with contextlib.suppress(Exception):
                cur_rev, raw = await self._read(WORKERS_BUCKET, worker)
                if raw is None:
                    self.view.forget_session(worker, st.record.session)
                else:
                    self.view.note_worker_seen(worker, raw, cur_rev)
            return
        except Exception:
            return
        self.stats.fences += 1
        log.warning(
            "leases: worker %s silent for %.1fs: session %s ended, its %d cameras are free",
            worker,
            silent,
            st.record.session,
            len(self.view.held_by(st.record.session)),
        )
        self.view.forget_session(worker, st.record.session)

    async def _session_dead(self, worker: str, session: str) -> bool:
        """Ask the stream leader whether ``session`` has ended (its worker key removed or
        holding another session): a stale view must never hand out a live worker's camera."""
        assert self.view is not None
        rev, raw = await self._read(WORKERS_BUCKET, worker)
        if raw is None:
            self.view.forget_session(worker, session)
            return True
        try:
            rec = WorkerRecord.decode(raw)
        except ValueError:
            return False
        if rec.session != session:
            return True
        self.view.note_worker_seen(worker, raw, rev)
        return False

    async def _claim(self, camera: str, dead_cache: dict[str, asyncio.Future[bool]]) -> bool:
        assert self.view is not None
        session = self.session
        if session is None or not self.valid():
            return False
        lease = self.view.leases.get(camera)
        last = self.view.lease_revs.get(camera, 0)
        try:
            if lease is not None:
                holder = lease.record
                if self.view.session_live(holder.session):
                    return False
                # a removal the watch delivered happened at the server: no need to ask again
                if holder.session in self.view.ended:
                    pass
                elif holder.session not in dead_cache:
                    dead_cache[holder.session] = asyncio.ensure_future(
                        self._session_dead(holder.worker, holder.session)
                    )
                if holder.session not in self.view.ended and not await dead_cache[holder.session]:
                    self.stats.claims_refused_alive += 1
                    return False
            record = LeaseRecord(self.worker_id, session)
            raw = record.encode()
            rev = await self._write(
                cas_put(self.js, LEASES_BUCKET, camera, raw, last, wait_s=self.op_timeout_s),
                len(raw),
            )
        except CasConflict:
            self.stats.claim_conflicts += 1
            with contextlib.suppress(Exception):  # show the winner to all sharing this view
                cur_rev, cur = await self._read(LEASES_BUCKET, camera)
                log.debug(
                    "leases: claim of %s at rev %d lost: now rev %d %s", camera, last, cur_rev, cur
                )
                self.view.note_lease_current(camera, cur_rev, cur)
            return False
        except Exception as exc:  # unknown outcome: if it landed, the view shows it and we adopt
            log.debug("leases: claim of %s failed (%s)", camera, exc)
            return False
        self.view.note_lease_written(camera, record, rev)
        if self.session != session:
            return False  # the session ended meanwhile: the lease names a dead session
        self.owned[camera] = rev
        self._claimed_at[camera] = self.clock()
        self.stats.claims += 1
        if log.isEnabledFor(logging.DEBUG):
            was = "free" if lease is None else f"held by ended {lease.record.worker}"
            log.debug(
                "leases: %s claimed %s at rev %d (was rev %d, %s)",
                self.worker_id,
                camera,
                rev,
                last,
                was,
            )
        return True

    async def _release(self, cameras: Iterable[str]) -> None:
        """Hand cameras back: stop them, announce, then delete their leases with CAS."""
        self._releasing.update(cameras)
        await self._apply_now()
        await self._finish_releases()

    async def _finish_releases(self) -> None:
        if not await self._renew():  # the heartbeat must stop listing them first
            return
        await asyncio.gather(*(self._delete_lease(c) for c in list(self._releasing)))

    async def _delete_lease(self, camera: str) -> None:
        rev = self.owned.get(camera)
        if rev is None:
            self._releasing.discard(camera)
            return
        try:
            new_rev = await self._write(
                cas_delete(self.js, LEASES_BUCKET, camera, rev, wait_s=self.op_timeout_s), 0
            )
        except CasConflict:
            with contextlib.suppress(Exception):
                cur_rev, raw = await self._read(LEASES_BUCKET, camera)
                mine = raw is not None and LeaseRecord.decode(raw).session == self.session
                if mine:
                    self.owned[camera] = cur_rev  # retried next round
                else:
                    self.owned.pop(camera, None)
                    self._releasing.discard(camera)
            return
        except Exception:
            return  # retried next round; the camera stays stopped meanwhile
        self.owned.pop(camera, None)
        self._releasing.discard(camera)
        self._claimed_at.pop(camera, None)
        self.stats.releases += 1
        if self.view is not None:
            self.view.note_lease_written(camera, None, new_rev)

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

"""Claims, hand-backs and fences: how cameras move between workers (steps 2, 4 and 5 of the
protocol in :mod:`gridwatch.leases.manager`).

Every write here is compare-and-set on the revision the
:class:`~gridwatch.leases.view.ClusterView` saw; the view only says which writes are worth
trying. A claim from a session the view believes ended is preceded by a read at the stream
leader, and a hand-back stops the camera and renews (announces) before the lease is deleted.
Its own module so that the rules that decide who moves which camera (fair share, no churn,
damped herds) read in one place.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable

from gridwatch.leases.kv import CasConflict, cas_delete, cas_put
from gridwatch.leases.records import LEASES_BUCKET, WORKERS_BUCKET, LeaseRecord, WorkerRecord
from gridwatch.leases.session import LeaseSession
from gridwatch.leases.state import T

log = logging.getLogger(__name__)


class LeaseClaims(LeaseSession[T]):
    """Claims free cameras up to the worker's share, hands back surplus, fences silent workers."""

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

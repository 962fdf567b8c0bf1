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

from gridwatch.leases.aio import cancel_and_wait
from gridwatch.leases.claims import LeaseClaims
from gridwatch.leases.kv import cas_delete, ensure_lease_buckets
from gridwatch.leases.records import WORKERS_BUCKET
from gridwatch.leases.state import Changes, T
from gridwatch.leases.stats import LeaseStats
from gridwatch.leases.view import ClusterView

__all__ = ["Changes", "LeaseManager", "LeaseStats"]

log = logging.getLogger(__name__)


class LeaseManager(LeaseClaims[T]):
    """Holds a session in ``gw_workers`` and the leases of the cameras this worker runs.

    Built in layers, one module each: :class:`~gridwatch.leases.state.LeaseState` (what it
    holds, the converge), :class:`~gridwatch.leases.session.LeaseSession` (the session),
    :class:`~gridwatch.leases.claims.LeaseClaims` (claims, hand-backs, fences); this class
    starts and stops them and answers the worker."""

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

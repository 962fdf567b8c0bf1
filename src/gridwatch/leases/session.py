"""The worker's session in ``gw_workers``: open it, renew it, stop every camera before it
can lapse (steps 1 and 3 of the protocol in :mod:`gridwatch.leases.manager`).

The renewal is also the worker's announcement of what it runs, so hand-backs
(:mod:`gridwatch.leases.claims`) renew before they delete a lease. Its own module because the
safety argument rests on these few functions: the local deadline is the *sent* time of the last
acknowledged renewal plus ``ttl_s``, and the guard stops the cameras ``margin_s`` before it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time

from gridwatch.leases.kv import CasConflict, cas_delete, cas_put
from gridwatch.leases.records import WORKERS_BUCKET, WorkerRecord, new_session
from gridwatch.leases.state import LeaseState, T

log = logging.getLogger(__name__)


class LeaseSession(LeaseState[T]):
    """Keeps the session in ``gw_workers`` alive (and the cameras stopped when it is not)."""

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

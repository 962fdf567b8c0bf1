"""Hot reload: a worker follows the camera registry and converges its running cameras on it.

The worker already knows how to converge (``Worker.apply_cameras``: start new cameras, stop
removed or disabled ones, restart changed ones, leave the rest alone). This module only keeps
an up-to-date picture of the bucket and hands it over, so a change reaches the cameras within
the debounce interval (0.2 s) plus a camera's own start-up.

Correctness first, then speed:

* **Full state, not deltas.** Each change is applied as "the registry now holds exactly these
  cameras", so a missed or repeated message cannot leave a camera running that was removed.
* **Validated again here.** A camera is checked with :func:`gridwatch.config.check_camera`
  against *this worker's* grids and schedules before it runs. A value that fails (written by
  hand with ``nats kv put``, or referring to a grid this worker's config lacks) is logged with
  every problem and ignored; if that camera was running, its last good version keeps running,
  because a typo must not switch a camera off.
* **Self-healing watch.** nats.py's KV watch is an ordered consumer whose recovery after a
  server restart is unreliable (see ``alerts/tail.py``). Rather than trusting it, the watcher
  checks every ``check_interval_s`` whether the bucket's stream has moved past the last
  revision it saw; if it has for two checks in a row, or the watch fails, it starts a fresh
  watch, whose first delivery is the whole current state.
* **Credentials.** Values hold their URLs with the password redacted and name a secret in
  ``gw_camera_secrets`` (see :mod:`gridwatch.registry.store`); the watcher fetches the secrets
  the current values name before validating, so a camera runs with the credentials written
  together with that revision. A value whose secret is missing is refused like an invalid one.
* **Debounced.** A bulk import writes hundreds of keys in a second or two; changes that arrive
  within ``debounce_s`` of each other are applied together.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import nats.errors
from nats.js.kv import KeyValue

from gridwatch.config import CameraConfig, ConfigError, GridwatchConfig, check_camera
from gridwatch.registry.store import CameraRegistry, watch_next, watch_stop

__all__ = ["ApplyCameras", "RegistryWatcher"]

log = logging.getLogger(__name__)

ApplyCameras = Callable[[list[CameraConfig]], Awaitable[dict[str, list[str]]]]
"""``Worker.apply_cameras``: converge on this list, return what was started/stopped/restarted."""


class _Resync(Exception):
    """The watch is no longer trustworthy: start a fresh one."""


@dataclass
class _Key:
    revision: int
    value: bytes | None  # None: removed


class RegistryWatcher:
    """Follows ``gw_cameras`` and calls ``apply`` with the valid cameras it holds."""

    def __init__(
        self,
        registry: CameraRegistry,
        config: GridwatchConfig,
        apply: ApplyCameras,
        *,
        debounce_s: float = 0.2,
        check_interval_s: float = 2.0,
        max_backoff_s: float = 10.0,
    ) -> None:
        self.registry = registry
        self.config = config
        self.apply = apply
        self.debounce_s = debounce_s
        self.check_interval_s = check_interval_s
        self.max_backoff_s = max_backoff_s
        self.synced = asyncio.Event()
        """Set once the first full state has been applied."""
        self.good: dict[str, CameraConfig] = {}
        """Last valid version of each present camera (what the worker is told to run)."""
        self.rejected: dict[str, str] = {}
        """Camera id → why its current value was refused."""
        self.resyncs = 0
        self.applies = 0
        self._keys: dict[str, _Key] = {}
        self._judged: dict[str, int] = {}  # key → revision already validated (log once)
        self._last_rev = 0

    # -- lifecycle -----------------------------------------------------------------------------

    @classmethod
    async def start(
        cls,
        registry: CameraRegistry,
        config: GridwatchConfig,
        apply: ApplyCameras,
        *,
        sync_timeout_s: float = 15.0,
        **kw: float,
    ) -> tuple[RegistryWatcher, asyncio.Task[None]]:
        """Start following and wait (bounded) for the first full state to be applied."""
        if config.cameras:
            log.warning(
                "the config lists %d camera(s) but registry.enabled is set: they are not run; "
                "copy them into the registry with `gridwatch camera import <config file>`",
                len(config.cameras),
            )
        watcher = cls(registry, config, apply, **kw)
        task = asyncio.create_task(watcher.run(), name="camera-registry")
        synced = asyncio.create_task(watcher.synced.wait())
        done, _ = await asyncio.wait(
            {synced, task}, timeout=sync_timeout_s, return_when=asyncio.FIRST_COMPLETED
        )
        synced.cancel()
        if task in done:
            task.result()  # raise what killed it
        if not watcher.synced.is_set():
            log.warning(
                "camera registry: no full state within %.0fs; carrying on, cameras start as "
                "soon as it arrives",
                sync_timeout_s,
            )
        return watcher, task

    async def run(self) -> None:
        """Follow the bucket until cancelled; every failure leads to a fresh watch."""
        backoff = 0.2
        while True:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except _Resync as why:
                log.info("camera registry: %s; starting a fresh watch", why)
            except Exception as exc:
                log.warning("camera registry watch failed (%s: %s)", type(exc).__name__, exc)
                await asyncio.sleep(backoff)
                backoff = min(self.max_backoff_s, backoff * 2)
                continue
            backoff = 0.2
            self.resyncs += 1

    # -- the watch -----------------------------------------------------------------------------

    async def _follow(self) -> None:
        timeout = self.registry.op_timeout
        covered = await self.registry.last_sequence()  # the snapshot below includes up to here
        watcher = await asyncio.wait_for(self.registry.kv.watchall(), timeout)
        try:
            keys: dict[str, _Key] = {}
            while True:
                entry = await self._next(watcher, timeout)
                if entry is None:
                    break
                self._note(keys, entry)
            self._keys = keys
            self._last_rev = max(covered, self._last_rev_in(keys))
            await self._converge()
            self.synced.set()
            behind = 0
            while True:
                try:
                    entry = await self._next(watcher, self.check_interval_s)
                except nats.errors.TimeoutError:
                    last = await self.registry.last_sequence()
                    behind = behind + 1 if last > self._last_rev else 0
                    if behind >= 2:
                        why = f"bucket at revision {last}, watch at {self._last_rev}"
                        raise _Resync(why) from None
                    continue
                if entry is None:
                    continue
                self._note(self._keys, entry)
                await self._drain_burst(watcher)
                await self._converge()
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(watch_stop(watcher), timeout)

    @staticmethod
    async def _next(watcher: KeyValue.KeyWatcher, wait_s: float) -> KeyValue.Entry | None:
        """The next entry, None for the end-of-snapshot marker; TimeoutError when quiet."""
        item = await watch_next(watcher, wait_s)
        if item is None or isinstance(item, KeyValue.Entry):
            return item
        raise _Resync("the watch was stopped")

    async def _drain_burst(self, watcher: KeyValue.KeyWatcher) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.debounce_s
        while (remaining := deadline - loop.time()) > 0:
            try:
                entry = await self._next(watcher, remaining)
            except nats.errors.TimeoutError:
                return
            if entry is not None:
                self._note(self._keys, entry)

    def _note(self, keys: dict[str, _Key], entry: KeyValue.Entry) -> None:
        rev = int(entry.revision or 0)
        self._last_rev = max(self._last_rev, rev)
        removed = entry.operation in ("DEL", "PURGE")
        keys[entry.key] = _Key(rev, None if removed else (entry.value or b""))

    @staticmethod
    def _last_rev_in(keys: dict[str, _Key]) -> int:
        return max((k.revision for k in keys.values()), default=0)

    # -- validation and convergence ------------------------------------------------------------

    def _judge(self, key: str, item: _Key) -> CameraConfig | None:
        """The camera in ``item`` if valid; otherwise None, with its problems logged once."""
        assert item.value is not None
        first_time = self._judged.get(key) != item.revision
        self._judged[key] = item.revision
        try:
            data = self.registry.resolve(item.value)  # clear URLs from gw_camera_secrets
            camera = check_camera(data, self.config, path=())
            if camera.id != key:
                raise ValueError(f"key {key!r} holds camera id {camera.id!r}")
        except (ConfigError, ValueError) as exc:
            problems = (
                "; ".join(f"{i.field}: {i.message}" for i in exc.issues)
                if isinstance(exc, ConfigError)
                else str(exc)
            )
            self.rejected[key] = problems
            if first_time:
                kept = " (its last valid version keeps running)" if key in self.good else ""
                log.error("camera registry: %s rev %d refused%s: %s", key, item.revision, kept,
                          problems)  # fmt: skip
            return None
        self.rejected.pop(key, None)
        return camera

    async def _converge(self) -> None:
        # the credentials the values name (a failure here resyncs, like a failed watch)
        await self.registry.load_credentials([k.value for k in self._keys.values() if k.value])
        good: dict[str, CameraConfig] = {}
        for key, item in sorted(self._keys.items()):
            if item.value is None:
                self.rejected.pop(key, None)
                continue
            camera = self._judge(key, item)
            if camera is not None:
                good[key] = camera
            elif key in self.good:
                good[key] = self.good[key]
        self.good = good
        changes = await self.apply(list(good.values()))
        self.applies += 1
        if any(changes.values()):
            log.info(
                "camera registry applied: started %s, stopped %s, restarted %s (%d cameras)",
                changes.get("started", []),
                changes.get("stopped", []),
                changes.get("restarted", []),
                len(good),
            )

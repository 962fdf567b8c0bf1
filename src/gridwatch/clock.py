"""The clocks a camera loop runs on: the system's, or a virtual one for replay.

The camera loop (:mod:`gridwatch.worker.pipeline`) never reads ``time`` or ``asyncio`` directly: it
asks its clock for the wall time (what rules and schedules see), a monotonic time (pacing,
staleness, the analyser's refresh and memory) and to sleep. Live, that is the system clock.
Replay and evaluation inject a :class:`VirtualClock` whose ``sleep`` moves time forward at
once, so the one loop a worker runs also runs over a recorded clip as fast as the CPU allows
and gives the same result every time; :class:`PacedClock` does the same at the clip's own
pace (``gridwatch replay --realtime``).

>>> import asyncio
>>> clock = VirtualClock(start_wall=1000.0)
>>> asyncio.run(clock.sleep(2.5))
>>> clock.mono(), clock.wall()
(2.5, 1002.5)
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    """What the camera loop asks of time."""

    def wall(self) -> float:
        """Unix seconds: the timestamps rules, schedules and alerts carry."""
        ...

    def mono(self) -> float:
        """Monotonic seconds: pacing, frame age, staleness."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Let ``seconds`` pass (and let other tasks run)."""
        ...


class SystemClock:
    """The live clock: ``time.time``, ``time.monotonic``, ``asyncio.sleep``."""

    def wall(self) -> float:
        return time.time()

    def mono(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class VirtualClock:
    """Time that passes only when the loop sleeps: deterministic and as fast as the CPU.

    ``mono()`` starts at 0 (seconds into the clip); ``wall()`` is ``start_wall`` plus that.
    """

    def __init__(self, start_wall: float) -> None:
        self.start_wall = float(start_wall)
        self._now = 0.0

    def wall(self) -> float:
        return self.start_wall + self._now

    def mono(self) -> float:
        return self._now

    def advance_to(self, t: float) -> None:
        """Move time forward to ``t`` (never backward)."""
        self._now = max(self._now, float(t))

    async def sleep(self, seconds: float) -> None:
        self._now += max(0.0, seconds)
        await asyncio.sleep(0)  # still a scheduling point, as a real sleep is


class PacedClock(VirtualClock):
    """A virtual clock that also waits for real: the clip plays at its own rate."""

    def __init__(self, start_wall: float) -> None:
        super().__init__(start_wall)
        self._origin = time.monotonic()

    async def sleep(self, seconds: float) -> None:
        self._now += max(0.0, seconds)
        delay = self._origin + self._now - time.monotonic()
        await asyncio.sleep(max(0.0, delay))

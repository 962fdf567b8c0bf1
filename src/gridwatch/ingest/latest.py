"""A one-slot "latest frame wins" buffer between a decoder thread and the analysis loop.

Ingest must never wait for analysis: when the detector is slower than the camera, the newest
frame replaces the one not yet taken and the drop is counted (Frigate's capture loop does the
same). The video never falls behind; the analysis rate drops instead.

>>> slot: LatestSlot[int] = LatestSlot()
>>> slot.put(1); slot.put(2)
>>> slot.take(), slot.dropped, slot.take()
(2, 1, None)
"""

from __future__ import annotations

import threading
from typing import Generic, TypeVar

T = TypeVar("T")


class LatestSlot(Generic[T]):
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: T | None = None
        self.put_count = 0
        self.dropped = 0

    def put(self, item: T) -> None:
        with self._cond:
            if self._item is not None:
                self.dropped += 1
            self._item = item
            self.put_count += 1
            self._cond.notify_all()

    @property
    def pending(self) -> bool:
        """Whether an item waits to be taken."""
        return self._item is not None

    def take(self, timeout: float | None = None) -> T | None:
        """The newest item, or None when nothing new arrives within ``timeout`` seconds."""
        with self._cond:
            if self._item is None and timeout:
                self._cond.wait_for(lambda: self._item is not None, timeout)
            item, self._item = self._item, None
            return item

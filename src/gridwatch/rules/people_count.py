"""The count of people in a zone that the counting rules share (gathering, density), as the
crowding rule counts: feet inside the polygon, the model's person classes only, and the median
over the last ``window_s`` seconds of observations so one missed or doubled box does not move
it. The rules are fed the crowd counter's people (``counts_people``), as crowding is.

>>> from gridwatch.model import Detections
>>> zc = ZoneCount(Zone("z", [(0, 0), (1, 0), (1, 1), (0, 1)]), window_s=2.0)
>>> two = Detections.from_arrays(xyxy=[[0, 0, 10, 10], [20, 0, 30, 10]], confidence=[.9, .9],
...                              class_id=[0, 0], image_size=(100, 100))
>>> [zc.update(d, t)[0] for t, d in enumerate([two, two, two.select(np.array([0])), two])]
[2, 2, 2, 2]
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection

import numpy as np

from gridwatch.model import Detections
from gridwatch.rules.base import Box
from gridwatch.rules.zones import Zone


class ZoneCount:
    """People whose feet are in ``zone``, smoothed by a median over ``window_s``."""

    def __init__(
        self, zone: Zone, *, window_s: float, person_classes: Collection[int] | None = None
    ) -> None:
        self.zone = zone
        self.window_s = window_s
        self._classes = None if person_classes is None else np.array(sorted(person_classes))
        self._window: deque[tuple[float, int]] = deque()

    def raw(self, detections: Detections) -> tuple[int, tuple[Box, ...]]:
        """This frame's people in the zone and their normalized boxes."""
        if len(detections) == 0:
            return 0, ()
        keep = self.zone.contains(detections.anchors_normalized())
        if self._classes is not None:
            keep &= np.isin(detections.class_id, self._classes)
        boxes = detections.xyxyn()[keep]
        return int(keep.sum()), tuple(
            (float(b[0]), float(b[1]), float(b[2]), float(b[3])) for b in boxes
        )

    def update(self, detections: Detections, ts: float) -> tuple[int, tuple[Box, ...]]:
        """The smoothed count at ``ts`` (the lower middle of an even number, like crowding's:
        a one-frame spike never raises it) and this frame's boxes."""
        count, boxes = self.raw(detections)
        if self.window_s <= 0:
            return count, boxes
        self._window.append((ts, count))
        while self._window and ts - self._window[0][0] > self.window_s:
            self._window.popleft()
        values = sorted(c for _, c in self._window)
        return values[(len(values) - 1) // 2], boxes

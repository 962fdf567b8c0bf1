"""Loitering: one tracked person inside a zone for at least ``min_dwell_s``.

The dwell is measured in timestamps and survives occlusions up to ``max_gap_s`` (see
:mod:`gridwatch.rules.dwell` for the shared state machine and :mod:`gridwatch.rules.tracks` for
how a person keeps their dwell when the tracker gives them a new id). People walking through the
zone never dwell long enough; a person waiting at a school gate for ten minutes does.

Tracks matter here: at 2 analysed frames per second ByteTrack confirms few *walkers*, but people
standing still are tracked reliably at any rate, and those are the ones loitering.

>>> import numpy as np
>>> from gridwatch.model import Detections
>>> from gridwatch.rules.zones import Zone
>>> rule = LoiteringRule(Zone("gate", [(0, 0), (1, 0), (1, 1), (0, 1)]),
...                      DwellParams(min_dwell_s=3, clear_after_s=1))
>>> p = Detections.from_arrays(xyxy=[[10, 10, 20, 40]], confidence=[.9], class_id=[0],
...                            tracker_id=[1], image_size=(100, 100))
>>> [(t, e.type, e.state.value) for t in range(5) for e in rule.update(p, t)]
[(3, 'loitering', 'raised')]
"""

from __future__ import annotations

from collections.abc import Collection

from gridwatch.rules.base import ScheduleLike
from gridwatch.rules.dwell import DwellParams, DwellRule
from gridwatch.rules.zones import Zone

__all__ = ["DwellParams", "LoiteringRule"]


class LoiteringRule(DwellRule):
    type = "loitering"

    def __init__(
        self,
        zone: Zone,
        params: DwellParams,
        *,
        schedule: ScheduleLike | None = None,
        person_classes: Collection[int] | None = None,
        class_names: dict[int, str] | None = None,
    ) -> None:
        super().__init__(
            "loitering",
            zone,
            params,
            schedule=schedule,
            classes=person_classes,
            class_names=class_names,
        )

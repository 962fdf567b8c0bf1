"""Intrusion: a person (or a configured class) enters a zone during its schedule (school
grounds at night). One incident per entry episode, not per frame and not per person.

What counts as *entered*: a tracked object whose feet are in the zone and that either was seen
outside the zone first or has moved at least ``min_travel`` of its own height since it was first
seen. The second condition is what keeps static false positives quiet: the default model calls a
jacket lying on the grass a (fallen) person on nearly every vtest frame, and a detector finds
"people" in posters, statues and shop dummies. Those never walk in. A real intruder who is
already standing motionless in the zone when the schedule starts is caught as soon as they
move half a body height.

The episode: ``raised`` once someone has been in for ``min_duration_s`` (dips shorter than
``onset_gap_s`` do not restart it), ``updated`` when the number inside changes, ``cleared``
``clear_after_s`` after the zone is empty again or when the schedule window closes.

>>> import numpy as np
>>> from gridwatch.model import Detections
>>> from gridwatch.rules.zones import Zone
>>> rule = IntrusionRule(Zone("yard", [(0, .5), (1, .5), (1, 1), (0, 1)]),
...                      IntrusionParams(min_duration_s=1, clear_after_s=2))
>>> def at(y):
...     return Detections.from_arrays(xyxy=[[40, y - 20, 50, y]], confidence=[.9], class_id=[0],
...                                   tracker_id=[5], image_size=(100, 100))
>>> walk = [at(30), at(45), at(60), at(70), at(80)] + [Detections.empty((100, 100))] * 3
>>> [(t, e.state.value) for t, d in enumerate(walk) for e in rule.update(d, float(t))]
[(3, 'raised'), (6, 'cleared')]
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass

import numpy as np

from gridwatch.model import Detections, IncidentEvent
from gridwatch.rules.base import Always, Box, Episode, EpisodeParams, ScheduleLike
from gridwatch.rules.tracks import TrackTable, tracked
from gridwatch.rules.zones import Zone


@dataclass(frozen=True)
class IntrusionParams:
    min_duration_s: float = 1.0
    clear_after_s: float = 10.0
    onset_gap_s: float = 1.0
    update_interval_s: float = 5.0
    min_travel: float = 0.5
    """Movement, in the object's own box heights, that makes an object found inside count."""
    track_keep_s: float = 5.0

    def __post_init__(self) -> None:
        EpisodeParams(
            self.min_duration_s, self.clear_after_s, self.onset_gap_s, self.update_interval_s
        )
        if self.min_travel < 0 or self.track_keep_s < 0:
            raise ValueError("min_travel and track_keep_s must not be negative")


@dataclass
class _Entry:
    first_px: tuple[float, float]
    seen_outside: bool = False
    moved: bool = False

    @property
    def entered(self) -> bool:
        return self.seen_outside or self.moved


class IntrusionRule:
    type = "intrusion"

    def __init__(
        self,
        zone: Zone,
        params: IntrusionParams,
        *,
        schedule: ScheduleLike | None = None,
        classes: Collection[int] | None = None,
        class_names: dict[int, str] | None = None,
    ) -> None:
        self.zone = zone
        self.params = params
        self.rule_key = f"{self.type}/{zone.id}"
        self._schedule: ScheduleLike = schedule or Always()
        self._classes = None if classes is None else frozenset(classes)
        self._names = class_names or {}
        self.tracks: TrackTable[_Entry] = TrackTable(keep_s=params.track_keep_s)
        self._episode = Episode(
            self.rule_key,
            self.type,
            zone.id,
            EpisodeParams(
                params.min_duration_s,
                params.clear_after_s,
                params.onset_gap_s,
                params.update_interval_s,
            ),
        )

    @property
    def phase(self) -> str:
        return self._episode.phase.value

    def count_in_zone(self, detections: Detections) -> tuple[int, tuple[Box, ...]]:
        if len(detections) == 0:
            return 0, ()
        keep = self.zone.contains(detections.anchors_normalized())
        if self._classes is not None:
            keep &= np.isin(detections.class_id, np.fromiter(self._classes, np.int64))
        boxes = detections.xyxyn()[keep]
        return int(keep.sum()), tuple(tuple(float(v) for v in b) for b in boxes)  # type: ignore[misc]

    def update(self, detections: Detections | None, ts: float) -> list[IncidentEvent]:
        p = self.params
        scheduled = self._schedule.is_active(ts)
        inside: list[tuple[int, str, Box]] = []
        if detections is not None:
            objs = tracked(detections, self._classes)
            for obj, st in self.tracks.observe(objs, ts, lambda o: _Entry(o.anchor_px)):
                is_in = bool(self.zone.contains(np.array([obj.anchor], np.float32))[0])
                if not is_in:
                    st.seen_outside = True
                elif not st.moved:
                    travel = math.dist(obj.anchor_px, st.first_px)
                    st.moved = travel >= p.min_travel * max(obj.height_px, 1.0)
                if is_in and st.entered:
                    inside.append((obj.track_id, self._names.get(obj.class_id, ""), obj.box))
        else:
            self.tracks.expire(ts)
        details = {
            "tracks": sorted(t for t, _, _ in inside),
            "classes": sorted({n for _, n, _ in inside if n}),
        }
        return self._episode.step(
            ts,
            bool(inside),
            observed=detections is not None,
            scheduled=scheduled,
            count=len(inside),
            boxes=tuple(b for _, _, b in inside),
            details=details,
            clear_reason="zone_empty",
        )

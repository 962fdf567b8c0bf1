"""Dwell in a zone: the shared core of ``loitering`` (people) and ``vehicle_stop`` (vehicles).

Per track: when its feet (a vehicle's bottom-centre) entered the zone and when it was last seen
there. A gap of up to ``max_gap_s`` (an occlusion, a missed detection, a new tracker id picked
up where the old one was lost, which the camera's stitcher gives the old one's stable id, see
:mod:`gridwatch.tracking.tracks`) keeps the dwell running; a longer gap restarts it. An object
that has dwelt ``min_dwell_s`` is *dwelling*.

The incident is per zone, not per object: ``raised`` when the first object has dwelt long
enough (``started_at`` = when it entered), ``updated`` when the number dwelling changes,
``cleared`` ``clear_after_s`` after the last one left (a departure is only known once
``max_gap_s`` has passed without a sighting: last seen at 6 s, ``max_gap_s`` 2 and
``clear_after_s`` 2 clear at 10 s). Three people loitering at a gate are one
incident with a count of three, as three people crowding are, not three alerts.

Overlapping tracks of one object (a detector that calls a van both ``car`` and ``truck``) are
counted once: dwelling boxes overlapping by IoU ≥ ``merge_iou`` are merged.

>>> import numpy as np
>>> from gridwatch.model import Detections
>>> from gridwatch.rules.zones import Zone
>>> from gridwatch.rules.loitering import LoiteringRuleConfig
>>> cfg = LoiteringRuleConfig(type="loitering", zone="z", min_dwell_s=5, max_gap_s=2,
...                           clear_after_s=2)
>>> rule = DwellRule("loitering", Zone("z", [(0, 0), (1, 0), (1, 1), (0, 1)]), cfg)
>>> one = Detections.from_arrays(xyxy=[[10, 10, 20, 40]], confidence=[.9], class_id=[0],
...                              tracker_id=[3], image_size=(100, 100))
>>> empty = Detections.empty((100, 100))
>>> [(t, e.state.value) for t in range(12) for e in rule.update(one if t < 7 else empty, t)]
[(5, 'raised'), (10, 'cleared')]
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from gridwatch.geometry import iou
from gridwatch.model import Detections, IncidentEvent, Track
from gridwatch.rules.base import Always, Box, Episode, EpisodeParams, ScheduleLike
from gridwatch.rules.zones import Zone
from gridwatch.tracking.tracks import TrackState, TrackStitcher, rule_tracks


class DwellConfig(Protocol):
    """The settings loitering and vehicle_stop share (their config models have them)."""

    @property
    def min_dwell_s(self) -> float: ...
    @property
    def max_gap_s(self) -> float: ...
    @property
    def clear_after_s(self) -> float: ...
    @property
    def update_interval_s(self) -> float: ...
    @property
    def severity(self) -> str: ...


@dataclass
class _Dwell:
    entered: float | None = None
    last_in: float = 0.0


class DwellRule:
    """Objects of ``classes`` (ids; ``None`` = all) dwelling in a zone. See the module doc."""

    counts_people = False
    MERGE_IOU = 0.6
    """Dwelling boxes overlapping this much are one object (a van called car and truck)."""

    def __init__(
        self,
        type: str,
        zone: Zone,
        params: DwellConfig,
        *,
        schedule: ScheduleLike | None = None,
        classes: Collection[int] | None = None,
        class_names: dict[int, str] | None = None,
    ) -> None:
        self.type = type
        self.zone = zone
        self.params = params
        self.rule_key = f"{type}/{zone.id}"
        self._schedule: ScheduleLike = schedule or Always()
        self._classes = None if classes is None else frozenset(classes)
        self._names = class_names or {}
        # a dwell survives a gap of max_gap_s, so a track's state must live that long unseen
        self.tracks: TrackState[_Dwell] = TrackState(keep_s=params.max_gap_s)
        self._solo = TrackStitcher(keep_s=params.max_gap_s)
        """Stitches this rule's tracks when it is used on its own (no camera stitched them)."""
        self._episode = Episode(
            self.rule_key,
            type,
            zone.id,
            EpisodeParams(0.0, params.clear_after_s, 0.0, params.update_interval_s),
            severity=params.severity,
        )

    @property
    def phase(self) -> str:
        return self._episode.phase.value

    @property
    def track_keep_s(self) -> float:
        return self.params.max_gap_s

    @property
    def track_classes(self) -> frozenset[int] | None:
        return self._classes

    def count_in_zone(self, detections: Detections) -> tuple[int, tuple[Box, ...]]:
        if len(detections) == 0:
            return 0, ()
        keep = self.zone.contains(detections.anchors_normalized())
        if self._classes is not None:
            keep &= np.isin(detections.class_id, np.fromiter(self._classes, np.int64))
        boxes = detections.xyxyn()[keep]
        return int(keep.sum()), tuple(tuple(float(v) for v in b) for b in boxes)  # type: ignore[misc]

    def close(self, ts: float, reason: str) -> list[IncidentEvent]:
        return self._episode.force_clear(ts, reason)

    def update(
        self, detections: Detections | None, ts: float, tracks: Sequence[Track] | None = None
    ) -> list[IncidentEvent]:
        p = self.params
        scheduled = self._schedule.is_active(ts)
        if detections is not None and scheduled:
            objs = rule_tracks(detections, ts, tracks, self._classes, self._solo)
            for obj, st in self.tracks.observe(objs, ts, lambda o: _Dwell()):
                if self.zone.contains(np.array([obj.anchor], np.float32))[0]:
                    if st.entered is None or ts - st.last_in > p.max_gap_s:
                        st.entered = ts
                    st.last_in = ts
        elif not scheduled:
            self.tracks.clear()  # out of schedule: forget everything
        else:
            self.tracks.expire(ts)
        dwelling: list[tuple[float, Track]] = []
        for _, st, _, last in self.tracks.items():
            if (
                st.entered is not None
                and ts - st.last_in <= p.max_gap_s
                and st.last_in - st.entered >= p.min_dwell_s
            ):
                dwelling.append((st.entered, last))
        merged = _merge(dwelling, self.MERGE_IOU)
        onset = min((e for e, _ in merged), default=None)
        details = {
            "min_dwell_s": p.min_dwell_s,
            "dwell_s": round(ts - onset, 1) if onset is not None else 0.0,
            "tracks": sorted(o.track_id for _, o in merged),
            "classes": sorted({self._names.get(o.class_id, str(o.class_id)) for _, o in merged}),
        }
        observed = detections is not None
        return self._episode.step(
            ts,
            bool(merged),
            observed=observed,
            scheduled=scheduled,
            count=len(merged) if observed else 0,
            boxes=tuple(o.box for _, o in merged) if observed else (),
            details=details,
            onset=onset,
            clear_reason="left_zone",
        )


def _merge(items: list[tuple[float, Track]], min_iou: float) -> list[tuple[float, Track]]:
    """Keep one of each group of overlapping boxes (the longest dwelling)."""
    kept: list[tuple[float, Track]] = []
    for entered, obj in sorted(items, key=lambda x: (x[0], x[1].track_id)):
        if all(iou(obj.box, k.box) < min_iou for _, k in kept):
            kept.append((entered, obj))
    return kept

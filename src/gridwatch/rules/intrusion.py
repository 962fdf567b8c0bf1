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
...                      IntrusionRuleConfig(type="intrusion", zone="yard", min_duration_s=1,
...                                          clear_after_s=2))
>>> def at(y):
...     return Detections.from_arrays(xyxy=[[40, y - 20, 50, y]], confidence=[.9], class_id=[0],
...                                   tracker_id=[5], image_size=(100, 100))
>>> walk = [at(30), at(45), at(60), at(70), at(80)] + [Detections.empty((100, 100))] * 3
>>> [(t, e.state.value) for t, d in enumerate(walk) for e in rule.update(d, float(t))]
[(3, 'raised'), (6, 'cleared')]
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import Field

from gridwatch.model import Detections, IncidentEvent, Track
from gridwatch.rules.base import Always, Box, Episode, EpisodeParams, RuleContext, ScheduleLike
from gridwatch.rules.settings import (
    RuleSettings,
    classes_field,
    clear_after_field,
    update_interval_field,
)
from gridwatch.rules.zones import Zone
from gridwatch.tracking.tracks import TrackState, TrackStitcher, rule_tracks


class IntrusionRuleConfig(RuleSettings):
    type: Literal["intrusion"] = Field(title="Type", description="Rule type.")
    zone: str = Field(title="Zone", description="Id of a zone of this camera.")
    min_duration_s: float = Field(
        default=1.0,
        ge=0,
        title="Minimum duration",
        description="Seconds someone must be inside before an alert (filters a one-frame box).",
    )
    onset_gap_s: float = Field(
        default=1.0,
        ge=0,
        title="Onset gap",
        description="Missed detections shorter than this do not restart the onset timer.",
    )
    clear_after_s: float = clear_after_field(10.0, "with the zone empty")
    update_interval_s: float = update_interval_field()
    min_travel: float = Field(
        default=0.5,
        ge=0,
        title="Minimum travel",
        description="An object first seen inside counts once it has moved this many of its own "
        "box heights (static look-alikes such as a jacket on the grass never do).",
    )
    classes: list[str] | None = classes_field("the model's person classes")


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
    Config = IntrusionRuleConfig
    counts_people = False
    TRACK_KEEP_S = 5.0
    """Seconds a lost track's state is kept (for a new id that the camera's stitcher links to
    it to carry on)."""

    def __init__(
        self,
        zone: Zone,
        params: IntrusionRuleConfig,
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
        self.tracks: TrackState[_Entry] = TrackState(keep_s=self.TRACK_KEEP_S)
        self._solo = TrackStitcher(keep_s=self.TRACK_KEEP_S)
        """Stitches this rule's tracks when it is used on its own (no camera stitched them)."""
        self._episode = Episode(
            self.rule_key,
            self.type,
            zone.id,
            EpisodeParams.of(params),
            severity=params.severity,
        )

    @classmethod
    def from_config(cls, cfg: IntrusionRuleConfig, ctx: RuleContext) -> IntrusionRule:
        return cls(
            ctx.zone(cfg.zone),
            cfg,
            schedule=ctx.schedule,
            classes=ctx.classes(cfg.classes, ctx.person_classes),
            class_names=ctx.names,
        )

    def close(self, ts: float, reason: str) -> list[IncidentEvent]:
        return self._episode.force_clear(ts, reason)

    @property
    def phase(self) -> str:
        return self._episode.phase.value

    @property
    def track_keep_s(self) -> float:
        return self.TRACK_KEEP_S

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

    def update(
        self, detections: Detections | None, ts: float, tracks: Sequence[Track] | None = None
    ) -> list[IncidentEvent]:
        p = self.params
        scheduled = self._schedule.is_active(ts)
        inside: list[tuple[int, str, Box]] = []
        if detections is not None:
            objs = rule_tracks(detections, ts, tracks, self._classes, self._solo)
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

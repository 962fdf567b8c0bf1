"""Fall: a tracked person changes from upright to fallen and stays down ``min_duration_s``.

"Down" is the model's fall class where it has one (the default model's ``Fall``), otherwise a
box wider than tall by ``lying_aspect``. "Upright" is a person box taller than wide by
``upright_aspect`` that is not down.

Why the person must be seen upright first: the default model labels a jacket lying on the vtest
grass ``Fall`` on nearly every frame, and a sand heap now and then. Those never stood up, so
they never raise. A track must have been observed upright for ``min_upright_s`` in total, and
its last upright observation must be at most ``max_transition_s`` before it went down.

Falling changes a box's shape so much that ByteTrack often loses the person and starts a new
track lying on the ground. The camera's stitcher (:mod:`gridwatch.tracking.tracks`) gives that
new track the stable id of a track lost within a box height of it, so it inherits the upright
past this rule kept for that id (for ``TRACK_KEEP_S``), unless the lying object overlaps
something that was lying there before anyone stood nearby (a never-upright down object seen
within ``STATIC_MEMORY_S``): then the rule starts the linked id afresh, for a person walking
past the jacket and lost behind the lamp post must not hand their upright past to the jacket.

A walker briefly misread as ``Fall`` (seen on vtest for up to 1.4 s) does not stay down for
``min_duration_s``. The incident is per zone (or per camera without a zone), like crowding:
two people down at once are one incident with a count of two.

>>> import numpy as np
>>> from gridwatch.model import Detections
>>> cfg = FallRuleConfig(type="fall", min_duration_s=2, min_upright_s=1, clear_after_s=2)
>>> rule = FallRule(None, cfg, fall_classes={1})
>>> def person(tid, box, cls):
...     return Detections.from_arrays(xyxy=[box], confidence=[.9], class_id=[cls],
...                                   tracker_id=[tid], image_size=(200, 200))
>>> seq = [person(1, [50, 20, 70, 80], 0)] * 3 + [person(2, [40, 60, 100, 82], 1)] * 4
>>> [(t, e.state.value) for t, d in enumerate(seq) for e in rule.update(d, float(t))]
[(5, 'raised')]
>>> jacket = person(9, [10, 150, 60, 170], 1)
>>> rule2 = FallRule(None, FallRuleConfig(type="fall", min_duration_s=2), fall_classes={1})
>>> [e for t in range(20) for e in rule2.update(jacket, float(t))]
[]
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import Field

from gridwatch.geometry import iou
from gridwatch.model import Detections, IncidentEvent, Track
from gridwatch.rules.base import Always, Box, Episode, EpisodeParams, RuleContext, ScheduleLike
from gridwatch.rules.settings import RuleSettings, clear_after_field, update_interval_field
from gridwatch.rules.zones import Zone
from gridwatch.tracking.tracks import (
    TrackState,
    TrackStitcher,
    of_classes,
    rule_tracks,
    tracks_of,
)

FALL_CLASS_NAMES = frozenset({"fall", "fallen", "falling", "fall_down", "falldown", "lying"})


def fall_class_ids(class_names: Mapping[int, str]) -> frozenset[int]:
    """The model's classes that mean "a person down".

    >>> sorted(fall_class_ids({0: "Normal", 1: "Fall"}))
    [1]
    >>> sorted(fall_class_ids({0: "person", 2: "car"}))
    []
    """
    return frozenset(i for i, n in class_names.items() if n.strip().lower() in FALL_CLASS_NAMES)


class FallRuleConfig(RuleSettings):
    type: Literal["fall"] = Field(title="Type", description="Rule type.")
    zone: str | None = Field(
        default=None, title="Zone", description="Id of a zone of this camera; none: anywhere."
    )
    min_duration_s: float = Field(
        default=5.0,
        ge=0,
        title="Minimum duration",
        description="Seconds a person must stay down before an alert.",
    )
    clear_after_s: float = clear_after_field(10.0, "with nobody down")
    onset_gap_s: float = Field(
        default=1.5,
        ge=0,
        title="Gap",
        description="Seconds a fallen person may go undetected and still count as down.",
    )
    update_interval_s: float = update_interval_field()
    min_upright_s: float = Field(
        default=1.0,
        ge=0,
        title="Minimum upright",
        description="Seconds a track must have been seen upright before a fall counts (a "
        "jacket on the grass never stood up).",
    )
    max_transition_s: float = Field(
        default=5.0,
        ge=0,
        title="Maximum transition",
        description="Longest time between the last upright and the first down observation.",
    )
    upright_aspect: float = Field(
        default=1.2, gt=0, title="Upright aspect", description="Box height/width of upright."
    )
    lying_aspect: float = Field(
        default=1.2,
        gt=0,
        title="Lying aspect",
        description="Box width/height taken as lying, for models without a fall class.",
    )


@dataclass
class _Person:
    upright_s: float = 0.0
    last_upright: float | None = None
    last_ts: float | None = None
    was_down: bool = False
    down_since: float | None = None
    last_down: float = 0.0
    ever_upright: bool = False


class FallRule:
    type = "fall"
    Config = FallRuleConfig
    counts_people = False
    TRACK_KEEP_S = 3.0
    """Seconds a lost track's state is kept (for a new id lying on the ground to take it over)."""
    STATIC_MEMORY_S = 30.0
    """Seconds a never-upright down object (a jacket on the grass) is remembered."""

    def __init__(
        self,
        zone: Zone | None,
        params: FallRuleConfig,
        *,
        schedule: ScheduleLike | None = None,
        person_classes: Collection[int] | None = None,
        fall_classes: Collection[int] = (),
        class_names: dict[int, str] | None = None,
    ) -> None:
        self.zone = zone
        self.params = params
        self.zone_id = zone.id if zone is not None else None
        self.rule_key = f"{self.type}/{zone.id if zone is not None else '*'}"
        self._schedule: ScheduleLike = schedule or Always()
        self._persons = None if person_classes is None else frozenset(person_classes)
        self._fall = frozenset(fall_classes)
        self._names = class_names or {}
        self.tracks: TrackState[_Person] = TrackState(keep_s=self.TRACK_KEEP_S)
        self._solo = TrackStitcher(keep_s=self.TRACK_KEEP_S)
        """Stitches this rule's tracks when it is used on its own (no camera stitched them)."""
        self._static: dict[int, tuple[Box, float]] = {}
        """Never-upright down objects: track id → (box, last seen). Bounded by expiry."""
        self._episode = Episode(
            self.rule_key,
            self.type,
            self.zone_id,
            EpisodeParams(0.0, params.clear_after_s, 0.0, params.update_interval_s),
            severity=params.severity,
        )

    @classmethod
    def from_config(cls, cfg: FallRuleConfig, ctx: RuleContext) -> FallRule:
        return cls(
            ctx.zone(cfg.zone) if cfg.zone is not None else None,
            cfg,
            schedule=ctx.schedule,
            person_classes=ctx.person_classes,
            fall_classes=fall_class_ids(ctx.class_names or {}),
            class_names=ctx.names,
        )

    def close(self, ts: float, reason: str) -> list[IncidentEvent]:
        return self._episode.force_clear(ts, reason)

    @property
    def track_keep_s(self) -> float:
        return self.TRACK_KEEP_S

    @property
    def track_classes(self) -> frozenset[int] | None:
        return self._persons

    @property
    def phase(self) -> str:
        return self._episode.phase.value

    def _in_zone(self, obj: Track) -> bool:
        return self.zone is None or bool(self.zone.contains(np.array([obj.anchor], np.float32))[0])

    def count_in_zone(self, detections: Detections) -> tuple[int, tuple[Box, ...]]:
        objs = [o for o in of_classes(tracks_of(detections), self._persons) if self._in_zone(o)]
        return len(objs), tuple(o.box for o in objs)

    def is_down(self, obj: Track) -> bool:
        if self._fall:
            return obj.class_id in self._fall
        return obj.width_px >= self.params.lying_aspect * obj.height_px

    def is_upright(self, obj: Track) -> bool:
        return not self.is_down(obj) and obj.height_px >= self.params.upright_aspect * max(
            obj.width_px, 1.0
        )

    def _linkable(self, state: _Person, obj: Track) -> bool:
        """May ``obj``, whose id was just linked to a lost track, keep that track's ``state``?"""
        if not state.ever_upright:
            return True  # inheriting nothing useful, harmless
        if self.is_down(obj):
            return not any(iou(obj.box, box) > 0.3 for box, _ in self._static.values())
        return True

    def update(
        self, detections: Detections | None, ts: float, tracks: Sequence[Track] | None = None
    ) -> list[IncidentEvent]:
        p = self.params
        scheduled = self._schedule.is_active(ts)
        for tid in [t for t, (_, seen) in self._static.items() if ts - seen > self.STATIC_MEMORY_S]:
            del self._static[tid]
        if detections is not None:
            objs = rule_tracks(detections, ts, tracks, self._persons, self._solo)
            seen = self.tracks.observe(objs, ts, lambda o: _Person())
            # an id the stitcher just linked that may not inherit its state starts afresh (the
            # veto looks at the static objects of earlier frames: decided before _observe)
            seen = [
                (o, self.tracks.renew(o.track_id, _Person()))
                if o.linked and not self._linkable(st, o)
                else (o, st)
                for o, st in seen
            ]
            for obj, st in seen:
                self._observe(obj, st, ts)
        else:
            self.tracks.expire(ts)
        fallen: list[tuple[float, Track]] = []
        for _, st, _, last in self.tracks.items():
            if (
                st.down_since is not None
                and ts - st.last_down <= p.onset_gap_s
                and st.last_down - st.down_since >= p.min_duration_s
                and self._in_zone(last)
            ):
                fallen.append((st.down_since, last))
        onset = min((s for s, _ in fallen), default=None)
        details = {
            "min_duration_s": p.min_duration_s,
            "tracks": sorted(o.track_id for _, o in fallen),
            "down_s": round(ts - onset, 1) if onset is not None else 0.0,
        }
        observed = detections is not None
        return self._episode.step(
            ts,
            bool(fallen),
            observed=observed,
            scheduled=scheduled,
            count=len(fallen) if observed else 0,
            boxes=tuple(o.box for _, o in fallen) if observed else (),
            details=details,
            onset=onset,
            clear_reason="got_up_or_gone",
        )

    def _observe(self, obj: Track, st: _Person, ts: float) -> None:
        p = self.params
        down = self.is_down(obj)
        if down and not st.ever_upright:
            self._static[obj.track_id] = (obj.box, ts)
        if self.is_upright(obj):
            if st.last_ts is not None and st.last_upright == st.last_ts:
                st.upright_s += ts - st.last_ts
            st.last_upright = ts
            st.ever_upright = st.ever_upright or st.upright_s >= p.min_upright_s
            if st.down_since is not None and ts - st.last_down > p.onset_gap_s:
                st.down_since = None  # got up
        elif down and st.ever_upright and st.last_upright is not None:
            if st.down_since is None and ts - st.last_upright <= p.max_transition_s:
                st.down_since = ts
            if st.down_since is not None:
                st.last_down = ts
        st.last_ts = ts

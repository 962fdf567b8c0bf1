"""Line crossing: a directed line; counts crossings in and out per class, and alerts on
crossings in a forbidden direction or on too many crossings in a time window.

Direction. The line runs from ``a`` to ``b`` in normalized image coordinates (y down). Walking
from ``a`` to ``b`` on the screen, **in** is a crossing from the left-hand side to the right-hand
side; for a line drawn left to right that is moving *down* the picture, towards an elevated
camera.

A track's side is the sign of its feet's distance to the line; it changes only when the feet are
more than ``band`` (normalized) beyond the line, so a person standing on it does not count
dozens of crossings, and a crossing counts only when the step between the two confirmed sides
passes through the segment itself (not its extension). A track that the tracker loses and
re-finds under a new id on the other side keeps its side (the camera's stitcher gives the new id
the lost one's stable id, see :mod:`gridwatch.tracking.tracks`), unless the lost track was
walking (faster than ``WALKING_SPEED``) the other way: a jump against its walk is two people
passing each other on the line with ids swapped, which restarts the side instead of counting a
crossing.

Alerts (exactly one of the two per rule):

* ``forbidden_direction: in|out``: a crossing that way raises an incident; further ones within
  ``clear_after_s`` update it (a group walking the wrong way is one incident with a count),
  ``clear_after_s`` without one clears it;
* ``max_count: N`` (with ``window_s`` and ``count_direction``): raised while at least N
  crossings happened in the last ``window_s``; cleared ``clear_after_s`` after it drops below.

>>> import numpy as np
>>> from gridwatch.model import Detections
>>> cfg = LineCrossingRuleConfig(type="line_crossing", id="gate", line=((0, .5), (1, .5)),
...                              forbidden_direction="in", clear_after_s=2)
>>> rule = LineCrossingRule("gate", ((0.0, 0.5), (1.0, 0.5)), cfg)
>>> def at(y):
...     return Detections.from_arrays(xyxy=[[40, y - 20, 50, y]], confidence=[.9], class_id=[0],
...                                   tracker_id=[1], image_size=(100, 100))
>>> [(t, e.state.value) for t, y in enumerate([30, 40, 60, 70, 70, 70])
...  for e in rule.update(at(y), float(t))]
[(2, 'raised'), (4, 'cleared')]
>>> rule.counts
{'0': {'in': 1, 'out': 0}}
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from gridwatch.config.strict import Id
from gridwatch.model import Detections, IncidentEvent, Track
from gridwatch.rules.base import Always, Box, Episode, EpisodeParams, RuleContext, ScheduleLike
from gridwatch.rules.settings import RuleSettings, classes_field, clear_after_field
from gridwatch.rules.zones import Zone
from gridwatch.tracking.tracks import (
    TrackState,
    TrackStitcher,
    of_classes,
    rule_tracks,
    tracks_of,
)

Direction = Literal["in", "out"]
Point = tuple[float, float]


class LineCrossingRuleConfig(RuleSettings):
    type: Literal["line_crossing"] = Field(title="Type", description="Rule type.")
    id: Id = Field(
        title="Line id", description="Name of the line; alerts carry it as their zone_id."
    )
    line: tuple[tuple[float, float], tuple[float, float]] = Field(
        title="Line",
        description="Two normalized points [[x1, y1], [x2, y2]]. Walking from the first to the "
        "second on screen, 'in' is crossing from the left-hand side to the right-hand side "
        "(for a line drawn left to right: moving down the picture).",
    )
    forbidden_direction: Literal["in", "out"] | None = Field(
        default=None,
        title="Forbidden direction",
        description="Alert on every crossing this way (give this or max_count).",
    )
    max_count: int | None = Field(
        default=None,
        ge=1,
        title="Maximum count",
        description="Alert when this many crossings happen within window_s (give this or "
        "forbidden_direction).",
    )
    window_s: float = Field(
        default=60.0, gt=0, title="Window", description="Sliding window of max_count, seconds."
    )
    count_direction: Literal["in", "out", "both"] = Field(
        default="both", title="Count direction", description="Which crossings max_count counts."
    )
    band: float = Field(
        default=0.01,
        ge=0,
        le=0.2,
        title="Dead band",
        description="Normalized distance from the line within which a side is not decided "
        "(someone standing on the line does not count crossings).",
    )
    clear_after_s: float = clear_after_field(
        10.0, "without a further crossing (or below max_count)"
    )
    update_interval_s: float = Field(
        default=0.0,
        ge=0,
        title="Update interval",
        description="Minimum seconds between 'updated' messages (each new crossing updates).",
    )
    classes: list[str] | None = classes_field("the model's person classes")

    @field_validator("line")
    @classmethod
    def _line_ok(
        cls, v: tuple[tuple[float, float], tuple[float, float]]
    ) -> tuple[tuple[float, float], tuple[float, float]]:
        for i, (x, y) in enumerate(v):
            if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
                raise ValueError(f"point {i} ({x}, {y}) is outside 0..1")
        if v[0] == v[1]:
            raise ValueError("the two points of a line must differ")
        return v

    @model_validator(mode="after")
    def _one_trigger(self) -> LineCrossingRuleConfig:
        if (self.forbidden_direction is None) == (self.max_count is None):
            raise ValueError("give exactly one of forbidden_direction and max_count")
        return self


WALKING_SPEED = 0.03
"""Normalized units per second (23 px/s on a 768 px frame) above which a track is walking."""


@dataclass
class _Side:
    side: int = 0
    point: Point = (0.0, 0.0)
    """Where the feet were when ``side`` was last decided."""
    pos: Point | None = None
    pos_ts: float = 0.0
    vel: Point = (0.0, 0.0)
    """Smoothed velocity of the feet (about 1 s), to check that a jump between two track ids goes
    the way the lost track was walking."""


def _side(a: Point, b: Point, p: Point, band: float) -> int:
    """+1 right of a→b (on screen, y down), -1 left, 0 within ``band`` of the line."""
    dx, dy = b[0] - a[0], b[1] - a[1]
    cross = dx * (p[1] - a[1]) - dy * (p[0] - a[0])
    dist = cross / (math.hypot(dx, dy) or 1.0)
    if dist > band:
        return 1
    if dist < -band:
        return -1
    return 0


def _segments_intersect(p1: Point, p2: Point, a: Point, b: Point) -> bool:
    """Does the step p1→p2 cross the line's segment a–b (its extension does not count)?"""

    def orient(p: Point, q: Point, r: Point) -> float:
        return (q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0])

    d1, d2 = orient(a, b, p1), orient(a, b, p2)
    d3, d4 = orient(p1, p2, a), orient(p1, p2, b)
    return (d1 * d2 <= 0) and (d3 * d4 <= 0)


class LineCrossingRule:
    type = "line_crossing"
    Config = LineCrossingRuleConfig
    counts_people = False
    zone: Zone | None = None
    TRACK_KEEP_S = 3.0
    """Seconds a lost track's side is kept (for a new id that the camera's stitcher links to it
    to carry on)."""

    def __init__(
        self,
        line_id: str,
        line: tuple[Point, Point],
        params: LineCrossingRuleConfig,
        *,
        schedule: ScheduleLike | None = None,
        classes: Collection[int] | None = None,
        class_names: dict[int, str] | None = None,
    ) -> None:
        if line[0] == line[1]:
            raise ValueError("a line needs two different points")
        self.line_id = line_id
        self.zone_id = line_id
        self.a, self.b = line
        self.params = params
        self.rule_key = f"{self.type}/{line_id}"
        self._schedule: ScheduleLike = schedule or Always()
        self._classes = None if classes is None else frozenset(classes)
        self._names = class_names or {}
        self.tracks: TrackState[_Side] = TrackState(keep_s=self.TRACK_KEEP_S)
        self._solo = TrackStitcher(keep_s=self.TRACK_KEEP_S)
        """Stitches this rule's tracks when it is used on its own (no camera stitched them)."""
        self.counts: dict[str, dict[str, int]] = {}
        """Crossings since start, per class name and direction (in/out)."""
        self._window: deque[float] = deque()
        self._episode_crossings = 0
        self._episode = Episode(
            self.rule_key,
            self.type,
            line_id,
            EpisodeParams(0.0, params.clear_after_s, 0.0, params.update_interval_s),
            severity=params.severity,
        )

    @classmethod
    def from_config(cls, cfg: LineCrossingRuleConfig, ctx: RuleContext) -> LineCrossingRule:
        return cls(
            cfg.id,
            cfg.line,
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
        objs = of_classes(tracks_of(detections), self._classes)
        return len(objs), tuple(o.box for o in objs)

    def _crossings(self, objs: list[Track], ts: float) -> list[tuple[Direction, str, Box]]:
        band = self.params.band
        found: list[tuple[Direction, str, Box]] = []

        def new(o: object) -> _Side:
            return _Side()

        for obj, st in self.tracks.observe(objs, ts, new):
            p = obj.anchor
            if st.pos is not None:
                jump = (p[0] - st.pos[0], p[1] - st.pos[1])
                walking = math.hypot(*st.vel) >= WALKING_SPEED
                against = st.vel[0] * jump[0] + st.vel[1] * jump[1] <= 0
                if obj.linked and walking and against:
                    # a new id took over a lost track's state, but the jump goes against the way
                    # the lost track was walking: two people passing each other, not a crossing
                    st.side, st.point, st.pos, st.pos_ts, st.vel = 0, p, p, ts, (0.0, 0.0)
                    continue
                dt = ts - st.pos_ts
                if dt > 0:
                    a = min(1.0, dt)
                    st.vel = (
                        st.vel[0] + a * (jump[0] / dt - st.vel[0]),
                        st.vel[1] + a * (jump[1] / dt - st.vel[1]),
                    )
            st.pos, st.pos_ts = p, ts
            s = _side(self.a, self.b, p, band)
            if s == 0:
                continue
            if st.side != 0 and s != st.side and _segments_intersect(st.point, p, self.a, self.b):
                direction: Direction = "in" if s > 0 else "out"
                name = self._names.get(obj.class_id, str(obj.class_id))
                found.append((direction, name, obj.box))
            st.side, st.point = s, p
        return found

    def update(
        self, detections: Detections | None, ts: float, tracks: Sequence[Track] | None = None
    ) -> list[IncidentEvent]:
        p = self.params
        scheduled = self._schedule.is_active(ts)
        if detections is None:
            crossings = []
        else:
            objs = rule_tracks(detections, ts, tracks, self._classes, self._solo)
            crossings = self._crossings(objs, ts)
        if detections is None:
            self.tracks.expire(ts)
        for direction, name, _ in crossings:
            per = self.counts.setdefault(name, {"in": 0, "out": 0})
            per[direction] += 1
        if not scheduled:
            self._window.clear()
            return self._episode.step(ts, False, scheduled=False)
        if p.forbidden_direction is not None:
            bad = [c for c in crossings if c[0] == p.forbidden_direction]
            if not self._episode.active and self._episode.phase.value == "idle":
                self._episode_crossings = 0
            self._episode_crossings += len(bad)
            details: dict[str, Any] = {
                "forbidden_direction": p.forbidden_direction,
                "crossings": self._episode_crossings,
                "counts": {k: dict(v) for k, v in self.counts.items()},
            }
            return self._episode.step(
                ts,
                bool(bad),
                observed=detections is not None,
                count=self._episode_crossings,
                boxes=tuple(c[2] for c in bad),
                details=details,
                clear_reason="no_more_crossings",
            )
        # count mode
        for direction, _, _ in crossings:
            if p.count_direction in ("both", direction):
                self._window.append(ts)
        while self._window and ts - self._window[0] > p.window_s:
            self._window.popleft()
        n = len(self._window)
        assert p.max_count is not None
        details = {
            "max_count": p.max_count,
            "window_s": p.window_s,
            "count_direction": p.count_direction,
            "counts": {k: dict(v) for k, v in self.counts.items()},
        }
        return self._episode.step(
            ts,
            n >= p.max_count,
            observed=detections is not None,
            count=n,
            boxes=tuple(c[2] for c in crossings),
            details=details,
            clear_reason="below_threshold",
        )

"""Running: ``min_people`` or more tracked people faster than ``speed_mps`` for a duration.

Speed needs metres, so the camera needs a calibration (:mod:`gridwatch.calibration.ground`;
without one the rule refuses to build, :class:`~gridwatch.rules.base.RuleBuildError`). Each
track's foot point (the bottom-centre of its box) is mapped to the ground every frame; its
speed is the least-squares velocity over the last ``window_s`` seconds of those positions (one
jittery box moves it little), reported once the positions span half the window. Speeds above
``max_speed_mps`` are a box that jumped (an occlusion cut the legs off, two people swapped),
not a person, and are ignored. ``min_people`` above 1 alarms only on a scatter (several
people running at once: people fleeing something), not on one jogger.

A pure state machine over (detections, timestamp) with hysteresis both ways
(:class:`~gridwatch.rules.base.Episode`): raised once at least ``min_people`` runners have been
seen for ``min_duration_s`` (dips up to ``onset_gap_s`` keep the onset), cleared after
``clear_after_s`` with fewer. A track's positions are dropped when it has been unseen for
``window_s`` or when the camera's stitcher hands its id to a new tracker id (its last position
was someone else's box).

>>> from gridwatch.calibration.ground import GroundPlane
>>> from gridwatch.model import Detections
>>> plane = GroundPlane.from_points([(0, 0), (1, 0), (1, 1), (0, 1)],
...                                 [(0, 0), (50, 0), (50, 50), (0, 50)])   # 0.01 = 0.5 m
>>> cfg = RunningRuleConfig(type="running", speed_mps=3, window_s=1, min_duration_s=1,
...                         clear_after_s=1)
>>> rule = RunningRule(None, cfg, plane=plane)
>>> def at(x):   # a person whose feet are at x (percent of the width)
...     return Detections.from_arrays(xyxy=[[x, 40, x + 4, 80]], confidence=[.9],
...                                   class_id=[0], tracker_id=[1], image_size=(100, 100))
>>> xs = [0] * 10 + [i for i in range(1, 21)] + [20] * 20   # 1 s still, 2 s at 5 m/s, still
>>> [(round(i * 0.1, 1), e.state.value, e.details["speeds_mps"])
...  for i, x in enumerate(xs) for e in rule.update(at(x), i * 0.1)]
[(2.5, 'raised', [5.0]), (4.4, 'cleared', [])]
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from pydantic import Field

from gridwatch.calibration.ground import GroundPlane, speed_of
from gridwatch.model import Detections, IncidentEvent, Track
from gridwatch.rules.base import Always, Box, Episode, EpisodeParams, RuleContext, ScheduleLike
from gridwatch.rules.settings import (
    RuleSettings,
    classes_field,
    clear_after_field,
    min_duration_field,
    onset_gap_field,
    update_interval_field,
)
from gridwatch.rules.zones import Zone
from gridwatch.tracking.tracks import TrackState, TrackStitcher, rule_tracks

__all__ = ["RunningRule", "RunningRuleConfig"]


class RunningRuleConfig(RuleSettings):
    type: Literal["running"] = Field(title="Type", description="Rule type.")
    zone: str | None = Field(
        default=None,
        title="Zone",
        description="Id of a zone of this camera where runners count; none: the whole picture.",
    )
    speed_mps: float = Field(
        default=3.0,
        gt=0,
        le=15,
        title="Speed",
        description="Metres per second above which a person runs (walking is about 1.4; a "
        "jog about 2.5-3).",
    )
    max_speed_mps: float = Field(
        default=12.0,
        gt=0,
        title="Maximum speed",
        description="Speeds above this are a box that jumped, not a person, and are ignored.",
    )
    window_s: float = Field(
        default=2.0,
        gt=0,
        le=10,
        title="Speed window",
        description="Seconds of a track's ground positions its speed is fitted over (a box's "
        "feet jitter by a few pixels, tens of centimetres far from the camera: a longer fit "
        "steadies the speed, a shorter one sees a sprint sooner).",
    )
    min_people: int = Field(
        default=1,
        ge=1,
        title="Minimum people",
        description="Runners at once needed for an alert (above 1: only a scatter alarms).",
    )
    min_duration_s: float = min_duration_field(1.0, "the running")
    clear_after_s: float = clear_after_field(3.0, "with fewer than min_people running")
    onset_gap_s: float = onset_gap_field(0.5)
    update_interval_s: float = update_interval_field()
    classes: list[str] | None = classes_field("the model's person classes")


@dataclass
class _Path:
    samples: deque[tuple[float, float, float]] = field(default_factory=deque)
    speed: float | None = None


class RunningRule:
    """Runners (in a zone or anywhere) on one camera. See the module docstring."""

    type = "running"
    counts_people = False
    Config = RunningRuleConfig

    def __init__(
        self,
        zone: Zone | None,
        params: RunningRuleConfig,
        *,
        plane: GroundPlane,
        schedule: ScheduleLike | None = None,
        person_classes: Collection[int] | None = None,
    ) -> None:
        self.zone = zone
        self.params = params
        self.plane = plane
        self.rule_key = f"{self.type}/{zone.id if zone is not None else '*'}"
        self._schedule: ScheduleLike = schedule or Always()
        self._classes = None if person_classes is None else frozenset(person_classes)
        self.tracks: TrackState[_Path] = TrackState(keep_s=params.window_s)
        self._solo = TrackStitcher(keep_s=params.window_s)
        self._episode = Episode(
            self.rule_key,
            self.type,
            zone.id if zone is not None else None,
            EpisodeParams.of(params),
            severity=params.severity,
        )

    @classmethod
    def from_config(cls, cfg: RunningRuleConfig, ctx: RuleContext) -> RunningRule:
        return cls(
            ctx.zone(cfg.zone) if cfg.zone is not None else None,
            cfg,
            plane=ctx.ground(),
            schedule=ctx.schedule,
            person_classes=ctx.classes(cfg.classes, ctx.person_classes),
        )

    @property
    def phase(self) -> str:
        return self._episode.phase.value

    @property
    def track_keep_s(self) -> float:
        return self.params.window_s

    @property
    def track_classes(self) -> frozenset[int] | None:
        return self._classes

    def count_in_zone(self, detections: Detections) -> tuple[int, tuple[Box, ...]]:
        """People (of the rule's classes) whose feet are in the zone (all: no zone)."""
        if len(detections) == 0:
            return 0, ()
        keep = np.ones(len(detections), dtype=bool)
        if self.zone is not None:
            keep &= self.zone.contains(detections.anchors_normalized())
        if self._classes is not None:
            keep &= np.isin(detections.class_id, np.fromiter(self._classes, np.int64))
        boxes = detections.xyxyn()[keep]
        return int(keep.sum()), tuple(
            (float(b[0]), float(b[1]), float(b[2]), float(b[3])) for b in boxes
        )

    def runners(self, objs: Sequence[Track], ts: float) -> list[tuple[Track, float]]:
        """Record this frame's tracks' ground positions; the ones running now, with speeds."""
        p = self.params
        out: list[tuple[Track, float]] = []
        ground = self.plane.to_ground([o.anchor for o in objs]) if objs else None
        for i, (obj, path) in enumerate(self.tracks.observe(objs, ts, lambda o: _Path())):
            assert ground is not None
            x, y = ground[i]
            if obj.linked:  # a new tracker id took this id over: its old positions were not it
                path.samples.clear()
            if not (np.isfinite(x) and np.isfinite(y)):
                continue  # above the horizon: no ground position
            path.samples.append((ts, float(x), float(y)))
            while path.samples and ts - path.samples[0][0] > p.window_s:
                path.samples.popleft()
            path.speed = speed_of(path.samples, p.window_s / 2)
            if path.speed is None or not p.speed_mps <= path.speed <= p.max_speed_mps:
                continue
            if (
                self.zone is not None
                and not self.zone.contains(np.array([obj.anchor], np.float32))[0]
            ):
                continue
            out.append((obj, path.speed))
        return out

    def update(
        self, detections: Detections | None, ts: float, tracks: Sequence[Track] | None = None
    ) -> list[IncidentEvent]:
        p = self.params
        scheduled = self._schedule.is_active(ts)
        if detections is None or not scheduled:
            if scheduled:
                self.tracks.expire(ts)
            else:
                self.tracks.clear()
            return self._episode.step(ts, False, observed=False, scheduled=scheduled)
        objs = rule_tracks(detections, ts, tracks, self._classes, self._solo)
        running = self.runners(objs, ts)
        speeds = sorted((round(s, 1) for _, s in running), reverse=True)
        return self._episode.step(
            ts,
            len(running) >= p.min_people,
            count=len(running),
            boxes=tuple(o.box for o, _ in running),
            details={"speeds_mps": speeds, "speed_mps": p.speed_mps, "min_people": p.min_people},
            clear_reason="stopped_running",
        )

    def close(self, ts: float, reason: str) -> list[IncidentEvent]:
        return self._episode.force_clear(ts, reason)

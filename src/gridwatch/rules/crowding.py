"""Crowding: at least ``min_count`` people in a zone for ``min_duration_s``.

A pure state machine over (detections, timestamp): the same inputs always give the same
events, durations are measured in timestamps (never frame counts, which change with the
analysis rate), and one crowd gives exactly one incident:

* the count is the median of the zone's counts over the last ``count_window_s`` seconds of
  observations (0: the frame's own count), so one missed or doubled box does not move it;
* idle → pending when the count reaches ``min_count``; dips shorter than ``onset_gap_s`` keep
  the onset timer running (one missed detection does not restart a crowd);
* pending → raised after ``min_duration_s``, with ``started_at`` the onset;
* while raised, an ``updated`` event when the count changes, at most every
  ``update_interval_s``;
* raised → cleared after ``clear_after_s`` below the threshold (hysteresis), when the schedule
  window ends, or after ``clear_after_s`` with no observation at all (the camera went away).

>>> import numpy as np
>>> from gridwatch.model import Detections
>>> from gridwatch.rules.zones import Zone
>>> cfg = CrowdingRuleConfig(type="crowding", zone="z", min_count=2, min_duration_s=5,
...                          clear_after_s=3, count_window_s=0)
>>> rule = CrowdingRule(Zone("z", [(0, 0), (1, 0), (1, 1), (0, 1)]), cfg)
>>> two = Detections.from_arrays(xyxy=[[0, 0, 10, 10], [20, 0, 30, 10]], confidence=[.9, .9],
...                              class_id=[0, 0], image_size=(100, 100))
>>> [e.state.value for t in range(0, 7) for e in rule.update(two, float(t))]
['raised']
>>> [e.state.value for t in range(7, 20) for e in rule.update(two.select(np.array([0])), float(t))]
['cleared']
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from enum import Enum
from typing import Literal, Protocol

from pydantic import Field

from gridwatch.model import Detections, IncidentEvent, IncidentState, Track
from gridwatch.rules.base import RuleContext
from gridwatch.rules.people_count import ZoneCount
from gridwatch.rules.settings import RuleSettings
from gridwatch.rules.zones import Zone


class ScheduleLike(Protocol):
    def is_active(self, ts: float) -> bool: ...


class _Always:
    def is_active(self, ts: float) -> bool:
        return True


class CrowdingRuleConfig(RuleSettings):
    type: Literal["crowding"] = Field(title="Type", description="Rule type.")
    zone: str = Field(title="Zone", description="Id of a zone of this camera.")
    min_count: int = Field(
        ge=1, title="Minimum count", description="People in the zone at which it is crowded."
    )
    min_duration_s: float = Field(
        default=10.0,
        ge=0,
        title="Minimum duration",
        description="Seconds the crowd must last before an alert is raised.",
    )
    clear_after_s: float = Field(
        default=15.0,
        ge=0,
        title="Clear after",
        description="Seconds below the threshold before the incident clears (hysteresis).",
    )
    onset_gap_s: float = Field(
        default=2.0,
        ge=0,
        title="Onset gap",
        description="Dips below the threshold shorter than this do not restart the onset timer "
        "(one missed detection should not reset a crowd).",
    )
    update_interval_s: float = Field(
        default=5.0,
        ge=0,
        title="Update interval",
        description="Minimum seconds between 'updated' messages of one incident.",
    )
    count_window_s: float = Field(
        default=1.0,
        ge=0,
        le=60,
        title="Count window",
        description="The count is the median of the zone's counts over this many seconds of "
        "analysed frames (0: the frame's own count): one missed or doubled box does not move it.",
    )


class _Phase(Enum):
    IDLE = "idle"
    PENDING = "pending"
    ACTIVE = "active"


Box = tuple[float, float, float, float]


class CrowdingRule:
    """Crowding in one zone of one camera. See the module docstring for the behaviour."""

    type = "crowding"
    counts_people = True
    """Fed the crowd counter's people (held tracks in, props out), not the raw boxes."""

    Config = CrowdingRuleConfig

    def __init__(
        self,
        zone: Zone,
        params: CrowdingRuleConfig,
        *,
        schedule: ScheduleLike | None = None,
        person_classes: Collection[int] | None = None,
    ) -> None:
        self.zone = zone
        self.params = params
        self.rule_key = f"{self.type}/{zone.id}"
        self._schedule: ScheduleLike = schedule or _Always()
        self._count = ZoneCount(zone, window_s=params.count_window_s, person_classes=person_classes)
        self._phase = _Phase.IDLE
        self._onset = 0.0
        self._last_above = 0.0
        self._peak = 0
        self._sequence = 0
        self._last_emit_ts = 0.0
        self._last_emit_count = 0
        self.last_count: int | None = None
        """The count the rule saw at its last observation (``None``: no frame); the
        evaluation compares it with the ground truth."""

    @classmethod
    def from_config(cls, cfg: CrowdingRuleConfig, ctx: RuleContext) -> CrowdingRule:
        return cls(
            ctx.zone(cfg.zone), cfg, schedule=ctx.schedule, person_classes=ctx.person_classes
        )

    @property
    def phase(self) -> str:
        return self._phase.value

    def count_in_zone(self, detections: Detections) -> tuple[int, tuple[Box, ...]]:
        """People whose feet are inside the zone, and their normalized boxes."""
        return self._count.raw(detections)

    def _event(
        self, state: IncidentState, ts: float, count: int, boxes: tuple[Box, ...], reason: str = ""
    ) -> IncidentEvent:
        return IncidentEvent(
            rule_key=self.rule_key,
            type=self.type,
            state=state,
            zone_id=self.zone.id,
            started_at=self._onset,
            observed_at=ts,
            count=count,
            peak_count=self._peak,
            boxes=boxes,
            sequence=self._sequence,
            reason=reason,
            details={"min_count": self.params.min_count},
            severity=self.params.severity,
        )

    def _clear(self, ts: float, count: int, boxes: tuple[Box, ...], reason: str) -> IncidentEvent:
        self._sequence += 1
        event = self._event(IncidentState.CLEARED, ts, count, boxes, reason)
        self._phase = _Phase.IDLE
        return event

    def update(
        self, detections: Detections | None, ts: float, tracks: Sequence[Track] | None = None
    ) -> list[IncidentEvent]:
        """Feed one observation (``None``: no frame could be analysed) at time ``ts``; a count
        of boxes, so ``tracks`` are not used."""
        p = self.params
        boxes: tuple[Box, ...]
        if detections is None:
            count, boxes = 0, ()
            observed = False
        else:
            count, boxes = self._count.update(detections, ts)
            observed = True
        self.last_count = count if observed else None

        if not self._schedule.is_active(ts):
            if self._phase is _Phase.ACTIVE:
                return [self._clear(ts, count, boxes, "schedule_ended")]
            self._phase = _Phase.IDLE
            return []

        above = observed and count >= p.min_count
        if self._phase is _Phase.IDLE:
            if not above:
                return []
            self._phase = _Phase.PENDING
            self._onset = ts
            self._last_above = ts
            self._peak = count
        elif above:
            self._last_above = ts
            self._peak = max(self._peak, count)

        if self._phase is _Phase.PENDING:
            if not above and ts - self._last_above > p.onset_gap_s:
                self._phase = _Phase.IDLE
                return []
            if above and ts - self._onset >= p.min_duration_s:
                self._phase = _Phase.ACTIVE
                self._sequence = 0
                self._last_emit_ts = ts
                self._last_emit_count = count
                return [self._event(IncidentState.RAISED, ts, count, boxes)]
            return []

        # ACTIVE
        if above:
            if count != self._last_emit_count and ts - self._last_emit_ts >= p.update_interval_s:
                self._sequence += 1
                self._last_emit_ts = ts
                self._last_emit_count = count
                return [self._event(IncidentState.UPDATED, ts, count, boxes)]
            return []
        if ts - self._last_above >= p.clear_after_s:
            return [self._clear(ts, count, boxes, "below_threshold" if observed else "no_data")]
        return []

    def close(self, ts: float, reason: str) -> list[IncidentEvent]:
        """End the incident now (the camera stops being analysed): ``cleared`` if one is open."""
        if self._phase is _Phase.ACTIVE:
            return [self._clear(ts, 0, (), reason)]
        self._phase = _Phase.IDLE
        return []

"""Gathering: the count in a zone rises by at least ``rise`` people within ``within_s`` seconds.

A crowd that *forms* fast is a precursor (a fight drawing onlookers, people gathering round an
accident) that a fixed threshold misses on a square that is busy anyway. The count is the one
the crowding rule sees (the crowd counter's people, feet in the zone, median over
``count_window_s``; :mod:`gridwatch.rules.people_count`). A pure state machine over
(detections, timestamp), with hysteresis both ways:

* the *baseline* is the lowest count over the last ``within_s`` seconds; the condition is on
  when the count is at least ``rise`` above it;
* once on, the baseline is frozen (the gathered crowd stays an incident while it stays, even
  after ``within_s`` has passed) until the episode is over;
* raised after ``min_duration_s`` on (dips up to ``onset_gap_s`` do not restart it), cleared
  after ``clear_after_s`` with the count back under baseline + ``rise`` (the crowd dispersed).

>>> from gridwatch.model import Detections
>>> from gridwatch.rules.zones import Zone
>>> cfg = GatheringRuleConfig(type="gathering", zone="z", rise=3, within_s=5, min_duration_s=1,
...                           clear_after_s=2, count_window_s=0)
>>> rule = GatheringRule(Zone("z", [(0, 0), (1, 0), (1, 1), (0, 1)]), cfg)
>>> def people(n):
...     return Detections.from_arrays(xyxy=[[i, 0, i + 1, 10] for i in range(n)],
...                                   confidence=[.9] * n, class_id=[0] * n,
...                                   image_size=(100, 100))
>>> counts = [1, 1, 2, 4, 4, 4, 4, 4, 4, 4, 4, 1, 1, 1, 1]
>>> [(t, e.state.value) for t, n in enumerate(counts) for e in rule.update(people(n), t)]
[(4, 'raised'), (12, 'cleared')]
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection, Sequence
from typing import Literal

from pydantic import Field

from gridwatch.model import Detections, IncidentEvent, Track
from gridwatch.rules.base import (
    Always,
    Box,
    Episode,
    EpisodeParams,
    Phase,
    RuleContext,
    ScheduleLike,
)
from gridwatch.rules.people_count import ZoneCount
from gridwatch.rules.settings import (
    RuleSettings,
    clear_after_field,
    count_window_field,
    min_duration_field,
    onset_gap_field,
    update_interval_field,
)
from gridwatch.rules.zones import Zone

__all__ = ["GatheringRule", "GatheringRuleConfig", "RiseWatch"]


class GatheringRuleConfig(RuleSettings):
    type: Literal["gathering"] = Field(title="Type", description="Rule type.")
    zone: str = Field(title="Zone", description="Id of a zone of this camera.")
    rise: int = Field(
        ge=1,
        title="Rise",
        description="People the count must rise by (now minus the lowest count within "
        "within_s) for a gathering.",
    )
    within_s: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        title="Within",
        description="Seconds the rise must happen within.",
    )
    min_duration_s: float = min_duration_field(2.0, "the risen count")
    clear_after_s: float = clear_after_field(15.0, "with the count back under baseline + rise")
    onset_gap_s: float = onset_gap_field(2.0)
    update_interval_s: float = update_interval_field()
    count_window_s: float = count_window_field()


class RiseWatch:
    """The rise of a count over its lowest value in the last ``within_s`` seconds, with the
    baseline frozen while ``engaged`` (see the module doc).

    >>> w = RiseWatch(2.0)
    >>> [w.step(t, c, engaged=False)[0] for t, c in enumerate([3, 1, 4, 4, 4])]
    [0, 0, 3, 3, 0]
    >>> w.step(5, 4, engaged=True), w.step(6, 9, engaged=True)   # frozen at 4
    ((0, 4), (5, 4))
    """

    def __init__(self, within_s: float) -> None:
        self.within_s = within_s
        self._window: deque[tuple[float, int]] = deque()
        self.baseline: int | None = None

    def step(self, ts: float, count: int, *, engaged: bool) -> tuple[int, int]:
        """(rise, baseline) at ``ts``."""
        self._window.append((ts, count))
        while self._window and ts - self._window[0][0] > self.within_s:
            self._window.popleft()
        if not engaged or self.baseline is None:
            self.baseline = min(c for _, c in self._window)
        return count - self.baseline, self.baseline

    def reset(self) -> None:
        self._window.clear()
        self.baseline = None


class GatheringRule:
    """A gathering in one zone of one camera. See the module docstring for the behaviour."""

    type = "gathering"
    counts_people = True
    Config = GatheringRuleConfig

    def __init__(
        self,
        zone: Zone,
        params: GatheringRuleConfig,
        *,
        schedule: ScheduleLike | None = None,
        person_classes: Collection[int] | None = None,
    ) -> None:
        self.zone: Zone | None = zone
        self.params = params
        self.rule_key = f"{self.type}/{zone.id}"
        self._schedule: ScheduleLike = schedule or Always()
        self._count = ZoneCount(zone, window_s=params.count_window_s, person_classes=person_classes)
        self._rise = RiseWatch(params.within_s)
        self._episode = Episode(
            self.rule_key,
            self.type,
            zone.id,
            EpisodeParams.of(params),
            severity=params.severity,
        )
        self.last_count: int | None = None

    @classmethod
    def from_config(cls, cfg: GatheringRuleConfig, ctx: RuleContext) -> GatheringRule:
        return cls(
            ctx.zone(cfg.zone), cfg, schedule=ctx.schedule, person_classes=ctx.person_classes
        )

    @property
    def phase(self) -> str:
        return self._episode.phase.value

    def count_in_zone(self, detections: Detections) -> tuple[int, tuple[Box, ...]]:
        return self._count.raw(detections)

    def update(
        self, detections: Detections | None, ts: float, tracks: Sequence[Track] | None = None
    ) -> list[IncidentEvent]:
        """Feed one observation (``None``: no frame) at ``ts``; ``tracks`` are not used."""
        p = self.params
        scheduled = self._schedule.is_active(ts)
        if detections is None or not scheduled:
            self.last_count = None
            if not scheduled:
                self._rise.reset()
            return self._episode.step(ts, False, observed=False, scheduled=scheduled)
        count, boxes = self._count.update(detections, ts)
        self.last_count = count
        engaged = self._episode.phase is not Phase.IDLE
        rise, baseline = self._rise.step(ts, count, engaged=engaged)
        events = self._episode.step(
            ts,
            rise >= p.rise,
            count=count,
            boxes=boxes,
            details={
                "rise": rise,
                "baseline": baseline,
                "min_rise": p.rise,
                "within_s": p.within_s,
            },
            clear_reason="dispersed",
        )
        if self._episode.phase is Phase.IDLE:
            self._rise.baseline = None  # the next rise is measured afresh
        return events

    def close(self, ts: float, reason: str) -> list[IncidentEvent]:
        return self._episode.force_clear(ts, reason)

"""Density: more than ``max_per_m2`` people per square metre of a zone for ``min_duration_s``.

A count threshold means different crowds in a zone near the camera and one far away; people
per m² is what crowd safety is written in (about 2/m² is a dense crowd one can still move in,
4–5/m² a crush risk). The zone's ground area comes from the camera's calibration (the polygon
mapped to the ground, :mod:`gridwatch.calibration.ground`), so a camera without one cannot run
this rule (:class:`~gridwatch.rules.base.RuleBuildError`). The count is the one the crowding
rule sees (:mod:`gridwatch.rules.people_count`). Hysteresis both ways through
:class:`~gridwatch.rules.base.Episode`: raised after ``min_duration_s`` above the limit (dips up
to ``onset_gap_s`` keep the onset), cleared after ``clear_after_s`` at or under it.

>>> from gridwatch.calibration.ground import GroundPlane
>>> from gridwatch.model import Detections
>>> from gridwatch.rules.zones import Zone
>>> zone = Zone("z", [(0, 0.5), (1, 0.5), (1, 1), (0, 1)])
>>> plane = GroundPlane.from_points([(0, 0), (1, 0), (1, 1), (0, 1)],
...                                 [(0, 0), (4, 0), (4, 2), (0, 2)])   # zone: 4 m²
>>> cfg = DensityRuleConfig(type="density", zone="z", max_per_m2=1.0, min_duration_s=2,
...                         clear_after_s=2, count_window_s=0)
>>> rule = DensityRule(zone, cfg, area_m2=plane.area(zone.points))
>>> def people(n):
...     return Detections.from_arrays(xyxy=[[i, 60, i + 1, 90] for i in range(n)],
...                                   confidence=[.9] * n, class_id=[0] * n,
...                                   image_size=(100, 100))
>>> counts = [4, 5, 6, 6, 5, 4, 4, 4]   # 4 people: 1/m², not more than the limit
>>> [(t, e.state.value, e.details["density_per_m2"])
...  for t, n in enumerate(counts) for e in rule.update(people(n), t)]
[(3, 'raised', 1.5), (6, 'cleared', 1.0)]
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Literal

from pydantic import Field

from gridwatch.calibration.ground import CalibrationError
from gridwatch.model import Detections, IncidentEvent, Track
from gridwatch.rules.base import (
    Always,
    Box,
    Episode,
    EpisodeParams,
    RuleBuildError,
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

__all__ = ["DensityRule", "DensityRuleConfig"]


class DensityRuleConfig(RuleSettings):
    type: Literal["density"] = Field(title="Type", description="Rule type.")
    zone: str = Field(title="Zone", description="Id of a zone of this camera.")
    max_per_m2: float = Field(
        gt=0,
        le=20,
        title="Maximum density",
        description="People per square metre of the zone's ground area above which it is too "
        "dense (about 2: dense; 4-5: crush risk).",
    )
    min_duration_s: float = min_duration_field(10.0, "the density staying above the limit")
    clear_after_s: float = clear_after_field(15.0, "at or under the limit")
    onset_gap_s: float = onset_gap_field(2.0)
    update_interval_s: float = update_interval_field()
    count_window_s: float = count_window_field()


class DensityRule:
    """People per m² in one zone. See the module docstring for the behaviour."""

    type = "density"
    counts_people = True
    Config = DensityRuleConfig

    def __init__(
        self,
        zone: Zone,
        params: DensityRuleConfig,
        *,
        area_m2: float,
        schedule: ScheduleLike | None = None,
        person_classes: Collection[int] | None = None,
    ) -> None:
        if not area_m2 > 0:
            raise ValueError(f"zone {zone.id!r} has no ground area ({area_m2} m²)")
        self.zone: Zone | None = zone
        self.params = params
        self.area_m2 = area_m2
        self.rule_key = f"{self.type}/{zone.id}"
        self._schedule: ScheduleLike = schedule or Always()
        self._count = ZoneCount(zone, window_s=params.count_window_s, person_classes=person_classes)
        self._episode = Episode(
            self.rule_key,
            self.type,
            zone.id,
            EpisodeParams.of(params),
            severity=params.severity,
        )
        self.last_count: int | None = None

    @classmethod
    def from_config(cls, cfg: DensityRuleConfig, ctx: RuleContext) -> DensityRule:
        zone = ctx.zone(cfg.zone)
        try:
            area = ctx.ground().area(zone.points)
        except CalibrationError as exc:
            raise RuleBuildError(f"{ctx.what}: zone {zone.id!r}: {exc}") from None
        return cls(
            zone,
            cfg,
            area_m2=area,
            schedule=ctx.schedule,
            person_classes=ctx.person_classes,
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
            return self._episode.step(ts, False, observed=False, scheduled=scheduled)
        count, boxes = self._count.update(detections, ts)
        self.last_count = count
        density = count / self.area_m2
        return self._episode.step(
            ts,
            density > p.max_per_m2,
            count=count,
            boxes=boxes,
            details={
                "density_per_m2": round(density, 2),
                "max_per_m2": p.max_per_m2,
                "area_m2": round(self.area_m2, 1),
            },
            clear_reason="below_limit",
        )

    def close(self, ts: float, reason: str) -> list[IncidentEvent]:
        return self._episode.force_clear(ts, reason)

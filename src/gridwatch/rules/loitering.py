"""Loitering: one tracked person inside a zone for at least ``min_dwell_s``.

The dwell is measured in timestamps and survives occlusions up to ``max_gap_s`` (see
:mod:`gridwatch.rules.dwell` for the shared state machine and :mod:`gridwatch.tracking.tracks` for
how a person keeps their dwell when the tracker gives them a new id). People walking through the
zone never dwell long enough; a person waiting at a school gate for ten minutes does.

Tracks matter here: at 2 analysed frames per second ByteTrack confirms few *walkers*, but people
standing still are tracked reliably at any rate, and those are the ones loitering.

>>> import numpy as np
>>> from gridwatch.model import Detections
>>> from gridwatch.rules.zones import Zone
>>> rule = LoiteringRule(Zone("gate", [(0, 0), (1, 0), (1, 1), (0, 1)]),
...                      LoiteringRuleConfig(type="loitering", zone="gate", min_dwell_s=3,
...                                          clear_after_s=1))
>>> p = Detections.from_arrays(xyxy=[[10, 10, 20, 40]], confidence=[.9], class_id=[0],
...                            tracker_id=[1], image_size=(100, 100))
>>> [(t, e.type, e.state.value) for t in range(5) for e in rule.update(p, t)]
[(3, 'loitering', 'raised')]
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Literal

from pydantic import Field

from gridwatch.rules.base import RuleContext, ScheduleLike
from gridwatch.rules.dwell import DwellRule
from gridwatch.rules.settings import (
    RuleSettings,
    classes_field,
    clear_after_field,
    update_interval_field,
)
from gridwatch.rules.zones import Zone

__all__ = ["LoiteringRule", "LoiteringRuleConfig"]


class LoiteringRuleConfig(RuleSettings):
    type: Literal["loitering"] = Field(title="Type", description="Rule type.")
    zone: str = Field(title="Zone", description="Id of a zone of this camera.")
    min_dwell_s: float = Field(
        default=60.0,
        ge=0,
        title="Minimum dwell",
        description="Seconds one tracked person must stay in the zone before an alert.",
    )
    max_gap_s: float = Field(
        default=3.0,
        ge=0,
        title="Maximum gap",
        description="Seconds a person may be unseen (occluded, missed) without the dwell "
        "restarting.",
    )
    clear_after_s: float = clear_after_field(10.0, "after the last loiterer left")
    update_interval_s: float = update_interval_field()
    classes: list[str] | None = classes_field("the model's person classes")


class LoiteringRule(DwellRule):
    type = "loitering"
    Config = LoiteringRuleConfig

    def __init__(
        self,
        zone: Zone,
        params: LoiteringRuleConfig,
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

    @classmethod
    def from_config(cls, cfg: LoiteringRuleConfig, ctx: RuleContext) -> LoiteringRule:
        return cls(
            ctx.zone(cfg.zone),
            cfg,
            schedule=ctx.schedule,
            person_classes=ctx.classes(cfg.classes, ctx.person_classes),
            class_names=ctx.names,
        )

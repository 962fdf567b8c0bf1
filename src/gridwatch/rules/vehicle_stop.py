"""Vehicle stop: a vehicle stays inside a no-stopping zone (a school gate's drop-off lane) for
at least ``min_dwell_s``.

It needs a detector with vehicle classes: the default fall model has none, the Darknet
YOLOv3-tiny COCO backend (:mod:`gridwatch.detectors.darknet_backend`) and any COCO ultralytics
model (``yolo11n.pt``) do. The vehicle classes are chosen by *name* (``car``, ``bus``,
``truck``, ``motorbike``/``motorcycle`` by default), so the same config works with either model.
A parked vehicle is tracked easily at any analysis rate: it does not move.

>>> vehicle_class_ids({0: "person", 2: "car", 5: "bus", 7: "truck"}, DEFAULT_VEHICLE_CLASSES)
[2, 5, 7]
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Literal

from pydantic import Field

from gridwatch.rules.base import RuleBuildError, RuleContext, ScheduleLike
from gridwatch.rules.dwell import DwellRule
from gridwatch.rules.settings import (
    RuleSettings,
    classes_field,
    clear_after_field,
    update_interval_field,
)
from gridwatch.rules.zones import Zone

__all__ = [
    "DEFAULT_VEHICLE_CLASSES",
    "VehicleStopRule",
    "VehicleStopRuleConfig",
    "vehicle_class_ids",
]

DEFAULT_VEHICLE_CLASSES = ("car", "bus", "truck", "motorbike", "motorcycle")


def vehicle_class_ids(class_names: Mapping[int, str], wanted: Collection[str]) -> list[int]:
    """Ids of the model's classes whose (case-insensitive) name is in ``wanted``."""
    w = {n.strip().lower() for n in wanted}
    return sorted(i for i, n in class_names.items() if n.strip().lower() in w)


class VehicleStopRuleConfig(RuleSettings):
    type: Literal["vehicle_stop"] = Field(title="Type", description="Rule type.")
    zone: str = Field(title="Zone", description="Id of the no-stopping zone.")
    min_dwell_s: float = Field(
        default=60.0,
        ge=0,
        title="Minimum dwell",
        description="Seconds a vehicle must stay in the zone before an alert.",
    )
    max_gap_s: float = Field(
        default=5.0,
        ge=0,
        title="Maximum gap",
        description="Seconds a vehicle may be unseen (a bus passing in front) without the "
        "dwell restarting.",
    )
    clear_after_s: float = clear_after_field(10.0, "after the vehicle left")
    update_interval_s: float = update_interval_field()
    classes: list[str] | None = classes_field("car, bus, truck, motorbike (motorcycle)")


class VehicleStopRule(DwellRule):
    type = "vehicle_stop"
    Config = VehicleStopRuleConfig

    def __init__(
        self,
        zone: Zone,
        params: VehicleStopRuleConfig,
        *,
        vehicle_classes: Collection[int],
        schedule: ScheduleLike | None = None,
        class_names: dict[int, str] | None = None,
    ) -> None:
        if not vehicle_classes:
            raise ValueError(
                "vehicle_stop needs a detector with vehicle classes (car, bus, truck, motorbike): "
                "set detector.backend: darknet (YOLOv3-tiny COCO) or a COCO model"
            )
        super().__init__(
            "vehicle_stop",
            zone,
            params,
            schedule=schedule,
            classes=vehicle_classes,
            class_names=class_names,
        )

    @classmethod
    def from_config(cls, cfg: VehicleStopRuleConfig, ctx: RuleContext) -> VehicleStopRule:
        wanted = cfg.classes or list(DEFAULT_VEHICLE_CLASSES)
        ids = vehicle_class_ids(ctx.class_names or {}, wanted)
        if cfg.classes is not None:
            ctx.classes(cfg.classes, None)  # report unknown names
        if not ids:
            raise RuleBuildError(
                f"{ctx.what}: the detector has no vehicle class ({', '.join(wanted)}); "
                "set detector.backend: darknet (YOLOv3-tiny COCO) or use a COCO model"
            )
        return cls(
            ctx.zone(cfg.zone),
            cfg,
            vehicle_classes=ids,
            schedule=ctx.schedule,
            class_names=ctx.names,
        )

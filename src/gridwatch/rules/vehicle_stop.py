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

from gridwatch.rules.base import ScheduleLike
from gridwatch.rules.dwell import DwellParams, DwellRule
from gridwatch.rules.zones import Zone

__all__ = ["DEFAULT_VEHICLE_CLASSES", "DwellParams", "VehicleStopRule", "vehicle_class_ids"]

DEFAULT_VEHICLE_CLASSES = ("car", "bus", "truck", "motorbike", "motorcycle")


def vehicle_class_ids(class_names: Mapping[int, str], wanted: Collection[str]) -> list[int]:
    """Ids of the model's classes whose (case-insensitive) name is in ``wanted``."""
    w = {n.strip().lower() for n in wanted}
    return sorted(i for i, n in class_names.items() if n.strip().lower() in w)


class VehicleStopRule(DwellRule):
    type = "vehicle_stop"

    def __init__(
        self,
        zone: Zone,
        params: DwellParams,
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

"""Builds a camera's rules from its config and runs them on each observation."""

from __future__ import annotations

from collections.abc import Collection

from gridwatch.config import CameraConfig, GridwatchConfig
from gridwatch.model import Detections, IncidentEvent
from gridwatch.rules.crowding import CrowdingParams, CrowdingRule, ScheduleLike
from gridwatch.rules.schedule import AlwaysActive, Schedule
from gridwatch.rules.zones import Zone


class CameraRules:
    """All rules of one camera. ``update`` is pure in the same sense as each rule."""

    def __init__(
        self,
        camera: CameraConfig,
        config: GridwatchConfig,
        *,
        person_classes: Collection[int] | None = None,
    ) -> None:
        tz = config.tzinfo()
        zones = {z.id: Zone(z.id, z.polygon) for z in camera.zones}
        self.zones = zones
        self.rules: list[CrowdingRule] = []
        self.severity: dict[str, str] = {}
        for rc in camera.rules:
            schedule: ScheduleLike = (
                Schedule.from_config(config.schedules[rc.schedule], tz)
                if rc.schedule
                else AlwaysActive()
            )
            rule = CrowdingRule(
                zones[rc.zone],
                CrowdingParams(
                    min_count=rc.min_count,
                    min_duration_s=rc.min_duration_s,
                    clear_after_s=rc.clear_after_s,
                    onset_gap_s=rc.onset_gap_s,
                    update_interval_s=rc.update_interval_s,
                ),
                schedule=schedule,
                person_classes=person_classes,
            )
            self.rules.append(rule)
            self.severity[rule.rule_key] = rc.severity

    def update(self, detections: Detections | None, ts: float) -> list[IncidentEvent]:
        events: list[IncidentEvent] = []
        for rule in self.rules:
            events.extend(rule.update(detections, ts))
        return events

    def zone_of(self, rule_key: str) -> Zone | None:
        for rule in self.rules:
            if rule.rule_key == rule_key:
                return rule.zone
        return None

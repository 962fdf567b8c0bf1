"""Builds a camera's rules from its config and runs them on each observation.

Two families run side by side (see :mod:`gridwatch.rules.base`): detection rules get
``update(detections, ts)`` for every analysed frame, frame rules (tamper, offline) get
``update_frame(sample)`` at every tick of the camera's loop, frame or no frame. A camera whose
rules are all frame rules needs no detector at all (:attr:`CameraRules.needs_detections`).

Class names in a rule's config (``classes: [person]``, ``[car, truck]``) are resolved against
the model's own class names here, once, so a typo or a model without vehicles fails when the
camera starts, not silently at 3 a.m.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from typing import Any

from gridwatch.config import CameraConfig, CrowdingRuleConfig, GridwatchConfig
from gridwatch.model import Detections, IncidentEvent
from gridwatch.rules.base import (
    CAMERA_STOPPED,
    DetectionRule,
    FrameRule,
    FrameSample,
    ScheduleLike,
    close_episodes,
)
from gridwatch.rules.crowding import CrowdingParams, CrowdingRule
from gridwatch.rules.dwell import DwellParams
from gridwatch.rules.fall import FallParams, FallRule, fall_class_ids
from gridwatch.rules.intrusion import IntrusionParams, IntrusionRule
from gridwatch.rules.line_crossing import LineCrossingRule, LineParams
from gridwatch.rules.loitering import LoiteringRule
from gridwatch.rules.offline import OfflineParams, OfflineRule
from gridwatch.rules.schedule import AlwaysActive, Schedule
from gridwatch.rules.settings import (
    WALKER_RULE_TYPES,
    FallRuleConfig,
    IntrusionRuleConfig,
    LineCrossingRuleConfig,
    LoiteringRuleConfig,
    OfflineRuleConfig,
    TamperRuleConfig,
    VehicleStopRuleConfig,
)
from gridwatch.rules.tamper import TamperParams, TamperRule
from gridwatch.rules.vehicle_stop import DEFAULT_VEHICLE_CLASSES, VehicleStopRule, vehicle_class_ids
from gridwatch.rules.zones import Zone
from gridwatch.tracking.counting import CountSettings, CrowdCounter

log = logging.getLogger(__name__)

TRACKING_MIN_FPS = 5.0
"""Below this analysis rate ByteTrack confirms few walkers (measured: 40% at 2 fps, 89% at 5)."""


class RuleBuildError(ValueError):
    """A rule cannot run with this camera's detector (unknown class name, no vehicle class)."""


def resolve_classes(
    wanted: Collection[str] | None,
    class_names: Mapping[int, str] | None,
    default: Collection[int] | None,
    what: str,
) -> frozenset[int] | None:
    """Class names from a config → the model's class ids (case-insensitive).

    >>> sorted(resolve_classes(["Car", "truck"], {0: "person", 2: "car", 7: "truck"}, None, "r"))
    [2, 7]
    """
    if wanted is None:
        return None if default is None else frozenset(default)
    if class_names is None:
        raise RuleBuildError(f"{what}: classes {sorted(wanted)} need the model's class names")
    by_name = {n.strip().lower(): i for i, n in class_names.items()}
    unknown = sorted(n for n in wanted if n.strip().lower() not in by_name)
    if unknown:
        raise RuleBuildError(
            f"{what}: the model has no class {unknown}; it has {sorted(set(class_names.values()))}"
        )
    return frozenset(by_name[n.strip().lower()] for n in wanted)


class CameraRules:
    """All rules of one camera. ``update``/``update_frame`` are pure like each rule."""

    def __init__(
        self,
        camera: CameraConfig,
        config: GridwatchConfig,
        *,
        person_classes: Collection[int] | None = None,
        class_names: Mapping[int, str] | None = None,
    ) -> None:
        tz = config.tzinfo()
        zones = {z.id: Zone(z.id, z.polygon) for z in camera.zones}
        self.zones = zones
        self.rules: list[DetectionRule] = []
        self.frame_rules: list[FrameRule] = []
        self.severity: dict[str, str] = {}
        """rule key (or type, for tamper's several keys) → the configured severity."""
        names = dict(class_names) if class_names is not None else None
        for i, rc in enumerate(camera.rules):
            schedule: ScheduleLike = (
                Schedule.from_config(config.schedules[rc.schedule], tz)
                if rc.schedule
                else AlwaysActive()
            )
            what = f"camera {camera.id} rule {i} ({rc.type})"
            rule = self._build(rc, zones, schedule, person_classes, names, what)
            if isinstance(rule, (TamperRule, OfflineRule)):
                self.frame_rules.append(rule)
                self.severity[rule.type] = rc.severity
            elif isinstance(rule, DetectionRule):
                self.rules.append(rule)
                self.severity[rule.rule_key] = rc.severity
        self.counter: CrowdCounter | None = None
        """People for the counting rules, over tracks (None: they count every box)."""
        counting = config.analysis.counting
        if counting.enabled and any(getattr(r, "counts_people", False) for r in self.rules):
            self.counter = CrowdCounter(
                CountSettings(
                    hold_s=counting.hold_s,
                    static_after_s=counting.static_after_s,
                    forget_s=counting.forget_s,
                ),
                person_classes=person_classes,
            )
        track_rules = sorted({r.type for r in camera.rules} & WALKER_RULE_TYPES)
        if track_rules and camera.analysis_fps < TRACKING_MIN_FPS:
            log.warning(
                "camera %s: %s follow walking people, but analysis_fps is %g: below %g fps the "
                "tracker confirms few of them (40%% at 2 fps); raise analysis_fps for them",
                camera.id,
                ", ".join(track_rules),
                camera.analysis_fps,
                TRACKING_MIN_FPS,
            )

    @staticmethod
    def _build(
        rc: Any,
        zones: dict[str, Zone],
        schedule: ScheduleLike,
        person_classes: Collection[int] | None,
        names: dict[int, str] | None,
        what: str,
    ) -> DetectionRule | FrameRule:
        if isinstance(rc, CrowdingRuleConfig):
            return CrowdingRule(
                zones[rc.zone],
                CrowdingParams(
                    min_count=rc.min_count,
                    min_duration_s=rc.min_duration_s,
                    clear_after_s=rc.clear_after_s,
                    onset_gap_s=rc.onset_gap_s,
                    update_interval_s=rc.update_interval_s,
                    count_window_s=rc.count_window_s,
                ),
                schedule=schedule,
                person_classes=person_classes,
            )
        if isinstance(rc, LoiteringRuleConfig):
            return LoiteringRule(
                zones[rc.zone],
                _dwell_params(rc),
                schedule=schedule,
                person_classes=resolve_classes(rc.classes, names, person_classes, what),
                class_names=names,
            )
        if isinstance(rc, VehicleStopRuleConfig):
            wanted = rc.classes or list(DEFAULT_VEHICLE_CLASSES)
            ids = vehicle_class_ids(names or {}, wanted)
            if rc.classes is not None:
                resolve_classes(rc.classes, names, None, what)  # report unknown names
            if not ids:
                raise RuleBuildError(
                    f"{what}: the detector has no vehicle class ({', '.join(wanted)}); "
                    "set detector.backend: darknet (YOLOv3-tiny COCO) or use a COCO model"
                )
            return VehicleStopRule(
                zones[rc.zone],
                _dwell_params(rc),
                vehicle_classes=ids,
                schedule=schedule,
                class_names=names,
            )
        if isinstance(rc, IntrusionRuleConfig):
            return IntrusionRule(
                zones[rc.zone],
                IntrusionParams(
                    min_duration_s=rc.min_duration_s,
                    clear_after_s=rc.clear_after_s,
                    onset_gap_s=rc.onset_gap_s,
                    update_interval_s=rc.update_interval_s,
                    min_travel=rc.min_travel,
                ),
                schedule=schedule,
                classes=resolve_classes(rc.classes, names, person_classes, what),
                class_names=names,
            )
        if isinstance(rc, LineCrossingRuleConfig):
            return LineCrossingRule(
                rc.id,
                rc.line,
                LineParams(
                    forbidden_direction=rc.forbidden_direction,
                    max_count=rc.max_count,
                    window_s=rc.window_s,
                    count_direction=rc.count_direction,
                    band=rc.band,
                    clear_after_s=rc.clear_after_s,
                    update_interval_s=rc.update_interval_s,
                ),
                schedule=schedule,
                classes=resolve_classes(rc.classes, names, person_classes, what),
                class_names=names,
            )
        if isinstance(rc, FallRuleConfig):
            return FallRule(
                zones[rc.zone] if rc.zone is not None else None,
                FallParams(
                    min_duration_s=rc.min_duration_s,
                    clear_after_s=rc.clear_after_s,
                    onset_gap_s=rc.onset_gap_s,
                    update_interval_s=rc.update_interval_s,
                    min_upright_s=rc.min_upright_s,
                    max_transition_s=rc.max_transition_s,
                    upright_aspect=rc.upright_aspect,
                    lying_aspect=rc.lying_aspect,
                ),
                schedule=schedule,
                person_classes=person_classes,
                fall_classes=fall_class_ids(names or {}),
                class_names=names,
            )
        if isinstance(rc, TamperRuleConfig):
            return TamperRule(
                TamperParams(
                    checks=tuple(rc.checks),
                    min_duration_s=rc.min_duration_s,
                    clear_after_s=rc.clear_after_s,
                    learn_s=rc.learn_s,
                    covered_contrast=rc.covered_contrast,
                    covered_flat=rc.covered_flat,
                    frozen_level=rc.frozen_level,
                    frozen_changed=rc.frozen_changed,
                    defocus_ratio=rc.defocus_ratio,
                    moved_shift=rc.moved_shift,
                    moved_correlation=rc.moved_correlation,
                    rebaseline_after_s=rc.rebaseline_after_s,
                ),
                schedule=schedule,
            )
        if isinstance(rc, OfflineRuleConfig):
            return OfflineRule(
                OfflineParams(offline_after_s=rc.offline_after_s, clear_after_s=rc.clear_after_s),
                schedule=schedule,
            )
        raise RuleBuildError(f"{what}: no rule implements type {getattr(rc, 'type', rc)!r}")

    @property
    def needs_detections(self) -> bool:
        """False when every rule is a frame rule: the detector can be skipped."""
        return bool(self.rules)

    def update(self, detections: Detections | None, ts: float) -> list[IncidentEvent]:
        """Run the detection rules on one observation (``None``: no frame at ``ts``).

        Counting rules (crowding) see the crowd counter's people: tracks missed for a moment
        held, props left out; every other rule (the fall rule above all) sees every box.
        """
        counted = detections
        if detections is not None and self.counter is not None:
            counted = self.counter.update(detections, ts)
        events: list[IncidentEvent] = []
        for rule in self.rules:
            counts = getattr(rule, "counts_people", False)
            events.extend(rule.update(counted if counts else detections, ts))
        return events

    def update_frame(self, sample: FrameSample) -> list[IncidentEvent]:
        """Run the frame rules (tamper, offline) on one tick of the camera's loop."""
        events: list[IncidentEvent] = []
        for rule in self.frame_rules:
            events.extend(rule.update_frame(sample))
        return events

    def close_all(self, ts: float, reason: str = CAMERA_STOPPED) -> list[IncidentEvent]:
        """Clear every open incident of this camera now, whatever the timers say.

        For a camera that stops being analysed here (removed, disabled, reconfigured, handed
        to another worker): its rules will never see another observation, so without this its
        raised incidents would stay open on the command centre's wall forever. A rule with its
        own state machine offers ``close(ts, reason)``; the others are closed through the
        :class:`~gridwatch.rules.base.Episode` they hold. Pending (unraised) episodes are
        dropped silently.
        """
        events: list[IncidentEvent] = []
        for rule in [*self.rules, *self.frame_rules]:
            close = getattr(rule, "close", None)
            events += close(ts, reason) if callable(close) else close_episodes(rule, ts, reason)
        return events

    def severity_of(self, event: IncidentEvent) -> str:
        return self.severity.get(event.rule_key) or self.severity.get(event.type, "warning")

    def health(self) -> dict[str, Any]:
        """Health fields the frame rules contribute (online/offline kind, tamper kinds)."""
        out: dict[str, Any] = {}
        for rule in self.frame_rules:
            out.update(rule.health())
        if self.counter is not None:  # held tracks and props of the last count
            out["counting"] = self.counter.health()
        return out

    def zone_of(self, rule_key: str) -> Zone | None:
        for rule in self.rules:
            if rule.rule_key == rule_key:
                zone = getattr(rule, "zone", None)
                return zone if isinstance(zone, Zone) else None
        return None


def _dwell_params(rc: LoiteringRuleConfig | VehicleStopRuleConfig) -> DwellParams:
    """Loitering (people) and vehicle_stop (vehicles) share the dwell core and its settings."""
    return DwellParams(
        min_dwell_s=rc.min_dwell_s,
        max_gap_s=rc.max_gap_s,
        clear_after_s=rc.clear_after_s,
        update_interval_s=rc.update_interval_s,
    )

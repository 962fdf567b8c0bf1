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
from typing import TYPE_CHECKING, Any

from gridwatch.model import Detections, IncidentEvent, Track
from gridwatch.rules.base import (
    CAMERA_STOPPED,
    DetectionRule,
    FrameRule,
    FrameSample,
    RuleBuildError,
    RuleContext,
    ScheduleLike,
    resolve_classes,
)
from gridwatch.rules.registry import build_rule
from gridwatch.rules.schedule import AlwaysActive, Schedule
from gridwatch.rules.settings import WALKER_RULE_TYPES
from gridwatch.rules.zones import Zone
from gridwatch.tracking.counting import CountSettings, CrowdCounter
from gridwatch.tracking.tracks import TrackRule, TrackStitcher, tracks_of

if TYPE_CHECKING:  # annotations only: rules never import the config loading
    from gridwatch.config import CameraConfig, GridwatchConfig

__all__ = ["TRACKING_MIN_FPS", "CameraRules", "RuleBuildError", "resolve_classes"]

log = logging.getLogger(__name__)

TRACKING_MIN_FPS = 5.0
"""Below this analysis rate ByteTrack confirms few walkers (measured: 40% at 2 fps, 89% at 5)."""


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
        ground = camera.calibration.plane() if camera.calibration is not None else None
        self.rules: list[DetectionRule] = []
        self.frame_rules: list[FrameRule] = []
        for i, rc in enumerate(camera.rules):
            schedule: ScheduleLike = (
                Schedule.from_config(config.schedules[rc.schedule], tz)
                if rc.schedule
                else AlwaysActive()
            )
            ctx = RuleContext(
                zones=zones,
                schedule=schedule,
                person_classes=person_classes,
                class_names=class_names,
                what=f"camera {camera.id} rule {i} ({rc.type})",
                calibration=ground,
            )
            rule = build_rule(rc, ctx)
            if isinstance(rule, FrameRule):
                self.frame_rules.append(rule)
            else:
                self.rules.append(rule)
        keepers = [r for r in self.rules if isinstance(r, TrackRule)]
        self.stitcher: TrackStitcher | None = None
        """Stable track ids for every track rule, made once per frame (None: no track rule).
        It links as long as the longest-keeping rule keeps a lost track's state, and only
        classes that some rule follows together."""
        if keepers:
            self.stitcher = TrackStitcher(
                keep_s=max(r.track_keep_s for r in keepers),
                class_groups=[r.track_classes for r in keepers],
            )
        self.counter: CrowdCounter | None = None
        """People for the counting rules, over tracks (None: they count every box)."""
        self.last_counted: Detections | None = None
        """The counter's people of the last observation (None: no counter, or no frame): what
        the crowding rules counted (people-flow statistics count the same)."""
        counting = config.analysis.counting
        if counting.enabled and any(r.counts_people for r in self.rules):
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

    @property
    def needs_detections(self) -> bool:
        """False when every rule is a frame rule that needs no detections (tamper, offline):
        the detector can be skipped. A frame rule with ``uses_detections`` (abandoned_object)
        needs them."""
        return bool(self.rules) or any(
            getattr(r, "uses_detections", False) for r in self.frame_rules
        )

    def update(self, detections: Detections | None, ts: float) -> list[IncidentEvent]:
        """Run the detection rules on one observation (``None``: no frame at ``ts``).

        Counting rules (crowding) see the crowd counter's people: tracks missed for a moment
        held, props left out; every other rule (the fall rule above all) sees every box. The
        frame's tracks are made and stitched (stable ids) once, here, and handed to every rule;
        each track rule keeps only its own per-track state, keyed by stable id.
        """
        counted = detections
        if detections is not None and self.counter is not None:
            counted = self.counter.update(detections, ts)
        self.last_counted = counted if self.counter is not None else None
        tracks: tuple[Track, ...] = ()
        if detections is not None:
            tracks = tracks_of(detections)
            if self.stitcher is not None:
                tracks = self.stitcher.update(tracks, ts)
        elif self.stitcher is not None:
            self.stitcher.expire(ts)
        events: list[IncidentEvent] = []
        for rule in self.rules:
            if rule.counts_people:
                events.extend(rule.update(counted, ts))
            else:
                events.extend(rule.update(detections, ts, tracks))
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
        raised incidents would stay open on the command centre's wall forever. Every rule
        offers ``close(ts, reason)`` (:class:`~gridwatch.rules.base.Rule`). Pending (unraised)
        episodes are dropped silently.
        """
        events: list[IncidentEvent] = []
        for rule in [*self.rules, *self.frame_rules]:
            events += rule.close(ts, reason)
        return events

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
                return rule.zone
        return None

"""Abandoned object: something that was not part of the scene stays still in a zone for
``min_still_s`` with no person near it.

No object class is needed (a bag, a box, a bike): the object is whatever a long-term
background model of the picture does not know and a short-term one already does
(:class:`~gridwatch.ingest.background.DualBackground`). The rule is a frame rule that also
reads the frame's detections (:attr:`FrameSample.detections
<gridwatch.rules.base.FrameSample.detections>`): people's boxes are kept out of the long-term
background and out of the objects, and their foot points say whether the object is attended.

* A static blob counts when its ground point (bottom-centre) is inside the zone and no
  person's foot point is within ``radius_m`` metres of its bottom edge (through the camera's
  ground calibration; a camera without one is refused at start) or, for an uncalibrated
  camera, within ``radius_image`` of the picture's width.
* An :class:`~gridwatch.rules.base.Episode` gives the lifecycle: ``raised`` once an
  unattended object has stayed ``min_still_s`` (a person passing by for less than
  ``onset_gap_s`` does not restart the wait); ``cleared`` ``clear_after_s`` after it is gone
  (``object_removed``), when the schedule ends, or at once when it is re-learned.
* Re-learning: what stays static ``relearn_after_s`` becomes part of the long-term background
  (a parked car, a moved bench: one alarm, then silence; the incident clears with reason
  ``relearned``). :meth:`AbandonedObjectRule.confirm` does the same at once for an alarm an
  operator confirmed.
* A change of light over the whole picture is corrected by a gain, and a change of most of the
  picture restarts the backgrounds instead of raising (see the background module). Privacy
  masks are painted black before any rule sees the frame, so they never hold an object.

>>> import numpy as np
>>> from gridwatch.model import Detections
>>> from gridwatch.rules.base import FrameSample
>>> from gridwatch.rules.zones import Zone
>>> cfg = AbandonedObjectRuleConfig(type="abandoned_object", zone="lawn", min_still_s=5,
...                                 radius_image=0.1, clear_after_s=2, learn_s=1)
>>> rule = AbandonedObjectRule(Zone("lawn", [(0, .5), (1, .5), (1, 1), (0, 1)]), cfg)
>>> empty = np.full((120, 160), 90, np.uint8)
>>> bag = empty.copy(); bag[90:100, 60:72] = 200
>>> nobody = Detections.empty((160, 120))
>>> def run(picture, t0, t1):
...     return [(t / 2, e.state.value) for t in range(t0 * 2, t1 * 2)
...             for e in rule.update_frame(FrameSample(t / 2, picture, t / 2, t / 2, nobody))]
>>> run(empty, 0, 3) + run(bag, 3, 15) + run(empty, 15, 20)
[(8.0, 'raised'), (16.5, 'cleared')]
"""

from __future__ import annotations

import logging
import math
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Literal, Protocol

import numpy as np
from pydantic import Field, model_validator

from gridwatch.ingest.background import (
    BackgroundSettings,
    BackgroundStep,
    DualBackground,
    StaticBlob,
)
from gridwatch.model import Detections, IncidentEvent
from gridwatch.rules.base import (
    Always,
    Box,
    Episode,
    EpisodeParams,
    FrameSample,
    RuleContext,
    ScheduleLike,
)
from gridwatch.rules.settings import RuleSettings, clear_after_field
from gridwatch.rules.zones import Zone

log = logging.getLogger(__name__)

Point = tuple[float, float]


class AbandonedObjectRuleConfig(RuleSettings):
    type: Literal["abandoned_object"] = Field(title="Type", description="Rule type.")
    zone: str = Field(title="Zone", description="Id of a zone of this camera.")
    min_still_s: float = Field(
        default=60.0,
        ge=0,
        title="Minimum still time",
        description="Seconds an object must stay still with nobody near it before an alert.",
    )
    radius_m: float | None = Field(
        default=None,
        gt=0,
        title="Radius (metres)",
        description="An object with a person's feet within this many metres is attended (no "
        "alert). Needs the camera's ground calibration. Set this or radius_image.",
    )
    radius_image: float | None = Field(
        default=None,
        gt=0,
        le=1,
        title="Radius (share of the picture)",
        description="The same radius as a share of the picture's width, for a camera without "
        "calibration. Set this or radius_m.",
    )
    clear_after_s: float = clear_after_field(5.0, "after the object is gone")
    onset_gap_s: float = Field(
        default=3.0,
        ge=0,
        title="Onset gap",
        description="A person passing the object (or hiding it) for less than this many "
        "seconds does not restart the wait.",
    )
    relearn_after_s: float = Field(
        default=300.0,
        gt=0,
        title="Re-learn after",
        description="Seconds after which a still object becomes part of the scene (a parked "
        "car, a moved bench): its alert clears and it never alerts again.",
    )
    min_area: float = Field(
        default=0.001,
        gt=0,
        lt=1,
        title="Minimum area",
        description="Smallest object, as a share of the picture's area.",
    )
    threshold: float = Field(
        default=22.0,
        gt=0,
        le=255,
        title="Threshold",
        description="Gray-level difference from the background that marks a pixel as changed.",
    )
    learn_s: float = Field(
        default=2.0,
        gt=0,
        title="Learn",
        description="Seconds of picture the background is learned from at start.",
    )
    short_tau_s: float = Field(
        default=2.0,
        gt=0,
        title="Short-term time constant",
        description="Seconds the short-term background takes to take in what stopped moving.",
    )
    long_tau_s: float = Field(
        default=60.0,
        gt=0,
        title="Long-term time constant",
        description="Seconds the long-term background takes to follow slow changes of light.",
    )
    global_change_share: float = Field(
        default=0.35,
        gt=0,
        le=1,
        title="Global change share",
        description="When more than this share of the picture changes at once (light, view), "
        "the background restarts instead of alerting.",
    )

    @model_validator(mode="after")
    def _one_radius(self) -> AbandonedObjectRuleConfig:
        if (self.radius_m is None) == (self.radius_image is None):
            raise ValueError(
                "set exactly one of radius_m (metres; needs the camera's calibration) and "
                "radius_image (share of the picture's width)"
            )
        if self.relearn_after_s <= self.min_still_s:
            raise ValueError(
                f"relearn_after_s ({self.relearn_after_s:g}) must be longer than min_still_s "
                f"({self.min_still_s:g}): the object would be re-learned before it could alert"
            )
        return self

    def background(self) -> BackgroundSettings:
        return BackgroundSettings(
            learn_s=self.learn_s,
            short_tau_s=self.short_tau_s,
            long_tau_s=self.long_tau_s,
            threshold=self.threshold,
            min_area=self.min_area,
            global_change_share=self.global_change_share,
            relearn_after_s=self.relearn_after_s,
        )


class GroundLike(Protocol):
    """What the rule needs of a camera's ground plane
    (:class:`~gridwatch.calibration.ground.GroundPlane`)."""

    def to_ground(self, points: Sequence[Sequence[float]]) -> Any: ...


class Nearness(Protocol):
    """How far apart two normalized image points are, in the unit of the rule's radius."""

    def distance(self, a: Point, b: Point, aspect: float) -> float: ...


class ImageDistance:
    """Distance in shares of the picture's width (``aspect`` = height / width).

    >>> ImageDistance().distance((0.0, 0.0), (0.3, 0.5), aspect=0.75)
    0.4802
    """

    def distance(self, a: Point, b: Point, aspect: float) -> float:
        return round(math.hypot(a[0] - b[0], (a[1] - b[1]) * aspect), 4)


class GroundDistance:
    """Metres on the ground, through the camera's ground plane; a point at or above the
    horizon is infinitely far."""

    def __init__(self, plane: GroundLike) -> None:
        self.plane = plane

    def distance(self, a: Point, b: Point, aspect: float) -> float:
        g = np.asarray(self.plane.to_ground([a, b]), dtype=np.float64)
        if not np.isfinite(g).all():
            return math.inf
        return float(np.hypot(*(g[0] - g[1])))


def nearest_on_bottom(blob: StaticBlob, foot: Point) -> Point:
    """The point of the blob's bottom edge nearest to a person's foot point (a person beside
    a long object, a parked car, is near it though far from its centre).

    >>> nearest_on_bottom(StaticBlob((0.2, 0.5, 0.4, 0.6), 0.02, 3.0), (0.5, 0.9))
    (0.4, 0.6)
    """
    x1, _, x2, y2 = blob.box
    return (min(max(foot[0], x1), x2), y2)


class AbandonedObjectRule:
    """Abandoned objects in one zone of one camera; see the module docstring."""

    type = "abandoned_object"
    Config = AbandonedObjectRuleConfig
    uses_detections = True
    """A frame rule that needs the frame's detections (where people are): the pipeline runs
    the detector for it and passes them in :class:`FrameSample`."""
    STABLE_S = 1.0
    """A blob counts once it has been static this long (not a person pausing mid-stride)."""

    def __init__(
        self,
        zone: Zone,
        params: AbandonedObjectRuleConfig,
        *,
        schedule: ScheduleLike | None = None,
        person_classes: Collection[int] | None = None,
        nearness: Nearness | None = None,
    ) -> None:
        self.zone = zone
        self.params = params
        self.rule_key = f"{self.type}/{zone.id}"
        self._schedule: ScheduleLike = schedule or Always()
        self._people = None if person_classes is None else np.array(sorted(person_classes))
        if nearness is None:
            if params.radius_image is None:
                raise ValueError("radius_m needs a nearness in metres (the ground plane)")
            nearness = ImageDistance()
        self.nearness = nearness
        self.radius = params.radius_m if params.radius_m is not None else params.radius_image
        self.background = DualBackground(params.background())
        self.episode = Episode(
            self.rule_key,
            self.type,
            zone.id,
            EpisodeParams(params.min_still_s, params.clear_after_s, params.onset_gap_s, 5.0),
            severity=params.severity,
        )
        self.last_step = BackgroundStep()
        """The background's latest step (for tuning and tests)."""
        self.attended_at = -math.inf
        self._boxes: tuple[Box, ...] = ()
        """When a person was last near a still object in the zone: the unattended wait
        starts after it."""

    @classmethod
    def from_config(cls, cfg: AbandonedObjectRuleConfig, ctx: RuleContext) -> AbandonedObjectRule:
        nearness: Nearness | None = None
        if cfg.radius_m is not None:
            nearness = GroundDistance(ctx.ground())  # no calibration: a clear RuleBuildError
        return cls(
            ctx.zone(cfg.zone),
            cfg,
            schedule=ctx.schedule,
            person_classes=ctx.person_classes,
            nearness=nearness,
        )

    def close(self, ts: float, reason: str) -> list[IncidentEvent]:
        return self.episode.force_clear(ts, reason)

    def health(self) -> Mapping[str, Any]:
        return {}

    def confirm(self, ts: float) -> list[IncidentEvent]:
        """An operator confirmed the alarm: the object becomes part of the scene now (it will
        not alert again) and the incident clears with reason ``relearned``. Only the
        incident's objects are absorbed; nothing raised: nothing happens."""
        if not self.episode.active:
            return []
        self.background.absorb(self._boxes)
        return self.episode.force_clear(ts, "relearned")

    def _people_in(self, detections: Detections | None) -> tuple[tuple[Box, ...], list[Point]]:
        if detections is None or len(detections) == 0:
            return (), []
        keep = np.ones(len(detections), dtype=bool)
        if self._people is not None:
            keep &= np.isin(detections.class_id, self._people)
        boxes = detections.xyxyn()[keep]
        feet = detections.anchors_normalized()[keep]
        return (
            tuple((float(b[0]), float(b[1]), float(b[2]), float(b[3])) for b in boxes),
            [(float(f[0]), float(f[1])) for f in feet],
        )

    def unattended(
        self, blobs: Sequence[StaticBlob], feet: Sequence[Point], aspect: float
    ) -> tuple[list[StaticBlob], bool]:
        """The blobs in the zone, still long enough, with nobody within the radius; and
        whether any such blob had somebody near it."""
        radius = float(self.radius or 0.0)
        out = []
        attended = False
        for b in blobs:
            if b.still_s < self.STABLE_S:
                continue
            if not self.zone.contains(np.array([b.foot], dtype=np.float32))[0]:
                continue
            near = any(
                self.nearness.distance(nearest_on_bottom(b, f), f, aspect) <= radius for f in feet
            )
            if near:
                attended = True
            else:
                out.append(b)
        return out, attended

    def update_frame(self, sample: FrameSample) -> list[IncidentEvent]:
        ts = sample.ts
        scheduled = self._schedule.is_active(ts)
        ep = self.episode
        if sample.gray is None:  # no picture: clear after clear_after_s (no_data), never raise
            return ep.step(ts, False, observed=False, scheduled=scheduled)
        boxes, feet = self._people_in(sample.detections)
        step = self.background.update(sample.gray, ts, exclude=boxes)
        self.last_step = step
        h, w = sample.gray.shape[:2]
        found, attended = self.unattended(step.blobs, feet, h / w)
        if attended:
            self.attended_at = ts
        events: list[IncidentEvent] = []
        if step.absorbed and ep.active and not found:
            return ep.force_clear(ts, "relearned")
        details: dict[str, Any] = {}
        onset: float | None = None
        self._boxes = tuple(b.box for b in found)
        if found:
            # the wait runs from when the object came (not when the short-term background
            # took it in, seconds later), or from when its last attendant was near it
            came = min(b.since if math.isfinite(b.since) else ts - b.still_s for b in found)
            onset = max(came, self.attended_at)
            details = {
                "still_s": round(max(b.still_s for b in found), 1),
                "area": round(sum(b.area for b in found), 4),
            }
        events += ep.step(
            ts,
            bool(found),
            scheduled=scheduled,
            count=len(found),
            boxes=self._boxes,
            details=details,
            onset=onset,
            signature=len(found),
            clear_reason="object_removed",
        )
        return events

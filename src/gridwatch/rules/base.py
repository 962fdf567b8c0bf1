"""What every rule shares: the two rule interfaces and the incident lifecycle.

Two kinds of rule, both pure functions of their inputs and timestamps:

* a :class:`DetectionRule` looks at what the detector and tracker found
  (``update(detections, ts)``: crowding, loitering, intrusion, line crossing, vehicle stop,
  fall);
* a :class:`FrameRule` looks at the picture and the stream itself, never at detections
  (``update_frame(sample)``: tamper and offline). A camera that is covered or silent has no
  detections to speak of, so these cannot be detection rules; and they must run when no frame
  arrives at all, which a :class:`FrameSample` with ``gray=None`` represents.

Both emit the same :class:`~gridwatch.model.IncidentEvent` lifecycle, implemented once here by
:class:`Episode` (crowding's state machine, generalised): ``raised`` once a condition has held
for ``min_duration_s``, throttled ``updated`` when what is reported changes, ``cleared`` after
``clear_after_s`` without the condition (hysteresis) or when the schedule window ends.

>>> ep = Episode("intrusion/yard", "intrusion", "yard",
...              EpisodeParams(min_duration_s=2, clear_after_s=3, onset_gap_s=0))
>>> trace = [(t, on) for t, on in enumerate([1, 1, 1, 1, 0, 0, 0, 0])]
>>> [(t, e.state.value) for t, on in trace for e in ep.step(float(t), bool(on), count=int(on))]
[(2, 'raised'), (6, 'cleared')]
"""

from __future__ import annotations

import math
from collections.abc import Collection, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from gridwatch.calibration.ground import GroundPlane
from gridwatch.model import Detections, IncidentEvent, IncidentState, Track
from gridwatch.rules.zones import Zone

Box = tuple[float, float, float, float]
"""Normalized xyxy."""


class ScheduleLike(Protocol):
    def is_active(self, ts: float) -> bool: ...


class Always:
    """The schedule of a rule that names none."""

    def is_active(self, ts: float) -> bool:
        return True


@dataclass(frozen=True)
class RuleContext:
    """What a rule needs from its camera and detector to build itself from its config model
    (``from_config(cfg, ctx)``): the camera's zones, the rule's schedule, the detector's person
    classes and class names, and how to name the rule in an error."""

    zones: Mapping[str, Zone] = field(default_factory=dict)
    schedule: ScheduleLike = field(default_factory=lambda: Always())
    person_classes: Collection[int] | None = None
    class_names: Mapping[int, str] | None = None
    what: str = "rule"
    """``camera <id> rule <i> (<type>)``, for error messages."""
    calibration: GroundPlane | None = None
    """The camera's ground plane (image → metres); ``None``: not calibrated."""

    def ground(self) -> GroundPlane:
        """The camera's ground plane, or :class:`RuleBuildError` for a rule that measures in
        metres on a camera without ``calibration``."""
        if self.calibration is None:
            raise RuleBuildError(
                f"{self.what}: measures in metres but the camera has no calibration: add "
                '`calibration:` to the camera (gridwatch camera calibrate ID --point "u,v=x,y")'
            )
        return self.calibration

    def zone(self, zone_id: str) -> Zone:
        return self.zones[zone_id]

    def classes(
        self, wanted: Collection[str] | None, default: Collection[int] | None
    ) -> frozenset[int] | None:
        """A config's class names → the model's ids (``None`` names: ``default``)."""
        return resolve_classes(wanted, self.class_names, default, self.what)

    @property
    def names(self) -> dict[int, str] | None:
        return dict(self.class_names) if self.class_names is not None else None


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


@runtime_checkable
class Rule(Protocol):
    """What every rule offers, detection or frame rule."""

    type: str

    def close(self, ts: float, reason: str) -> list[IncidentEvent]:
        """End every open incident now, whatever the timers say (the camera stops being
        analysed here): ``cleared`` with ``reason`` for each raised one; pending ones are
        dropped silently."""
        ...


@runtime_checkable
class DetectionRule(Rule, Protocol):
    """A rule over (detections, timestamp). ``detections`` is ``None`` when no frame could be
    analysed at ``ts`` (the camera went away): rules use it to clear, never to raise.

    ``tracks`` are the frame's :class:`~gridwatch.model.Track` s, made once per frame by
    :class:`~gridwatch.rules.engine.CameraRules` (``None``: the rule makes them from
    ``detections`` itself, for a rule used on its own)."""

    rule_key: str
    zone: Zone | None
    """The zone the rule watches (``None``: a line, or the whole picture)."""
    counts_people: bool
    """Fed the crowd counter's people (held tracks in, props out), not the raw boxes."""

    def update(
        self, detections: Detections | None, ts: float, tracks: Sequence[Track] | None = None
    ) -> list[IncidentEvent]: ...

    def count_in_zone(self, detections: Detections) -> tuple[int, tuple[Box, ...]]: ...


@dataclass(frozen=True, slots=True)
class FrameSample:
    """What frame rules see at one tick of a camera's analysis loop.

    Timestamps are wall-clock seconds (the same clock as ``ts``), so a rule never reads a clock
    itself: replaying recorded samples gives the same events.
    """

    ts: float
    gray: npt.NDArray[np.uint8] | None
    """A small grayscale copy of the newest frame (see :func:`thumbnail`); ``None`` when no new
    frame arrived since the previous tick."""
    last_frame_ts: float | None
    """When the newest decoded frame arrived; ``None`` if none ever did."""
    last_packet_ts: float | None
    """When the newest packet (compressed data) arrived; ``None`` if none ever did."""
    detections: Detections | None = None
    """What the detector (and tracker) found on this frame, for the frame rules that must know
    where people are (``abandoned_object``, which sets ``uses_detections``); ``None`` when no
    frame or no detector ran."""


@runtime_checkable
class FrameRule(Rule, Protocol):
    """A rule over the picture and the stream (tamper, offline)."""

    def update_frame(self, sample: FrameSample) -> list[IncidentEvent]: ...

    def health(self) -> Mapping[str, Any]:
        """What this rule adds to the camera's health report (e.g. ``{"tamper": [...]}``)."""
        ...


THUMB_WIDTH = 320


def thumbnail(image: npt.NDArray[np.uint8], width: int = THUMB_WIDTH) -> npt.NDArray[np.uint8]:
    """BGR frame → small grayscale copy, the input of frame rules.

    320 px wide keeps enough detail to measure focus (a 160 px copy blurs a sharp scene by
    itself) and costs well under a millisecond.

    >>> thumbnail(np.zeros((576, 768, 3), np.uint8)).shape
    (240, 320)
    """
    import cv2

    h, w = image.shape[:2]
    height = max(1, round(h * width / w))
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    small = cv2.resize(gray, (width, height), interpolation=cv2.INTER_AREA)
    return np.asarray(small, dtype=np.uint8)


@dataclass(frozen=True)
class EpisodeParams:
    """Timing of one incident lifecycle; see :class:`Episode`."""

    min_duration_s: float = 0.0
    clear_after_s: float = 10.0
    onset_gap_s: float = 0.0
    update_interval_s: float = 5.0

    @classmethod
    def of(cls, cfg: Any) -> EpisodeParams:
        """The timing fields of a rule's config (every rule config with an episode has them).

        >>> EpisodeParams.of(EpisodeParams(1, 2, 3, 4)).clear_after_s
        2
        """
        return cls(cfg.min_duration_s, cfg.clear_after_s, cfg.onset_gap_s, cfg.update_interval_s)

    def __post_init__(self) -> None:
        for name in ("min_duration_s", "clear_after_s", "onset_gap_s", "update_interval_s"):
            v = getattr(self, name)
            if not (v >= 0 and math.isfinite(v)):
                raise ValueError(f"{name} must be a finite number >= 0, got {v}")


class Phase(Enum):
    IDLE = "idle"
    PENDING = "pending"
    ACTIVE = "active"


@dataclass
class _Report:
    count: int = 0
    boxes: tuple[Box, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)


class Episode:
    """One incident at a time for one rule key: idle → pending → active → idle.

    * idle → pending when the condition turns on (``started_at`` is that moment, or the
      ``onset`` the caller passes, e.g. when a loiterer entered the zone);
    * pending → idle when the condition is off for longer than ``onset_gap_s``;
    * pending → active (``raised``) once the condition has held ``min_duration_s``;
    * active: ``updated`` when the reported ``signature`` (default: the count) changes, at most
      every ``update_interval_s``;
    * active → idle (``cleared``) after ``clear_after_s`` without the condition, or at once when
      the schedule window ends. The reason is ``schedule_ended``, ``no_data`` (the last step
      had no observation) or the caller's ``clear_reason``.
    """

    def __init__(
        self,
        rule_key: str,
        type: str,
        zone_id: str | None,
        params: EpisodeParams,
        *,
        severity: str = "warning",
    ) -> None:
        self.rule_key = rule_key
        self.severity = severity
        self.type = type
        self.zone_id = zone_id
        self.params = params
        self.phase = Phase.IDLE
        self.onset = 0.0
        self.last_on = 0.0
        self.peak = 0
        self.sequence = 0
        self._last_emit_ts = 0.0
        self._last_signature: Hashable = None

    @property
    def active(self) -> bool:
        return self.phase is Phase.ACTIVE

    def _event(self, state: IncidentState, ts: float, r: _Report, reason: str) -> IncidentEvent:
        return IncidentEvent(
            rule_key=self.rule_key,
            type=self.type,
            state=state,
            zone_id=self.zone_id,
            started_at=self.onset,
            observed_at=ts,
            count=r.count,
            peak_count=self.peak,
            boxes=r.boxes,
            sequence=self.sequence,
            reason=reason,
            details=dict(r.details),
            severity=self.severity,
        )

    def _clear(self, ts: float, r: _Report, reason: str) -> list[IncidentEvent]:
        self.sequence += 1
        self.phase = Phase.IDLE
        return [self._event(IncidentState.CLEARED, ts, r, reason)]

    def force_clear(
        self, ts: float, reason: str, *, details: Mapping[str, Any] | None = None
    ) -> list[IncidentEvent]:
        """End the episode now, whatever the timers say (a re-learned reference, a reset)."""
        if self.phase is Phase.ACTIVE:
            return self._clear(ts, _Report(0, (), details or {}), reason)
        self.phase = Phase.IDLE
        return []

    def step(
        self,
        ts: float,
        on: bool,
        *,
        observed: bool = True,
        scheduled: bool = True,
        count: int = 0,
        boxes: tuple[Box, ...] = (),
        details: Mapping[str, Any] | None = None,
        onset: float | None = None,
        signature: Hashable = None,
        clear_reason: str = "condition_ended",
    ) -> list[IncidentEvent]:
        """Advance to ``ts`` with the condition ``on`` (ignored when not ``observed``)."""
        p = self.params
        report = _Report(count, boxes, details or {})
        if not scheduled:
            if self.phase is Phase.ACTIVE:
                return self._clear(ts, report, "schedule_ended")
            self.phase = Phase.IDLE
            return []
        on = on and observed
        sig = count if signature is None else signature
        if self.phase is Phase.IDLE:
            if not on:
                return []
            self.phase = Phase.PENDING
            self.onset = ts if onset is None else min(onset, ts)
            self.peak = count
            self.last_on = ts
        elif on:
            self.last_on = ts
            self.peak = max(self.peak, count)

        if self.phase is Phase.PENDING:
            if not on:
                if ts - self.last_on > p.onset_gap_s:
                    self.phase = Phase.IDLE
                return []
            if ts - self.onset >= p.min_duration_s:
                self.phase = Phase.ACTIVE
                self.sequence = 0
                self._last_emit_ts = ts
                self._last_signature = sig
                return [self._event(IncidentState.RAISED, ts, report, "")]
            return []

        # ACTIVE
        if on:
            if sig != self._last_signature and ts - self._last_emit_ts >= p.update_interval_s:
                self.sequence += 1
                self._last_emit_ts = ts
                self._last_signature = sig
                return [self._event(IncidentState.UPDATED, ts, report, "")]
            return []
        if ts - self.last_on >= p.clear_after_s:
            return self._clear(ts, report, clear_reason if observed else "no_data")
        return []


CAMERA_STOPPED = "camera_stopped"
"""Clear reason of incidents ended because their camera stopped being analysed here (removed,
disabled, reconfigured, handed to another worker): nobody would ever clear them otherwise."""

WORKER_STOPPED = "worker_stopped"
"""Clear reason of the incidents still open when their worker shuts down."""

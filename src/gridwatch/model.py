"""The types every stage of gridwatch shares.

One typed model crosses module boundaries: ingest produces :class:`Frame`, a detector turns it
into :class:`Detections`, the tracker fills in ``tracker_id``, rules turn detections into
:class:`IncidentEvent` and the alert publisher serializes an :class:`Alert` once, at the NATS
boundary. No positional tuples or grab-bag dicts travel between modules, so a change to a field
is a type error at every place that depends on it.

>>> import numpy as np
>>> d = Detections.from_arrays(
...     xyxy=np.array([[10, 20, 30, 60]], dtype=np.float32),
...     confidence=np.array([0.9], dtype=np.float32),
...     class_id=np.array([0]),
...     image_size=(100, 100),
... )
>>> len(d), d.anchors_normalized().tolist()
(1, [[0.20000000298023224, 0.6000000238418579]])
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

ALERT_SCHEMA_VERSION: Literal[1] = 1

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded picture from a camera.

    ``image`` is converted lazily (see :mod:`gridwatch.ingest`): decoding every frame is the
    cost of H.264, converting to BGR is only paid for frames that are analysed.
    """

    camera_id: str
    image: npt.NDArray[np.uint8]
    """H×W×3 BGR."""
    wall_ts: float
    """Unix seconds when the frame was decoded (what alerts report)."""
    mono_ts: float
    """``time.monotonic()`` when the frame was decoded (what frame age is measured with)."""
    seq: int
    """Frames decoded from this source since it was opened, starting at 0."""
    pts_s: float | None = None
    """Presentation time in the stream, seconds, when the container gives one."""

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])


@dataclass(frozen=True, slots=True)
class Detections:
    """Boxes found in one frame, as parallel arrays (the supervision ``Detections`` idea).

    ``xyxy`` is in pixels of the frame of size ``image_size`` (width, height); ``tracker_id`` is
    ``-1`` until a tracker assigns ids. ``class_names`` maps a class id to the model's name for it.
    """

    xyxy: FloatArray
    confidence: FloatArray
    class_id: IntArray
    tracker_id: IntArray
    image_size: tuple[int, int]
    class_names: Mapping[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.xyxy)
        if self.xyxy.shape != (n, 4):
            raise ValueError(f"xyxy must be (N, 4), got {self.xyxy.shape}")
        for name in ("confidence", "class_id", "tracker_id"):
            arr = getattr(self, name)
            if arr.shape != (n,):
                raise ValueError(f"{name} must be ({n},), got {arr.shape}")

    @classmethod
    def from_arrays(
        cls,
        *,
        xyxy: npt.ArrayLike,
        confidence: npt.ArrayLike,
        class_id: npt.ArrayLike,
        image_size: tuple[int, int],
        tracker_id: npt.ArrayLike | None = None,
        class_names: Mapping[int, str] | None = None,
    ) -> Detections:
        box = np.asarray(xyxy, dtype=np.float32).reshape(-1, 4)
        n = len(box)
        tid = (
            np.full(n, -1, dtype=np.int64)
            if tracker_id is None
            else np.asarray(tracker_id, dtype=np.int64).reshape(n)
        )
        return cls(
            xyxy=box,
            confidence=np.asarray(confidence, dtype=np.float32).reshape(n),
            class_id=np.asarray(class_id, dtype=np.int64).reshape(n),
            tracker_id=tid,
            image_size=image_size,
            class_names=dict(class_names or {}),
        )

    @classmethod
    def empty(
        cls, image_size: tuple[int, int], class_names: Mapping[int, str] | None = None
    ) -> Detections:
        return cls.from_arrays(
            xyxy=np.zeros((0, 4), np.float32),
            confidence=np.zeros(0, np.float32),
            class_id=np.zeros(0, np.int64),
            image_size=image_size,
            class_names=class_names,
        )

    def __len__(self) -> int:
        return len(self.xyxy)

    def select(self, mask: npt.NDArray[np.bool_] | npt.NDArray[np.int64]) -> Detections:
        """The subset chosen by a boolean mask or an index array."""
        return Detections(
            xyxy=self.xyxy[mask],
            confidence=self.confidence[mask],
            class_id=self.class_id[mask],
            tracker_id=self.tracker_id[mask],
            image_size=self.image_size,
            class_names=self.class_names,
        )

    def with_tracker_ids(self, tracker_id: npt.ArrayLike) -> Detections:
        return Detections(
            xyxy=self.xyxy,
            confidence=self.confidence,
            class_id=self.class_id,
            tracker_id=np.asarray(tracker_id, dtype=np.int64).reshape(len(self)),
            image_size=self.image_size,
            class_names=self.class_names,
        )

    def xyxyn(self) -> FloatArray:
        """Boxes normalized to 0..1 by the frame size."""
        w, h = self.image_size
        scale = np.array([w, h, w, h], dtype=np.float32)
        out: FloatArray = np.clip(self.xyxy / scale, 0.0, 1.0).astype(np.float32)
        return out

    def anchors_normalized(self) -> FloatArray:
        """Bottom-centre of each box, normalized: where a person stands on the ground."""
        n = self.xyxyn()
        return np.stack([(n[:, 0] + n[:, 2]) / 2.0, n[:, 3]], axis=1).astype(np.float32)


class IncidentState(StrEnum):
    RAISED = "raised"
    UPDATED = "updated"
    CLEARED = "cleared"


@dataclass(frozen=True, slots=True)
class IncidentEvent:
    """What a rule says happened. The worker adds the camera and the snapshot to make an Alert."""

    rule_key: str
    """Identifies the rule within its camera, e.g. ``crowding/gate-apron``."""
    type: str
    state: IncidentState
    zone_id: str | None
    started_at: float
    """Unix seconds when the condition began (not when it was confirmed)."""
    observed_at: float
    count: int
    peak_count: int
    boxes: tuple[tuple[float, float, float, float], ...]
    """Normalized xyxy of the objects counted."""
    sequence: int
    """0 for raised, 1.. for each update, and the next number for cleared."""
    reason: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)
    severity: str = "warning"
    """The configured severity of the rule that emitted it (info, warning, critical): what the
    event sink needs, so it never asks the rules again."""

    def incident_id(self, camera_id: str) -> str:
        """Deterministic id of the incident this event belongs to.

        The same camera, rule and start time give the same id, so a retried or re-raised alert
        de-duplicates in JetStream.

        >>> e = IncidentEvent("crowding/a", "crowding", IncidentState.RAISED, "a", 1.5, 1.5, 6, 6,
        ...                   (), 0)
        >>> e.incident_id("cam") == e.incident_id("cam"), len(e.incident_id("cam"))
        (True, 24)
        """
        key = f"{camera_id}|{self.rule_key}|{round(self.started_at * 1000)}"
        return hashlib.sha256(key.encode()).hexdigest()[:24]


@dataclass(frozen=True, slots=True)
class Track:
    """One tracked object in one frame: a detection that carries a tracker id, in pixels and
    normalized. Built once per frame per camera (:func:`gridwatch.tracking.tracks.tracks_of`),
    given stable ids by the camera's :class:`~gridwatch.tracking.tracks.TrackStitcher` and
    handed to every track rule.

    >>> t = Track(3, 0, 0.9, (10.0, 20.0, 30.0, 60.0), (0.1, 0.2, 0.3, 0.6))
    >>> t.anchor_px, t.height_px
    ((20.0, 60.0), 40.0)
    """

    track_id: int
    class_id: int
    confidence: float
    box_px: tuple[float, float, float, float]
    box: tuple[float, float, float, float]
    """Normalized xyxy."""
    raw_track_id: int | None = None
    """The tracker's own id (ByteTrack's, new whenever it loses the object for too long);
    ``track_id`` is the stable id the stitcher gave the object. ``None``: built by hand."""
    linked: bool = False
    """A new tracker id took over the stable id of a recently lost track in this frame."""

    @property
    def anchor_px(self) -> tuple[float, float]:
        """Bottom-centre in pixels: where the object stands."""
        x1, _, x2, y2 = self.box_px
        return ((x1 + x2) / 2.0, y2)

    @property
    def anchor(self) -> tuple[float, float]:
        """Bottom-centre, normalized."""
        x1, _, x2, y2 = self.box
        return ((x1 + x2) / 2.0, y2)

    @property
    def width_px(self) -> float:
        return self.box_px[2] - self.box_px[0]

    @property
    def height_px(self) -> float:
        return self.box_px[3] - self.box_px[1]


def _utc(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, tz=dt.UTC)


class Alert(BaseModel):
    """The alert contract published on ``gw.v1.alerts.<grid>.<camera>.<type>``.

    ``id`` is the incident's id, the same on its raised, updated and cleared messages, so
    consumers (the alert wall, cases) key on it. Each message also has a ``message_id``,
    ``<id>.<state>.<sequence>``, sent as ``Nats-Msg-Id``: were the incident id itself the
    Msg-Id, JetStream would drop an incident's updated and cleared messages as duplicates of
    its raised one.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = Field(
        default=ALERT_SCHEMA_VERSION, description="Version of this JSON layout."
    )
    id: str = Field(description="Deterministic incident id, stable across the incident's messages.")
    message_id: str = Field(description="Unique per message; sent as Nats-Msg-Id.")
    type: str = Field(description="Rule type, e.g. crowding.")
    state: IncidentState = Field(description="raised | updated | cleared")
    sequence: int = Field(ge=0, description="0 raised, then 1.. per update and for cleared.")
    camera_id: str
    camera_name: str
    grid_id: str
    zone_id: str | None
    started_at: dt.datetime = Field(description="When the condition began (ISO-8601, UTC offset).")
    observed_at: dt.datetime = Field(description="When this message's observation was made.")
    count: int = Field(ge=0, description="Objects counted at observed_at.")
    peak_count: int = Field(ge=0, description="Largest count so far in this incident.")
    boxes: list[tuple[float, float, float, float]] = Field(
        description="Normalized xyxy of the objects counted."
    )
    clip: str | None = Field(
        default=None,
        description="Object name of the incident's evidence clip in the gw_clips object store "
        "(raised alerts; stored post_s after the onset, so it may not be there yet).",
    )
    snapshot: str | None = Field(
        default=None, description="Object name in the gw_snapshots object store bucket."
    )
    severity: str = Field(default="warning", description="info | warning | critical")
    reason: str = Field(default="", description="Why a cleared alert cleared, for instance.")
    details: dict[str, Any] = Field(default_factory=dict, description="Type-specific fields.")

    @classmethod
    def from_event(
        cls,
        event: IncidentEvent,
        *,
        camera_id: str,
        camera_name: str,
        grid_id: str,
        snapshot: str | None,
        clip: str | None = None,
        severity: str = "warning",
    ) -> Alert:
        incident = event.incident_id(camera_id)
        return cls(
            id=incident,
            message_id=f"{incident}.{event.state.value}.{event.sequence}",
            type=event.type,
            state=event.state,
            sequence=event.sequence,
            camera_id=camera_id,
            camera_name=camera_name,
            grid_id=grid_id,
            zone_id=event.zone_id,
            started_at=_utc(event.started_at),
            observed_at=_utc(event.observed_at),
            count=event.count,
            peak_count=event.peak_count,
            boxes=[tuple(round(v, 4) for v in b) for b in event.boxes],  # type: ignore[misc]
            snapshot=snapshot,
            clip=clip,
            severity=severity,
            reason=event.reason,
            details=dict(event.details),
        )

    def subject(self) -> str:
        """``gw.v1.alerts.<grid>.<camera>.<type>``."""
        from gridwatch.alerts.subjects import alert_subject

        return alert_subject(self.grid_id, self.camera_id, self.type)

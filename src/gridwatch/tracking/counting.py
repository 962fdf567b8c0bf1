"""Who to count in a frame: people over tracks and a short window, without props.

Counting rules (crowding) used to count the detector's boxes of one analysed frame. Two things
were wrong with that, both seen on vtest (PETS09):

* **Counts swing frame to frame.** A person the detector misses for one frame drops the count
  by one and the next frame puts them back. :class:`CrowdCounter` keeps counting a track seen
  on two frames or more that is missing from this frame at its last box for ``hold_s`` seconds
  (not when that box is at the frame's edge: they may have walked out). Tracks are ByteTrack's
  ids where it gives one, and otherwise chains of the nearest box within one box height: at
  2 fps ByteTrack leaves most walkers on vtest unconfirmed (−1), their boxes do not overlap
  from one analysed frame to the next.
* **Props are counted.** The default model reports a yellow jacket lying on the lawn as
  ``Fall`` (a person class) on every frame, so every frame counts one person too many. A thing
  that, for minutes, has neither moved nor stood upright is not a person waiting in a zone; after
  ``static_after_s`` it is a *prop* and is not counted.

The second must not hide a person who fell, so props are decided from **where things are**, not
only from track ids (ByteTrack gives a flickering detection a new id every time it is lost for
longer than its buffer):

* A *place* is a region where boxes keep appearing at about the same position (IoU ≥
  ``same_place_iou``). It remembers when a box was first and last seen there, and whether a box
  there was ever upright (h/w ≥ ``upright_ratio``) or ever moved (its track, or the boxes at the
  place, drifted more than ``static_move_frac`` of the box height).
* A track that was upright or moving anywhere and now lies at a place marks the place as a
  person's: someone who walked in and fell is never a prop, however long they lie there. So
  does a lying box that appears where a moving/upright track was lost a moment ago
  (``handoff_s``): the tracker often loses a person as they fall, and the lying box gets a new id.
* A place first seen ``static_after_s`` ago with neither flag is a prop. An upright or moving box
  at it turns it back into a person's place (someone picked the jacket up).

Only counting rules use this output. The fall rule keeps seeing the raw detections: the counter
decides what to *count*, never what exists.

State is bounded (``max_places`` places, tracks forgotten after ``max(hold_s, forget_s,
handoff_s)`` and at most ``max_tracks``), durations are measured in timestamps (never frame
counts, so 2 fps and 10 fps agree), and no clock is read: the same inputs give the same output.

>>> from gridwatch.model import Detections
>>> counter = CrowdCounter(CountSettings(static_after_s=10), person_classes={0, 1})
>>> jacket = Detections.from_arrays(xyxy=[[50, 490, 170, 555]], confidence=[0.5],
...                                 class_id=[1], tracker_id=[7], image_size=(768, 576))
>>> [len(counter.update(jacket, float(t))) for t in range(0, 14, 2)]
[1, 1, 1, 1, 1, 0, 0]
>>> counter.stats.suppressed, counter.stats.props
(1, 1)
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from gridwatch.geometry import iou_matrix
from gridwatch.model import Detections

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class CountSettings:
    """How :class:`CrowdCounter` smooths counts and recognises props.

    The defaults are meant for people in a city camera at 1-10 analysed frames per second.
    """

    hold_s: float = 1.0
    """A track ByteTrack confirmed, missing from this frame but seen within ``hold_s``, is still
    counted (a nearest-box chain of unconfirmed boxes is not: at 2 fps it can be two walkers),
    at its last box. One second fills the one- or two-frame misses a detector makes at 2 fps
    (and ten frames at 10 fps) without keeping a person who left for longer than a blink. Only
    tracks seen on at least two analysed frames are held, so a one-off false positive is not."""
    static_after_s: float = 120.0
    """A place where something has been seen for this long, never moving and never upright, is
    a prop and not counted. Two minutes: people waiting in a crowd shift, turn and stand up well
    within that; a jacket or a bag does not."""
    static_move_frac: float = 0.25
    """How far (a fraction of the box height) a box centre may drift from where it was first
    seen and still count as not moved. A quarter of the height is above the detector's jitter
    on a still object (about 10 % on vtest's jacket) and below one step of a walking person."""
    upright_ratio: float = 1.2
    """A box with height / width at or above this is upright (a standing person is 2-3, a
    sitting one about 1.2-1.5; the jacket on vtest is 0.6, a person lying down below 1)."""
    forget_s: float = 30.0
    """A place with no box at it for this long is forgotten: a prop removed (or hidden for half
    a minute) must prove itself static again before it is suppressed."""
    same_place_iou: float = 0.5
    """Boxes overlapping a place at least this much (IoU) are at that place. A lying, still box
    also joins a place when this much of *its own* area is inside it: detectors report parts
    of a thing as well as the whole."""
    held_overlap_iou: float = 0.3
    """A held box overlapping a box of this frame this much (IoU) is that box's body (a new id
    on the same person, or two people the detector merged) and is not counted again. Measured on
    TUD-Campus (a low camera, people overlapping): 0.5 counted the left zone 34 % high, 0.3
    23 %, with TownCentre's far zone 12.8 → 14.6 %."""
    handoff_s: float = 2.0
    """A lying box appearing where an upright or moving track was lost at most this long ago is
    that person (fallen, with a new track id), so its place is a person's place."""
    max_places: int = 512
    """At most this many places; the ones seen longest ago are dropped first."""
    max_tracks: int = 1024
    """At most this many remembered tracks; the ones seen longest ago are dropped first."""

    def __post_init__(self) -> None:
        for name in ("hold_s", "static_after_s", "static_move_frac", "forget_s", "handoff_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number ≥ 0, got {value}")
        if not (math.isfinite(self.upright_ratio) and self.upright_ratio > 0):
            raise ValueError(f"upright_ratio must be positive, got {self.upright_ratio}")
        for name in ("same_place_iou", "held_overlap_iou"):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in (0, 1], got {getattr(self, name)}")
        if self.max_places < 1 or self.max_tracks < 1:
            raise ValueError("max_places and max_tracks must be at least 1")


@dataclass(frozen=True, slots=True)
class CountStats:
    """What the last :meth:`CrowdCounter.update` did (for logs and metrics)."""

    detected: int = 0
    """Person boxes in the frame."""
    counted: int = 0
    """Boxes returned: detected − suppressed − duplicates + held."""
    held: int = 0
    """Tracks missing from the frame but counted at their last box."""
    suppressed: int = 0
    """Boxes not counted because they lie at a prop place."""
    places: int = 0
    props: int = 0
    """Prop places with a box at them in this frame."""
    tracks: int = 0


class _Track:
    """One body over time: a ByteTrack track, or a chain of boxes the tracker left unconfirmed."""

    __slots__ = (
        "active",
        "class_id",
        "confidence",
        "first_centre",
        "first_h",
        "key",
        "last_box",
        "last_ts",
        "seen",
        "suppressed",
        "tracker_id",
    )

    def __init__(self, key: int, box: FloatArray, ts: float) -> None:
        self.key = key
        self.first_centre = _centre(box)
        self.first_h = float(box[3] - box[1])
        self.last_box = box
        self.last_ts = ts
        self.confidence = 0.0
        self.class_id = 0
        self.tracker_id = -1
        self.seen = 0
        """Analysed frames it was seen on, counted up to 2 (only "more than once" matters)."""
        self.active = False
        """Ever upright or moved: a person, whatever their box looks like now."""
        self.suppressed = False
        """Its last box was at a prop (then it is not held either)."""


class _Place:
    __slots__ = ("box", "first_seen", "last_seen", "origin", "origin_h", "person", "uid")

    def __init__(self, uid: int, box: FloatArray, ts: float) -> None:
        self.uid = uid
        self.box = box
        self.origin = _centre(box)
        self.origin_h = float(box[3] - box[1])
        self.first_seen = ts
        self.last_seen = ts
        self.person = False
        """Ever upright or moved (a box there, or the track of a box there)."""

    def is_prop(self, ts: float, static_after_s: float) -> bool:
        return not self.person and ts - self.first_seen >= static_after_s


def _centre(box: FloatArray) -> tuple[float, float]:
    return float(box[0] + box[2]) / 2.0, float(box[1] + box[3]) / 2.0


def _drifted(box: FloatArray, origin: tuple[float, float], origin_h: float, frac: float) -> bool:
    cx, cy = _centre(box)
    h = max(float(box[3] - box[1]), origin_h)
    return math.hypot(cx - origin[0], cy - origin[1]) > frac * h


def _at_edge(box: FloatArray, image_size: tuple[int, int]) -> bool:
    """Whether ``box`` is within half its width of the frame's edge (a person may leave there)."""
    margin = float(box[2] - box[0]) / 2.0
    w, h = image_size
    return bool(box[0] < margin or box[1] < margin or box[2] > w - margin or box[3] > h - margin)


def _overlaps(box: FloatArray, boxes: FloatArray) -> tuple[FloatArray, FloatArray]:
    """IoU of ``box`` with each of ``boxes``, and the share of ``box``'s own area inside each."""
    ix = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    iy = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = ix * iy
    area = max(float((box[2] - box[0]) * (box[3] - box[1])), 1e-6)
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    iou = inter / np.maximum(area + areas - inter, 1e-6)
    return iou.astype(np.float32), (inter / area).astype(np.float32)


class CrowdCounter:
    """The people to count in each analysed frame of one camera. See the module docstring.

    Feed it the tracker's output with unmatched rows kept (``CameraTracker(...,
    keep_unmatched=True)``: ``tracker_id`` −1 rows are counted too, they just cannot be held),
    for every analysed frame in time order, including empty ones. ``person_classes`` limits the
    output to those classes (``None``: every class is a person). Reset it together with the
    tracker: track ids restart at 1 after :meth:`CameraTracker.reset
    <gridwatch.tracking.bytetrack.CameraTracker.reset>`.
    """

    def __init__(
        self,
        settings: CountSettings | None = None,
        person_classes: Collection[int] | None = None,
    ) -> None:
        self.settings = settings or CountSettings()
        self._person_classes = (
            None if person_classes is None else np.array(sorted(person_classes), dtype=np.int64)
        )
        self._tracks: dict[int, _Track] = {}
        """By key, least recently seen first (so recent ones are found from the end, and
        eviction pops from the front: per-frame work does not grow with the history)."""
        self._by_tracker_id: dict[int, int] = {}
        """ByteTrack id → key in ``_tracks`` (ids switch; a track keeps only its latest)."""
        self._next_track = 0
        self._places: dict[int, _Place] = {}
        """By uid, least recently seen first."""
        self._next_place = 0
        self._last_ts: float | None = None
        self.stats = CountStats()
        self.resets = 0
        """Times the state was dropped because time went backwards."""

    def reset(self) -> None:
        """Forget every track and place (with the tracker's reset, or after a camera moved)."""
        self._tracks.clear()
        self._by_tracker_id.clear()
        self._places.clear()
        self._last_ts = None
        self.stats = CountStats()

    def health(self) -> dict[str, Any]:
        """The last update's numbers, for logs and the worker's health endpoint."""
        s = self.stats
        return {
            "detected": s.detected,
            "counted": s.counted,
            "held": s.held,
            "suppressed": s.suppressed,
            "places": s.places,
            "props": s.props,
            "tracks": s.tracks,
            "resets": self.resets,
        }

    def update(self, detections: Detections, ts: float) -> Detections:
        """Advance to ``ts`` with this frame's detections and return the people to count.

        The result is this frame's person boxes, less those at a prop place, plus held tracks
        (last box, last confidence and class, their last ``tracker_id``: −1 for a chain ByteTrack
        never confirmed). A ``ts`` earlier than the
        previous one (a clock step, a replay) drops all state first: durations across it
        would be meaningless.
        """
        cfg = self.settings
        if self._last_ts is not None and ts < self._last_ts:
            self.reset()
            self.resets += 1
        self._last_ts = ts

        d = detections
        if self._person_classes is not None and len(d):
            d = d.select(np.isin(d.class_id, self._person_classes))
        n = len(d)
        boxes = d.xyxy.astype(np.float32, copy=False)
        w = np.maximum(boxes[:, 2] - boxes[:, 0], 1e-6)
        h = boxes[:, 3] - boxes[:, 1]
        upright = h >= cfg.upright_ratio * w

        # 1. tracks: who has been upright or moving, ever
        rows_track = self._associate(d, boxes, ts)
        active = upright.copy()
        for i, track in enumerate(rows_track):
            if _drifted(boxes[i], track.first_centre, track.first_h, cfg.static_move_frac):
                track.active = True
            track.active |= bool(upright[i])
            track.last_box = boxes[i].copy()
            track.last_ts = ts
            track.confidence = float(d.confidence[i])
            track.class_id = int(d.class_id[i])
            track.seen = min(track.seen + 1, 2)
            active[i] |= track.active
            self._tracks[track.key] = self._tracks.pop(track.key)  # most recent last
        present = {id(t) for t in rows_track}
        # upright or moving tracks lost a moment ago, where a fallen person may reappear
        lost = [t for t in self._recent(cfg.handoff_s, ts) if id(t) not in present and t.active]

        # 2. places, strongest box first so it is the one that moves a place's box
        suppressed = np.zeros(n, dtype=np.bool_)
        matched: set[int] = set()
        props: set[int] = set()
        for i in np.argsort(-d.confidence, kind="stable"):
            place = self._place_for(boxes[i], bool(active[i]), ts)
            if place.uid not in matched:  # else a stronger box of this frame set its box
                matched.add(place.uid)
                place.box = boxes[i].copy()
            place.last_seen = ts
            self._places[place.uid] = self._places.pop(place.uid)  # most recent last
            if active[i] or _drifted(boxes[i], place.origin, place.origin_h, cfg.static_move_frac):
                place.person = True
            elif place.first_seen >= ts - cfg.handoff_s and any(
                t.last_ts >= place.first_seen - cfg.handoff_s
                and _overlaps(t.last_box, boxes[i : i + 1])[0][0] > 0
                for t in lost
            ):
                place.person = True  # a lying box where a walker vanished: they fell
            suppressed[i] = place.is_prop(ts, cfg.static_after_s)
            if suppressed[i]:
                props.add(place.uid)
            rows_track[i].suppressed = bool(suppressed[i])

        keep = d.select(~suppressed)

        # 3. held: tracks seen on two frames or more, missed by this one, at their last box
        held = [
            t
            for t in self._recent(cfg.hold_s, ts)
            if id(t) not in present
            and t.seen >= 2
            and t.tracker_id >= 0  # ByteTrack confirmed it: a nearest-box chain may be two walkers
            and not t.suppressed
            and not _at_edge(t.last_box, d.image_size)  # else it may have walked out
        ]
        if held and len(keep):  # a held box on a box of this frame: the same body, new id
            iou = iou_matrix(np.stack([t.last_box for t in held]), keep.xyxy)
            held = [
                t
                for t, best in zip(held, iou.max(axis=1), strict=True)
                if best < cfg.held_overlap_iou
            ]
        if held:
            keep = Detections.from_arrays(
                xyxy=np.concatenate([keep.xyxy, np.stack([t.last_box for t in held])]),
                confidence=np.concatenate(
                    [keep.confidence, np.array([t.confidence for t in held], np.float32)]
                ),
                class_id=np.concatenate(
                    [keep.class_id, np.array([t.class_id for t in held], np.int64)]
                ),
                tracker_id=np.concatenate(
                    [keep.tracker_id, np.array([t.tracker_id for t in held], np.int64)]
                ),
                image_size=d.image_size,
                class_names=d.class_names,
            )

        self._evict(ts)
        self.stats = CountStats(
            detected=n,
            counted=len(keep),
            held=len(held),
            suppressed=int(suppressed.sum()),
            places=len(self._places),
            props=len(props),
            tracks=len(self._tracks),
        )
        return keep

    def _recent(self, within_s: float, ts: float) -> list[_Track]:
        """Tracks last seen at most ``within_s`` before ``ts``, most recent first."""
        out: list[_Track] = []
        for t in reversed(self._tracks.values()):
            if ts - t.last_ts > within_s:
                break
            out.append(t)
        return out

    def _associate(self, d: Detections, boxes: FloatArray, ts: float) -> list[_Track]:
        """The track of each row, made if there is none.

        A row with a ByteTrack id continues the track that had it. Every other row (an id not
        seen before, or −1: at 2 fps ByteTrack leaves most walkers unconfirmed, their boxes do
        not overlap from one frame to the next) continues the nearest track not seen in this
        frame, last seen within ``hold_s`` and within one box height of it (people move less
        than their height in a second), nearest pairs first; else it starts a track.
        """
        cfg = self.settings
        out: list[_Track | None] = [None] * len(d)
        taken: set[int] = set()
        for i in range(len(d)):
            tid = int(d.tracker_id[i])
            key = self._by_tracker_id.get(tid) if tid >= 0 else None
            if key is not None and key not in taken:
                out[i] = self._tracks[key]
                taken.add(key)
        open_rows = [i for i in range(len(d)) if out[i] is None]
        if open_rows:
            pairs: list[tuple[float, int, int]] = []
            for t in self._recent(cfg.hold_s, ts):
                key = t.key
                if key in taken or t.last_ts >= ts:
                    continue
                tx, ty = _centre(t.last_box)
                th = float(t.last_box[3] - t.last_box[1])
                for i in open_rows:
                    bx, by = _centre(boxes[i])
                    dist = math.hypot(bx - tx, by - ty)
                    if dist <= max(th, float(boxes[i][3] - boxes[i][1])):
                        pairs.append((dist, key, i))
            for _, key, i in sorted(pairs):
                if key not in taken and out[i] is None:
                    out[i] = self._tracks[key]
                    taken.add(key)
        tracks: list[_Track] = []
        for i, track in enumerate(out):
            if track is None:
                track = _Track(self._next_track, boxes[i], ts)
                self._next_track += 1
                self._tracks[track.key] = track
            tid = int(d.tracker_id[i])
            if tid >= 0 and tid != track.tracker_id:
                self._by_tracker_id.pop(track.tracker_id, None)
                self._by_tracker_id[tid] = track.key
                track.tracker_id = tid
            tracks.append(track)
        return tracks

    def _place_for(self, box: FloatArray, active: bool, ts: float) -> _Place:
        """The place ``box`` is at, made if there is none."""
        places = list(self._places.values())
        if places:
            iou, inside = _overlaps(box, np.stack([p.box for p in places]))
            # a still, lying box mostly inside a place is part of the thing there
            score = iou if active else np.maximum(iou, inside)
            best = int(np.argmax(score))
            if score[best] >= self.settings.same_place_iou:
                return places[best]
        place = _Place(self._next_place, box.copy(), ts)
        self._next_place += 1
        self._places[place.uid] = place
        return place

    def _evict(self, ts: float) -> None:
        cfg = self.settings
        places, tracks = self._places, self._tracks
        while places and (
            len(places) > cfg.max_places or ts - places[next(iter(places))].last_seen > cfg.forget_s
        ):
            del places[next(iter(places))]
        keep_s = max(cfg.hold_s, cfg.forget_s, cfg.handoff_s)
        while tracks and (
            len(tracks) > cfg.max_tracks or ts - tracks[next(iter(tracks))].last_ts > keep_s
        ):
            gone = tracks.pop(next(iter(tracks)))
            # its ByteTrack id goes with it: a later frame reusing the id starts a new track
            if self._by_tracker_id.get(gone.tracker_id) == gone.key:
                del self._by_tracker_id[gone.tracker_id]

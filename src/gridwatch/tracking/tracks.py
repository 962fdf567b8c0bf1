"""Tracks, made and stitched once per frame per camera, and the bounded per-track state of
the rules.

:func:`tracks_of` turns a frame's tracked detections into :class:`~gridwatch.model.Track` s.
:class:`~gridwatch.rules.engine.CameraRules` does it once per frame, passes them through the
camera's one :class:`TrackStitcher` and hands the same stitched tracks to every track rule
(loitering, line crossing, vehicle stop, fall, intrusion). Two problems come with per-track
state on a 24/7 stream, each solved here once:

* **Continuity** (:class:`TrackStitcher`). ByteTrack gives a person a *new* id when it loses
  them for longer than its buffer (a lamp post, a passing van, a person lying down whose box
  changes shape). A rule that measures a dwell or a side of a line would restart from zero. So
  a new id that appears within ``link_scale`` box heights of where a recently lost track was
  last seen, within ``keep_s``, takes over that track's *stable id* (``Track.track_id``; the
  tracker's own id stays in ``raw_track_id``, and ``linked`` marks the frame of the take-over).
  ``keep_s`` is the longest window any of the camera's rules keeps a lost track's state for
  (:class:`TrackRule`). This is continuity of position within one camera, not identity: no
  appearance features are used, and nothing crosses cameras.
* **Memory** (:class:`TrackState`). A camera sees thousands of tracks a day; a rule's state for
  a track that has not been seen for the rule's own ``keep_s`` is dropped (supervision's
  ``LineZone`` keeps it forever; we don't), and a hard cap ``max_tracks`` evicts the
  longest-unseen entry should a detector go wild. A rule whose window is shorter than a gap
  starts the track afresh, even where the stitcher (with a longer window) kept its id.

>>> from gridwatch.model import Detections
>>> def det(tid, x):
...     return Detections.from_arrays(xyxy=[[x, 10, x + 10, 40]], confidence=[.9], class_id=[0],
...                                   tracker_id=[tid], image_size=(100, 100))
>>> stitcher, state = TrackStitcher(keep_s=5.0), TrackState(keep_s=2.0)
>>> first = stitcher.update(tracks_of(det(1, 10)), 0.0)
>>> [(t.track_id, t.raw_track_id, t.linked) for t in first]
[(1, 1, False)]
>>> [s for _, s in state.observe(first, 0.0, lambda o: "since 0")]
['since 0']
>>> again = stitcher.update(tracks_of(det(7, 12)), 1.0)  # id 7 where 1 was lost: stable id 1
>>> [(t.track_id, t.raw_track_id, t.linked) for t in again], stitcher.linked
([(1, 7, True)], frozenset({1}))
>>> [s for _, s in state.observe(again, 1.0, lambda o: "since 1")]  # the rule's state goes on
['since 0']
>>> late = stitcher.update(tracks_of(det(7, 12)), 4.0)  # unseen 3 s: still stable id 1 ...
>>> [(t.track_id, s) for t, s in state.observe(late, 4.0, lambda o: "since 4")]  # ... but
[(1, 'since 4')]
>>> _ = stitcher.update([], 10.0); state.expire(10.0); len(stitcher), len(state)
(0, 0)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar, runtime_checkable

import numpy as np

from gridwatch.model import Detections, Track

S = TypeVar("S")


def tracks_of(detections: Detections) -> tuple[Track, ...]:
    """The detections that carry a tracker id (>= 0), as :class:`~gridwatch.model.Track` s, in
    detection order, with the tracker's ids (``track_id`` = ``raw_track_id``; not stitched)."""
    if len(detections) == 0:
        return ()
    norm = detections.xyxyn()
    out = []
    for i in np.flatnonzero(detections.tracker_id >= 0):
        b = detections.xyxy[i]
        n = norm[i]
        tid = int(detections.tracker_id[i])
        out.append(
            Track(
                track_id=tid,
                class_id=int(detections.class_id[i]),
                confidence=float(detections.confidence[i]),
                box_px=(float(b[0]), float(b[1]), float(b[2]), float(b[3])),
                box=(float(n[0]), float(n[1]), float(n[2]), float(n[3])),
                raw_track_id=tid,
            )
        )
    return tuple(out)


def of_classes(tracks: Sequence[Track], classes: Collection[int] | None) -> list[Track]:
    """The tracks of the given classes (``None``: all), order kept."""
    if classes is None:
        return list(tracks)
    return [t for t in tracks if t.class_id in classes]


def tracked(detections: Detections, classes: Collection[int] | None = None) -> list[Track]:
    """The tracks of ``detections``, optionally of the given classes only (not stitched)."""
    return of_classes(tracks_of(detections), classes)


@runtime_checkable
class TrackRule(Protocol):
    """A rule that keeps state per track: what the camera's stitcher needs to know of it."""

    @property
    def track_keep_s(self) -> float:
        """Seconds the rule keeps a lost track's state (the stitcher links at least as long)."""
        ...

    @property
    def track_classes(self) -> frozenset[int] | None:
        """The classes the rule follows (``None``: all)."""
        ...


def rule_tracks(
    detections: Detections,
    ts: float,
    tracks: Sequence[Track] | None,
    classes: Collection[int] | None,
    solo: TrackStitcher,
) -> list[Track]:
    """A track rule's tracks of one frame: the camera's stitched ``tracks`` of ``classes``; or,
    for a rule used on its own (``tracks`` is ``None``), ``detections``' tracks of ``classes``
    stitched by the rule's ``solo`` stitcher, as a camera with only that rule would."""
    if tracks is None:
        return list(solo.update(tracked(detections, classes), ts))
    return of_classes(tracks, classes)


@dataclass
class _Chain:
    stable_id: int
    last_seen: float
    last: Track


class TrackStitcher:
    """Raw tracker ids → stable ids, per camera: a new id near where a track was lost within
    ``keep_s`` takes over its stable id (see the module doc).

    ``class_groups`` limits links to classes that some rule follows together (one group per
    track rule; ``None``: every class): a truck's new id may not take over a lost person's id
    for the vehicle rules while the people rules start the person afresh. Classes in no group
    link to their own class only.
    """

    def __init__(
        self,
        keep_s: float,
        *,
        link_scale: float = 1.0,
        max_tracks: int = 512,
        class_groups: Iterable[Collection[int] | None] = (None,),
    ) -> None:
        if keep_s < 0 or max_tracks < 1:
            raise ValueError("keep_s must be >= 0 and max_tracks >= 1")
        self.keep_s = keep_s
        self.link_scale = link_scale
        self.max_tracks = max_tracks
        self._group = _class_groups(class_groups)
        self._chains: dict[int, _Chain] = {}
        """Raw tracker id → the chain of ids it continues (its stable id, when last seen)."""
        self.linked: frozenset[int] = frozenset()
        """Stable ids a new tracker id took over in the latest :meth:`update`."""

    def __len__(self) -> int:
        return len(self._chains)

    def _may_link(self, a: int, b: int) -> bool:
        if a == b or self._group is None:
            return True
        ga, gb = self._group.get(a), self._group.get(b)
        return ga is not None and ga == gb

    def update(self, tracks: Sequence[Track], ts: float) -> tuple[Track, ...]:
        """This frame's tracks (the tracker's ids) with stable ids, in the same order."""
        self.expire(ts)
        self.linked = frozenset()
        seen = {t.track_id for t in tracks}
        out: list[Track | None] = [None] * len(tracks)
        fresh = []
        for i, t in enumerate(tracks):
            c = self._chains.get(t.track_id)
            if c is not None:
                out[i] = c.last = _stable(t, c.stable_id, linked=False)
                c.last_seen = ts
            else:
                fresh.append(i)
        if fresh:
            dormant = [
                raw for raw, c in self._chains.items() if raw not in seen and c.last_seen < ts
            ]
            pairs = []
            for i in fresh:
                t = tracks[i]
                for raw in dormant:
                    last = self._chains[raw].last
                    reach = self.link_scale * max(last.height_px, t.height_px, 1.0)
                    d = math.dist(t.anchor_px, last.anchor_px)
                    if d <= reach and self._may_link(last.class_id, t.class_id):
                        pairs.append((d, i, raw))
            pairs.sort()
            used_new: set[int] = set()
            used_raw: set[int] = set()
            linked = []
            for _, i, raw in pairs:
                if i in used_new or raw in used_raw:
                    continue
                used_new.add(i)
                used_raw.add(raw)
                c = self._chains.pop(raw)
                out[i] = c.last = _stable(tracks[i], c.stable_id, linked=True)
                c.last_seen = ts
                self._chains[tracks[i].track_id] = c
                linked.append(c.stable_id)
            self.linked = frozenset(linked)
            in_use = {c.stable_id for c in self._chains.values()}
            for i in fresh:
                if i in used_new:
                    continue
                t = tracks[i]
                stable = t.track_id
                if stable in in_use:  # the tracker restarted its ids: pick an unused one
                    stable = max(in_use) + 1
                in_use.add(stable)
                out[i] = last = _stable(t, stable, linked=False)
                self._chains[t.track_id] = _Chain(stable, ts, last)
        self._cap()
        return tuple(t for t in out if t is not None)

    def expire(self, ts: float) -> None:
        """Forget tracks unseen for longer than ``keep_s``."""
        stale = [raw for raw, c in self._chains.items() if ts - c.last_seen > self.keep_s]
        for raw in stale:
            del self._chains[raw]

    def _cap(self) -> None:
        if len(self._chains) <= self.max_tracks:
            return
        oldest = sorted(self._chains, key=lambda r: self._chains[r].last_seen)
        for raw in oldest[: len(self._chains) - self.max_tracks]:
            del self._chains[raw]


def _stable(t: Track, stable_id: int, *, linked: bool) -> Track:
    raw = t.raw_track_id if t.raw_track_id is not None else t.track_id
    return dataclasses.replace(t, track_id=stable_id, raw_track_id=raw, linked=linked)


def _class_groups(groups: Iterable[Collection[int] | None]) -> dict[int, int] | None:
    """Class id → a representative of the classes it may link with (``None``: all with all).

    >>> _class_groups([{0, 1}, {1, 5}, {2, 7}]) == {0: 0, 1: 0, 5: 0, 2: 2, 7: 2}
    True
    >>> _class_groups([{2, 7}, None]) is None
    True
    """
    parent: dict[int, int] = {}

    def root(c: int) -> int:
        while parent[c] != c:
            parent[c] = parent[parent[c]]
            c = parent[c]
        return c

    for g in groups:
        if g is None:
            return None
        members = sorted(g)
        for c in members:
            parent.setdefault(c, c)
        for c in members[1:]:
            parent[root(c)] = root(members[0])
    return {c: root(c) for c in parent}


@dataclass
class _Entry(Generic[S]):
    state: S
    last_seen: float
    last: Track


class TrackState(Generic[S]):
    """A rule's own state per (stable) track id: expired after ``keep_s`` unseen, at most
    ``max_tracks`` of them (the longest unseen go first). No stitching: the ids come stitched."""

    def __init__(self, keep_s: float, *, max_tracks: int = 512) -> None:
        if keep_s < 0 or max_tracks < 1:
            raise ValueError("keep_s must be >= 0 and max_tracks >= 1")
        self.keep_s = keep_s
        self.max_tracks = max_tracks
        self._entries: dict[int, _Entry[S]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, track_id: int) -> bool:
        return track_id in self._entries

    def items(self) -> Iterator[tuple[int, S, float, Track]]:
        """(track id, state, last seen, last observation) of every kept track."""
        for tid, e in self._entries.items():
            yield tid, e.state, e.last_seen, e.last

    def get(self, track_id: int) -> S | None:
        e = self._entries.get(track_id)
        return None if e is None else e.state

    def observe(
        self, tracks: Sequence[Track], ts: float, new_state: Callable[[Track], S]
    ) -> list[tuple[Track, S]]:
        """Record this frame's tracks; return each with its state (``new_state(track)`` for a
        track not seen within ``keep_s``)."""
        self.expire(ts)
        out = []
        for t in tracks:
            e = self._entries.get(t.track_id)
            if e is None:
                e = self._entries[t.track_id] = _Entry(new_state(t), ts, t)
            else:
                e.last_seen, e.last = ts, t
            out.append((t, e.state))
        self._cap()
        return out

    def renew(self, track_id: int, state: S) -> S:
        """Replace a kept track's state (the track starts afresh under its id)."""
        e = self._entries.get(track_id)
        if e is not None:
            e.state = state
        return state

    def expire(self, ts: float) -> None:
        """Drop tracks unseen for longer than ``keep_s``."""
        stale = [tid for tid, e in self._entries.items() if ts - e.last_seen > self.keep_s]
        for tid in stale:
            del self._entries[tid]

    def clear(self) -> None:
        self._entries.clear()

    def _cap(self) -> None:
        if len(self._entries) <= self.max_tracks:
            return
        oldest = sorted(self._entries, key=lambda t: self._entries[t].last_seen)
        for tid in oldest[: len(self._entries) - self.max_tracks]:
            del self._entries[tid]

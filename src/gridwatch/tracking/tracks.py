"""Tracks, made once per frame, and per-track rule state that stays bounded on a 24/7 stream
and survives short occlusions.

:func:`tracks_of` turns a frame's tracked detections into :class:`~gridwatch.model.Track` s;
:class:`~gridwatch.rules.engine.CameraRules` does it once per frame and passes the same tracks
to every track rule. Track-based rules (loitering, line crossing, vehicle stop, fall, intrusion)
keep a little state per tracker id, in a :class:`TrackTable` each. Two problems come with that,
both solved here once:

* **Memory.** A camera sees thousands of tracks a day; state for a track that has not been
  seen for ``keep_s`` is dropped (supervision's ``LineZone`` keeps it forever; we don't), and a
  hard cap ``max_tracks`` evicts the longest-unseen entry should a detector go wild.
* **Continuity.** ByteTrack gives a person a *new* id when it loses them for longer than its
  buffer (a lamp post, a passing van, a person lying down whose box changes shape). A rule that
  measures a dwell or a side of a line would restart from zero. So a new id that appears within
  ``link_scale`` box heights of where a recently lost track was last seen, within ``keep_s``,
  takes over that track's state. This is continuity of position within one camera, not
  identity: no appearance features are used, and nothing crosses cameras.

>>> import numpy as np
>>> from gridwatch.model import Detections
>>> def det(tid, x):
...     return Detections.from_arrays(xyxy=[[x, 10, x + 10, 40]], confidence=[.9], class_id=[0],
...                                   tracker_id=[tid], image_size=(100, 100))
>>> table = TrackTable(keep_s=2.0)
>>> [s for _, s in table.observe(tracked(det(1, 10)), 0.0, lambda o: {"first": 0.0})]
[{'first': 0.0}]
>>> [s for _, s in table.observe(tracked(det(7, 12)), 1.0, lambda o: {"first": 1.0})]  # id 7 ≈ 1
[{'first': 0.0}]
>>> _ = table.observe([], 5.0, dict); len(table)
0
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np

from gridwatch.model import Detections, Track

S = TypeVar("S")


def tracks_of(detections: Detections) -> tuple[Track, ...]:
    """The detections that carry a tracker id (>= 0), as :class:`~gridwatch.model.Track` s, in
    detection order. :class:`~gridwatch.rules.engine.CameraRules` calls it once per frame and
    hands the result to every track rule."""
    if len(detections) == 0:
        return ()
    norm = detections.xyxyn()
    out = []
    for i in np.flatnonzero(detections.tracker_id >= 0):
        b = detections.xyxy[i]
        n = norm[i]
        out.append(
            Track(
                track_id=int(detections.tracker_id[i]),
                class_id=int(detections.class_id[i]),
                confidence=float(detections.confidence[i]),
                box_px=(float(b[0]), float(b[1]), float(b[2]), float(b[3])),
                box=(float(n[0]), float(n[1]), float(n[2]), float(n[3])),
            )
        )
    return tuple(out)


def of_classes(tracks: Sequence[Track], classes: Collection[int] | None) -> list[Track]:
    """The tracks of the given classes (``None``: all), order kept."""
    if classes is None:
        return list(tracks)
    return [t for t in tracks if t.class_id in classes]


def tracked(detections: Detections, classes: Collection[int] | None = None) -> list[Track]:
    """The tracks of ``detections``, optionally of the given classes only."""
    return of_classes(tracks_of(detections), classes)


@dataclass
class _Entry(Generic[S]):
    state: S
    last_seen: float
    last: Track


class TrackTable(Generic[S]):
    """State per track id, expired after ``keep_s`` unseen, linked across id changes."""

    def __init__(self, keep_s: float, *, link_scale: float = 1.0, max_tracks: int = 512) -> None:
        if keep_s < 0 or max_tracks < 1:
            raise ValueError("keep_s must be >= 0 and max_tracks >= 1")
        self.keep_s = keep_s
        self.link_scale = link_scale
        self.max_tracks = max_tracks
        self._entries: dict[int, _Entry[S]] = {}
        self.linked: frozenset[int] = frozenset()
        """Track ids that took over another track's state in the latest :meth:`observe`."""

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
        self,
        objects: list[Track],
        ts: float,
        new_state: Callable[[Track], S],
        *,
        linkable: Callable[[S, Track], bool] | None = None,
    ) -> list[tuple[Track, S]]:
        """Record this frame's objects; return each with its (possibly inherited) state.

        ``linkable(state, obj)`` may refuse a link (the fall rule refuses to let a lying object
        inherit from a track that was itself never upright).
        """
        self.expire(ts)
        self.linked = frozenset()
        seen = {o.track_id for o in objects}
        out: list[tuple[Track, S] | None] = [None] * len(objects)
        fresh = []
        for i, o in enumerate(objects):
            e = self._entries.get(o.track_id)
            if e is not None:
                e.last_seen, e.last = ts, o
                out[i] = (o, e.state)
            else:
                fresh.append(i)
        if fresh:
            dormant = [
                tid for tid, e in self._entries.items() if tid not in seen and e.last_seen < ts
            ]
            pairs = []
            for i in fresh:
                o = objects[i]
                for tid in dormant:
                    e = self._entries[tid]
                    reach = self.link_scale * max(e.last.height_px, o.height_px, 1.0)
                    d = math.dist(o.anchor_px, e.last.anchor_px)
                    if d <= reach and (linkable is None or linkable(e.state, o)):
                        pairs.append((d, i, tid))
            pairs.sort()
            used_obj: set[int] = set()
            used_tid: set[int] = set()
            for _, i, tid in pairs:
                if i in used_obj or tid in used_tid:
                    continue
                used_obj.add(i)
                used_tid.add(tid)
                e = self._entries.pop(tid)
                e.last_seen, e.last = ts, objects[i]
                self._entries[objects[i].track_id] = e
                out[i] = (objects[i], e.state)
            self.linked = frozenset(objects[i].track_id for i in used_obj)
            for i in fresh:
                if i not in used_obj:
                    o = objects[i]
                    e = _Entry(new_state(o), ts, o)
                    self._entries[o.track_id] = e
                    out[i] = (o, e.state)
        self._cap()
        return [x for x in out if x is not None]

    def expire(self, ts: float) -> None:
        """Drop tracks unseen for longer than ``keep_s``."""
        stale = [tid for tid, e in self._entries.items() if ts - e.last_seen > self.keep_s]
        for tid in stale:
            del self._entries[tid]

    def _cap(self) -> None:
        if len(self._entries) <= self.max_tracks:
            return
        oldest = sorted(self._entries, key=lambda t: self._entries[t].last_seen)
        for tid in oldest[: len(self._entries) - self.max_tracks]:
            del self._entries[tid]

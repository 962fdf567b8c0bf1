"""Per-frame person ground truth of real footage, and the crowding truth derived from it.

The real-data scenarios (see :mod:`gridwatch.evaluation.scenarios`) score the crowding rule
against counts made by the datasets' authors, not by our detector, so a detector change can
never move the truth. This module reads that ground truth and answers two questions with the
*same* definitions the rules use:

* how many people are in a zone at a moment of the video: a person is in the zone when the
  bottom-centre of their box (their feet), normalized by the video's width and height, is
  inside the polygon. The boxes are wrapped in :class:`~gridwatch.model.Detections` and tested
  with :meth:`Zone.contains` on :meth:`Detections.anchors_normalized`, the code
  :class:`~gridwatch.rules.crowding.CrowdingRule` counts with, so "in zone" has one meaning;
* which crowding incidents should fire: :func:`derive_crowding_incidents` runs the crowding
  contract (threshold, minimum duration, onset gap, clear-after hysteresis) over the truth's
  count series. Computing this at evaluation time, rather than writing it into ``truth.yaml``,
  keeps the truth from drifting away from the data.

Ground truth files are MOT challenge text (``frame,id,left,top,width,height,flag,...``, frames
1-based, pixels of the video as given). Rows whose 7th column is ``0`` are skipped: in MOT that
column is the "consider" flag and 0 marks an entry the benchmark ignores (in PETS09-S2L1, 174
rows of three people at the far edge of the scene). In the 9-column MOT16+ layout the 8th column
is a class; only people (1 pedestrian, 2 person on a vehicle, 7 static person) are kept.

Video time maps to a ground-truth frame as ``round(video_s × fps) + 1 + frame_offset``: ``fps``
is the rate of the video whose frame *i* the ground truth's frame *i* describes (PETS09's
``vtest.avi`` plays at 10 fps although the sequence was shot at 7: 10 is what counts here).

>>> gt = GroundTruth.from_text(
...     "1,1,10,10,20,40,1,-1,-1,-1\\n1,2,60,50,20,40,1,-1,-1,-1\\n"
...     "2,1,12,10,20,40,1,-1,-1,-1\\n2,3,0,0,5,5,0,-1,-1,-1\\n",
...     width=100, height=100, fps=10)
>>> gt.frame_at(0.0), gt.frame_at(0.1), gt.covers(0.2)
(1, 2, False)
>>> bottom = Zone("bottom", [(0, 0.6), (1, 0.6), (1, 1), (0, 1)])
>>> gt.count(bottom, 0.0), gt.count(bottom, 0.1)   # feet at y 0.5 and 0.9; the ignored row skipped
(1, 0)
>>> gt.series(bottom)
[(0.0, 1), (0.1, 0)]
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from gridwatch.model import Detections
from gridwatch.rules.base import DetectionRule
from gridwatch.rules.zones import Zone

log = logging.getLogger(__name__)

PERSON_CLASSES = frozenset({1, 2, 7})
"""MOT16+ classes that are people: pedestrian, person on a vehicle, static person."""


class GroundTruthError(ValueError):
    """A ground truth file that cannot be read; the message names the file and line."""


def parse_mot(text: str, *, source: str = "<text>") -> dict[int, npt.NDArray[np.float32]]:
    """MOT rows → ``{frame: (n, 4) xyxy boxes in pixels}``, ignored and non-person rows skipped.

    >>> boxes = parse_mot("3,1,10,20,30,40,1,1,1\\n3,2,0,0,9,9,1,4,1\\n")  # class 4: no person
    >>> boxes[3].tolist()
    [[10.0, 20.0, 40.0, 60.0]]
    """
    rows: dict[int, list[tuple[float, float, float, float]]] = {}
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        cols = [c.strip() for c in line.replace(" ", ",").split(",") if c.strip()]
        try:
            frame = int(float(cols[0]))
            left, top, w, h = (float(c) for c in cols[2:6])
            flag = float(cols[6]) if len(cols) > 6 else 1.0
            cls = int(float(cols[7])) if len(cols) == 9 else 1
        except (IndexError, ValueError) as exc:
            raise GroundTruthError(f"{source}:{n}: not a MOT row ({exc}): {line!r}") from None
        if flag == 0 or cls not in PERSON_CLASSES:
            continue
        rows.setdefault(frame, []).append((left, top, left + w, top + h))
    return {f: np.asarray(b, dtype=np.float32).reshape(-1, 4) for f, b in rows.items()}


def parse_mot_ids(text: str) -> dict[int, npt.NDArray[np.int64]]:
    """MOT rows → ``{frame: person ids}``, in the order :func:`parse_mot` gives the boxes (the
    same rows skipped), for the rules that follow tracks (running).

    >>> rows = "3,1,10,20,30,40,1,1,1\\n3,2,0,0,9,9,1,4,1\\n3,5,1,1,9,9,1,1,1\\n"
    >>> parse_mot_ids(rows)[3].tolist()
    [1, 5]
    """
    rows: dict[int, list[int]] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        cols = [c.strip() for c in line.replace(" ", ",").split(",") if c.strip()]
        flag = float(cols[6]) if len(cols) > 6 else 1.0
        cls = int(float(cols[7])) if len(cols) == 9 else 1
        if flag == 0 or cls not in PERSON_CLASSES:
            continue
        rows.setdefault(int(float(cols[0])), []).append(int(float(cols[1])))
    return {f: np.asarray(i, dtype=np.int64) for f, i in rows.items()}


@dataclass(frozen=True)
class GroundTruth:
    """Person boxes per ground-truth frame of one video, and counts per zone from them.

    Frames without a row but between the first and the last annotated frame hold nobody; times
    outside that range are not covered (:meth:`covers`), so they are never scored.
    """

    boxes: Mapping[int, npt.NDArray[np.float32]]
    width: int
    height: int
    fps: float
    frame_offset: int = 0
    ids: Mapping[int, npt.NDArray[np.int64]] | None = None
    """The annotators' person id of each box (``None``: not kept)."""

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0 or self.fps <= 0:
            raise GroundTruthError("ground truth needs a positive video size and fps")
        if not self.boxes:
            raise GroundTruthError("ground truth has no rows")

    @classmethod
    def from_text(
        cls, text: str, *, width: int, height: int, fps: float, frame_offset: int = 0,
        source: str = "<text>",
    ) -> GroundTruth:  # fmt: skip
        boxes = parse_mot(text, source=source)
        return cls(boxes, width, height, fps, frame_offset, parse_mot_ids(text))

    @classmethod
    def load(
        cls, path: Path, *, width: int, height: int, fps: float, frame_offset: int = 0
    ) -> GroundTruth:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise GroundTruthError(f"{path}: {exc}") from None
        return cls.from_text(
            text, width=width, height=height, fps=fps, frame_offset=frame_offset, source=str(path)
        )

    @property
    def first_frame(self) -> int:
        return min(self.boxes)

    @property
    def last_frame(self) -> int:
        return max(self.boxes)

    def frame_at(self, video_s: float) -> int:
        """The ground-truth frame that describes the video frame shown at ``video_s``."""
        return round(video_s * self.fps) + 1 + self.frame_offset

    def time_of(self, frame: int) -> float:
        """Video seconds of a ground-truth frame (the inverse of :meth:`frame_at`)."""
        return (frame - 1 - self.frame_offset) / self.fps

    def covers(self, video_s: float) -> bool:
        return self.first_frame <= self.frame_at(video_s) <= self.last_frame

    def detections_at(self, video_s: float) -> Detections:
        """The truth's boxes at ``video_s`` as person detections (class 0) of the video's size."""
        frame = self.frame_at(video_s)
        xyxy = self.boxes.get(frame, np.zeros((0, 4), np.float32))
        n = len(xyxy)
        ids = None if self.ids is None else self.ids.get(frame, np.zeros(0, np.int64))
        return Detections.from_arrays(
            xyxy=xyxy,
            confidence=np.ones(n),
            class_id=np.zeros(n),
            tracker_id=ids,
            image_size=(self.width, self.height),
        )

    def count(self, zone: Zone, video_s: float) -> int:
        """People whose feet are in ``zone`` at ``video_s``: the rules' definition of in-zone."""
        d = self.detections_at(video_s)
        return int(zone.contains(d.anchors_normalized()).sum()) if len(d) else 0

    def series(self, zone: Zone) -> list[tuple[float, int]]:
        """``(video_s, count)`` for every ground-truth frame from the first to the last."""
        out = []
        for frame in range(self.first_frame, self.last_frame + 1):
            t = round(self.time_of(frame), 6)
            out.append((t, self.count(zone, t)))
        return out


def video_geometry(path: Path) -> tuple[int, int, float]:
    """``(width, height, fps)`` of a video's first stream (what the ground truth is scaled to)."""
    import av

    with av.open(str(path)) as c:
        s = c.streams.video[0]
        rate = s.average_rate or s.guessed_rate
        return int(s.width), int(s.height), float(rate) if rate else 0.0


@dataclass(frozen=True)
class DerivedIncident:
    """A crowding incident the truth's counts call for: the crowd began at ``start_s``, the
    contract raises at ``raised_s``; ``end_s`` is the last moment at or above the threshold
    before the contract clears (``None``: still crowded when the footage ends)."""

    start_s: float
    raised_s: float
    end_s: float | None
    peak: int


def derive_crowding_incidents(
    series: Sequence[tuple[float, int]],
    min_count: int,
    min_duration_s: float,
    clear_after_s: float,
    onset_gap_s: float,
) -> list[DerivedIncident]:
    """Apply the crowding contract of :mod:`gridwatch.rules.crowding` to a count series.

    The same state machine as :class:`~gridwatch.rules.crowding.CrowdingRule` with every frame
    observed and no schedule (``tests/unit/test_ground_truth.py`` checks that both agree on
    random series): pending when the count reaches ``min_count``, dips up to ``onset_gap_s``
    keep the onset, raised once it has lasted ``min_duration_s``, cleared after
    ``clear_after_s`` below the threshold.

    >>> s = [(t * 0.5, c) for t, c in enumerate([1, 3, 3, 1, 3, 3, 3, 0, 0, 0, 0, 0, 3])]
    >>> derive_crowding_incidents(s, 3, 1.0, 1.5, 0.4)   # the dip at 1.5 s restarts the onset
    [DerivedIncident(start_s=2.0, raised_s=3.0, end_s=3.0, peak=3)]
    >>> derive_crowding_incidents(s, 3, 1.0, 1.5, 1.0)   # a 0.5 s dip no longer restarts it
    [DerivedIncident(start_s=0.5, raised_s=2.0, end_s=3.0, peak=3)]
    """
    out: list[DerivedIncident] = []
    phase = "idle"
    onset = last_above = 0.0
    peak = 0
    raised_at = 0.0
    for ts, count in series:
        above = count >= min_count
        if phase == "idle":
            if not above:
                continue
            phase, onset, last_above, peak = "pending", ts, ts, count
        elif above:
            last_above = ts
            peak = max(peak, count)
        if phase == "pending":
            if not above and ts - last_above > onset_gap_s:
                phase = "idle"
            elif above and ts - onset >= min_duration_s:
                phase, raised_at = "active", ts
            continue
        if not above and ts - last_above >= clear_after_s:
            out.append(DerivedIncident(onset, raised_at, last_above, peak))
            phase = "idle"
    if phase == "active":
        out.append(DerivedIncident(onset, raised_at, None, peak))
    return out


RULE_DERIVED_TYPES = frozenset({"running", "gathering", "density"})
"""Rule types whose truth is derived by running the rule's own state machine on the ground
truth's people (:func:`derive_rule_incidents`)."""


def derive_rule_incidents(rule: DetectionRule, gt: GroundTruth) -> list[DerivedIncident]:
    """The incidents a rule's contract calls for on the ground truth's people.

    The rule (built from the scenario's config, with the scenario's calibration) is fed the
    truth's boxes at every annotated frame, as person detections carrying the annotators' ids
    as track ids (unstitched: they are already continuous): a gathering is the truth's count
    rising in the zone, a density the truth's count over the zone's ground area, a runner a
    truth track whose ground speed (through the calibration) is over the limit. Nothing comes
    from our detector or tracker; the state machines themselves are checked by the unit tests.
    ``end_s`` is the last moment the condition held (the clear, less ``clear_after_s``).

    >>> from gridwatch.calibration.ground import GroundPlane
    >>> from gridwatch.rules.density import DensityRule, DensityRuleConfig
    >>> rows = "".join(f"{f},{i},{10 * i},50,5,40,1,-1,-1,-1\\n" for f in range(1, 31)
    ...                for i in range(1, 3 if f < 10 or f > 20 else 6))
    >>> gt = GroundTruth.from_text(rows, width=100, height=100, fps=10)
    >>> zone = Zone("z", [(0, 0), (1, 0), (1, 1), (0, 1)])
    >>> plane = GroundPlane.from_points([(0, 0), (1, 0), (1, 1), (0, 1)],
    ...                                 [(0, 0), (2, 0), (2, 2), (0, 2)])
    >>> cfg = DensityRuleConfig(type="density", zone="z", max_per_m2=1, min_duration_s=0.45,
    ...                         clear_after_s=0.3, count_window_s=0)
    >>> derive_rule_incidents(DensityRule(zone, cfg, area_m2=plane.area(zone.points)), gt)
    [DerivedIncident(start_s=0.9, raised_s=1.4, end_s=1.9, peak=5)]
    """
    from gridwatch.model import IncidentState
    from gridwatch.tracking.tracks import tracks_of

    out: list[DerivedIncident] = []
    raised: tuple[float, float] | None = None
    peak = 0
    clear_after = float(getattr(getattr(rule, "params", None), "clear_after_s", 0.0))
    for frame in range(gt.first_frame, gt.last_frame + 1):
        t = round(gt.time_of(frame), 6)
        d = gt.detections_at(t)
        events = rule.update(d, t) if rule.counts_people else rule.update(d, t, tracks_of(d))
        for e in events:
            peak = max(peak, e.peak_count) if raised is not None else e.peak_count
            if e.state is IncidentState.RAISED:
                raised = (e.started_at, t)
            elif e.state is IncidentState.CLEARED and raised is not None:
                end = max(raised[1], round(t - clear_after, 6))
                out.append(DerivedIncident(raised[0], raised[1], end, peak))
                raised = None
    if raised is not None:
        out.append(DerivedIncident(raised[0], raised[1], None, peak))
    return out

"""Per-camera minute statistics, accumulated on every analysed frame.

Two parts, both pure (no I/O, no clock: time is the frame's timestamp):

* :class:`MinuteAccumulator` sums one open period: per zone the people counted in each sample
  (for the mean) and the most in one sample, per line the crossings in and out, and a heat grid
  of where people's feet were. When a sample's time is past the open period, the period is
  closed into a :class:`~gridwatch.stats.model.StatsRecord` and a new one opens. A period with
  no analysed frame gives no record (a camera that was off is not "0 people").
* :class:`CameraStats` reads each analysed frame the way the camera's rules saw it and feeds
  the accumulator. It computes nothing the rules compute already:

  - zone counts are the crowding rule's own count for its zone (the crowd counter's people,
    ``analysis.counting``, median-windowed as the rule does); a zone without a crowding rule
    counts the same people (the crowd counter's, else the person boxes) with the rules' "in
    zone" test (feet inside, :class:`~gridwatch.rules.zones.Zone`);
  - crossings are those the camera's ``line_crossing`` rules counted on this frame (the
    difference of their running counts: one piece of crossing logic, also outside their
    schedules);
  - the heat grid takes the feet of the same people the zones count.

>>> import datetime as dt
>>> import numpy as np
>>> acc = MinuteAccumulator("gate-9", "kdl-01", ["apron"], ["gate"], heat_cols=2, heat_rows=1)
>>> t0 = dt.datetime(2026, 12, 5, 8, 1, tzinfo=dt.UTC).timestamp()
>>> feet = np.array([[0.2, 0.5], [0.7, 0.5]])
>>> acc.add(t0 + 1, {"apron": 2}, {"gate": (1, 0)}, feet)
[]
>>> acc.add(t0 + 2, {"apron": 1}, {}, feet[:1])
[]
>>> [r] = acc.add(t0 + 61, {"apron": 0}, {}, feet[:0])  # the next minute: 08:01 closes
>>> r.samples, r.zones["apron"].mean, r.zones["apron"].max, r.lines["gate"].in_, r.heat.cells
(2, 1.5, 2, 1, [2, 1])
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from gridwatch.model import Detections
from gridwatch.rules.line_crossing import LineCrossingRule
from gridwatch.rules.zones import Zone
from gridwatch.stats.model import HeatGrid, LineStats, StatsRecord, ZoneStats, period_bounds
from gridwatch.tracking.counting import CountSettings, CrowdCounter

if TYPE_CHECKING:
    from gridwatch.config import CameraConfig
    from gridwatch.rules.engine import CameraRules

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]


class MinuteAccumulator:
    """The open period's sums for one camera (see the module docstring)."""

    def __init__(
        self,
        camera: str,
        grid: str,
        zones: Iterable[str],
        lines: Iterable[str],
        *,
        minute_s: int = 60,
        heat_cols: int = 32,
        heat_rows: int = 18,
    ) -> None:
        self.camera, self.grid = camera, grid
        self.zone_ids = list(dict.fromkeys(zones))
        self.line_ids = list(dict.fromkeys(lines))
        self.minute_s = minute_s
        self.cols, self.rows = heat_cols, heat_rows
        self._start: float | None = None
        self._end = 0.0
        self._samples = 0
        self._zone_sum = np.zeros(len(self.zone_ids), dtype=np.int64)
        self._zone_max = np.zeros(len(self.zone_ids), dtype=np.int64)
        self._lines = np.zeros((len(self.line_ids), 2), dtype=np.int64)
        self._heat = np.zeros(heat_cols * heat_rows, dtype=np.int64)

    @property
    def samples(self) -> int:
        """Samples in the open period."""
        return self._samples

    def add(
        self,
        ts: float,
        zone_counts: Mapping[str, int],
        crossings: Mapping[str, tuple[int, int]],
        feet: FloatArray,
    ) -> list[StatsRecord]:
        """One analysed frame at ``ts``: people per zone, (in, out) crossings per line since
        the previous frame, feet (N×2, normalized). Returns the period(s) this closed."""
        closed = self.close_before(ts)
        if self._start is None:
            start, end = period_bounds(ts, "minute", self.minute_s)
            self._start, self._end = start.timestamp(), end.timestamp()
        self._samples += 1
        for i, zid in enumerate(self.zone_ids):
            n = int(zone_counts.get(zid, 0))
            self._zone_sum[i] += n
            if n > self._zone_max[i]:
                self._zone_max[i] = n
        for i, lid in enumerate(self.line_ids):
            got = crossings.get(lid)
            if got is not None:
                self._lines[i, 0] += got[0]
                self._lines[i, 1] += got[1]
        if len(feet):
            col = np.clip((feet[:, 0] * self.cols).astype(np.int64), 0, self.cols - 1)
            row = np.clip((feet[:, 1] * self.rows).astype(np.int64), 0, self.rows - 1)
            self._heat += np.bincount(row * self.cols + col, minlength=self._heat.size)
        return closed

    def close_before(self, ts: float) -> list[StatsRecord]:
        """Close the open period if ``ts`` is past its end (or before its start: the clock
        stepped back, the period cannot be continued)."""
        if self._start is None or self._start <= ts < self._end:
            return []
        record = self._record()
        self._reset()
        return [record] if record is not None else []

    def _record(self) -> StatsRecord | None:
        if self._start is None or self._samples == 0:
            return None
        n = self._samples
        start, end = period_bounds(self._start, "minute", self.minute_s)
        return StatsRecord(
            camera=self.camera,
            grid=self.grid,
            period="minute",
            start=start,
            end=end,
            samples=n,
            zones={
                zid: ZoneStats(
                    mean=round(float(self._zone_sum[i]) / n, 3), max=int(self._zone_max[i])
                )
                for i, zid in enumerate(self.zone_ids)
            },
            lines={
                lid: LineStats(in_=int(self._lines[i, 0]), out=int(self._lines[i, 1]))
                for i, lid in enumerate(self.line_ids)
            },
            heat=HeatGrid(cols=self.cols, rows=self.rows, cells=self._heat.tolist()),
        )

    def _reset(self) -> None:
        self._start = None
        self._samples = 0
        self._zone_sum[:] = 0
        self._zone_max[:] = 0
        self._lines[:] = 0
        self._heat[:] = 0


class CameraStats:
    """What one camera's rules saw on each analysed frame, summed per minute; each closed
    minute goes to ``sink`` (the publisher's queue)."""

    def __init__(
        self,
        camera: CameraConfig,
        rules: CameraRules,
        sink: Callable[[StatsRecord], None],
        *,
        person_classes: Collection[int] | None = None,
        counting: CountSettings | None = None,
        minute_s: int = 60,
        heat_cols: int = 32,
        heat_rows: int = 18,
    ) -> None:
        self.camera_id = camera.id
        self.rules = rules
        self.sink = sink
        self._person_classes = (
            None if person_classes is None else np.array(sorted(person_classes), dtype=np.int64)
        )
        self.zones = {z.id: Zone(z.id, z.polygon) for z in camera.zones}
        self._zone_rules: dict[str, object] = {}
        for rule in rules.rules:
            zone = getattr(rule, "zone", None)
            if rule.counts_people and zone is not None and hasattr(rule, "last_count"):
                self._zone_rules.setdefault(zone.id, rule)
        self.line_rules = [r for r in rules.rules if isinstance(r, LineCrossingRule)]
        self._line_totals = {r.line_id: _totals(r) for r in self.line_rules}
        self._counter: CrowdCounter | None = None
        """The camera's own crowd counter when its rules have none (no crowding rule)."""
        if rules.counter is None and counting is not None:
            self._counter = CrowdCounter(counting, person_classes=person_classes)
        self.acc = MinuteAccumulator(
            camera.id,
            camera.grid,
            self.zones,
            self._line_totals,
            minute_s=minute_s,
            heat_cols=heat_cols,
            heat_rows=heat_rows,
        )

    def observe(self, detections: Detections, ts: float) -> None:
        """After the rules have seen ``detections`` at ``ts``."""
        people = self._people(detections, ts)
        feet = people.anchors_normalized().astype(np.float64) if len(people) else _NO_FEET
        counts: dict[str, int] = {}
        for zid, zone in self.zones.items():
            rule = self._zone_rules.get(zid)
            seen = getattr(rule, "last_count", None) if rule is not None else None
            if seen is not None:
                counts[zid] = int(seen)
            else:
                counts[zid] = int(zone.contains(feet.astype(np.float32)).sum()) if len(feet) else 0
        crossings: dict[str, tuple[int, int]] = {}
        for rule in self.line_rules:
            now = _totals(rule)
            before = self._line_totals[rule.line_id]
            if now != before:
                crossings[rule.line_id] = (now[0] - before[0], now[1] - before[1])
                self._line_totals[rule.line_id] = now
        for record in self.acc.add(ts, counts, crossings, feet):
            self.sink(record)

    def tick(self, ts: float) -> None:
        """No frame now: close the minute if it is over (a camera that went quiet)."""
        for record in self.acc.close_before(ts):
            self.sink(record)

    def _people(self, detections: Detections, ts: float) -> Detections:
        counted = self.rules.last_counted
        if counted is not None:
            return counted
        if self._counter is not None:
            return self._counter.update(detections, ts)
        if self._person_classes is not None and len(detections):
            return detections.select(np.isin(detections.class_id, self._person_classes))
        return detections


_NO_FEET: FloatArray = np.zeros((0, 2), dtype=np.float64)


def _totals(rule: LineCrossingRule) -> tuple[int, int]:
    """A line rule's crossings since it started, in and out, over every class."""
    return (
        sum(c["in"] for c in rule.counts.values()),
        sum(c["out"] for c in rule.counts.values()),
    )

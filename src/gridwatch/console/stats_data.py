"""What the console's Statistics page draws, computed from the GW_STATS records.

Two pictures (see :mod:`.stats_page` for the routes; :func:`flow_view`, :func:`heat_view`):

* **flow**: crossings ``in`` per line of one camera per 15 minutes of one local day (the
  config's ``timezone``), from its ``quarter`` records plus the ``minute`` records of quarters
  not rolled up yet (the current one), against the *typical band* of the same weekday: the
  10th, 50th and 90th percentile of the same 15-minute slot over the last up to
  :data:`BAND_WEEKS` same weekdays that have records (a slot a week has no record of is left
  out, not counted as 0: a camera that was down did not count nobody);
* **heat**: the ``heat`` grids of one camera over a period, summed.

Records are :class:`gridwatch.stats.model.StatsRecord` (the GW_STATS wire contract), read with
:func:`gridwatch.stats.query.read_stats` (:func:`load_records`) and summed with its
:func:`~gridwatch.stats.query.merge`. The pure parts (:func:`day_slots`, :func:`day_counts`,
:func:`band`, :func:`flow_lines`, :func:`realign`, :func:`sum_heat`) are tested without NATS.
"""

from __future__ import annotations

import datetime as dt
import logging
import zoneinfo
from collections import OrderedDict
from collections.abc import Iterable, Sequence

import numpy as np
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from pydantic import BaseModel, ConfigDict, Field

from gridwatch.alerts.subjects import ALERTS_STREAM, alert_filter
from gridwatch.model import Alert
from gridwatch.stats.model import Period, StatsRecord
from gridwatch.stats.query import merge, read_stats

log = logging.getLogger(__name__)

SLOT = dt.timedelta(minutes=15)
FINER: tuple[Period, ...] = ("day", "hour", "quarter", "minute")
"""A heat map sums the coarsest records that fit its span, then, after the last of them, the
next finer ones (the hour, quarter and minutes not rolled up yet)."""
BAND_WEEKS = 8
"""How many past same weekdays the typical band looks at (at most)."""


class Slot(BaseModel):
    """One 15-minute slot of a local day."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    start: dt.datetime = Field(description="UTC start of the slot.")
    label: str = Field(description="Local time of day it starts at, HH:MM.")


class FlowLine(BaseModel):
    """One line's crossings ``in`` per slot today and its typical band (None: no data)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    line: str = Field(description="Line id (the rule's line).")
    today: list[int | None] = Field(description="Crossings in per slot; None: no record (yet).")
    p10: list[float | None] = Field(description="10th percentile of the slot, same weekdays.")
    median: list[float | None] = Field(description="Median of the slot, same weekdays.")
    p90: list[float | None] = Field(description="90th percentile of the slot, same weekdays.")
    weeks: int = Field(description="Same weekdays that had records of this camera (0..8).")


class FlowView(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    camera: str
    grid: str
    date: dt.date = Field(description="The local day shown.")
    timezone: str
    slots: list[Slot]
    lines: list[FlowLine]


class HeatView(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    camera: str
    grid: str
    since: dt.datetime
    until: dt.datetime
    period: str = Field(description="The record period summed (quarter, hour or day).")
    records: int = Field(description="Records summed.")
    samples: int = Field(description="Analysed frames behind the sum.")
    cols: int
    rows: int
    cells: list[int] = Field(description="rows*cols foot points per cell, row-major.")
    max: int


def day_slots(day: dt.date, tz: dt.tzinfo) -> list[Slot]:
    """The 15-minute slots of local ``day`` (92 or 100 on a daylight-saving change).

    >>> import zoneinfo
    >>> s = day_slots(dt.date(2026, 12, 5), zoneinfo.ZoneInfo("Asia/Shanghai"))
    >>> len(s), s[0].start.isoformat(), s[0].label, s[-1].label
    (96, '2026-12-04T16:00:00+00:00', '00:00', '23:45')
    >>> len(day_slots(dt.date(2026, 3, 29), zoneinfo.ZoneInfo("Europe/Berlin")))
    92
    """
    start = dt.datetime.combine(day, dt.time(), tz).astimezone(dt.UTC)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tz).astimezone(dt.UTC)
    out = []
    t = start
    while t < end:
        out.append(Slot(start=t, label=t.astimezone(tz).strftime("%H:%M")))
        t += SLOT
    return out


def _slot_of(record: StatsRecord, starts: dict[dt.datetime, int]) -> int | None:
    return starts.get(record.start.astimezone(dt.UTC))


def _ins(record: StatsRecord) -> dict[str, int]:
    return {line_id: count.in_ for line_id, count in record.lines.items()}


def day_counts(
    slots: Sequence[Slot], quarters: Iterable[StatsRecord], minutes: Iterable[StatsRecord] = ()
) -> dict[str, list[int | None]]:
    """Crossings in per line and slot: a slot's ``quarter`` record when there is one, else the
    sum of its ``minute`` records (a quarter not rolled up yet); None where neither is."""
    starts = {s.start: i for i, s in enumerate(slots)}
    per_slot: list[dict[str, int] | None] = [None] * len(slots)
    for r in quarters:
        i = _slot_of(r, starts)
        if i is not None:
            per_slot[i] = _ins(r)
    rolled = {i for i, v in enumerate(per_slot) if v is not None}
    for r in minutes:
        t = r.start.astimezone(dt.UTC)
        i = starts.get(t - dt.timedelta(minutes=t.minute % 15, seconds=t.second))
        if i is None or i in rolled:
            continue
        acc = per_slot[i] if per_slot[i] is not None else {}
        assert acc is not None
        for line_id, n in _ins(r).items():
            acc[line_id] = acc.get(line_id, 0) + n
        per_slot[i] = acc
    lines = sorted({k for v in per_slot if v for k in v})
    return {ln: [None if v is None else v.get(ln, 0) for v in per_slot] for ln in lines}


def band(
    weeks: Sequence[Sequence[int | None]],
) -> tuple[list[float | None], list[float | None], list[float | None]]:
    """(p10, median, p90) per slot over ``weeks`` (one list of counts per past weekday;
    None: no record of that slot), linear interpolation; None where no week has the slot.

    >>> band([[0, 10, None], [10, 20, None], [20, None, None]])
    ([2.0, 11.0, None], [10.0, 15.0, None], [18.0, 19.0, None])
    """
    n = max((len(w) for w in weeks), default=0)
    lo: list[float | None] = []
    mid: list[float | None] = []
    hi: list[float | None] = []
    for i in range(n):
        vals = [w[i] for w in weeks if i < len(w) and w[i] is not None]
        if not vals:
            lo.append(None)
            mid.append(None)
            hi.append(None)
            continue
        p = np.percentile(np.asarray(vals, dtype=np.float64), [10, 50, 90])
        lo.append(round(float(p[0]), 3))
        mid.append(round(float(p[1]), 3))
        hi.append(round(float(p[2]), 3))
    return lo, mid, hi


def flow_lines(
    today: dict[str, list[int | None]], past: Sequence[dict[str, list[int | None]]]
) -> list[FlowLine]:
    """Each line seen today or on a past weekday, with its band (``past``: :func:`day_counts`
    of each past weekday that had records).

    >>> fl = flow_lines({"gate": [3, None]}, [{"gate": [1, 2]}, {"gate": [5, 4]}])
    >>> fl[0].today, fl[0].median, fl[0].weeks
    ([3, None], [3.0, 3.0], 2)
    """
    n = max((len(v) for d in (today, *past) for v in d.values()), default=0)
    out = []
    for line_id in sorted({k for d in (today, *past) for k in d}):
        weeks = [d.get(line_id, [None] * n) for d in past]
        lo, mid, hi = band(weeks)
        pad: list[float | None] = [None] * (n - len(mid))
        out.append(
            FlowLine(
                line=line_id,
                today=today.get(line_id, [None] * n),
                p10=lo + pad,
                median=mid + pad,
                p90=hi + pad,
                weeks=len(past),
            )
        )
    return out


def realign(
    counts: dict[str, list[int | None]], slots: Sequence[Slot], target: Sequence[Slot]
) -> dict[str, list[int | None]]:
    """``counts`` of ``slots`` re-indexed to ``target``'s slots by local time of day (a past
    day with a daylight-saving change has 92 or 100 slots; the repeated hour's first wins).

    >>> a = [Slot(start=dt.datetime(2026, 1, 1, h, tzinfo=dt.UTC), label=f"{h:02}:00")
    ...      for h in (0, 1, 2)]
    >>> realign({"g": [1, 2, 3]}, a, [a[0], a[2]])
    {'g': [1, 3]}
    """
    if [s.label for s in slots] == [s.label for s in target]:
        return counts
    out = {}
    for line_id, values in counts.items():
        by_label: dict[str, int | None] = {}
        for s, v in zip(slots, values, strict=True):
            by_label.setdefault(s.label, v)
        out[line_id] = [by_label.get(s.label) for s in target]
    return out


def sum_heat(records: Sequence[StatsRecord]) -> tuple[StatsRecord | None, int]:
    """The records with a heat grid merged, and how many were left out for a grid size other
    than the newest record's (a changed ``heat_cols``/``heat_rows``)."""
    heated = [(r, r.heat) for r in records if r.heat is not None]
    if not heated:
        return None, 0
    newest = max(heated, key=lambda rh: rh[0].start)[1]
    same = [r for r, h in heated if (h.cols, h.rows) == (newest.cols, newest.rows)]
    return merge(same), len(heated) - len(same)


async def load_records(
    js: JetStreamContext,
    *,
    period: Period,
    since: dt.datetime,
    until: dt.datetime,
    grid: str,
    camera: str,
) -> list[StatsRecord]:
    """The records of one camera and ``period`` that start in [since, until), oldest first
    (:func:`gridwatch.stats.query.read_stats`)."""
    return await read_stats(js, period=period, since=since, until=until, grid=grid, camera=camera)


DayCounts = dict[str, list[int | None]]
"""Crossings in per line and slot of one local day (:func:`day_counts`)."""


class PastDays:
    """The counts of past days, which no longer change, per (grid, camera, day, time zone):
    the band of a camera's flow is read from the stream once, not on every refresh (a band is
    8 weeks of quarter records). The least recently used go first beyond ``max_entries``.

    >>> c, jan = PastDays(max_entries=1), dt.date(2026, 1, 1)
    >>> c.put(("g", "cam", jan, "UTC"), {"in": [1]})
    >>> c.put(("g", "cam", jan + dt.timedelta(weeks=1), "UTC"), {})  # no records that day
    >>> c.get(("g", "cam", jan, "UTC")), c.get(("g", "cam", jan + dt.timedelta(weeks=1), "UTC"))
    (None, {})
    """

    SETTLED = dt.timedelta(days=1)
    """A day is kept once it ended this long ago (late rollups have been stored by then)."""

    def __init__(self, max_entries: int = 4096) -> None:
        self.max_entries = max_entries
        self._days: OrderedDict[tuple[str, str, dt.date, str], DayCounts] = OrderedDict()

    def __len__(self) -> int:
        return len(self._days)

    def get(self, key: tuple[str, str, dt.date, str]) -> DayCounts | None:
        got = self._days.get(key)
        if got is not None:
            self._days.move_to_end(key)
        return got

    def put(self, key: tuple[str, str, dt.date, str], counts: DayCounts) -> None:
        self._days[key] = counts
        self._days.move_to_end(key)
        while len(self._days) > self.max_entries:
            self._days.popitem(last=False)


async def flow_view(
    js: JetStreamContext,
    *,
    grid: str,
    camera: str,
    day: dt.date,
    tz_name: str,
    past_days: PastDays | None = None,
    now: dt.datetime | None = None,
) -> FlowView:
    """The flow of local ``day`` (in ``tz_name``) and its band: one read of the camera's
    quarter records from the oldest same weekday of the band not in ``past_days`` (else from
    the day's start) to the day's end, then the minute records after the day's last quarter
    (the quarter not rolled up yet)."""
    tz = zoneinfo.ZoneInfo(tz_name)
    now = now or dt.datetime.now(dt.UTC)
    cache = past_days if past_days is not None else PastDays()
    slots = day_slots(day, tz)
    since, until = slots[0].start, slots[-1].start + SLOT
    weeks = [day - dt.timedelta(weeks=k) for k in range(1, BAND_WEEKS + 1)]
    known = {d: cache.get((grid, camera, d, tz_name)) for d in weeks}
    missing = [d for d in weeks if known[d] is None]
    start = day_slots(missing[-1], tz)[0].start if missing else since
    quarters = await load_records(
        js, period="quarter", since=start, until=until, grid=grid, camera=camera
    )
    for d in missing:
        d_slots = day_slots(d, tz)
        lo, hi = d_slots[0].start, d_slots[-1].start + SLOT
        counts = realign(day_counts(d_slots, [r for r in quarters if lo <= r.start < hi]),
                         d_slots, slots)  # fmt: skip
        known[d] = counts
        if now - hi >= PastDays.SETTLED:
            cache.put((grid, camera, d, tz_name), counts)
    todays = [r for r in quarters if r.start >= since]
    tail = max((r.end for r in todays), default=since)
    minutes: list[StatsRecord] = []
    if tail < until:
        minutes = await load_records(
            js, period="minute", since=tail, until=until, grid=grid, camera=camera
        )
    past = [c for c in known.values() if c]  # a day without records has no say in the band
    return FlowView(
        camera=camera,
        grid=grid,
        date=day,
        timezone=tz_name,
        slots=slots,
        lines=flow_lines(day_counts(slots, todays, minutes), past),
    )


def heat_period(span: dt.timedelta) -> Period:
    """The records a heat map of ``span`` sums: quarters up to 2 days, hours up to 35, days.

    >>> [heat_period(dt.timedelta(days=d)) for d in (1, 7, 90)]
    ['quarter', 'hour', 'day']
    """
    if span <= dt.timedelta(days=2):
        return "quarter"
    return "hour" if span <= dt.timedelta(days=35) else "day"


async def heat_view(
    js: JetStreamContext,
    *,
    grid: str,
    camera: str,
    since: dt.datetime,
    until: dt.datetime,
    size: tuple[int, int],
) -> HeatView:
    """The heat of [since, until): the :func:`heat_period` records, then, after the last of
    them, the next finer ones (the hour, quarter and minutes not rolled up yet). ``size``
    (cols, rows): of the empty map when there is nothing."""
    period = heat_period(until - since)
    records: list[StatsRecord] = []
    for p in FINER[FINER.index(period) :]:
        tail = max((r.end for r in records), default=since)
        if tail < until:
            records += await load_records(
                js, period=p, since=tail, until=until, grid=grid, camera=camera
            )
    summed, skipped = sum_heat(records)
    if skipped:
        log.info("heat of %s: %d records of another grid size left out", camera, skipped)
    h = summed.heat if summed is not None else None
    cols, rows = (h.cols, h.rows) if h is not None else size
    cells = h.cells if h is not None else [0] * (cols * rows)
    return HeatView(
        camera=camera,
        grid=grid,
        since=since,
        until=until,
        period=period,
        records=sum(1 for r in records if r.heat is not None) - skipped,
        samples=summed.samples if summed is not None else 0,
        cols=cols,
        rows=rows,
        cells=cells,
        max=max(cells, default=0),
    )


async def latest_snapshot(js: JetStreamContext, *, grid: str, camera: str) -> str | None:
    """The snapshot name of the camera's last stored alert message, if it has one (the picture
    a heat map is drawn over, fetched blurred)."""
    try:
        msg = await js.get_last_msg(ALERTS_STREAM, alert_filter(grid=grid, camera=camera))
        alert = Alert.model_validate_json(msg.data or b"")
    except (NotFoundError, ValueError):
        return None
    if alert.grid_id != grid or alert.camera_id != camera:
        return None
    return alert.snapshot

"""The Statistics page's arithmetic (pure): slots of a local day, a day's counts from quarter
and minute records, the same-weekday band, re-aligning a daylight-saving day, heat sums."""

from __future__ import annotations

import datetime as dt
import itertools
import zoneinfo

import numpy as np
import pytest

from gridwatch.console.stats_data import band, day_counts, day_slots, flow_lines, realign, sum_heat
from gridwatch.stats.model import HeatGrid, LineStats, StatsRecord

SH = zoneinfo.ZoneInfo("Asia/Shanghai")
BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")


def rec(
    start: dt.datetime, minutes: int, n_in: int, *, heat: tuple[int, int] = (2, 1)
) -> StatsRecord:
    cols, rows = heat
    return StatsRecord(
        camera="gate-9",
        grid="kdl-01",
        period="minute" if minutes == 1 else "quarter",
        start=start,
        end=start + dt.timedelta(minutes=minutes),
        samples=60 * minutes,
        lines={"gate": LineStats(in_=n_in, out=0)},
        heat=HeatGrid(cols=cols, rows=rows, cells=[n_in] * (cols * rows)),
    )


@pytest.mark.parametrize(
    ("day", "tz", "n", "first_label", "last_label"),
    [
        (dt.date(2026, 12, 5), SH, 96, "00:00", "23:45"),
        (dt.date(2026, 3, 29), BERLIN, 92, "00:00", "23:45"),  # spring forward: 02:00-03:00 gone
        (dt.date(2026, 10, 25), BERLIN, 100, "00:00", "23:45"),  # fall back: 02:00-03:00 twice
    ],
)
def test_day_slots(day: dt.date, tz: dt.tzinfo, n: int, first_label: str, last_label: str) -> None:
    slots = day_slots(day, tz)
    assert len(slots) == n
    assert (slots[0].label, slots[-1].label) == (first_label, last_label)
    assert all(b.start - a.start == dt.timedelta(minutes=15) for a, b in itertools.pairwise(slots))


def test_minutes_fill_only_the_quarters_not_rolled_up() -> None:
    slots = day_slots(dt.date(2026, 12, 5), SH)
    t0 = slots[0].start
    q = dt.timedelta(minutes=15)
    quarters = [rec(t0, 15, 10), rec(t0 + q, 15, 20)]
    minutes = [
        rec(t0 + q + dt.timedelta(minutes=3), 1, 500),  # inside a rolled quarter: ignored
        rec(t0 + 2 * q, 1, 3),
        rec(t0 + 2 * q + dt.timedelta(minutes=14), 1, 4),
        rec(t0 - dt.timedelta(minutes=1), 1, 99),  # the day before: not in any slot
    ]
    counts = day_counts(slots, quarters, minutes)
    assert counts["gate"][:4] == [10, 20, 7, None]
    assert counts["gate"].count(None) == 96 - 3


def test_a_line_missing_from_a_record_counts_zero_there() -> None:
    slots = day_slots(dt.date(2026, 12, 5), SH)
    a = rec(slots[0].start, 15, 5)
    b = a.model_copy(update={"start": slots[1].start, "lines": {"other": LineStats(in_=2)}})
    counts = day_counts(slots, [a, b])
    assert counts["gate"][:3] == [5, 0, None]
    assert counts["other"][:3] == [0, 2, None]


def test_band_matches_numpy_and_leaves_gaps() -> None:
    rng = np.random.default_rng(7)
    weeks = [[int(x) for x in rng.integers(0, 100, 5)] for _ in range(8)]
    weeks[3][2] = None  # type: ignore[call-overload]
    lo, mid, hi = band(weeks)
    for i in range(5):
        vals = [w[i] for w in weeks if w[i] is not None]
        assert (lo[i], mid[i], hi[i]) == pytest.approx(list(np.percentile(vals, [10, 50, 90])))
    assert band([[None, 4]]) == ([None, 4.0], [None, 4.0], [None, 4.0])
    assert band([]) == ([], [], [])


def test_flow_lines_with_no_past_has_no_band() -> None:
    [line] = flow_lines({"gate": [1, None]}, [])
    assert line.weeks == 0
    assert line.median == [None, None]
    assert line.today == [1, None]


def test_a_daylight_saving_day_is_realigned_by_local_time() -> None:
    short = day_slots(dt.date(2026, 3, 29), BERLIN)  # 92 slots
    normal = day_slots(dt.date(2026, 4, 5), BERLIN)  # 96
    counts = {"gate": list(range(len(short)))}
    out = realign(counts, short, normal)["gate"]
    assert len(out) == 96
    assert out[:8] == list(range(8))  # 00:00-01:45
    assert out[8:12] == [None] * 4  # 02:00-02:45 did not exist that day
    assert out[12] == 8  # 03:00
    assert realign(counts, short, short) is counts


def test_heat_sums_the_newest_size_only() -> None:
    t = dt.datetime(2026, 12, 5, 8, tzinfo=dt.UTC)
    old = rec(t, 15, 9, heat=(3, 1))
    new = [rec(t + dt.timedelta(minutes=15 * k), 15, k, heat=(2, 1)) for k in (1, 2)]
    summed, skipped = sum_heat([old, *new])
    assert skipped == 1
    assert summed is not None
    assert summed.heat is not None
    assert summed.heat.cells == [3, 3]
    assert summed.samples == 1800
    assert sum_heat([]) == (None, 0)

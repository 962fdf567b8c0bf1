"""The daily summary's pure parts: quantiles, the local day's bounds (also the days the clocks
change), which cases count, and the rates (the I/O and the page: test_console_summary.py in
integration and e2e)."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest

from gridwatch.cases.model import Case, CaseState, Outcome
from gridwatch.console.summary import day_bounds, parse_day, quantile, summarize

NY = zoneinfo.ZoneInfo("America/New_York")
SH = zoneinfo.ZoneInfo("Asia/Shanghai")


def case(
    cid: str,
    opened: dt.datetime,
    *,
    grid: str = "g1",
    type_: str = "crowding",
    ack_s: float | None = None,
    arrive_s: float | None = None,
    outcome: Outcome | None = None,
) -> Case:
    opened = opened.astimezone(dt.UTC)
    after = lambda s: None if s is None else opened + dt.timedelta(seconds=s)  # noqa: E731
    state = CaseState.OPEN
    if ack_s is not None:
        state = CaseState.ACKNOWLEDGED
    if arrive_s is not None:
        state = CaseState.ON_SCENE
    if outcome is not None:
        state = CaseState.RESOLVED
    return Case(
        id=cid,
        grid_id=grid,
        type=type_,
        camera_id="cam",
        camera_name="校门口",
        state=state,
        opened_at=opened,
        acknowledged_at=after(ack_s),
        on_scene_at=after(arrive_s),
        resolved_at=opened + dt.timedelta(hours=1) if outcome else None,
        outcome=outcome,
    )


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([], 0.5, None),
        ([7], 0.5, 7.0),
        ([7], 0.9, 7.0),
        ([1, 2], 0.5, 1.5),
        ([300, 60, 120], 0.5, 120.0),  # order does not matter
        ([60, 120, 300], 0.9, 264.0),
        ([30, 60, 120, 300], 0.5, 90.0),
        ([30, 60, 120, 300], 0.9, 246.0),
        ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.9, 9.1),
    ],
)
def test_quantile(values: list[float], q: float, expected: float | None) -> None:
    got = quantile(values, q)
    assert got == pytest.approx(expected) if expected is not None else got is None


def test_day_bounds_when_the_clocks_go_back() -> None:
    start, end = day_bounds(dt.date(2026, 11, 1), NY)  # 25 hours in New York
    assert start == dt.datetime(2026, 11, 1, 4, 0, tzinfo=dt.UTC)
    assert (end - start) == dt.timedelta(hours=25)


def test_the_repeated_hour_counts_in_one_slot() -> None:
    first = dt.datetime(2026, 11, 1, 5, 30, tzinfo=dt.UTC)  # 01:30 EDT
    second = dt.datetime(2026, 11, 1, 6, 30, tzinfo=dt.UTC)  # 01:30 EST
    s = summarize(
        [case("a", first), case("b", second)],
        grid_id="g1",
        grid_name="g1",
        day=dt.date(2026, 11, 1),
        tz=NY,
    )
    assert s.incidents == 2
    assert s.by_hour["crowding"][1] == 2


def test_only_the_grids_cases_of_the_day_count() -> None:
    day = dt.date(2026, 11, 26)
    t = dt.datetime(2026, 11, 26, 8, 0, tzinfo=SH)
    cases = [
        case("in-1", t, ack_s=60, arrive_s=600, outcome=Outcome.FALSE_ALARM),
        case("in-2", t + dt.timedelta(hours=1), type_="fall", ack_s=30),
        case("in-3", t + dt.timedelta(hours=2), type_="fall"),
        case("in-4", dt.datetime(2026, 11, 26, 23, 59, 59, tzinfo=SH), ack_s=10,
             outcome=Outcome.HANDLED),
        case("other-grid", t, grid="g2"),
        case("day-before", dt.datetime(2026, 11, 25, 23, 59, 59, tzinfo=SH)),
        case("day-after", dt.datetime(2026, 11, 27, 0, 0, 0, tzinfo=SH)),
    ]  # fmt: skip
    s = summarize(cases, grid_id="g1", grid_name="东城网格", day=day, tz=SH)
    assert [r.id for r in s.rows] == ["in-1", "in-2", "in-3", "in-4"]
    assert s.types == ["crowding", "fall"]  # ties: by name
    assert s.by_hour["crowding"][8] == 1
    assert s.by_hour["crowding"][23] == 1
    assert s.by_hour["fall"][9:11] == [1, 1]
    assert s.rows[0].opened_at.isoformat() == "2026-11-26T08:00:00+08:00"
    assert (s.acknowledge.n, s.acknowledge.median_s) == (3, 30.0)
    assert (s.arrive.n, s.arrive.median_s, s.arrive.p90_s) == (1, 600.0, 600.0)
    assert (s.resolved, s.false_alarms, s.false_alarm_rate) == (2, 1, 0.5)
    fall = s.per_type[1]
    assert (fall.type, fall.incidents, fall.resolved, fall.arrive.median_s) == ("fall", 2, 0, None)


def test_no_resolved_case_is_no_rate() -> None:
    t = dt.datetime(2026, 11, 26, 8, 0, tzinfo=SH)
    s = summarize([case("a", t, ack_s=5)], grid_id="g1", grid_name="g1", day=t.date(), tz=SH)
    assert (s.resolved, s.false_alarm_rate) == (0, None)


@pytest.mark.parametrize("raw", ["2026-13-01", "2026-1-1", "yesterday", "2026-11-26T00:00"])
def test_a_bad_day_says_so(raw: str) -> None:
    with pytest.raises(ValueError, match="day: expected YYYY-MM-DD"):
        parse_day(raw, dt.date(2026, 12, 5))

"""A people-flow scenario for the console's Statistics tests: GW_STATS records built per the
contract (:class:`gridwatch.stats.model.StatsRecord`) for a gate camera of grid A, published
straight to the stream, with the figures the page must show worked out independently here.
Imported by the tests that use it (not a pytest plugin). ``synthetic: true``: the records are
made up, the stream, the console and the browser are real.

Today (local, the config's time zone): quarter records in slots 0-3 (36 crossings in at 08:00
and so on, see :data:`TODAY_IN`) and minute records in slot 5 that no quarter covers yet (their
sum is the slot's value) and in slot 1 (covered by its quarter: must not count twice). The
same weekday 1, 2 and 4-8 weeks back (week 3 missing: the camera was down): quarter records in
slots 0-3 with ``10 * week + slot`` crossings in. Heat grids are 16x9, people on a diagonal.

The records of today lie between 00:00 and 01:30 local, and a record is found by when it was
stored (after its period, in production): in the first hours of a local day they would be
records "from the future", which the console rightly never reads. The tests therefore run in
:func:`scenario_timezone`, a zone whose local time is well inside the day.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass

import numpy as np
from nats.js import JetStreamContext

from gridwatch.bus.infra import ensure_stats_stream
from gridwatch.stats.model import HeatGrid, LineStats, StatsRecord, ZoneStats
from tests.plugins.dispatch import GRID_A, GRID_B

SYNTHETIC = True
LINE = "gate-in"
COLS, ROWS = 16, 9
TODAY_IN = {0: 36, 1: 52, 2: 17, 3: 80}
"""Crossings in per slot of today's quarter records."""
MINUTES_SLOT5 = [4, 7, 2]
"""Crossings in of three minute records in slot 5 (not rolled up yet)."""
PAST_WEEKS = (1, 2, 4, 5, 6, 7, 8)
GATE_CAMERAS = f"""
cameras:
  - {{id: cam-a, name: School gate A, grid: {GRID_A}, url: "rtsp://127.0.0.1:9/a",
     rules: [{{type: line_crossing, id: {LINE}, line: [[0.1, 0.5], [0.9, 0.5]],
              forbidden_direction: out}}]}}
  - {{id: cam-a2, name: Square A, grid: {GRID_A}, url: "rtsp://127.0.0.1:9/a2"}}
  - {{id: cam-b, name: Station B, grid: {GRID_B}, url: "rtsp://127.0.0.1:9/b"}}
"""
"""cam-a is a school gate (a line-crossing rule on line ``gate-in``); cam-b is grid B's."""


@dataclass
class Published:
    day: dt.date
    today: list[int | None]
    """Expected crossings in per slot today (None: no record)."""
    p10: list[float | None]
    median: list[float | None]
    p90: list[float | None]
    heat_today: list[int]
    """Expected heat of today (quarters and the unrolled minutes)."""
    records: int


def _heat(seed: int) -> HeatGrid:
    """People on a diagonal walkway (the cells near column = 2 * row), none elsewhere."""
    cells = [seed + c + r if abs(c - 2 * r) <= 1 else 0 for r in range(ROWS) for c in range(COLS)]
    return HeatGrid(cols=COLS, rows=ROWS, cells=cells)


def _record(
    camera: str, grid: str, period: str, start: dt.datetime, minutes: int, n_in: int, seed: int
) -> StatsRecord:
    return StatsRecord(
        camera=camera,
        grid=grid,
        period=period,  # type: ignore[arg-type]
        start=start,
        end=start + dt.timedelta(minutes=minutes),
        samples=minutes * 60,
        zones={"apron": ZoneStats(mean=1.5, max=4)},
        lines={LINE: LineStats(in_=n_in, out=1)},
        heat=_heat(seed),
    )


def scenario_timezone(now: dt.datetime | None = None) -> str:
    """A time zone where ``now`` is between 03:00 and 22:00 local: today's records (up to
    01:30) are in the past and the day does not end while a test runs. Asia/Shanghai (the
    product default) where it qualifies, else UTC (one of them always does).

    >>> scenario_timezone(dt.datetime(2026, 12, 5, 9, 0, tzinfo=dt.UTC))
    'Asia/Shanghai'
    >>> scenario_timezone(dt.datetime(2026, 12, 5, 16, 40, tzinfo=dt.UTC))  # 00:40 in Shanghai
    'UTC'
    """
    now = now or dt.datetime.now(dt.UTC)
    for name in ("Asia/Shanghai", "UTC"):
        if 3 <= now.astimezone(zoneinfo.ZoneInfo(name)).hour < 22:
            return name
    raise AssertionError(f"no scenario time zone for {now}")  # pragma: no cover - cannot be


def scenario_config_yaml(now: dt.datetime | None = None) -> str:
    """The config line that sets :func:`scenario_timezone` (a top-level key)."""
    return f"timezone: {scenario_timezone(now)}\n"


def local_midnight(day: dt.date, tz: dt.tzinfo) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tz).astimezone(dt.UTC)


async def publish(
    js: JetStreamContext, *, camera: str, grid: str, tz: dt.tzinfo, day: dt.date
) -> Published:
    """Publish the scenario for ``camera`` of ``grid`` on local ``day``; what to expect."""
    await ensure_stats_stream(js, max_age_s=400 * 86400)
    q = dt.timedelta(minutes=15)
    records: list[StatsRecord] = []
    t0 = local_midnight(day, tz)
    heat = np.zeros(COLS * ROWS, dtype=np.int64)
    for slot, n in TODAY_IN.items():
        r = _record(camera, grid, "quarter", t0 + slot * q, 15, n, seed=slot + 1)
        records.append(r)
        heat += np.asarray(r.heat.cells if r.heat else [], dtype=np.int64)
    for i, n in enumerate(MINUTES_SLOT5):
        r = _record(camera, grid, "minute", t0 + 5 * q + dt.timedelta(minutes=i), 1, n, seed=i + 7)
        records.append(r)
        heat += np.asarray(r.heat.cells if r.heat else [], dtype=np.int64)
    # covered by slot 1's quarter: neither its crossings nor its heat may count again
    records.append(_record(camera, grid, "minute", t0 + q, 1, 999, seed=5))
    for week in PAST_WEEKS:
        t = local_midnight(day - dt.timedelta(weeks=week), tz)
        for slot in range(4):
            records.append(_record(camera, grid, "quarter", t + slot * q, 15, 10 * week + slot, 2))
    for r in records:
        await js.publish(r.subject(), r.to_json(), headers={"Nats-Msg-Id": r.msg_id()})

    n_slots = int((local_midnight(day + dt.timedelta(days=1), tz) - t0) / q)
    today: list[int | None] = [None] * n_slots
    for slot, n in TODAY_IN.items():
        today[slot] = n
    today[5] = sum(MINUTES_SLOT5)
    p10: list[float | None] = [None] * n_slots
    med: list[float | None] = [None] * n_slots
    p90: list[float | None] = [None] * n_slots
    for slot in range(4):
        vals = np.asarray([10 * w + slot for w in PAST_WEEKS], dtype=np.float64)
        p10[slot], med[slot], p90[slot] = (float(x) for x in np.percentile(vals, [10, 50, 90]))
    return Published(
        day=day,
        today=today,
        p10=p10,
        median=med,
        p90=p90,
        heat_today=[int(x) for x in heat],
        records=len(TODAY_IN) + len(MINUTES_SLOT5),
    )

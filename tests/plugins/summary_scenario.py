"""A known day of one grid for the daily-summary tests: five incidents of grid A raised at set
local times (Asia/Shanghai, the default zone), acknowledged, dispatched, on scene and resolved
through the console and the real case service at set times after the raise (the case service's
clock is set before each action), plus one incident a second before the day and one of grid B.
Imported by the tests that use it (not a pytest plugin)."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any

from gridwatch.model import Alert, IncidentEvent, IncidentState
from tests.plugins.console_stack import Stack
from tests.plugins.dispatch import GRID_A, GRID_B, wait_until

TZ = zoneinfo.ZoneInfo("Asia/Shanghai")


def the_day() -> dt.date:
    return dt.datetime.now(TZ).date() - dt.timedelta(days=1)


def at(day: dt.date, hhmmss: str, plus_s: float = 0.0) -> dt.datetime:
    t = dt.datetime.combine(day, dt.time.fromisoformat(hhmmss), tzinfo=TZ)
    return t + dt.timedelta(seconds=plus_s)


def incident(
    grid: str, camera: str, camera_name: str, type_: str, when: dt.datetime, n: int
) -> Alert:
    """A raised alert whose case opens at ``when`` (the alert's observed time)."""
    ts = when.timestamp()
    ev = IncidentEvent(
        rule_key=f"{type_}/z{n}",
        type=type_,
        state=IncidentState.RAISED,
        zone_id=f"z{n}",
        started_at=ts - 5,
        observed_at=ts,
        count=3,
        peak_count=3,
        boxes=((0.1, 0.2, 0.3, 0.9),),
        sequence=0,
    )
    return Alert.from_event(
        ev, camera_id=camera, camera_name=camera_name, grid_id=grid, snapshot=None
    )


# (time, type, camera, then seconds after the raise of: ack, on scene, resolve + outcome)
SCENARIO: list[tuple[str, str, str, float | None, float | None, tuple[float, str] | None]] = [
    ("00:00:00", "crowding", "cam-a", None, None, None),  # the first second of the day
    ("08:10:00", "crowding", "cam-a", 60, 600, (900, "false_alarm")),
    ("08:40:00", "crowding", "cam-a2", 120, 900, (1500, "handled")),
    ("14:05:00", "crowding", "cam-a", 300, None, None),
    ("14:30:00", "intrusion", "cam-a2", 30, 240, (400, "false_alarm")),
]
NAMES = {"cam-a": "校门口", "cam-a2": "Square A", "cam-b": "Station B"}


async def play(stack: Stack, day: dt.date) -> dict[str, Alert]:
    """Publish the scenario (and two incidents outside it), act on the cases at their times."""
    alerts: dict[str, Alert] = {}
    for n, (hhmmss, type_, cam, *_rest) in enumerate(SCENARIO):
        alerts[hhmmss] = incident(GRID_A, cam, NAMES[cam], type_, at(day, hhmmss), n)
    outside = [
        incident(GRID_A, "cam-a", NAMES["cam-a"], "crowding", at(day, "00:00:00", -1), 90),
        incident(GRID_B, "cam-b", NAMES["cam-b"], "crowding", at(day, "09:00:00"), 91),
    ]
    for a in [*alerts.values(), *outside]:
        await stack.publisher.publish(a)
    await wait_until(lambda: len(stack.cases.cases) == len(SCENARIO) + 2, within=20)

    op, op_csrf = await stack.login("op-zhang")
    li, li_csrf = await stack.login("aux-li")

    async def act(
        client: Any,
        csrf: dict[str, str],
        alert: Alert,
        op_: str,
        t: dt.datetime,
        body: dict[str, Any] | None = None,
    ) -> None:
        stack.cases.clock = lambda: t.astimezone(dt.UTC)
        async with client.post(
            f"/api/cases/{GRID_A}/{alert.id}/{op_}", json=body or {}, headers=csrf
        ) as r:
            assert r.status == 200, (op_, await r.text())

    for hhmmss, _type, _cam, ack, arrive, resolve in SCENARIO:
        a, t0 = alerts[hhmmss], at(day, hhmmss)
        if ack is not None:
            await act(op, op_csrf, a, "acknowledge", t0 + dt.timedelta(seconds=ack))
        if arrive is not None:
            t = t0 + dt.timedelta(seconds=arrive - 10)
            await act(op, op_csrf, a, "dispatch", t, {"responder": "aux-li"})
            await act(li, li_csrf, a, "on_scene", t0 + dt.timedelta(seconds=arrive))
        if resolve is not None:
            await act(
                li,
                li_csrf,
                a,
                "resolve",
                t0 + dt.timedelta(seconds=resolve[0]),
                {"outcome": resolve[1], "note": "checked"},
            )
    return alerts

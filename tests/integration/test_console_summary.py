"""The daily summary (``/api/summary/<grid>``) over a real stack: alerts published to a real
nats-server open cases in the real case service, people acknowledge, dispatch, arrive and
resolve them through the console, and the summary's numbers are checked against the known
times of every step (the case service's clock is set before each action).

The day is yesterday in the deployment's zone (Asia/Shanghai, the default): the events are
stored now, after the day, as they would be for a day whose cases were closed the next morning.
"""

from __future__ import annotations

import datetime as dt

import pytest

from tests.plugins.console_stack import console_stack
from tests.plugins.dispatch import GRID_A, GRID_B
from tests.plugins.summary_scenario import SCENARIO, play, the_day

pytestmark = pytest.mark.timeout(120)


async def test_daily_summary_numbers_and_confinement(tmp_path) -> None:  # type: ignore[no-untyped-def]
    day = the_day()
    async with console_stack(tmp_path) as stack:
        alerts = await play(stack, day)
        op, _ = await stack.login("op-zhang")
        async with op.get(f"/api/summary/{GRID_A}?day={day.isoformat()}") as r:
            assert r.status == 200, await r.text()
            s = await r.json()

        assert (s["grid_id"], s["grid_name"], s["day"], s["timezone"]) == (
            GRID_A,
            "Grid A",
            day.isoformat(),
            "Asia/Shanghai",
        )
        assert s["incidents"] == 5  # not the second before midnight, not grid B's
        assert s["types"] == ["crowding", "intrusion"]
        hours = s["by_hour"]["crowding"]
        assert (hours[0], hours[8], hours[14], sum(hours)) == (1, 2, 1, 4)
        assert s["by_hour"]["intrusion"][14] == 1
        assert sum(s["by_hour"]["intrusion"]) == 1
        # acknowledged after 30, 60, 120, 300 s; on scene after 240, 600, 900 s
        assert s["acknowledge"] == {"n": 4, "median_s": 90.0, "p90_s": 246.0}
        assert s["arrive"] == {"n": 3, "median_s": 600.0, "p90_s": 840.0}
        crowding, intrusion = s["per_type"]
        assert crowding["type"] == "crowding"
        assert crowding["incidents"] == 4
        assert crowding["acknowledge"] == {"n": 3, "median_s": 120.0, "p90_s": 264.0}
        assert crowding["arrive"] == {"n": 2, "median_s": 750.0, "p90_s": 870.0}
        assert (crowding["resolved"], crowding["false_alarms"]) == (2, 1)
        assert intrusion["acknowledge"] == {"n": 1, "median_s": 30.0, "p90_s": 30.0}
        assert (intrusion["resolved"], intrusion["false_alarms"]) == (1, 1)
        assert (s["resolved"], s["false_alarms"]) == (3, 2)
        assert s["false_alarm_rate"] == pytest.approx(2 / 3)
        assert s["truncated"] is False

        rows = s["rows"]
        assert [r["id"] for r in rows] == [alerts[t].id for t, *_ in SCENARIO]
        first, second = rows[0], rows[1]
        assert first["opened_at"] == f"{day.isoformat()}T00:00:00+08:00"
        assert (first["state"], first["acknowledge_s"], first["arrive_s"]) == ("open", None, None)
        assert second["camera_name"] == "校门口"
        assert (second["state"], second["outcome"], second["acknowledge_s"]) == (
            "resolved",
            "false_alarm",
            60.0,
        )
        assert (second["acknowledged_by"], second["on_scene_by"]) == ("op-zhang", "aux-li")

        # without a day: today there, when nothing was raised yet (no rate, not 0 %)
        async with op.get(f"/api/summary/{GRID_A}") as r:
            today = await r.json()
        assert today["day"] == (day + dt.timedelta(days=1)).isoformat()
        assert (today["incidents"], today["rows"], today["false_alarm_rate"]) == (0, [], None)
        assert today["acknowledge"] == {"n": 0, "median_s": None, "p90_s": None}

        # grid B's summary holds grid B's incident only
        async with op.get(f"/api/summary/{GRID_B}?day={day.isoformat()}") as r:
            b = await r.json()
        assert b["incidents"] == 1
        assert b["rows"][0]["camera_id"] == "cam-b"

        # a bad day is a clear 400
        async with op.get(f"/api/summary/{GRID_A}?day=26.11.2026") as r:
            assert r.status == 400
            assert "YYYY-MM-DD" in (await r.json())["error"]

        # grid confinement: a person of grid B sees only grid B (404, page and numbers)
        zhao, _ = await stack.login("aux-zhao")
        async with zhao.get(f"/api/summary/{GRID_A}?day={day.isoformat()}") as r:
            assert r.status == 404
        async with zhao.get(f"/summary/{GRID_A}", allow_redirects=False) as r:
            assert r.status == 404
        async with zhao.get("/summary", allow_redirects=False) as r:
            assert (r.status, r.headers["Location"]) == (302, f"/summary/{GRID_B}")
        async with zhao.get(f"/api/summary/{GRID_B}?day={day.isoformat()}") as r:
            assert r.status == 200
            assert (await r.json())["incidents"] == 1
        async with op.get("/summary", allow_redirects=False) as r:
            assert r.headers["Location"] == f"/summary/{GRID_A}"  # the first grid

        # not logged in: nothing
        anon = stack.client()
        async with anon.get(f"/api/summary/{GRID_A}") as r:
            assert r.status == 401

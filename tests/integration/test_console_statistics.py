"""The console's Statistics API over a real secured nats-server with GW_STATS records published
per the contract (:mod:`tests.plugins.stats_scenario`, synthetic records): the flow of today
per 15 minutes (quarters, plus minutes not rolled up yet, never counted twice) against the same
weekday's band, the heat grid summed over a period, the blurred picture under it, and grid
confinement (another grid's camera is a 404, like one that does not exist)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from gridwatch.console.stats_page import PAST_DAYS
from tests.plugins.console_stack import Stack, console_stack
from tests.plugins.dispatch import GRID_A, GRID_B, make_alert, tiny_jpeg
from tests.plugins.stats_scenario import (
    COLS,
    GATE_CAMERAS,
    LINE,
    ROWS,
    Published,
    local_midnight,
    publish,
    scenario_config_yaml,
)

pytestmark = pytest.mark.timeout(120)


async def _get(session: Any, path: str) -> tuple[int, Any]:
    async with session.get(path) as r:
        body = await r.json() if r.content_type == "application/json" else await r.read()
        return r.status, body


async def _scenario(stack: Stack) -> Published:
    tz = stack.config.tzinfo()
    day = dt.datetime.now(tz).date()
    js = stack.svc.jetstream()
    got = await publish(js, camera="cam-a", grid=GRID_A, tz=tz, day=day)
    await publish(js, camera="cam-b", grid=GRID_B, tz=tz, day=day)
    return got


async def test_flow_band_and_heat_of_a_gate(tmp_path) -> None:  # type: ignore[no-untyped-def]
    async with console_stack(
        tmp_path, cameras_yaml=GATE_CAMERAS, extra=scenario_config_yaml()
    ) as stack:
        want = await _scenario(stack)
        li, _ = await stack.login("aux-li")  # responder of grid A

        status, info = await _get(li, "/api/statistics/cameras")
        assert status == 200
        assert [c["id"] for c in info["cameras"]] == ["cam-a", "cam-a2"]  # the gate first
        assert info["cameras"][0]["gate"] is True
        assert info["cameras"][1]["gate"] is False
        assert info["today"] == want.day.isoformat()

        status, flow = await _get(li, "/api/statistics/flow/cam-a")
        assert status == 200, flow
        assert flow["date"] == want.day.isoformat()
        assert len(flow["slots"]) == len(want.today) == 96
        assert flow["slots"][0]["label"] == "00:00"
        assert dt.datetime.fromisoformat(flow["slots"][0]["start"]) == local_midnight(
            want.day, stack.config.tzinfo()
        )
        [line] = flow["lines"]
        assert line["line"] == LINE
        assert line["today"] == want.today  # slot 5 from minutes; slot 1's minute not again
        assert line["weeks"] == 7
        assert line["p10"] == pytest.approx(want.p10)
        assert line["median"] == pytest.approx(want.median)
        assert line["p90"] == pytest.approx(want.p90)
        assert line["median"][:4] == [50.0, 51.0, 52.0, 53.0]
        # the 8 past weekdays are kept (the band is read once); the answer stays the same
        assert len(stack.app[PAST_DAYS]) == 8
        status, again = await _get(li, "/api/statistics/flow/cam-a")
        assert status == 200
        assert again == flow

        # a day with nothing: slots, no lines
        status, empty = await _get(li, "/api/statistics/flow/cam-a2")
        assert status == 200
        assert empty["lines"] == []

        day = want.day.isoformat()
        nxt = (want.day + dt.timedelta(days=1)).isoformat()
        status, heat = await _get(li, f"/api/statistics/heat/cam-a?since={day}&until={nxt}")
        assert status == 200, heat
        assert (heat["cols"], heat["rows"]) == (COLS, ROWS)
        assert heat["cells"] == want.heat_today
        assert heat["max"] == max(want.heat_today)
        assert heat["records"] == want.records
        assert heat["period"] == "quarter"
        # a week: hour records first (none here), then the quarters, then the minutes after them
        week_ago = (want.day - dt.timedelta(days=6)).isoformat()
        status, week = await _get(li, f"/api/statistics/heat/cam-a?since={week_ago}&until={nxt}")
        assert status == 200
        assert week["period"] == "hour"
        assert week["cells"] == want.heat_today

        for bad in ("since=yesterday", f"since={nxt}&until={day}", "since=2020-01-01"):
            status, body = await _get(li, f"/api/statistics/heat/cam-a?{bad}")
            assert status == 400, (bad, body)
        status, _ = await _get(li, "/api/statistics/flow/cam-a?date=5.12.2026")
        assert status == 400


async def test_statistics_are_confined_to_the_grid(tmp_path) -> None:  # type: ignore[no-untyped-def]
    async with console_stack(
        tmp_path, cameras_yaml=GATE_CAMERAS, extra=scenario_config_yaml()
    ) as stack:
        await _scenario(stack)
        li, _ = await stack.login("aux-li")  # grid A
        zhao, _ = await stack.login("aux-zhao")  # grid B
        op, _ = await stack.login("op-zhang")  # every grid

        for path in ("flow/cam-b", "heat/cam-b", "picture/cam-b", "flow/nope", "heat/nope"):
            status, _ = await _get(li, f"/api/statistics/{path}")
            assert status == 404, path
        status, flow_b = await _get(zhao, "/api/statistics/flow/cam-b")
        assert status == 200
        assert flow_b["grid"] == GRID_B
        assert flow_b["lines"][0]["weeks"] == 7
        status, _ = await _get(zhao, "/api/statistics/flow/cam-a")
        assert status == 404
        status, info = await _get(zhao, "/api/statistics/cameras")
        assert [c["id"] for c in info["cameras"]] == ["cam-b"]
        status, info = await _get(op, "/api/statistics/cameras")
        assert [c["id"] for c in info["cameras"]] == ["cam-a", "cam-a2", "cam-b"]

        anon = stack.client()
        status, _ = await _get(anon, "/api/statistics/flow/cam-a")
        assert status == 401
        async with anon.get("/statistics", allow_redirects=False) as r:
            assert r.status == 302
            assert r.headers["Location"].startswith("/login")
        async with li.get("/statistics") as r:
            assert r.status == 200
            assert "uPlot.iife.min.js" in await r.text()
        async with li.get("/static/vendor/uplot/uPlot.iife.min.js") as r:
            assert r.status == 200
            assert "uPlot" in await r.text()


async def test_the_heat_picture_is_always_blurred(tmp_path) -> None:  # type: ignore[no-untyped-def]
    async with console_stack(
        tmp_path, cameras_yaml=GATE_CAMERAS, extra=scenario_config_yaml()
    ) as stack:
        alert = make_alert(GRID_A, "cam-a", 1, snapshot=True)
        await stack.publisher.publish_with_snapshot(alert, tiny_jpeg(320, 240))
        op, _ = await stack.login("op-zhang")  # may see full snapshots elsewhere
        li, _ = await stack.login("aux-li")
        for who in (op, li):
            async with who.get("/api/statistics/picture/cam-a") as r:
                assert r.status == 200, await r.text()
                assert r.content_type == "image/jpeg"
                assert r.headers["X-Gw-Variant"] == "blurred"
                assert (await r.read())[:2] == b"\xff\xd8"
        status, _ = await _get(li, "/api/statistics/picture/cam-a2")  # no alert: no picture
        assert status == 404
        # a blurred picture is no full view: nothing audited as one
        records = await stack.audit_records()
        assert not [a for a in records if a.get("what") == "snapshot_full"]

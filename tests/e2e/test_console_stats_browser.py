"""The Statistics page in a real Chromium: a grid A responder opens it and sees today's
crossings per 15 minutes at each school gate of the grid, drawn by uPlot (served by the console,
no CDN) against the same weekday's band, and the heat map over a camera's blurred picture.

Real parts: a secured nats-server with GW_STATS records published per the contract
(:mod:`tests.plugins.stats_scenario`, synthetic values), the case and snapshot services (the
picture is an alert snapshot, a real frame of the demo video, served blurred), the console over
HTTP, Chromium through Playwright. The test reads the series back from the page's state
(``window.gwStats``) and pixels back from both canvases: a bar where a value was published, none
where nothing was, the hottest heat cell red over the picture. Screenshot:
tests/artifacts/console/statistics.png (untracked; look at it)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import cv2
import pytest
from playwright.async_api import Browser, Page

from tests.plugins.console_stack import console_stack
from tests.plugins.dispatch import GRID_A, make_alert, password
from tests.plugins.stats_scenario import (
    COLS,
    GATE_CAMERAS,
    LINE,
    ROWS,
    publish,
    scenario_config_yaml,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "console"
TWO_GATES = GATE_CAMERAS.replace(
    'url: "rtsp://127.0.0.1:9/a2"}',
    'url: "rtsp://127.0.0.1:9/a2",\n     rules: [{type: line_crossing, id: '
    + LINE
    + ", line: [[0.1, 0.6], [0.9, 0.6]], forbidden_direction: out}]}",
)
"""cam-a and cam-a2 (grid A) are both school gates."""

# the flow chart's canvas pixel at (x value, y value) of the first plot, and the plot's data
FLOW_PIXEL = """([x, y]) => {
  const p = window.gwStats.plots[0].plot;
  const cx = Math.round(p.valToPos(x, "x", true));
  const cy = Math.round(p.valToPos(y, "y", true));
  const d = p.ctx.getImageData(cx, cy, 1, 1).data;
  return [d[0], d[1], d[2], d[3]];
}"""

STATE = """() => ({
  lines: gwStats.plots.map((p) => p.camera + "/" + p.line), data: gwStats.plots[0].plot.data,
  flowOf: document.getElementById("camera").value,
  heat: gwStats.heat, picture: gwStats.picture, lib: typeof uPlot,
  canvases: document.querySelectorAll(".flow-chart canvas").length })"""

# the heat canvas's pixel at the centre of cell (col, row), and how varied the whole canvas is
HEAT_PIXEL = """([col, row, cols, rows]) => {
  const c = document.getElementById("heat");
  const g = c.getContext("2d");
  const h = Number(c.dataset.mapHeight);  // (the colour scale is drawn under the map)
  const x = Math.floor((col + 0.5) * c.width / cols), y = Math.floor((row + 0.5) * h / rows);
  const d = g.getImageData(x, y, 1, 1).data;
  const all = g.getImageData(0, 0, c.width, h).data;
  let s = 0, s2 = 0, n = 0;
  for (let i = 0; i < all.length; i += 16) {
    const v = (all[i] + all[i + 1] + all[i + 2]) / 3; s += v; s2 += v * v; n++;
  }
  const m = s / n;
  return { px: [d[0], d[1], d[2]], std: Math.sqrt(Math.max(0, s2 / n - m * m)) };
}"""


async def login(page: Page, url: str, user: str) -> None:
    await page.goto(f"{url}/login")
    await page.fill("#name", user)
    await page.fill("#password", password(user))
    await page.click("#submit")
    await page.wait_for_url(lambda u: "/login" not in u)


def street_jpeg(demo_mp4: Path) -> bytes:
    cap = cv2.VideoCapture(str(demo_mp4))
    try:
        cap.set(cv2.CAP_PROP_POS_FRAMES, 100)
        ok, frame = cap.read()
    finally:
        cap.release()
    assert ok, demo_mp4
    ok, buf = cv2.imencode(".jpg", frame)
    assert ok
    return bytes(buf.tobytes())


async def test_the_statistics_page_draws_the_published_flow_and_heat(
    chromium_browser: Browser, tmp_path: Path, demo_mp4: Path
) -> None:
    assert TWO_GATES != GATE_CAMERAS
    async with console_stack(
        tmp_path, cameras_yaml=TWO_GATES, extra=scenario_config_yaml()
    ) as stack:
        tz = stack.config.tzinfo()
        day = dt.datetime.now(tz).date()
        want = await publish(stack.svc.jetstream(), camera="cam-a", grid=GRID_A, tz=tz, day=day)
        await publish(stack.svc.jetstream(), camera="cam-a2", grid=GRID_A, tz=tz, day=day)
        alert = make_alert(GRID_A, "cam-a", 1, snapshot=True)
        await stack.publisher.publish_with_snapshot(alert, street_jpeg(demo_mp4))

        ctx = await chromium_browser.new_context(viewport={"width": 1280, "height": 1100})
        page = await ctx.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        await login(page, stack.url, "aux-li")
        nxt = day + dt.timedelta(days=1)
        await page.goto(
            f"{stack.url}/statistics?date={day.isoformat()}&heat_camera=cam-a"
            f"&heat_since={day.isoformat()}T00:00&heat_until={nxt.isoformat()}T00:00"
        )
        await page.wait_for_function(
            "() => window.gwStats && window.gwStats.heatDrawn && window.gwStats.plots.length > 0",
            timeout=20000,
        )
        state: dict[str, Any] = await page.evaluate(STATE)
        assert state["lib"] == "function"  # the vendored uPlot, from /static
        # every school gate of the grid by default, one chart per line
        assert state["flowOf"] == "_gates"
        assert state["lines"] == [f"cam-a/{LINE}", f"cam-a2/{LINE}"]
        assert state["canvases"] == 2
        xs, today, median, p10, p90 = state["data"]
        assert today == want.today
        assert median == pytest.approx(want.median)
        assert p10 == pytest.approx(want.p10)
        assert p90 == pytest.approx(want.p90)
        assert state["heat"]["cells"] == want.heat_today
        assert state["picture"] == "blurred"

        # the bars were drawn: slot 5's bar (13 in, from minute records) is amber at half its
        # height; slot 10 has no record and nothing is drawn there
        bar = await page.evaluate(FLOW_PIXEL, [xs[5], 6])
        assert bar[3] > 60, bar
        assert bar[0] > 150, bar
        assert bar[2] < 120, bar
        blank = await page.evaluate(FLOW_PIXEL, [xs[10], 6])
        assert blank[3] == 0, blank

        # the heat map: the hottest cell is red-ish over the (varied, not blank) picture
        hot = max(range(COLS * ROWS), key=lambda i: want.heat_today[i])
        cell = await page.evaluate(HEAT_PIXEL, [hot % COLS, hot // COLS, COLS, ROWS])
        r, _g, b = cell["px"]
        assert r > 150, cell
        assert r > b + 60, cell
        assert cell["std"] > 10, cell

        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "statistics.png"), full_page=True)
        assert not errors, errors
        await ctx.close()

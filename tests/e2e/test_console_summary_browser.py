"""The daily summary page in a real Chromium: the figures computed from a known day (see
tests/plugins/summary_scenario.py), both charts really drawn (the bars read back from the
canvas pixels), the print stylesheet (print-media emulation at A4 width, and a real A4 PDF from
Chromium's printing), and Chinese camera and grid names drawn with real glyphs, not empty boxes
(the check is shown to catch boxes in a second Chromium that sees no CJK font).

Screenshots and the PDF go to tests/artifacts/console/ (look at them): summary.png,
summary-print.png, summary.pdf, summary-cjk.png.
"""

from __future__ import annotations

import re
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, async_playwright

from gridwatch.config import GridConfig
from tests.plugins.browser_fixtures import CHROMIUM_ARGS, chromium_path
from tests.plugins.console_stack import console_stack
from tests.plugins.dispatch import GRID_A, GRID_B, password
from tests.plugins.summary_scenario import play, the_day

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "console"
GRID_NAME = "东城网格"
CAMERA_NAME = "校门口"
A4_CSS_PX = 703
"""The printable width of A4 with the page's 12 mm margins, in CSS pixels (186 mm at 96 dpi)."""
BLUE = (61, 139, 253)  # palette[0], the first type (crowding)
AMBER = (245, 180, 0)  # palette[1], the second type (intrusion)

# Bars of one colour in a canvas: [[x_first, x_last, height], ...] in device pixels, from the
# columns that hold that colour (anti-aliased edges excluded by the tolerance).
BARS_JS = """([sel, rgb]) => {
  const c = document.querySelector(sel);
  const ctx = c.getContext("2d");
  const d = ctx.getImageData(0, 0, c.width, c.height).data;
  const near = (i) => Math.abs(d[i] - rgb[0]) < 10 && Math.abs(d[i + 1] - rgb[1]) < 10 &&
    Math.abs(d[i + 2] - rgb[2]) < 10 && d[i + 3] > 240;
  const bars = [];
  let cur = null;
  for (let x = 0; x < c.width; x++) {
    let h = 0;
    for (let y = 0; y < c.height; y++) if (near((y * c.width + x) * 4)) h++;
    if (h > 0) {
      if (cur && x === cur[1] + 1) { cur[1] = x; cur[2] = Math.max(cur[2], h); }
      else { cur = [x, x, h]; bars.push(cur); }
    }
  }
  return bars.filter((b) => b[1] - b[0] >= 2);
}"""

# Whether a string is drawn with real glyphs in an element's font: two different strings of
# CJK characters give different pixels; drawn as "tofu" (the same empty box for every missing
# glyph) they give the same pixels.
GLYPHS_JS = """([sel, a, b]) => {
  const el = sel ? document.querySelector(sel) : document.body;
  const font = "32px " + getComputedStyle(el).fontFamily;
  const draw = (text) => {
    const c = document.createElement("canvas");
    c.width = 200; c.height = 60;
    const ctx = c.getContext("2d");
    ctx.font = font; ctx.fillStyle = "#000"; ctx.textBaseline = "top";
    ctx.fillText(text, 4, 8);
    return Array.from(ctx.getImageData(0, 0, 200, 60).data);
  };
  const pa = draw(a), pb = draw(b);
  let diff = 0, ink = 0;
  for (let i = 3; i < pa.length; i += 4) { if (pa[i] !== pb[i]) diff++; if (pa[i]) ink++; }
  return { font, diff, ink };
}"""


async def login(page: Page, url: str, user: str) -> None:
    await page.goto(f"{url}/login")
    await page.fill("#name", user)
    await page.fill("#password", password(user))
    await page.click("#submit")
    await page.wait_for_url(lambda u: "/login" not in u)


def pdf_fills(pdf: bytes) -> Counter[str]:
    """How often each fill colour (``r g b rg``) is set in the PDF's content streams."""
    out: Counter[str] = Counter()
    for m in re.finditer(rb"stream\r?\n(.*?)\r?\nendstream", pdf, re.S):
        try:
            body = zlib.decompress(m.group(1))
        except zlib.error:
            continue
        out.update(c.decode() for c in re.findall(rb"([\d.]+ [\d.]+ [\d.]+) rg", body))
    return out


def heights(bars: list[list[int]]) -> list[int]:
    return [b[2] for b in bars]


async def test_summary_page_numbers_charts_print_and_cjk(
    chromium_browser: Browser, tmp_path: Path
) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    day = the_day()
    async with console_stack(tmp_path) as stack:
        # the grid's display name in Chinese (the console reads its config per request)
        stack.console.config = stack.config.model_copy(
            update={"grids": [GridConfig(id=GRID_A, name=GRID_NAME), GridConfig(id=GRID_B)]}
        )
        await play(stack, day)
        ctx = await chromium_browser.new_context(
            base_url=stack.url, viewport={"width": 1280, "height": 900}
        )
        page = await ctx.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        await login(page, stack.url, "lead-wang")
        await page.goto(f"/summary/{GRID_A}?day={day.isoformat()}")
        await page.wait_for_selector("main.summary[data-ready='1']", timeout=15_000)

        # the figures of the known day
        text = page.locator
        assert await text("#grid-name").text_content() == GRID_NAME
        assert await text("#day-label").text_content() == day.isoformat()
        assert await text("#k-incidents").text_content() == "5"
        assert await text("#k-ack").text_content() == "1:30 · 4:06"  # 90 s, 246 s
        assert await text("#k-arrive").text_content() == "10:00 · 14:00"  # 600 s, 840 s
        assert await text("#k-fa").text_content() == "67% (2 of 3)"
        rows = text("#incident-rows tr")
        assert await rows.count() == 5
        assert await rows.nth(1).locator("td").all_text_contents() == [
            "08:10:00", "crowding", CAMERA_NAME, "warning", "resolved", "1:00", "10:00",
            "false alarm",
        ]  # fmt: skip
        assert await text("#type-rows tr[data-type='crowding'] td").all_text_contents() == [
            "crowding", "4", "2:00", "4:24", "12:30", "14:30", "2", "1",
        ]  # fmt: skip

        # the stacked bars: crowding at 00, 08 (two) and 14 h, intrusion on top of it at 14 h
        crowding = await page.evaluate(BARS_JS, ["#chart-hours canvas", BLUE])
        intrusion = await page.evaluate(BARS_JS, ["#chart-hours canvas", AMBER])
        assert len(crowding) == 3, crowding
        h0, h8, h14 = heights(crowding)
        assert abs(h8 - 2 * h0) <= 3, crowding
        assert abs(h14 - h0) <= 2, crowding
        assert len(intrusion) == 1, intrusion
        assert abs(intrusion[0][2] - h0) <= 2
        assert intrusion[0][0] <= crowding[2][1]
        assert crowding[2][0] <= intrusion[0][1]
        x0, x8 = crowding[0][0], crowding[1][0]
        assert x0 < x8 < crowding[2][0]
        # the response-time bars: acknowledge (amber) and arrive (blue) medians of both types
        ack = await page.evaluate(BARS_JS, ["#chart-times canvas", AMBER])
        arrive = await page.evaluate(BARS_JS, ["#chart-times canvas", BLUE])
        assert len(ack) == 2, ack
        assert len(arrive) == 2, arrive
        a_crowd, a_intr = heights(ack)  # 120 s vs 30 s
        assert abs(a_crowd - 4 * a_intr) <= 4, ack
        v_crowd, v_intr = heights(arrive)  # 750 s vs 240 s
        assert abs(v_crowd * 240 - v_intr * 750) <= 750 * 3, arrive
        await page.screenshot(path=str(ARTIFACTS / "summary.png"), full_page=True)

        # Chinese names are drawn with glyphs, in the page's own font stack
        family = await page.evaluate(
            "getComputedStyle(document.querySelector('td.camera')).fontFamily"
        )
        assert "Noto Sans CJK SC" in family
        for sel, a, b in (
            ("td.camera", CAMERA_NAME, "东城网"),
            ("#grid-name", GRID_NAME, "校门口外"),
        ):
            got = await page.evaluate(GLYPHS_JS, [sel, a, b])
            assert got["ink"] > 200, got
            assert got["diff"] > 200, got  # tofu boxes would be pixel-identical
        await text("section.sum-block").last.screenshot(path=str(ARTIFACTS / "summary-cjk.png"))

        # print: no navigation or controls, white paper, charts within an A4 page's width
        await page.emulate_media(media="print")
        await page.set_viewport_size({"width": A4_CSS_PX, "height": 1000})
        assert await text("header.top").is_hidden()
        assert await text("#pick").is_hidden()
        bg = await page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert bg == "rgb(255, 255, 255)"
        for sel in ("#chart-hours canvas", "#chart-times canvas", "#incidents"):
            r = await text(sel).bounding_box()
            assert r is not None
            assert r["x"] >= 0
            assert r["x"] + r["width"] <= A4_CSS_PX + 1, (sel, r)
        await page.screenshot(path=str(ARTIFACTS / "summary-print.png"), full_page=True)
        pdf = await page.pdf(path=str(ARTIFACTS / "summary.pdf"), format="A4")
        assert pdf.startswith(b"%PDF")
        pages = pdf.count(b"/Type /Page") - pdf.count(b"/Type /Pages")
        assert 1 <= pages <= 2, pages
        # the charts are on paper: Chromium prints a canvas as vector fills; each colour is
        # filled by the two legends' swatches and by the bars of both charts
        fills = pdf_fills(pdf)
        assert fills[".2392 .5451 .9922"] >= 4, fills  # blue (#3d8bfd)
        assert fills[".9608 .7059 0"] >= 4, fills  # amber (#f5b400)
        assert errors == []

        # another grid's summary is not there for a grid A leader
        other = await ctx.new_page()
        resp = await other.goto(f"/summary/{GRID_B}")
        assert resp is not None
        assert resp.status == 404
        await ctx.close()


async def test_the_glyph_check_sees_boxes_without_cjk_fonts(tmp_path: Path) -> None:
    """The check above is not vacuous: a Chromium whose fontconfig knows only DejaVu (no CJK)
    draws 校门口 and 东城网 as the same boxes, and the check says so."""
    conf = tmp_path / "fonts.conf"
    conf.write_text(
        '<?xml version="1.0"?><!DOCTYPE fontconfig SYSTEM "fonts.dtd"><fontconfig>'
        "<dir>/usr/share/fonts/truetype/dejavu</dir>"
        f"<cachedir>{tmp_path / 'fc-cache'}</cachedir></fontconfig>"
    )
    env: dict[str, str | float | bool] = {"FONTCONFIG_FILE": str(conf), "HOME": str(tmp_path)}
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True, env=env
        )
        try:
            page = await browser.new_page()
            await page.set_content(
                "<body style='font-family: system-ui, \"Noto Sans CJK SC\", sans-serif'>x</body>"
            )
            got: dict[str, Any] = await page.evaluate(GLYPHS_JS, ["", CAMERA_NAME, "东城网"])
        finally:
            await browser.close()
    assert got["ink"] > 0, got  # something (the boxes) is drawn
    assert got["diff"] == 0, got  # ... and it is the same for different characters

"""Alert clips played where people look, in a real Chromium (Debian's, which plays H.264): the
operator's alert page waits for a clip not stored yet ("clip in N s"), then plays it (full)
with the onset marked, and seeks before and after the onset to real pictures through the
console's HTTP ranges; the responder's phone view plays the blurred variant of the case a
notification opened.

Real parts: a nats-server with the generated permissions, the case, snapshot and clip services
(its re-encode and person detector for the blurred variant), a clip cut from the demo video
as the worker cuts it (H.264 remuxed to fragmented MP4) and stored with the worker's headers,
the console over HTTP, Chromium through Playwright. Screenshots go to tests/artifacts/console/
(untracked) as alert-clip.png and m-clip.png."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page

from gridwatch.alerts.clip_service import ClipService
from gridwatch.bus.infra import ensure_clip_store
from gridwatch.console.clips import CLIP_CACHE
from gridwatch.model import Alert
from tests.plugins.browser_fixtures import PHONE_VIEWPORT
from tests.plugins.clips import demo_clip_mp4, put_clip
from tests.plugins.console_stack import Stack, console_stack
from tests.plugins.dispatch import GRID_A, make_alert, password, tiny_jpeg, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "console"
PRE_ROLL_S = 5.0
MIN_STD = 20.0
"""Grey-level standard deviation of a picture of the street (about 55 in the demo video); a
blank or black frame is near 0."""

# the picture on the screen at the video's current time, as grey-level statistics
FRAME_STATS = """(v) => {
  const c = document.createElement("canvas");
  c.width = v.videoWidth; c.height = v.videoHeight;
  const g = c.getContext("2d");
  g.drawImage(v, 0, 0);
  const d = g.getImageData(0, 0, c.width, c.height).data;
  let s = 0, s2 = 0, n = 0, h = 0;
  for (let i = 0; i < d.length; i += 4) {
    const y = (d[i] + d[i + 1] + d[i + 2]) / 3;
    s += y; s2 += y * y; n += 1; h = (h * 31 + d[i]) % 1000000007;
  }
  const mean = s / n;
  const std = Math.sqrt(Math.max(0, s2 / n - mean * mean));
  return { t: v.currentTime, mean: mean, std: std, hash: h };
}"""

SEEK = (
    """async (v, t) => {
  await new Promise((resolve, reject) => {
    v.addEventListener("seeked", resolve, { once: true });
    const failed = () => reject(new Error("video error " + v.error.code));
    v.addEventListener("error", failed, { once: true });
    v.currentTime = t;
  });
  return ("""
    + FRAME_STATS
    + """)(v);
}"""
)

METADATA = """async (v) => {
  if (v.readyState < 1) {
    await new Promise((resolve) => v.addEventListener("loadedmetadata", resolve, { once: true }));
  }
  return { duration: v.duration, width: v.videoWidth, height: v.videoHeight,
           onset: v.dataset.onset, variant: v.dataset.variant };
}"""


async def login(page: Page, url: str, user: str) -> None:
    await page.goto(f"{url}/login")
    await page.fill("#name", user)
    await page.fill("#password", password(user))
    await page.click("#submit")
    await page.wait_for_url(lambda u: "/login" not in u)


async def raise_alert(stack: Stack, n: int) -> Alert:
    """A crowding alert of cam-a with a snapshot and a clip name (the clip not stored yet)."""
    alert: Alert = make_alert(GRID_A, "cam-a", n, snapshot=True)
    alert = alert.model_copy(update={"clip": f"cam-a/{alert.id}.mp4"})
    await stack.publisher.publish_with_snapshot(alert, tiny_jpeg(320, 240))
    await wait_until(lambda: any(c.id == alert.id for c in stack.cases.cases.values()))
    return alert


async def marker(page: Page) -> dict[str, Any]:
    m = page.locator("#clip .clip-onset, .mclip .clip-onset").first
    assert await m.is_visible()
    box = await m.bounding_box()
    track = await page.locator("#clip .clip-track, .mclip .clip-track").first.bounding_box()
    assert box is not None
    assert track is not None
    return {"at": (box["x"] + box["width"] / 2 - track["x"]) / track["width"]}


async def test_the_alert_page_and_the_phone_play_the_clip_around_the_onset(
    chromium_browser: Browser, tmp_path: Path, demo_mp4: Path
) -> None:
    raw = demo_clip_mp4(demo_mp4, 20.0, 10.0)
    # clips stored 2 s after the alert (the page's countdown is short)
    async with console_stack(tmp_path, extra="alerts: {clips: {post_s: 2}}") as stack:
        service = ClipService(stack.svc, stack.config)
        await service.start()
        try:
            store = await ensure_clip_store(stack.svc.jetstream(), ttl_s=3600, max_bytes=1 << 28)
            alert = await raise_alert(stack, 1)

            ctx = await chromium_browser.new_context(viewport={"width": 1280, "height": 1000})
            page = await ctx.new_page()
            await login(page, stack.url, "op-zhang")
            await page.goto(f"{stack.url}/alerts/{GRID_A}/{alert.id}")
            # not stored yet: the player says when it asks again
            await page.wait_for_function(
                "() => /^clip in \\d+ s$/.test("
                "document.querySelector('#clip .clip-status')?.textContent || '')",
                timeout=15000,
            )
            await put_clip(store, "cam-a", alert.id, raw, grid=GRID_A, pre_roll_s=PRE_ROLL_S)

            video = await page.wait_for_selector("#clip video", state="visible", timeout=30000)
            assert video is not None
            meta = await video.evaluate(METADATA)
            cache = stack.app[CLIP_CACHE]
            fetched = cache.fetches  # (with the "not stored yet" ones)
            onset = float(meta["onset"])
            assert onset == PRE_ROLL_S
            assert meta["variant"] == "full"
            assert (meta["width"], meta["height"]) == (768, 576)
            assert meta["duration"] > onset + 1, meta

            before = await video.evaluate(SEEK, onset - 1)
            after = await video.evaluate(SEEK, onset + 1)
            for stats, t in ((before, onset - 1), (after, onset + 1)):
                assert abs(stats["t"] - t) < 0.01, stats
                assert stats["std"] > MIN_STD, stats  # a real picture, not a blank frame
            assert before["hash"] != after["hash"]  # two moments, two pictures

            # the onset on the bar under the video, and the button that goes there
            await page.wait_for_function(
                "() => document.querySelector('#clip .clip-onset').style.left !== ''"
            )
            at = (await marker(page))["at"]
            assert abs(at - onset / meta["duration"]) < 0.02, (at, onset, meta["duration"])
            status = await page.text_content("#clip .clip-status") or ""
            assert "recorded in the audit log" in status
            assert f"Onset at {onset:.1f} s" in status
            await page.click("#clip .clip-jump")
            await page.wait_for_function(
                "(t) => Math.abs(document.querySelector('#clip video').currentTime - t) < 0.01",
                arg=onset,
            )
            jumped = await video.evaluate(FRAME_STATS)
            assert jumped["std"] > MIN_STD
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "alert-clip.png"), full_page=True)
            await ctx.close()

            # one playback with its seeks: one fetch from the clip service, one full view
            # (the player's probe fetched it; the video's requests were answered from the cache)
            assert cache.fetches == fetched
            assert cache.hits >= 1
            views = [a for a in await stack.audit_records() if a.get("clip")]
            assert sorted((a["what"], a["user"]) for a in views) == [
                ("clip", "op-zhang"),
                ("clip_full", "op-zhang"),
            ]

            # the responder's phone, opened on the case: the blurred clip, onset marked
            phone = await chromium_browser.new_context(viewport=PHONE_VIEWPORT)
            page = await phone.new_page()
            await login(page, stack.url, "aux-li")
            await page.goto(f"{stack.url}/m/cases/{GRID_A}/{alert.id}")
            video = await page.wait_for_selector(
                f"#case-{alert.id} .mclip video", state="visible", timeout=60000
            )
            assert video is not None
            meta = await video.evaluate(METADATA)
            assert (meta["variant"], float(meta["onset"])) == ("blurred", PRE_ROLL_S)
            assert meta["duration"] > PRE_ROLL_S + 1
            stats = await video.evaluate(SEEK, PRE_ROLL_S + 1)
            assert stats["std"] > MIN_STD, stats
            await page.wait_for_function(
                "() => document.querySelector('.mclip .clip-onset').style.left !== ''"
            )
            await marker(page)
            await page.screenshot(path=str(ARTIFACTS / "m-clip.png"), full_page=True)
            await phone.close()
            views = [a for a in await stack.audit_records() if a.get("clip")]
            assert len(views) == 2  # the operator's: blurred views are not audited
            assert cache.fetches == fetched + 1
        finally:
            await service.stop()

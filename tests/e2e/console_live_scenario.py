"""The live-view browser scenario, run by test_console_live_browser.py inside ``unshare -n``.

Everything runs in one fresh network namespace with only ``lo`` (tests/plugins/netns.py): the
real RTSP camera (GStreamer serving the vtest demo video), the **real console**
(:func:`tests.plugins.console_stack.console_stack`: ``create_app`` with its login, session
cookie, CSRF and grid middleware, a secured nats-server with the permissions ``gridwatch
nats-config`` writes, the case and snapshot services, the camera directory and a ``LiveHub``
pinned to ``ice_host="127.0.0.1"`` exactly as ``gridwatch console`` builds it), and headless
Chromium driven by Playwright through the console's own pages. Nothing is stubbed: a frame on
screen means real auth → real CSRF → grid confinement → live routes → aiortc → Chromium.

Steps (each with a generous timeout; nothing here is a timed assertion):

1. the operator logs in on the login page and opens a camera page; cold start (nobody else
   pulls the camera): click "Live", time click → first frame shown
   (``requestVideoFrameCallback``), let it play, screenshot, read the RTCPeerConnection's
   stats (``video.gwLive.pc.getStats()``);
2. CPU of one viewer: per-thread CPU of this process (console included) over a few seconds;
3. hang up with the page's Stop button (DELETE): the hub stops the source, its decoder ends;
4. warm start from an alert: an alert of that camera is published, the operator opens it,
   a worker-like reader already pulls the camera (the live view joins the RTSP stream between
   keyframes, as in production); time click → first frame again, then close the page without
   Stop: the hang-up on ``pagehide`` must still end the session;
5. refusals the operator's page sees: an unreachable camera's message, a POST without the
   CSRF token;
6. a grid B responder, logged in on the login page: live video of their own grid's camera
   plays; an offer for grid A's camera (sent by the real live.js with their CSRF token) is
   refused by the console's grid check before the live code runs, and opens nothing.

Prints one JSON object (the last stdout line) for the test to assert on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from playwright.async_api import BrowserContext, Page, async_playwright
from playwright.async_api import TimeoutError as PlaywrightTimeout

from gridwatch.console.live import LiveHub
from gridwatch.ingest.reader import CameraReader
from gridwatch_devtools.media import demo_video
from gridwatch_devtools.rtsp_server import RtspServer
from tests.plugins.browser_fixtures import CHROMIUM_ARGS, WEBRTC_LOOPBACK_ARGS, chromium_path
from tests.plugins.console_stack import Stack, console_stack
from tests.plugins.dispatch import GRID_A, GRID_B, make_alert, password
from tests.plugins.netns import require_private_netns

WAIT_MS = 20_000
CPU_WINDOW_S = 4.0
OPERATOR, RESPONDER_B = "op-zhang", "aux-zhao"
CAM_A, CAM_DARK, CAM_B = "gate-a1", "dark-a2", "station-b"
VIEWPORT = {"width": 1280, "height": 900}

# Instruments a console page (camera or alert detail) before "Live" is clicked: the click time,
# the first frame presented by the <video>, the time the page says "live" (answer applied) and
# any error the player reports. Runs through Playwright (the page's CSP forbids inline script).
INSTRUMENT = """() => {
  window.t = {};
  const v = document.getElementById("live-video");
  const b = document.getElementById("live-button");
  const s = document.getElementById("live-status");
  v.addEventListener("gridwatch-live-error", (e) => { window.t.error = e.detail; });
  b.addEventListener("click", () => {
    window.t.click = performance.now();
    v.requestVideoFrameCallback(() => { window.t.firstFrame = performance.now(); });
  }, {capture: true, once: true});
  new MutationObserver(() => {
    if (s.textContent === "live" && window.t.answered === undefined)
      window.t.answered = performance.now();
  }).observe(s, {childList: true, characterData: true, subtree: true});
}"""

VIDEO_STATS = """async () => {
  const live = document.getElementById("live-video").gwLive;
  if (!live) return {framesDecoded: 0, session: false};
  const report = await live.pc.getStats();
  let inbound = null;
  report.forEach((s) => { if (s.type === "inbound-rtp" && s.kind === "video") inbound = s; });
  if (!inbound) return {framesDecoded: 0, connectionState: live.pc.connectionState};
  const codec = inbound.codecId ? report.get(inbound.codecId) : null;
  return {framesDecoded: inbound.framesDecoded || 0, frameWidth: inbound.frameWidth,
          frameHeight: inbound.frameHeight, framesPerSecond: inbound.framesPerSecond,
          codec: codec ? codec.mimeType : null, connectionState: live.pc.connectionState};
}"""

PAGE_STATE = """() => {
  const v = document.getElementById("live-video");
  const pc = v && v.gwLive && v.gwLive.pc;
  const cands = (d) => d ? d.sdp.split("\\n").filter((l) => l.startsWith("a=candidate")) : null;
  return {t: window.t, status: document.getElementById("live-status").textContent,
          connection: pc && pc.connectionState, ice: pc && pc.iceConnectionState,
          local: pc && cands(pc.localDescription), remote: pc && cands(pc.remoteDescription)};
}"""

# A real offer for another grid's camera, sent by the page's own live.js with the user's CSRF
# token (so only the grid check can refuse it).
FOREIGN_OFFER = """(camera) => new Promise((resolve) => {
  const v = document.createElement("video");
  v.addEventListener("gridwatch-live-error", (e) => resolve(e.detail));
  const live = window.gridwatchLive.start(v, camera, window.gw.me.csrf);
  live.ready.then(() => resolve({status: 200, message: "answered"}), () => {});
})"""


def cameras_yaml(gate_url: str, dark_url: str, station_url: str) -> str:
    return (
        "cameras:\n"
        f"  - {{id: {CAM_A}, name: School gate, grid: {GRID_A}, url: '{gate_url}'}}\n"
        f"  - {{id: {CAM_DARK}, name: Back lane, grid: {GRID_A}, url: '{dark_url}'}}\n"
        f"  - {{id: {CAM_B}, name: Station, grid: {GRID_B}, url: '{station_url}'}}\n"
    )


def thread_cpu_s() -> dict[str, float]:
    """CPU seconds (user + system) of each thread of this process, by thread name."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the thread ended meanwhile
        name = names.get(int(task.name), "other")
        name = "encoder" if name.startswith("asyncio_") else name
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


def decoder_alive(camera_id: str) -> bool:
    return any(t.name == f"ingest-{camera_id}" and t.is_alive() for t in threading.enumerate())


async def eventually(check: Callable[[], bool], timeout_s: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        await asyncio.sleep(0.1)
    return check()


async def log_in(ctx: BrowserContext, user: str, lands_on: str) -> Page:
    """Log in on the console's own login page, as a person would."""
    page = await ctx.new_page()
    await page.goto("/login")
    await page.fill("#name", user)
    await page.fill("#password", password(user))
    await page.click("#submit")
    await page.wait_for_url(f"**{lands_on}", timeout=WAIT_MS)
    return page


async def open_player(page: Page, path: str, ready_text: str) -> None:
    """Open a page with a live player, wait until its script has loaded the user and the item
    (``ready_text`` shows in ``#fields``), and instrument it."""
    await page.goto(path)
    await page.locator("#fields").get_by_text(ready_text).first.wait_for(timeout=WAIT_MS)
    await page.wait_for_function("() => !!(window.gw && window.gw.me && window.gwLivePlayer)")
    await page.evaluate(INSTRUMENT)


async def click_and_play(page: Page, min_frames: int = 20) -> dict[str, Any]:
    """Click the page's Live button: click → first frame, and the stats once ``min_frames``
    frames are decoded (the camera sends 10 fps)."""
    await page.click("#live-button")
    try:
        await page.wait_for_function(
            "() => window.t.firstFrame !== undefined || window.t.error !== undefined",
            timeout=WAIT_MS,
        )
    except PlaywrightTimeout:
        state = await page.evaluate(PAGE_STATE)
        raise RuntimeError(f"no first frame; page state: {state}") from None
    t = await page.evaluate("window.t")
    if "error" in t:
        return {"error": t["error"]}
    stats: dict[str, Any] = {}
    deadline = time.monotonic() + WAIT_MS / 1000
    while time.monotonic() < deadline:
        stats = await page.evaluate(VIDEO_STATS)
        if stats["framesDecoded"] >= min_frames:
            break
        await asyncio.sleep(0.2)
    t = await page.evaluate("window.t")
    return {
        "click_to_first_frame_ms": round(t["firstFrame"] - t["click"]),
        "click_to_live_shown_ms": round(t["answered"] - t["click"]) if "answered" in t else None,
        "status_text": await page.locator("#live-status").text_content(),
        "stats": stats,
    }


async def run(artifacts: Path, video: Path) -> dict[str, Any]:
    result: dict[str, Any] = {}
    with (
        tempfile.TemporaryDirectory(prefix="gw-live-") as tmp,
        RtspServer({"gate": video, "station": video}) as camera,
    ):
        closed_port = camera.port + 1  # nothing listens there in this empty namespace
        cams = cameras_yaml(
            camera.url("gate"), f"rtsp://127.0.0.1:{closed_port}/stream", camera.url("station")
        )
        async with console_stack(Path(tmp), cameras_yaml=cams, live=True) as stack:
            hub = cast(LiveHub, stack.console.live_hub)
            assert isinstance(hub, LiveHub)
            result["console_url"] = stack.url
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(
                    executable_path=chromium_path(), args=CHROMIUM_ARGS + WEBRTC_LOOPBACK_ARGS
                )
                try:
                    await operator_steps(browser, stack, hub, artifacts, camera.url("gate"), result)
                    await responder_steps(browser, stack, hub, artifacts, result)
                finally:
                    await browser.close()
            result["sessions_left"] = hub.session_ids()
    return result


async def operator_steps(
    browser: Any, stack: Stack, hub: LiveHub, artifacts: Path, gate_url: str, out: dict[str, Any]
) -> None:
    ctx = await browser.new_context(base_url=stack.url, viewport=VIEWPORT)
    page = await log_in(ctx, OPERATOR, "/")
    out["operator_landed_on"] = page.url
    # a POST without the CSRF token, from the logged-in page: the console's middleware refuses
    out["no_csrf"] = await page.evaluate(
        f"""fetch('/api/live/{CAM_A}/offer', {{method: 'POST',
              headers: {{'Content-Type': 'application/json'}},
              body: JSON.stringify({{sdp: 'x', type: 'offer'}})}})
           .then(async (r) => ({{status: r.status, body: await r.json()}}))"""
    )
    out["sources_after_no_csrf"] = hub.sources_started

    # 1. cold start from the camera page
    await open_player(page, f"/cameras/{CAM_A}", GRID_A)
    out["cold"] = await click_and_play(page)
    await page.wait_for_timeout(1000)  # a few more frames of the scene
    shot = artifacts / "live.png"
    await page.locator("#live-video").screenshot(path=str(shot))
    await page.screenshot(path=str(artifacts / "live-camera-page.png"))
    out["screenshot"] = str(shot)
    out["viewers_while_playing"] = hub.viewers(CAM_A)

    # 2. CPU of one viewer (this process: console, live hub, decoder, encoder)
    source = hub.source(CAM_A)
    assert source is not None
    cpu0, wall0, sent0 = thread_cpu_s(), time.monotonic(), source.frames_sent
    proc0 = time.process_time()
    await asyncio.sleep(CPU_WINDOW_S)
    cpu1, wall1, sent1 = thread_cpu_s(), time.monotonic(), source.frames_sent
    span = wall1 - wall0
    out["cpu"] = {
        "window_s": round(span, 2),
        "frames": sent1 - sent0,
        "size": [source.reader.stats.width, source.reader.stats.height],
        "process_cores": round((time.process_time() - proc0) / span, 3),
        "threads_cores": {
            k: round((cpu1.get(k, 0.0) - cpu0.get(k, 0.0)) / span, 3)
            for k in sorted(cpu1)
            if cpu1.get(k, 0.0) - cpu0.get(k, 0.0) > 0
        },
    }
    out["stats_after_play"] = await page.evaluate(VIDEO_STATS)

    # 3. hang up with the page's Stop button: the source stops
    out["button_while_playing"] = await page.locator("#live-button").text_content()
    await page.click("#live-button")
    await eventually(lambda: hub.viewers(CAM_A) == 0)
    out["viewers_after_stop"] = hub.viewers(CAM_A)
    out["decoder_stopped_after_stop"] = await eventually(lambda: not decoder_alive(CAM_A))

    # 4. warm start from an alert of that camera, while a worker-like reader pulls the camera
    alert = make_alert(GRID_A, CAM_A, 1)
    await stack.publisher.publish(alert)
    worker = CameraReader("worker", gate_url)
    worker.start()
    try:
        await eventually(lambda: worker.stats.frames_decoded > 5)
        await open_player(page, f"/alerts/{GRID_A}/{alert.id}", alert.camera_name)
        await asyncio.sleep(0.7)  # land between keyframes (2 s GOP)
        out["warm"] = await click_and_play(page)
        out["warm"]["from"] = "alert"
        out["sources_started"] = hub.sources_started
        await page.close()  # no Stop: the pagehide hang-up must do it
        await eventually(lambda: hub.viewers(CAM_A) == 0)
        out["viewers_after_page_close"] = hub.viewers(CAM_A)
        out["decoder_stopped_after_page_close"] = await eventually(lambda: not decoder_alive(CAM_A))
    finally:
        worker.stop(timeout=5)

    # 5. an unreachable camera: the page says why
    page = await ctx.new_page()
    await open_player(page, f"/cameras/{CAM_DARK}", GRID_A)
    await page.click("#live-button")
    await page.wait_for_function("() => window.t.error !== undefined", timeout=WAIT_MS)
    await page.locator("#live-status").get_by_text("live video failed").wait_for(timeout=WAIT_MS)
    out["unreachable"] = {
        "error": (await page.evaluate("window.t"))["error"],
        "status_text": await page.locator("#live-status").text_content(),
    }
    await ctx.close()


async def responder_steps(
    browser: Any, stack: Stack, hub: LiveHub, artifacts: Path, out: dict[str, Any]
) -> None:
    ctx = await browser.new_context(base_url=stack.url, viewport=VIEWPORT)
    page = await log_in(ctx, RESPONDER_B, "/m/")
    out["responder_landed_on"] = page.url
    # their own grid's camera plays
    await open_player(page, f"/cameras/{CAM_B}", GRID_B)
    out["responder_own"] = await click_and_play(page, min_frames=5)
    await page.screenshot(path=str(artifacts / "live-responder-b.png"))
    # grid A's camera: its page and its live offer are refused; nothing is opened for it
    started = hub.sources_started
    out["responder_foreign_page_status"] = await page.evaluate(
        f"fetch('/cameras/{CAM_A}').then((r) => r.status)"
    )
    out["responder_foreign_offer"] = await page.evaluate(FOREIGN_OFFER, CAM_A)
    out["responder_foreign_sources_opened"] = hub.sources_started - started
    out["responder_foreign_sessions"] = hub.session_ids(CAM_A)
    await page.click("#live-button")  # Stop
    await eventually(lambda: hub.viewers(CAM_B) == 0)
    out["viewers_b_after_stop"] = hub.viewers(CAM_B)
    await ctx.close()


def main() -> int:
    require_private_netns()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    # argv: the artifacts folder, then optionally another video to serve (CPU measurements)
    video = Path(sys.argv[2]) if len(sys.argv) > 2 else demo_video()
    Path(sys.argv[1]).mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    result = asyncio.run(run(Path(sys.argv[1]), video))
    result["scenario_s"] = round(time.monotonic() - t0, 1)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The cascade on the console's cameras page: ``/api/cameras`` carries the cascade's last
report (KV ``gw_gb28181``) and the channel ids of the cameras the user may see, and the page
shows registration state, last keepalive and the alarm counts in a real Chromium."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from playwright.async_api import Browser

from gridwatch.bus.catalog import gb28181_kv
from gridwatch.bus.infra import ensure_kv
from gridwatch.gb28181.ids import camera_channel_id
from gridwatch.gb28181.metrics import STATUS_KEY, CascadeStatus
from tests.plugins.console_stack import console_stack
from tests.plugins.dispatch import password

pytestmark = pytest.mark.timeout(90)

OUR_ID = "34020000002000000001"
CASCADE_YAML = f"""
gb28181:
  enabled: true
  device_id: "{OUR_ID}"
  password: pw-gb
  superior: {{id: "34020000002000000002", host: 127.0.0.1, port: 5060}}
  derive_camera_ids: true
"""
REPORT = CascadeStatus(
    device_id=OUR_ID,
    superior="sip:34020000002000000002@3402000000",
    state="registered",
    last_keepalive_ok=time.time(),
    sent=12,
    pending=2,
    failed=1,
    channels=3,
    updated_at=time.time(),
)


async def test_api_cameras_carries_the_cascade(tmp_path: Path) -> None:
    async with console_stack(tmp_path, extra=CASCADE_YAML) as stack:
        op, _ = await stack.login("op-zhang")
        async with op.get("/api/cameras") as r:
            before = (await r.json())["gb28181"]
        assert before["status"] is None  # the cascade never ran
        kv = await ensure_kv(stack.svc.jetstream(), gb28181_kv())
        await kv.put(STATUS_KEY, REPORT.model_dump_json().encode())
        async with op.get("/api/cameras") as r:
            g = (await r.json())["gb28181"]
        assert (g["status"]["state"], g["status"]["sent"], g["status"]["failed"]) == (
            "registered",
            12,
            1,
        )
        assert g["channels"] == {
            c: camera_channel_id(OUR_ID, c) for c in ("cam-a", "cam-a2", "cam-b")
        }
        # a grid A responder sees the channels of grid A's cameras only
        li, _ = await stack.login("aux-li")
        async with li.get("/api/cameras") as r:
            assert set((await r.json())["gb28181"]["channels"]) == {"cam-a", "cam-a2"}


async def test_cameras_page_shows_the_cascade(chromium_browser: Browser, tmp_path: Path) -> None:
    async with console_stack(tmp_path, extra=CASCADE_YAML) as stack:
        kv = await ensure_kv(stack.svc.jetstream(), gb28181_kv())
        await kv.put(STATUS_KEY, REPORT.model_dump_json().encode())
        ctx = await chromium_browser.new_context(viewport={"width": 1280, "height": 900})
        try:
            page = await ctx.new_page()
            await page.goto(f"{stack.url}/login")
            await page.fill("#name", "op-zhang")
            await page.fill("#password", password("op-zhang"))
            await page.click("#submit")
            await page.wait_for_url(lambda u: "/login" not in u)
            await page.goto(f"{stack.url}/cameras")
            box = page.locator("#cascade")
            await box.wait_for(state="visible", timeout=10_000)
            text = await box.inner_text()
            assert "registered" in text
            assert "alarms sent 12 / pending 2 / failed 1" in text
            title = await page.locator('#camera-rows tr[data-id="cam-a"]').get_attribute("title")
            assert title == f"GB/T 28181 channel {camera_channel_id(OUR_ID, 'cam-a')}"
        finally:
            await ctx.close()

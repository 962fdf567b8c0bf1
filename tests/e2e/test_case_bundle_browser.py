"""The console's "Export case" button in a real Chromium: an operator clicks it and the browser
saves a case bundle that verifies; a grid leader (no full pictures) is not offered it."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Browser, Page

from gridwatch.cases.bundle import verify_bundle
from tests.plugins.console_stack import console_stack
from tests.plugins.dispatch import GRID_A, make_alert, password, tiny_jpeg, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


async def login(page: Page, url: str, user: str) -> None:
    await page.goto(f"{url}/login")
    await page.fill("#name", user)
    await page.fill("#password", password(user))
    await page.click("#submit")
    await page.wait_for_url(lambda u: "/login" not in u)


async def test_the_export_button_downloads_a_bundle(
    chromium_browser: Browser, tmp_path: Path
) -> None:
    async with console_stack(tmp_path) as stack:
        alert = make_alert(GRID_A, "cam-a", 1, snapshot=True)
        await stack.publisher.publish_with_snapshot(alert, tiny_jpeg(320, 240))
        await wait_until(lambda: len(stack.cases.cases) == 1)
        page_url = f"{stack.url}/alerts/{GRID_A}/{alert.id}"

        ctx = await chromium_browser.new_context(accept_downloads=True)
        page = await ctx.new_page()
        await login(page, stack.url, "op-zhang")
        await page.goto(page_url)
        await page.wait_for_selector("#btn-export", state="visible", timeout=15000)
        async with page.expect_download() as pending:
            await page.click("#btn-export")
        download = await pending.value
        assert download.suggested_filename == f"case-{GRID_A}-{alert.id}.zip"
        saved = tmp_path / download.suggested_filename
        await download.save_as(saved)
        checked = verify_bundle(saved)
        assert checked.ok, checked.problems
        assert checked.manifest["exported_by"] == "op-zhang"
        await page.wait_for_function(
            "document.getElementById('export-msg').textContent.startsWith('Exported')"
        )
        await ctx.close()

        ctx = await chromium_browser.new_context()
        page = await ctx.new_page()
        await login(page, stack.url, "lead-wang")
        await page.goto(page_url)
        await page.wait_for_selector("#history li", timeout=15000)
        assert not await page.is_visible("#btn-export")
        await ctx.close()

        exports = [a for a in await stack.audit_records() if a["kind"] == "export"]
        assert [(a["user"], a["result"]) for a in exports] == [("op-zhang", "ok")]

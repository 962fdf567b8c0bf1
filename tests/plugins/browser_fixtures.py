"""pytest fixtures for a real headless Chromium (Debian's ``/usr/bin/chromium``) driven by
Playwright's async API.

Imported by the browser tests (``from tests.plugins.browser_fixtures import chromium_browser``,
or listed in their ``pytest_plugins``). Playwright comes from PyPI without its browser
downloads: ``playwright install`` fails here (no internet) and must never be called; the
system Chromium is launched through ``executable_path`` instead. A machine without
``/usr/bin/chromium`` makes the fixture error with the package to install (the tests that use
it are about a real browser and are not skipped).

Every launch gets a fresh, temporary profile (Playwright's ``launch`` creates one per browser
and deletes it at close), so no cookie, service worker or cache leaks from one test into the
next. The browser is always closed at teardown, also when the test fails.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
"""Flags that make Debian's Chromium run headless and offline without phoning home."""

WEBRTC_LOOPBACK_ARGS = [
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
]
"""Add to CHROMIUM_ARGS for WebRTC with the console inside a private network namespace
(tests/plugins/netns.py, only ``lo``): without the first Chromium gathers no ICE candidate
at all, without the second it hides 127.0.0.1 behind an mDNS name aiortc cannot resolve."""

PHONE_VIEWPORT = {"width": 390, "height": 844}
"""A phone-sized viewport (iPhone 12-15 class) for the responder view."""


def chromium_path() -> str:
    """The system Chromium; an error naming the Debian package when it is missing."""
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        raise RuntimeError(
            f"{CHROMIUM} not found: install Debian's chromium (`apt-get install chromium`); "
            "never run `playwright install` (it downloads browsers)"
        )
    return CHROMIUM if Path(CHROMIUM).exists() else str(shutil.which("chromium"))


@pytest.fixture
async def chromium_browser() -> AsyncIterator[Browser]:
    """A launched headless Chromium (async Playwright); closed at teardown."""
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            await browser.close()

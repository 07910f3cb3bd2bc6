"""Headless Chromium for the tests that look at pages as a person would (marker `browser`).

Debian's `chromium` is driven by Playwright (`executable_path`), so no browser is downloaded.
Without Chromium the browser tests are skipped with the reason, unless
FAKELENS_REQUIRE_BROWSER=1 (set by CI), where a missing browser is a failure.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

# The flags keep Chromium from calling out to Google's hosts, which this network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    """The Chromium executable, or skip (fail under FAKELENS_REQUIRE_BROWSER=1) with the reason."""
    found = os.environ.get("FAKELENS_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    reason = "Chromium not found: `apt-get install chromium` or set FAKELENS_CHROMIUM"
    if found is None:
        if os.environ.get("FAKELENS_REQUIRE_BROWSER") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return found


@contextmanager
def browser_page(width: int = 1280, height: int = 900) -> Iterator:
    """A Playwright page in headless Chromium, closed afterwards."""
    sync_api = pytest.importorskip("playwright.sync_api")
    executable = chromium_path()
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            yield page
        finally:
            browser.close()

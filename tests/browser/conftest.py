"""Chromium driven by playwright for the dashboard's tests.

Debian's Chromium (installed by `make test`): playwright cannot download its own browser here
(../shared/ENVIRONMENT.md). Playwright is started and stopped around each test, not kept for
the session as pytest-playwright's fixtures do: its sync API keeps an event loop running in
the main thread while it lives, and every pytest-asyncio test after it would fail with
"Runner.run() cannot be called from a running event loop".
"""

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, sync_playwright

CHROMIUM = "/usr/bin/chromium"
ARGS = [  # headless in a container as root, no network of its own beyond the page's requests
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]


@pytest.fixture
def page() -> Iterator[Page]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield browser.new_page(viewport={"width": 1280, "height": 900})
        finally:
            browser.close()

"""Playwright on Debian's Chromium (installed by `make test`): playwright cannot download its own
browser here, so the tests launch the system one (../shared/ENVIRONMENT.md)."""

from typing import Any

import pytest

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


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": ARGS}

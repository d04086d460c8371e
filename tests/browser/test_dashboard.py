"""The dashboard in a real browser (Chromium through playwright) against three real nodes: it
shows all three, follows a node's death without a reload, and approves the supervisor's pending
repair with the API key it asks for once and keeps in session storage only."""

import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, Request, expect

from fpai_node.testing.registry_cluster import leader_of, registry_cluster

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]
KEY = "dashboard-key-0123456789"
ENV = {"FPAI_REGISTRY_DEAD_AFTER_S": "3", "FPAI_API_KEYS": KEY}  # supervised: the default


def test_the_dashboard_follows_the_federation_and_approves_a_repair(
    page: Page, tmp_path: Path
) -> None:
    with registry_cluster(tmp_path, size=3, env=ENV) as nodes:
        leader = leader_of(nodes)
        requested: list[str] = []

        def seen(request: Request) -> None:
            requested.append(request.url)

        page.on("request", seen)
        started = time.monotonic()
        page.goto(leader.url + "/")
        rows = page.locator('[data-testid="node-row"]')
        expect(rows).to_have_count(3, timeout=15_000)
        shown_s = time.monotonic() - started
        for node in nodes:
            row = page.locator(f'[data-testid="node-row"][data-node-id="{node.node_id}"]')
            expect(row).to_have_attribute("data-state", "alive")
        expect(page.locator('[data-testid="member-row"]')).to_have_count(3)
        expect(page.get_by_test_id("registry")).to_contain_text(f"leader {leader.node_id}")
        expect(page.get_by_test_id("score")).to_have_text(re.compile(r"\d+ / 95"))
        paint = page.evaluate(
            "performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? -1"
        )
        first = page.evaluate("Number(document.body.dataset.refreshed)")
        body = page.locator("body")
        expect(body).not_to_have_attribute("data-refreshed", str(first))  # no eval: the CSP
        refresh_ms = page.evaluate("Number(document.body.dataset.refreshed)") - first
        print(f"\nfirst paint {paint:.0f} ms; data shown {shown_s * 1000:.0f} ms after goto; "
              f"refresh every {refresh_ms} ms")  # fmt: skip
        assert paint > 0

        victim = next(n for n in nodes if n is not leader)
        dead = victim.node_id
        victim.kill()  # the page is not reloaded: its row changes on its own
        row = page.locator(f'[data-testid="node-row"][data-node-id="{dead}"]')
        expect(row).to_have_attribute("data-state", re.compile("suspect|dead"), timeout=20_000)
        expect(row).to_have_attribute("data-state", "dead", timeout=30_000)

        pending = page.locator('[data-testid="action-row"][data-state="pending"]')
        expect(pending).to_have_count(1, timeout=30_000)
        expect(pending).to_contain_text(dead)
        action_id = pending.get_attribute("data-action-id")
        pending.get_by_test_id("approve").click()
        expect(page.get_by_test_id("action-error")).to_have_text("this node needs its API key")
        page.fill("#key", KEY)
        page.click('#key-form button[type="submit"]')
        done = page.locator(f'[data-testid="action-row"][data-action-id="{action_id}"]')
        expect(done).to_have_attribute("data-state", "done", timeout=30_000)
        assert page.evaluate("sessionStorage.getItem('fpai-api-key')") == KEY
        assert page.evaluate("localStorage.length") == 0
        assert page.context.cookies() == []
        members = page.locator('[data-testid="node-row"]')
        expect(members).to_have_count(3)  # the dead peer is still listed, as dead

        page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
        origins = {re.match(r"https?://[^/]+", url).group(0) for url in requested}  # type: ignore[union-attr]
        assert origins == {leader.url}, origins

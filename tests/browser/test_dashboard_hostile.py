"""The dashboard against a member that announces a model whose id is HTML with script in it
(fpai_node/testing/liar.py `script-model`): the page on an honest node shows the id as text,
runs none of it, and asks nothing of any address but its own node; on a phone's width,
nothing runs off the screen."""

import re
from pathlib import Path

import pytest
from playwright.sync_api import Dialog, Page, Request, expect

from fpai_node.testing.liar import SCRIPT, liar_command, tell
from fpai_node.testing.nodeproc import NodeProcess, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


def test_a_peers_model_id_is_shown_as_text_and_never_run(page: Page, tmp_path: Path) -> None:
    honest = NodeProcess(tmp_path / "honest", "--api", "127.0.0.1:0", "--peer", "127.0.0.1:0",
                         "--raft", "127.0.0.1:0", "--no-model")  # fmt: skip
    liar_home = tmp_path / "liar"
    liar_home.mkdir()
    tell(liar_home, "script-model")
    with honest:
        liar = NodeProcess(
            liar_home, "--api", "127.0.0.1:0", "--peer", "127.0.0.1:0", "--raft", "127.0.0.1:0",
            "--no-model", "--join", honest.peer, command=liar_command(),
        )  # fmt: skip
        with liar:
            wait_for(
                lambda: any(
                    m["id"] == SCRIPT
                    for p in honest.get_json("/fpai/v1/status")["peers"]
                    for m in p.get("models", [])
                )
            )
            requested: list[str] = []
            dialogs: list[str] = []

            def seen(request: Request) -> None:
                requested.append(request.url)

            def dialog(opened: Dialog) -> None:
                dialogs.append(opened.message)
                opened.dismiss()

            page.on("request", seen)
            page.on("dialog", dialog)
            page.goto(honest.url + "/")
            models = page.get_by_test_id("models")
            expect(models).to_contain_text(SCRIPT, timeout=15_000)  # the id, as text
            row = page.locator(f'[data-testid="node-row"][data-node-id="{liar.node_id}"]')
            expect(row).to_contain_text(SCRIPT)
            weaknesses = page.locator('[data-testid="weakness"][data-kind="single_server"]')
            expect(weaknesses).to_contain_text(SCRIPT)
            expect(body := page.locator("body")).to_have_attribute(
                "data-refreshed", re.compile(".")
            )
            first = body.get_attribute("data-refreshed")
            expect(body).not_to_have_attribute("data-refreshed", first or "")  # a redraw too
            assert page.title() == "fpai-node"
            assert dialogs == []
            assert page.locator("img").count() == 0 and page.locator("main script").count() == 0
            assert {re.match(r"https?://[^/]+", u).group(0) for u in requested} == {honest.url}  # type: ignore[union-attr]
            page.set_viewport_size({"width": 390, "height": 844})  # a phone: nothing runs off
            expect(body).not_to_have_attribute(
                "data-refreshed", body.get_attribute("data-refreshed") or ""
            )
            assert page.evaluate("document.documentElement.scrollWidth") <= 390

"""`fpai-node sovereignty --drill` on real testnets (`fpai-node testnet up`): the node that
serves most is stopped, chat, memory and the treasury are checked through the others, and the
node is brought back. Three serving nodes and a chain survive it; a testnet whose one serving
node is the only server of its model does not, and the drill says which model broke."""

import json
from pathlib import Path
from typing import Any

import pytest

from fpai_node.testing.nodeproc import run_cli
from fpai_node.testing.testnets import running_testnet

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]


def drill(directory: Path) -> tuple[int, dict[str, Any]]:
    done = run_cli("sovereignty", "--drill", "--dir", str(directory), "--json", timeout_s=240)
    return done.returncode, json.loads(done.stdout)


def whole(directory: Path) -> list[dict[str, Any]]:
    shown = run_cli("testnet", "status", "--dir", str(directory), "--json")
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)  # type: ignore[no-any-return]


def test_a_healthy_testnet_survives_the_loss_of_its_busiest_node(tmp_path: Path) -> None:
    directory = tmp_path / "healthy"
    with running_testnet(directory, "--serving", "3", "--base-port", "12500"):
        code, report = drill(directory)
        assert code == 0, report
        checks = {c["name"]: c for c in report["checks"]}
        assert sorted(checks) == [
            "chat gemma-3-270m",
            "memory read",
            "memory write",
            "treasury",
        ]
        assert all(c["ok"] for c in checks.values()), checks
        assert report["stopped"] == "node1"  # every node serves one model: the first is chosen
        served_by = checks["chat gemma-3-270m"]["detail"]
        assert served_by.startswith("answered by fpn1") and report["stopped_id"] not in served_by
        assert "reads back: 'written before the drill'" in checks["memory read"]["detail"]
        assert checks["treasury"]["detail"].startswith("treasury answers: block ")
        nodes = whole(directory)  # brought back: the federation is whole again
        assert all(n["healthy"] and n["alive_peers"] == 2 for n in nodes), nodes


def test_the_drill_names_a_model_with_a_single_server(tmp_path: Path) -> None:
    """In text this time (the healthy testnet's drill is read as JSON): one drill, not two,
    each takes half a minute."""
    directory = tmp_path / "single"
    with running_testnet(directory, "--no-chain", "--base-port", "13000"):
        text = run_cli("sovereignty", "--drill", "--dir", str(directory), timeout_s=240)
        assert text.returncode == 1
        checks = {
            line[5:].partition(":")[0]: line
            for line in text.stdout.splitlines()
            if line.startswith(("ok   ", "FAIL "))
        }
        # the drill knew no one else serves it, and tried it for seconds, not 20 s
        assert "... chat with gemma-3-270m through node2 (no other node serves it)" in text.stdout
        verdict = text.stdout.splitlines()[-1]
        assert verdict.startswith("the federation does NOT survive the loss of node1 (fpn1")
        stopped_id = verdict.rpartition("(")[2].rstrip(")")
        assert checks["chat gemma-3-270m"] == (
            "FAIL chat gemma-3-270m: node2 /v1/chat/completions: HTTP 503: model "
            f"'gemma-3-270m' has no live node to serve it: {stopped_id} (left)"
        )
        assert checks["memory read"].startswith("ok   memory read: ")
        assert checks["memory write"].startswith("ok   memory write: ")
        assert checks["treasury"] == "ok   treasury: no chain configured: nothing to check"
        assert all(n["healthy"] for n in whole(directory))
    missing = run_cli("sovereignty", "--drill", "--dir", str(tmp_path / "none"))
    assert missing.returncode == 1 and "no testnet in" in missing.stderr

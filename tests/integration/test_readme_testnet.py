"""README.md's "A federation in one command", run exactly as written, as a new user would: each
command through a shell, with `fpai-node` on the PATH and a fresh HOME."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fpai_node.testnet import Testnet, stop

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
README = Path(__file__).resolve().parents[2] / "README.md"
MARKER = "<!-- tested by tests/integration/test_readme_testnet.py, exactly as written -->"


def readme_commands() -> list[str]:
    """The shell commands of the block under the marker, continuation lines joined."""
    text = README.read_text()
    block = re.search(re.escape(MARKER) + r"\n```sh\n(.*?)\n```", text, re.DOTALL)
    assert block, "README.md lost its tested testnet block"
    return block.group(1).replace("\\\n", " ").splitlines()


def test_the_readme_testnet_works_as_written(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "HOME": str(tmp_path),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    env.pop("FPAI_HOME", None)
    commands = readme_commands()
    assert [c.split()[:3] for c in commands if c.startswith("fpai-node")] == [
        ["fpai-node", "testnet", "up"],
        ["fpai-node", "testnet", "status"],
        ["fpai-node", "testnet", "down"],
    ]
    outputs: dict[str, str] = {}
    try:
        for command in commands:
            result = subprocess.run(
                command, shell=True, env=env, capture_output=True, text=True, timeout=240
            )
            assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
            outputs[command.split()[0] + " " + " ".join(command.split()[1:3])] = result.stdout
    finally:
        testnet = Testnet.load(tmp_path / ".fpai-testnet")
        leftover = [n.name for n in testnet.nodes if n.running()] if testnet else []
        if testnet:
            stop(testnet.nodes, timeout_s=5)
    assert leftover == [], "testnet down left nodes running"

    up = outputs["fpai-node testnet up"]
    assert "the federation is up: 3 nodes" in up
    assert len(re.findall(r"^node\d\s+fpn1\w+\s+http://127\.0\.0\.1:1810\d\s+up ", up, re.M)) == 3
    answer = json.loads(outputs["curl -s http://127.0.0.1:18102/v1/chat/completions"])
    assert answer["choices"][0]["message"]["content"]
    assert answer["usage"]["completion_tokens"] > 0
    status = outputs["fpai-node testnet status"]
    rows = [line.split() for line in status.splitlines() if line.startswith("node")]
    assert [(r[0], r[3], r[4]) for r in rows] == [
        ("node1", "up", "2"),
        ("node2", "up", "2"),
        ("node3", "up", "2"),
    ]
    # exactly one node leads, and the two others name it (by the first 8 characters of its id)
    (leader,) = [r for r in rows if r[5] == "self"]
    assert sorted(r[5] for r in rows if r is not leader) == [leader[1][:8]] * 2
    assert "stopped 3 node(s)" in outputs["fpai-node testnet down"]

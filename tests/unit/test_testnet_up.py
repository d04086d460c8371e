"""The order in which `testnet up` starts nodes: a new federation's first node before the others
(they join through it), a federation that has a registry all at once (each resumes from its
home). The processes are not started here: tests/integration/test_testnet.py starts them."""

import json
from pathlib import Path

import pytest

import fpai_node.testnet as testnet_module  # its Test* classes are not test cases
from fpai_node.home import Home
from fpai_node.identity import NodeKey
from fpai_node.registry.raft_wire import raft_id


def steps_of_up(testnet: testnet_module.Testnet, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    steps: list[str] = []

    def launch(node: testnet_module.TestnetNode, join: str | None) -> None:
        steps.append(f"launch {node.name} join={join}")

    monkeypatch.setattr(testnet_module, "launch", launch)
    monkeypatch.setattr(testnet_module, "check_ports", lambda nodes: None)
    monkeypatch.setattr(testnet_module, "_wait", lambda *args: steps.append("wait"))
    testnet_module.up(testnet, on_progress=lambda progress: None)
    return steps


@pytest.fixture
def testnet(tmp_path: Path) -> testnet_module.Testnet:
    planned = testnet_module.Testnet.plan(tmp_path / "testnet", 3, base_port=20000, serving=1)
    planned.directory.mkdir()
    return planned


def test_a_new_federation_starts_its_first_node_first(
    testnet: testnet_module.Testnet, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = testnet.nodes[0].peer
    assert steps_of_up(testnet, monkeypatch) == [
        "launch node1 join=None",
        "wait",
        f"launch node2 join={first}",
        f"launch node3 join={first}",
        "wait",
    ]


def test_a_federation_with_a_registry_resumes_every_node_at_once(
    testnet: testnet_module.Testnet, monkeypatch: pytest.MonkeyPatch
) -> None:
    node_id = NodeKey.generate().node_id
    member = raft_id(node_id, "127.0.0.1:20200")
    hint = {"member": member, "learner": False, "voters": [member], "peers": []}
    registry = Home(testnet.nodes[0].home).registry_dir
    registry.mkdir(parents=True)
    (registry / "engine.json").write_text(json.dumps(hint))
    first = testnet.nodes[0].peer
    assert steps_of_up(testnet, monkeypatch) == [
        "launch node1 join=None",
        f"launch node2 join={first}",
        f"launch node3 join={first}",
        "wait",
    ]

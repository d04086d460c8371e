"""A node restarted without --join finds its federation again: gossip keeps no member list
across restarts, so the node dials the peers its registry hint remembers."""

import signal
import time
from pathlib import Path
from typing import Any

import pytest

from fpai_node.testing.nodeproc import NodeProcess
from fpai_node.testing.registry_cluster import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


def alive_peers(node: NodeProcess) -> set[str]:
    peers: list[dict[str, Any]] = node.get_json("/fpai/v1/status")["peers"]
    return {p["node_id"] for p in peers if p["state"] == "alive"}


def wait_for_peer(node: NodeProcess, peer_id: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while peer_id not in alive_peers(node):
        assert time.monotonic() < deadline, f"{peer_id} not alive at {node.url} in {timeout_s} s"
        time.sleep(0.2)


def test_a_restarted_node_without_join_sees_its_peers_again(tmp_path: Path) -> None:
    ports = [f"127.0.0.1:{free_port()}" for _ in range(2)]
    a_args = ("--no-model", "--api", "127.0.0.1:0", "--peer", ports[0], "--raft", ports[1])
    a = NodeProcess(tmp_path / "a", *a_args).start()
    b = NodeProcess(tmp_path / "b", "--no-model", "--api", "127.0.0.1:0", "--join", ports[0])
    try:
        b.start()
        a_id = a.get_json("/fpai/v1/status")["node_id"]
        b_id = b.get_json("/fpai/v1/status")["node_id"]
        wait_for_peer(a, b_id)
        hint = tmp_path / "a" / "raft" / "engine.json"
        deadline = time.monotonic() + 30
        while not (hint.exists() and b.peer in hint.read_text()):
            assert time.monotonic() < deadline, "a's registry hint never listed b"
            time.sleep(0.2)
        a.stop(signal.SIGKILL)
        a = NodeProcess(tmp_path / "a", *a_args).start()  # no --join
        wait_for_peer(a, b_id)
        wait_for_peer(b, a_id)
    finally:
        a.kill()
        b.kill()

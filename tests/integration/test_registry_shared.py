"""The registry through three real node processes that every test here leaves running and
voting (a registry's formation costs about 6 s, so they share one): writes from any node, the
CLI, oversized writes, and the Raft port's refusal of anything but mutual TLS."""

import datetime as dt
import json
import os
import pickle
import socket
import ssl
import struct
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from fpai_node.identity import NodeKey
from fpai_node.identity.tls import TlsIdentity, client_context
from fpai_node.registry import raft_wire
from fpai_node.testing.nodeproc import run_cli
from fpai_node.testing.registry_cluster import (
    RegistryNode,
    expect_http_error,
    leader_of,
    registry_cluster,
    wait_for,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[RegistryNode]]:
    """Each test writes keys of its own."""
    with registry_cluster(tmp_path_factory.mktemp("shared")) as nodes:
        yield nodes


def test_three_nodes_form_a_registry_and_writes_on_any_node_appear_on_all(
    shared: list[RegistryNode],
) -> None:
    leader = leader_of(shared)
    ids = {n.node_id for n in shared}
    for node in shared:
        status = node.status()["registry"]
        assert status["phase"] == "running" and status["leader"] == leader.node_id
        assert status["term"] >= 1
        assert {m["node_id"] for m in status["members"]} == ids
        assert {m["role"] for m in status["members"]} == {"voter"}
    for i, node in enumerate(shared):
        assert node.put(f"written-by-{i}", i)["status"] == "ok"
    for node in shared:
        wait_for(
            lambda node=node: all(
                node.registry(stale=True)["parameters"].get(f"written-by-{i}") == i
                for i in range(3)
            )
        )
        assert node.get("written-by-2") == 2  # linearizable read through the leader


def test_cli_lists_and_sets_the_registry(shared: list[RegistryNode]) -> None:
    home = str(shared[1].home)
    result = run_cli("registry", "set", "motd", "hello", "--home", home)
    assert result.returncode == 0, result.stderr
    assert run_cli("registry", "set", "max_tokens", "512", "--home", home).returncode == 0
    got = run_cli("registry", "get", "max_tokens", "--home", home)
    assert got.returncode == 0 and got.stdout.strip() == "512"
    listing = run_cli("registry", "--home", home)
    assert listing.returncode == 0, listing.stderr
    assert "motd" in listing.stdout and "voter" in listing.stdout
    for node in shared:
        assert node.node_id in listing.stdout
    as_json = run_cli("registry", "--json", "--home", home)
    data = json.loads(as_json.stdout)
    assert data["parameters"]["motd"] == "hello" and len(data["members"]) == 3
    missing = run_cli("registry", "get", "absent", "--home", home)
    assert missing.returncode == 1
    assert missing.stderr.count("\n") == 1 and "absent" in missing.stderr
    bad = run_cli("registry", "set", "pi", "3.14", "--home", home)
    assert bad.returncode == 1 and "floating-point" in bad.stderr


def raw_pysyncobj_frame(payload: object) -> bytes:
    data = zlib.compress(pickle.dumps(payload, 2), 3)
    return struct.pack("i", len(data)) + data


class RunsCode:
    """Unpickling this runs `touch <marker>`: the classic pickle attack on pysyncobj's port."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def read_until_closed(sock: socket.socket) -> bytes:
    sock.settimeout(5)
    data = b""
    try:
        while chunk := sock.recv(4096):
            data += chunk
    except (ConnectionResetError, ssl.SSLError):
        pass  # a reset or a TLS alert: closed either way
    return data


def refusals(node: RegistryNode) -> dict[str, int]:
    return dict(node.status()["registry"]["refusals"])


def test_a_malicious_pickle_on_the_raft_port_runs_nothing(
    shared: list[RegistryNode], tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    target = shared[0]
    host, port = target.raft.rsplit(":", 1)
    attack = raw_pysyncobj_frame({"type": "append_entries", "x": RunsCode(marker)})
    before = sum(refusals(target).values())

    # 1. Plain TCP, as against stock pysyncobj: the TLS layer refuses it.
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(attack)
        answer = read_until_closed(sock)
        assert answer == b"" or answer[0] == 0x15  # nothing, or a TLS alert record
    # 2. Mutual TLS with a valid certificate of a stranger, sending the pickle as a frame.
    stranger = TlsIdentity.open(NodeKey.generate(), dt.datetime.now(dt.UTC))
    context: ssl.SSLContext = client_context(stranger)
    for frame in (attack, struct.pack(">I", len(attack)) + attack):
        with (
            socket.create_connection((host, int(port)), timeout=5) as raw,
            context.wrap_socket(raw) as tls,
        ):
            tls.sendall(frame)
            assert read_until_closed(tls) == b""  # closed without an answer
    # 3. A well-formed hello from a stranger claiming to be a learner: not a member.
    with (
        socket.create_connection((host, int(port)), timeout=5) as raw,
        context.wrap_socket(raw) as tls,
    ):
        hello = raft_wire.hello(raft_wire.raft_id(stranger.node_id, "127.0.0.1:1"), True)
        tls.sendall(struct.pack(">I", len(hello)) + hello)
        assert read_until_closed(tls) == b""

    wait_for(lambda: sum(refusals(target).values()) >= before + 3)
    counts = refusals(target)
    assert counts.get("not_a_member", 0) >= 1 and counts.get("malformed", 0) >= 1
    time.sleep(0.5)
    assert not marker.exists(), "the pickle ran code"
    assert target.put("still-working", 1)["status"] == "ok"
    assert all(n.running() for n in shared)


def test_an_oversized_write_is_refused_and_the_registry_keeps_committing(
    shared: list[RegistryNode],
) -> None:
    """REG-2: refused by the node asked, before it reaches the log (a 1 MiB entry would
    otherwise stall every commit behind it)."""
    error = expect_http_error(lambda: shared[1].put("big", "x" * 100_000))
    assert error.code == 413
    assert json.loads(error.read())["error"]["code"] == "command_too_large"
    assert shared[2].put("small", 1)["status"] == "ok"
    assert shared[0].get("small") == 1

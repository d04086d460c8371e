"""A hostile host holds connections open on a real node's peer and Raft ports (specs/0003
PEER-5, specs/0005 RAFT-3): it gets its own share of the handshake slots, never all of them.
The attacker connects from 127.0.0.2 (all of 127/8 is loopback on Linux), the federation's
nodes from 127.0.0.1, as two hosts would."""

import contextlib
import os
import resource
import socket
import ssl
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from fpai_node.gossip.messages import Piggyback, Push
from fpai_node.identity import NodeKey
from fpai_node.identity.tls import client_context
from fpai_node.peer.server import ACCEPT_RETRY_S, MAX_HANDSHAKES_PER_ADDRESS
from fpai_node.registry.raft import MAX_UNIDENTIFIED_PER_ADDRESS
from fpai_node.testing.hostile import send_gossip
from fpai_node.testing.nodeproc import NodeProcess, wait_for
from fpai_node.testing.trust import Trust

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]
ATTACKER_HOST = "127.0.0.2"
FLOOD = 200  # far above both ports' whole budget before this issue (64 slots for anyone)


@pytest.fixture(scope="module")
def node(trust: Trust, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    home = trust.home(tmp_path_factory.mktemp("flooded") / "home")
    with NodeProcess(home, "--api", "127.0.0.1:0", "--no-model") as running:
        yield running


def hold_open(stack: ExitStack, address: str, count: int) -> list[socket.socket]:
    """`count` TCP connections from the attacker's address that never say a word."""
    host, port = address.rsplit(":", 1)
    held = []
    for _ in range(count):
        conn = socket.create_connection(
            (host, int(port)), timeout=5, source_address=(ATTACKER_HOST, 0)
        )
        held.append(stack.enter_context(conn))
    return held


def refusals(node: NodeProcess, section: str) -> dict[str, int]:
    status = node.get_json("/fpai/v1/status")
    return dict(status[section]["refusals"])


def test_a_flooding_host_leaves_the_peer_channel_to_everyone_else(
    node: NodeProcess, trust: Trust
) -> None:
    """Issue 13 finding 5: 64 idle connections refused every new handshake on the peer port."""
    with ExitStack() as stack:
        hold_open(stack, node.peer, FLOOD)
        wait_for(
            lambda: (
                refusals(node, "peer_channel").get("too_many_handshakes_from_address", 0)
                >= FLOOD - MAX_HANDSHAKES_PER_ADDRESS
            )
        )
        honest = trust.member(NodeKey.generate())
        assert send_gossip(honest, node.peer, Push(Piggyback())) == 204


def test_a_flooding_host_leaves_the_raft_port_to_everyone_else(
    node: NodeProcess, trust: Trust
) -> None:
    """The same flood on the Raft port: a registry member's connection still gets through."""
    raft = node.get_json("/fpai/v1/status")["registry"]["raft"]
    host, port = raft.rsplit(":", 1)
    with ExitStack() as stack:
        hold_open(stack, raft, FLOOD)
        wait_for(
            lambda: (
                refusals(node, "registry").get("too_many_handshakes_from_address", 0)
                >= FLOOD - MAX_UNIDENTIFIED_PER_ADDRESS
            )
        )
        identity = trust.member(NodeKey.generate())
        raw = socket.create_connection((host, int(port)), timeout=5)
        with client_context(identity).wrap_socket(raw) as tls:
            assert tls.version() == "TLSv1.3"  # the handshake completed: a slot was free
            assert isinstance(tls, ssl.SSLSocket)


def test_bytes_that_are_no_tls_are_counted_as_such(node: NodeProcess) -> None:
    """Issue 13 finding 7: plain-TCP garbage on the Raft port was counted as `tls_version`."""
    raft = node.get_json("/fpai/v1/status")["registry"]["raft"]
    for address, section in ((node.peer, "peer_channel"), (raft, "registry")):
        before = refusals(node, section).get("not_tls", 0)
        host, port = address.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=5) as conn:
            conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            with contextlib.suppress(ConnectionResetError):  # reset, or closed at once
                assert conn.recv(1) == b""
        wait_for(lambda a=section, b=before: refusals(node, a).get("not_tls", 0) == b + 1)


def test_a_host_that_exhausts_the_descriptors_only_pauses_the_peer_channel(
    tmp_path: Path,
) -> None:
    """Out of descriptors, accept(2) fails: the peer channel waits a second at a time (no spin)
    and accepts again once the attacker's connections are gone, rather than stop for good."""
    with NodeProcess(tmp_path / "home", "--api", "127.0.0.1:0", "--no-model") as node:
        assert node.process is not None
        pid = node.process.pid
        in_use = len(os.listdir(f"/proc/{pid}/fd"))
        # fewer descriptors left than the handshake slots one address may fill
        spare = MAX_HANDSHAKES_PER_ADDRESS // 2
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (in_use + spare, in_use + spare))
        with ExitStack() as stack:
            hold_open(stack, node.peer, MAX_HANDSHAKES_PER_ADDRESS)
            wait_for(lambda: WAITING in node.log())
            first = time.monotonic()
            time.sleep(HELD_S)
            waits = node.log().count(WAITING)
        assert waits <= (time.monotonic() - first) / ACCEPT_RETRY_S + 2, waits
        honest = NodeKey.generate()
        wait_for(lambda: gossip_status(honest, node.peer) == 204, timeout_s=10)
        assert "stopped accepting" not in node.log()


WAITING = "peer connections wait: accept fails"
HELD_S = 1.5  # the flood holds on this long after the first wait: one or two more, not a spin


def gossip_status(sender: NodeKey, address: str) -> int:
    try:
        return send_gossip(sender, address, Push(Piggyback()))
    except OSError:  # the node may still be closing the attacker's connections
        return 0

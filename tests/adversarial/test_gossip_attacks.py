"""Hostile senders against real nodes' gossip (specs/0004 GOSSIP-9..12, GOSSIP-21): a key
holder (in the open mode, anyone; in the federation mode, a member the CA certified) sends
signed frames full of lies over mutual TLS. Each test reproduces a finding of issue 13's
review; each failed on the code before it."""

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fpai_node.gossip.messages import (
    MAX_INCARNATION,
    PUSH,
    Piggyback,
    PingReq,
    Push,
    Rumor,
    Status,
    Sync,
)
from fpai_node.gossip.state import MAX_INCARNATION_STEP, MAX_MEMBERS
from fpai_node.identity import NodeKey
from fpai_node.identity.tls import TlsIdentity
from fpai_node.peer.server import FRAME_PATH
from fpai_node.testing.hostile import gossip_frame, sealed, send_gossip
from fpai_node.testing.nodeproc import NodeProcess, wait_for
from fpai_node.testing.peer_client import peer_post
from fpai_node.testing.trust import Trust
from fpai_node.wire import codec

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]
MALLORY = NodeKey.generate()


def incarnation_at(node: NodeProcess, other: str) -> int:
    return int(node.peers()[other]["incarnation"])


def state_of(node: NodeProcess, other: str) -> str | None:
    peer = node.peers().get(other)
    return None if peer is None else str(peer["state"])


@pytest.fixture(scope="module")
def pair(
    trust: Trust, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[NodeProcess, NodeProcess]]:
    """A and B, serving nothing, B joined to A: the smallest federation a rumor can hurt."""
    root = tmp_path_factory.mktemp("pair")
    with NodeProcess(trust.home(root / "a"), "--api", "127.0.0.1:0", "--no-model") as a:
        b_home = trust.home(root / "b")
        b = NodeProcess(b_home, "--api", "127.0.0.1:0", "--no-model", "--join", a.peer)
        with b:
            ids = a.node_id, b.node_id
            wait_for(lambda: state_of(a, ids[1]) == "alive" and state_of(b, ids[0]) == "alive")
            yield a, b


@pytest.fixture(scope="module")
def mallory(trust: Trust) -> TlsIdentity:
    """The attacker as the nodes see it on the peer channel."""
    return trust.member(MALLORY)


def test_only_a_key_holder_the_mode_admits_reaches_gossip(
    pair: tuple[NodeProcess, NodeProcess], trust: Trust
) -> None:
    """The attacks below need a certificate the node accepts: anyone's in the open mode, the
    CA's in the federation mode, where an outsider's handshake is refused and counted."""
    a, _ = pair
    outsider = NodeKey.generate()
    if trust.mode == "open":
        assert send_gossip(Trust.outsider(outsider), a.peer, Push(Piggyback())) == 204
        return

    def refused() -> int:  # the outsider's client or the node may be the one to end it
        counts = a.get_json("/fpai/v1/status")["peer_channel"]["refusals"]
        return int(counts.get("untrusted_certificate", 0) + counts.get("handshake_aborted", 0))

    before = refused()
    with pytest.raises(OSError):  # a TLS alert or a closed connection, never an answer
        send_gossip(Trust.outsider(outsider), a.peer, Push(Piggyback()))
    wait_for(lambda: refused() > before)


def test_a_dead_rumor_at_the_top_incarnation_cannot_kill_a_node(
    pair: tuple[NodeProcess, NodeProcess], mallory: TlsIdentity
) -> None:
    """Finding 2: one `dead` rumor about B at 2^64-1 killed B everywhere for good."""
    a, b = pair
    victim = b.node_id
    overflow = {"addr": b.peer, "id": victim, "inc": (1 << 64) - 1, "st": "dead"}
    payload = codec.pack_ordered({"anns": [], "rumors": [overflow]})
    refused = a.metric("fpai_gossip_messages_rejected_total", reason="malformed") or 0
    status, reason = peer_post(mallory, a.peer, FRAME_PATH, sealed(MALLORY, PUSH, payload))
    assert (status, reason) == (400, b"malformed")  # GOSSIP-10: above 2^53 - 1
    assert a.metric("fpai_gossip_messages_rejected_total", reason="malformed") == refused + 1

    highest = Rumor(victim, b.peer, MAX_INCARNATION, Status.DEAD)
    for target in (a, b):  # the node itself must not refute to where it cannot go on
        assert send_gossip(mallory, target.peer, Push(Piggyback((highest,)))) == 204
    wait_for(lambda: a.metric("fpai_gossip_rumors_refused_total", reason="incarnation_jump"))
    wait_for(lambda: b.metric("fpai_gossip_rumors_refused_total", reason="incarnation_jump"))
    assert state_of(a, victim) == "alive"
    assert state_of(b, a.node_id) == "alive"  # B's gossip tick still runs

    # Many messages, each one step above the last (the climb a per-message bound allowed):
    # every one is above what B signed, so A ignores them all, and B stays alive there.
    refused = a.metric("fpai_gossip_rumors_refused_total", reason="incarnation_jump") or 0
    for k in range(1, 11):
        climb = Rumor(victim, b.peer, k * MAX_INCARNATION_STEP, Status.ALIVE)
        assert send_gossip(mallory, a.peer, Push(Piggyback((climb,)))) == 204
    kill = Rumor(victim, b.peer, 10 * MAX_INCARNATION_STEP, Status.DEAD)
    assert send_gossip(mallory, a.peer, Push(Piggyback((kill,)))) == 204
    wait_for(
        lambda: (
            a.metric("fpai_gossip_rumors_refused_total", reason="incarnation_jump") == refused + 11
        )
    )
    assert state_of(a, victim) == "alive"

    # A lie at the incarnation B signed is taken, as SWIM must (B may really be dead); B hears
    # it and refutes with a new signed announcement, which brings it back at A.
    signed = incarnation_at(a, victim)
    lie = Rumor(victim, b.peer, signed, Status.DEAD)
    assert send_gossip(mallory, a.peer, Push(Piggyback((lie,)))) == 204
    wait_for(lambda: incarnation_at(a, victim) > signed and state_of(a, victim) == "alive")
    assert b.metric("fpai_gossip_refutations_total")


def test_invented_members_do_not_lock_out_a_newcomer(
    pair: tuple[NodeProcess, NodeProcess], mallory: TlsIdentity, trust: Trust, tmp_path: Path
) -> None:
    """Finding 6: a sync of 2,100 invented live members filled A's table, and a newcomer that
    joined through A was ignored."""
    a, _ = pair
    invented = tuple(
        Rumor(NodeKey.generate().node_id, "127.0.0.1:9", 0, Status.ALIVE)
        for _ in range(MAX_MEMBERS + 52)
    )
    assert send_gossip(mallory, a.peer, Sync(invented, ())) == 204
    wait_for(lambda: (a.metric("fpai_gossip_table_events_total", event="refused") or 0) > 0)
    c_home = trust.home(tmp_path / "c")
    with NodeProcess(c_home, "--api", "127.0.0.1:0", "--no-model", "--join", a.peer) as c:
        newcomer = c.node_id
        wait_for(lambda: state_of(a, newcomer) == "alive", timeout_s=20)
    assert (a.metric("fpai_gossip_table_events_total", event="evicted") or 0) >= 1


def test_a_ping_request_never_makes_a_node_dial_a_strangers_address(
    pair: tuple[NodeProcess, NodeProcess], mallory: TlsIdentity
) -> None:
    """Finding 7: `ping_req` made a node dial any address the requester named."""
    a, b = pair
    with socket.socket() as trap:
        trap.bind(("127.0.0.1", 0))
        trap.listen()
        trap.setblocking(False)
        address = f"127.0.0.1:{trap.getsockname()[1]}"
        stranger = NodeKey.generate().node_id
        received = a.metric("fpai_gossip_messages_received_total", type="gossip.ping_req") or 0
        assert send_gossip(mallory, a.peer, PingReq(b"n" * 16, stranger, address)) == 204
        known = PingReq(b"m" * 16, b.node_id, address)  # a member: pinged where A holds it
        assert send_gossip(mallory, a.peer, known) == 204
        wait_for(
            lambda: (
                (a.metric("fpai_gossip_messages_received_total", type="gossip.ping_req") or 0)
                >= received + 2
            )
        )
        # A would have dialled while handling the frame; a second's grace covers its send task
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            with pytest.raises(BlockingIOError):
                trap.accept()
            time.sleep(0.05)


def test_a_relayed_frame_does_not_use_up_its_senders_sequence(
    pair: tuple[NodeProcess, NodeProcess], mallory: TlsIdentity, trust: Trust
) -> None:
    """Issue 14 place 8: the node offered a frame to its replay guard before it checked that
    the frame's sender was the peer sending it, so a peer relaying another node's frame made
    that node's own delivery of it a `replay` (PEER-2)."""
    a, _ = pair
    victim = NodeKey.generate()
    frame = gossip_frame(victim, Push(Piggyback()))
    assert peer_post(mallory, a.peer, FRAME_PATH, frame) == (400, b"sender_not_peer")
    assert peer_post(trust.member(victim), a.peer, FRAME_PATH, frame)[0] == 204

"""The Raft transport's rules through real TLS sockets (specs/0005 RAFT-3, RAFT-8): three
engines in this process form a registry; Mallory, a learner member with a valid certificate,
tries to vote, to lead and to forge commands. Only her own commands get through."""

import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fpai_node.identity import NodeKey
from fpai_node.registry import raft_wire
from fpai_node.registry.raft import MAX_UNIDENTIFIED_PER_ADDRESS, RaftEngine
from fpai_node.testing.raft_engines import RawRaftPeer, command, commit, engine_cluster
from fpai_node.testing.registry_cluster import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]
KEYS = [NodeKey.from_seed(bytes([i + 1]) * 32) for i in range(3)]
MALLORY = NodeKey.from_seed(bytes([99]) * 32)
MALLORY_MEMBER = raft_wire.raft_id(MALLORY.node_id, "127.0.0.1:1")
SAYS = f"member.{MALLORY.node_id}.says"


@pytest.fixture
def engines(tmp_path: Path) -> Iterator[list[RaftEngine]]:
    with engine_cluster(tmp_path, KEYS) as cluster:
        cluster.register(MALLORY, "learner", raft=MALLORY_MEMBER.split("@")[1])
        for engine in cluster.engines.values():
            wait_for(lambda engine=engine: MALLORY.node_id in engine.state.members)
        yield list(cluster.engines.values())


def leader_of(engines: list[RaftEngine]) -> RaftEngine:
    return next(e for e in engines if e.status.is_leader)


def test_a_learner_can_neither_vote_nor_lead_nor_forge(engines: list[RaftEngine]) -> None:
    leader = leader_of(engines)
    counters = leader.counters
    term = leader.status.term
    mallory = RawRaftPeer(leader, MALLORY)
    mallory.send(raft_wire.hello(MALLORY_MEMBER, True))
    answer = mallory.receive()
    assert answer is not None and answer["id"] == leader.member and answer["learner"] is False

    mallory.send(
        {
            "type": "request_vote",
            "term": term + 100,
            "last_log_index": 10**6,
            "last_log_term": term + 100,
        }
    )
    mallory.send({"type": "response_vote", "term": term})
    mallory.send(
        {
            "type": "append_entries",
            "term": term + 100,
            "commit_index": 0,
            "prev_index": 0,
            "prev_term": 0,
            "entries": [],
        }
    )
    forged = command(KEYS[1], "param.set", key="owner", value="mallory")
    mallory.send({"type": "apply_command", "entry": ["command", forged], "request_id": 1})
    mallory.send({"type": "apply_command", "entry": ["add", MALLORY_MEMBER], "request_id": 2})
    own = command(MALLORY, "param.set", key=SAYS, value="hi")  # her own entry (REG-16)
    mallory.send({"type": "apply_command", "entry": ["command", own], "request_id": 3})

    reply = mallory.receive()
    while reply is not None and reply["type"] != "apply_result":
        reply = mallory.receive()  # entries the leader replicates to its learner come first
    assert reply is not None and reply["request_id"] == 3 and reply["error"] is None
    for engine in engines:
        wait_for(lambda engine=engine: engine.state.parameters.get(SAYS) == "hi")
    assert counters.refusals["learner_message"] == 3
    assert counters.refusals["forged_command"] == 1
    assert counters.refusals["not_a_command"] == 1
    time.sleep(0.3)
    assert leader.status.is_leader and leader.status.term == term
    assert all("owner" not in e.state.parameters for e in engines)
    assert all(e.status.voters == leader.status.voters for e in engines)
    mallory.close()


@pytest.mark.parametrize(
    ("claim", "learner", "reason"),
    [
        ("voter", False, "unknown_member"),  # a member, but not a voter of the configuration
        ("someone-else", True, "node_id_mismatch"),  # a member id whose node id is not hers
    ],
)
def test_hellos_that_claim_too_much_are_refused(
    engines: list[RaftEngine], claim: str, learner: bool, reason: str
) -> None:
    leader = leader_of(engines)
    counters = leader.counters
    member = MALLORY_MEMBER if claim == "voter" else engines[1].member
    peer = RawRaftPeer(leader, MALLORY)
    peer.send(raft_wire.hello(member, learner))
    assert peer.receive() is None  # closed without an answer
    assert counters.refusals[reason] == 1
    peer.close()


def test_a_stranger_with_a_valid_certificate_is_not_admitted(engines: list[RaftEngine]) -> None:
    leader = leader_of(engines)
    counters = leader.counters
    stranger = NodeKey.from_seed(bytes([77]) * 32)
    peer = RawRaftPeer(leader, stranger)
    peer.send(raft_wire.hello(raft_wire.raft_id(stranger.node_id, "127.0.0.1:1"), True))
    assert peer.receive() is None
    assert counters.refusals["not_a_member"] == 1
    peer.close()


def test_unidentified_connections_are_capped(engines: list[RaftEngine]) -> None:
    """Anyone can open connections: past 8 from one address that have not said who they are
    (64 in all), new ones are closed at once, and Raft goes on meanwhile."""
    leader = leader_of(engines)
    host, port = leader.member.split("@")[1].rsplit(":", 1)
    idle = [
        socket.create_connection((host, int(port)), timeout=5)
        for _ in range(MAX_UNIDENTIFIED_PER_ADDRESS + 6)
    ]
    try:
        wait_for(lambda: leader.counters.refusals["too_many_handshakes_from_address"] >= 6)
        assert leader.status.is_leader
        commit(leader, command(KEYS[0], "param.set", key="under-siege", value=1))
    finally:
        for sock in idle:
            sock.close()


def closed(peer: RawRaftPeer) -> bool:
    """True once the other side has closed (whatever it sent before)."""
    while True:
        try:
            if peer.receive() is None:
                return True
        except (TimeoutError, OSError):
            return False


def test_frames_are_length_prefixed_maps_and_a_bad_one_closes_the_connection(
    engines: list[RaftEngine],
) -> None:
    """RAFT-2: over mutual TLS, each frame is a 4-byte big-endian length and one canonical
    MessagePack map of at most 4 MiB; a receiver closes the connection on a malformed or an
    oversized frame, and counts the malformed one."""
    leader = leader_of(engines)
    counters = leader.counters
    peer = RawRaftPeer(leader, MALLORY)
    peer.send(raft_wire.hello(MALLORY_MEMBER, True))
    answer = peer.receive()  # RawRaftPeer reads `>I` length, then a canonical map
    assert answer is not None and answer["type"] == "hello" and answer["id"] == leader.member
    peer.send(b"\xc1")  # no MessagePack at all
    assert closed(peer)
    assert counters.refusals["malformed"] == 1
    peer.close()

    peer = RawRaftPeer(leader, MALLORY)
    peer.send(raft_wire.hello(MALLORY_MEMBER, True))
    assert peer.receive() is not None
    peer.tls.sendall(struct.pack(">I", raft_wire.MAX_FRAME_BYTES + 1))  # the length alone
    assert closed(peer)
    peer.close()
    assert leader.status.is_leader
    commit(leader, command(KEYS[0], "param.set", key="after-bad-frames", value=1))


def test_an_oversized_frame_is_counted(engines: list[RaftEngine]) -> None:
    """RAFT-2: the receiver counts the refusal of an oversized frame (RAFT-8)."""
    leader = leader_of(engines)
    peer = RawRaftPeer(leader, MALLORY)
    peer.send(raft_wire.hello(MALLORY_MEMBER, True))
    assert peer.receive() is not None
    peer.tls.sendall(struct.pack(">I", raft_wire.MAX_FRAME_BYTES + 1))
    assert closed(peer)
    peer.close()
    wait_for(lambda: leader.counters.refusals["oversized"] == 1, timeout_s=2)

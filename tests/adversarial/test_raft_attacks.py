"""Lying members against real Raft engines over TLS, in both trust modes. Mallory holds a voter
seat, says hello as the member she is, and sends terms no honest candidate would (specs/0005
RAFT-15) or snapshots that are none (RAFT-9); or she is a learner relaying joins of node ids
she made up (REG-13)."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from fpai_node.identity import NodeKey
from fpai_node.registry import raft_wire
from fpai_node.registry.raft import (
    MAX_SNAPSHOT_BYTES,
    SNAPSHOT_FILE,
    RaftEngine,
    RaftTiming,
    read_snapshot,
)
from fpai_node.registry.state import ELECTORS_PARAMETER, MEMBER_RELAYS
from fpai_node.testing.raft_engines import (
    EngineCluster,
    RawRaftPeer,
    as_voter,
    command,
    commit,
    engine_cluster,
)
from fpai_node.testing.registry_cluster import wait_for
from fpai_node.testing.trust import Trust

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]
KEYS = [NodeKey.from_seed(bytes([i + 1]) * 32) for i in range(2)]
MALLORY = NodeKey.from_seed(bytes([77]) * 32)


@pytest.fixture
def cluster(trust: Trust, tmp_path: Path) -> Iterator[EngineCluster]:
    """Three voters, the registry's target, two running: a majority without Mallory, who speaks
    for the third (in the federation mode, with the certificate the CA gave her)."""
    with engine_cluster(tmp_path, [*KEYS, MALLORY], absent=[MALLORY], trust=trust) as running:
        yield running


COMPACT_AFTER = 20  # entries: a snapshot file exists after a few commits


@pytest.fixture
def compacted(trust: Trust, tmp_path: Path) -> Iterator[EngineCluster]:
    """As `cluster`, with a snapshot already on each running voter's disk (RAFT-9)."""
    timing = RaftTiming(compact_after_entries=COMPACT_AFTER)
    keys = [*KEYS, MALLORY]
    with engine_cluster(tmp_path, keys, timing, absent=[MALLORY], trust=trust) as running:
        for i in range(3 * COMPACT_AFTER):
            commit(running.leader(), command(KEYS[0], "param.set", key=f"k{i}", value=i))
        yield running


def as_mallory(cluster: EngineCluster, engine: RaftEngine) -> RawRaftPeer:
    """Mallory's connection to `engine`, hello said and answered: a voter she is."""
    return as_voter(cluster, engine, MALLORY)


def vote_request(term: int) -> dict[str, object]:
    return {"type": "request_vote", "term": term, "last_log_index": 0, "last_log_term": 0}


def test_a_voter_cannot_push_a_term_out_of_reach(cluster: EngineCluster) -> None:
    """Issue 13 finding 1: request_vote at 2^64 - 1 left every voter unable to campaign."""
    leader = cluster.leader()
    follower: RaftEngine = next(e for e in cluster.engines.values() if e is not leader)
    refusals = follower.counters.refusals

    term = follower.status.term
    mallory = as_mallory(cluster, follower)
    mallory.send(vote_request((1 << 64) - 1))
    assert mallory.receive() is None  # a malformed frame ends the connection
    assert refusals["malformed"] == 1
    mallory = as_mallory(cluster, follower)
    mallory.send(vote_request(term + raft_wire.MAX_TERM_STEP + 1))
    wait_for(lambda: refusals["term_jump"] >= 1)
    assert follower.status.term < term + raft_wire.MAX_TERM_STEP

    mallory.send(vote_request(term + 5))  # within the step: taken, as Raft must
    wait_for(lambda: follower.status.term >= term + 5)
    mallory.send(vote_request(term + 10))  # and again at once: refused
    wait_for(lambda: refusals["term_rate"] >= 1)
    mallory.close()

    # the registry elects a leader again and commits (signed by the node it is proposed on: a
    # proposal forwarded while leadership settles must be the forwarder's own, RAFT-8)
    leader = cluster.leader()
    signer = next(k for k in KEYS if cluster.engines.get(k.node_id) is leader)
    result = commit(leader, command(signer, "param.set", key="after", value=1))
    assert result.status == "ok"
    assert max(e.status.term for e in cluster.engines.values()) < term + 100


def test_a_member_cannot_relay_invented_nodes_into_seats(trust: Trust, tmp_path: Path) -> None:
    """Issue 13: a member relayed `member.join` for node ids it made up. They took the free
    voter seats at once (seats that nobody would ever use, counted against every majority),
    and there was no bound on how many it could add. Mallory is a learner whose engine forwards
    her commands to the leader over her own Raft connection, as a modified node would."""
    with engine_cluster(tmp_path, KEYS, trust=trust) as cluster:  # two voters of three seats
        # only they may vote: else the leader's policy promotes Mallory, a live learner, to the
        # free seat within half a second, and as a voter her relays are not bounded
        electors = [k.node_id for k in KEYS]
        commit(
            cluster.leader(), command(KEYS[0], "param.set", key=ELECTORS_PARAMETER, value=electors)
        )
        mallory = cluster.add_learner(MALLORY)
        invented = [NodeKey.generate().node_id for _ in range(MEMBER_RELAYS + 2)]
        addresses = {"peer": "127.0.0.9:1", "api": "127.0.0.9:2", "raft": "127.0.0.9:3"}
        results = [
            commit(mallory, command(MALLORY, "member.join", node_id=node, **addresses)).reason
            for node in invented
        ]
        assert results == [""] * MEMBER_RELAYS + ["not_allowed"] * 2
        state = cluster.leader().state
        assert state.voters() == sorted(k.node_id for k in KEYS)  # the free seat is still free
        assert {state.members[n].role for n in invented[:MEMBER_RELAYS]} == {"learner"}
        assert not set(invented[MEMBER_RELAYS:]) & set(state.members)


def follower_of(cluster: EngineCluster) -> NodeKey:
    return next(k for k in KEYS if not cluster.engines[k.node_id].status.is_leader)


def current_term(cluster: EngineCluster, key: NodeKey) -> int:
    """The term `key`'s engine is in once the registry has a leader: a voter's messages in it
    are taken as the leader's (pysyncobj follows whoever appends in the current term)."""
    term = cluster.leader().status.term
    wait_for(lambda: cluster.engines[key.node_id].status.term == term)
    return term


def snapshot_chunk(term: int, chunk: bytes | None, *, first: bool, last: bool) -> dict[str, object]:
    return {
        "type": "install_snapshot",
        "term": term,
        "commit_index": 0,
        "chunk": chunk,
        "first": first,
        "last": last,
    }


def received_left(directory: Path) -> list[Path]:
    """What is left in a node's Raft folder of snapshots it was sent: pysyncobj's
    `<snapshot>.1.tmp`, or any other temporary file but the journal's `meta.tmp`, which
    appears for a moment each time the meta file is rewritten (a CI run caught one, 86 bytes)."""
    return [p for p in directory.glob("*.tmp") if p.name != "meta.tmp"]


def test_a_garbage_snapshot_leaves_the_followers_own_and_it_starts_again(
    compacted: EngineCluster,
) -> None:
    """RAFT-9: pysyncobj renamed a received snapshot over the follower's own before reading it;
    garbage was refused in memory but kept on disk, and the follower refused to start."""
    cluster = compacted
    follower = follower_of(cluster)
    own = cluster.root / follower.node_id / SNAPSHOT_FILE
    wait_for(lambda: own.exists())
    kept = own.read_bytes()
    read_snapshot(own)  # a good one
    refusals = cluster.engines[follower.node_id].counters.refusals
    mallory = as_mallory(cluster, cluster.engines[follower.node_id])
    attempts = [[(b"garbage", True, True)], [(kept[:64], True, False), (b"\xc1" * 9, False, True)]]
    for refused, chunks in enumerate(attempts, start=1):
        term = current_term(cluster, follower)
        for chunk, first, last in chunks:
            mallory.send(snapshot_chunk(term, chunk, first=first, last=last))
        wait_for(lambda refused=refused: refusals["bad_snapshot"] == refused)
    mallory.close()
    assert own.read_bytes() == kept
    assert not received_left(own.parent)

    restarted = cluster.restart(follower)  # starts: nothing on disk is garbage
    wait_for(lambda: restarted.state.parameters.get(f"k{3 * COMPACT_AFTER - 1}") is not None)
    after = commit(cluster.leader(), command(KEYS[0], "param.set", key="after", value=1))
    assert after.status == "ok"


def test_a_snapshot_that_never_ends_is_cut_off_at_the_bound(compacted: EngineCluster) -> None:
    """RAFT-9: the review streamed 20 chunks of 3 MiB, never marked last: 60 MiB on the
    follower's disk, growing until it filled."""
    cluster = compacted
    follower = follower_of(cluster)
    refusals = cluster.engines[follower.node_id].counters.refusals
    mallory = as_mallory(cluster, cluster.engines[follower.node_id])
    term = current_term(cluster, follower)
    block = bytes(3 << 20)
    chunks = MAX_SNAPSHOT_BYTES // len(block) + 2
    for i in range(chunks):
        mallory.send(snapshot_chunk(term, block, first=i == 0, last=False))
    wait_for(lambda: refusals["bad_snapshot"] == 1, timeout_s=30)
    mallory.close()
    directory = cluster.root / follower.node_id
    assert sum(p.stat().st_size for p in received_left(directory)) == 0

"""A voter's snapshot against real Raft engines over TLS (specs/0005 RAFT-9), in both trust
modes. pysyncobj renames a received snapshot over the follower's own before it reads it, and
took any number of chunks: a voter could replace a good snapshot with garbage (the follower
then refused to start) or stream chunks until the disk filled."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from fpai_node.identity import NodeKey
from fpai_node.registry import raft_wire
from fpai_node.registry.raft import MAX_SNAPSHOT_BYTES, SNAPSHOT_FILE, RaftTiming, read_snapshot
from fpai_node.testing.raft_engines import (
    EngineCluster,
    RawRaftPeer,
    command,
    commit,
    engine_cluster,
)
from fpai_node.testing.registry_cluster import wait_for
from fpai_node.testing.trust import Trust

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]
KEYS = [NodeKey.from_seed(bytes([i + 1]) * 32) for i in range(2)]
MALLORY = NodeKey.from_seed(bytes([77]) * 32)
COMPACT_AFTER = 20  # entries: a snapshot file exists after a few commits


@pytest.fixture
def cluster(trust: Trust, tmp_path: Path) -> Iterator[EngineCluster]:
    """Two voters running and Mallory's seat, with a snapshot already on each voter's disk."""
    timing = RaftTiming(compact_after_entries=COMPACT_AFTER)
    keys = [*KEYS, MALLORY]
    with engine_cluster(tmp_path, keys, timing, absent=[MALLORY], trust=trust) as running:
        for i in range(3 * COMPACT_AFTER):
            commit(running.leader(), command(KEYS[0], "param.set", key=f"k{i}", value=i))
        yield running


def follower_of(cluster: EngineCluster) -> NodeKey:
    return next(k for k in KEYS if not cluster.engines[k.node_id].status.is_leader)


def as_mallory(cluster: EngineCluster, key: NodeKey) -> RawRaftPeer:
    """Mallory, a voter, connected to `key`'s engine."""
    peer = RawRaftPeer(cluster.engines[key.node_id], MALLORY, cluster.trust.member(MALLORY))
    peer.send(raft_wire.hello(cluster.members[MALLORY.node_id], False))
    assert peer.receive() is not None
    return peer


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


def test_a_garbage_snapshot_leaves_the_followers_own_and_it_starts_again(
    cluster: EngineCluster,
) -> None:
    follower = follower_of(cluster)
    own = cluster.root / follower.node_id / SNAPSHOT_FILE
    wait_for(lambda: own.exists())
    kept = own.read_bytes()
    read_snapshot(own)  # a good one
    refusals = cluster.engines[follower.node_id].counters.refusals
    mallory = as_mallory(cluster, follower)
    attempts = [[(b"garbage", True, True)], [(kept[:64], True, False), (b"\xc1" * 9, False, True)]]
    for refused, chunks in enumerate(attempts, start=1):
        term = current_term(cluster, follower)
        for chunk, first, last in chunks:
            mallory.send(snapshot_chunk(term, chunk, first=first, last=last))
        wait_for(lambda refused=refused: refusals["bad_snapshot"] == refused)
    mallory.close()
    assert own.read_bytes() == kept
    assert not list(own.parent.glob("*.tmp"))

    restarted = cluster.restart(follower)  # starts: nothing on disk is garbage
    wait_for(lambda: restarted.state.parameters.get(f"k{3 * COMPACT_AFTER - 1}") is not None)
    after = commit(cluster.leader(), command(KEYS[0], "param.set", key="after", value=1))
    assert after.status == "ok"


def test_a_snapshot_that_never_ends_is_cut_off_at_the_bound(cluster: EngineCluster) -> None:
    """The review streamed 20 chunks of 3 MiB, never marked last: 60 MiB on the follower's disk,
    growing until it filled."""
    follower = follower_of(cluster)
    refusals = cluster.engines[follower.node_id].counters.refusals
    mallory = as_mallory(cluster, follower)
    term = current_term(cluster, follower)
    block = bytes(3 << 20)
    chunks = MAX_SNAPSHOT_BYTES // len(block) + 2
    for i in range(chunks):
        mallory.send(snapshot_chunk(term, block, first=i == 0, last=False))
    wait_for(lambda: refusals["bad_snapshot"] == 1, timeout_s=30)
    mallory.close()
    directory = cluster.root / follower.node_id
    assert sum(p.stat().st_size for p in directory.glob("*.tmp")) == 0

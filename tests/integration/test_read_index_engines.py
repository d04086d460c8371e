"""RAFT-18 through real engines over TLS: the leader answers linearizable reads without writing
to the log, and a leader cut off from its voters answers none."""

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from fpai_node.identity import NodeKey
from fpai_node.registry.raft import RaftEngine, RaftTiming
from fpai_node.testing.raft_engines import EngineCluster, command, commit, engine_cluster

KEYS = [NodeKey.from_seed(bytes([i + 41]) * 32) for i in range(3)]
TIMING = RaftTiming(leader_fallback_s=1.5)  # an isolated leader steps down soon


class Answer:
    def __init__(self) -> None:
        self.index: list[int | None] = []
        self.done = threading.Event()

    def __call__(self, index: int | None) -> None:
        self.index.append(index)
        self.done.set()


def read_index(engine: RaftEngine, timeout_s: float = 10.0) -> int | None:
    answer = Answer()
    engine.read_index(answer)
    assert answer.done.wait(timeout_s), "no answer"
    return answer.index[0]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[EngineCluster]:
    with engine_cluster(tmp_path, KEYS, TIMING) as cluster:
        yield cluster


def test_the_leader_reads_at_its_commit_index_without_a_log_entry(
    cluster: EngineCluster,
) -> None:
    leader = cluster.leader()
    commit(leader, command(KEYS[0], "param.set", key="k", value="v1"))
    first = read_index(leader)
    assert first is not None
    assert leader.state.parameters["k"] == "v1"
    indexes = [read_index(leader) for _ in range(20)]
    assert indexes == [first] * 20  # twenty reads, not one entry in the log
    follower = next(e for e in cluster.engines.values() if e is not leader)
    assert read_index(follower) is None  # only the leader has a read index


def test_a_leader_cut_off_from_its_voters_confirms_no_read(cluster: EngineCluster) -> None:
    leader = cluster.leader()
    commit(leader, command(KEYS[0], "param.set", key="k", value="v1"))
    for key in KEYS:
        engine = cluster.engines[key.node_id]
        if engine is not leader:
            cluster.engines.pop(key.node_id).stop()
    answer = Answer()
    leader.read_index(answer)
    assert answer.done.wait(TIMING.leader_fallback_s + 5.0), "the read was never answered"
    assert answer.index == [None]  # told it does not lead: never an index

"""RAFT-13 through real engines over TLS: a leader syncs its own log beside replication, and
counts its own copy of an entry towards a commit only once that copy is on disk. While its disk
stalls, what both followers hold commits and it keeps leading; with one follower gone, nothing
commits until the leader's own sync returns."""

import errno
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from fpai_node.identity import NodeKey
from fpai_node.registry.journal import DurableJournal
from fpai_node.registry.raft import RaftEngine
from fpai_node.testing.raft_engines import command, commit, engine_cluster
from fpai_node.testing.registry_cluster import wait_for

KEYS = [NodeKey.from_seed(bytes([i + 91]) * 32) for i in range(3)]
STALL_LIMIT_S = 20.0  # a stalled sync never outlives the test, whatever it asserts
ABSENCE_S = 0.5  # a commit on loopback takes milliseconds: one this late waited for something
# Longer than the longest election timeout (RaftTiming: 2 s): a leader whose tick thread waited
# on its disk would send no heartbeat for that long, and the followers would elect another.
STALL_S = 2.5


class StalledDisk:
    """The leader's journal: every sync of its log and every write of its meta file (the
    commit index, once a second) waits until the test lets the disk go on."""

    def __init__(self, journal: DurableJournal) -> None:
        self.go_on = threading.Event()
        self._sync, self._flush_meta = journal.sync, journal._flush_meta
        journal.sync = self.sync  # type: ignore[method-assign]
        journal._flush_meta = self.flush_meta  # type: ignore[method-assign]

    def sync(self) -> None:
        self.go_on.wait(STALL_LIMIT_S)
        self._sync()

    def flush_meta(self, force: bool = False) -> None:
        self.go_on.wait(STALL_LIMIT_S)
        self._flush_meta(force)


def journal_of(engine: RaftEngine) -> DurableJournal:
    journal: DurableJournal = engine._replica._SyncObj__raftLog
    return journal


def test_a_leader_counts_its_own_log_only_once_synced(tmp_path: Path) -> None:
    with engine_cluster(tmp_path, KEYS) as cluster:
        leader = cluster.leader()
        journal = journal_of(leader)
        disk = StalledDisk(journal)
        try:
            # Both followers hold each entry on disk: a majority without the leader's copy. The
            # stall outlasts an election timeout, and the leader keeps leading in its term.
            term = leader._replica.raftCurrentTerm
            stalled_until = time.monotonic() + STALL_S
            written = 0
            while time.monotonic() < stalled_until:
                written += 1
                put = command(KEYS[0], "param.set", key="a", value=written)
                assert commit(leader, put, 5.0).status == "ok"
            assert leader.state.parameters["a"] == written
            assert journal.durable_index < leader._replica.raftCommitIndex
            assert journal.unsynced
            assert leader._replica.raftCurrentTerm == term and leader.status.is_leader

            # One follower gone: the leader and the other make the majority, so the leader's
            # own copy must be on disk first.
            follower = next(k for k in KEYS if cluster.engines[k.node_id] is not leader)
            cluster.engines.pop(follower.node_id).stop()
            applied = threading.Event()
            leader.propose(
                command(KEYS[0], "param.set", key="b", value=2), lambda *_: applied.set()
            )
            assert not applied.wait(ABSENCE_S)
            assert "b" not in leader.state.parameters
            disk.go_on.set()
            assert applied.wait(5.0)
            assert leader.state.parameters["b"] == 2
            wait_for(lambda: not journal.unsynced)
            assert journal.durable_index >= leader._replica.raftCommitIndex
        finally:
            disk.go_on.set()


def test_a_leader_whose_sync_fails_stops_and_the_others_go_on(tmp_path: Path) -> None:
    """RAFT-13: a failed fdatasync on the leader's sync thread stops Raft on that node for
    good (nothing written since may count), and the other two voters elect a leader and go on."""
    with engine_cluster(tmp_path, KEYS) as cluster:
        leader = cluster.leader()
        journal = journal_of(leader)
        real_flush = journal._flush

        def failing(flush: Callable[[int], None]) -> None:
            def fdatasync(fd: int) -> None:  # a disk that fails its writes
                raise OSError(errno.EIO, "Input/output error")

            real_flush(fdatasync if flush is os.fdatasync else flush)

        journal._flush = failing  # type: ignore[method-assign]
        leader.propose(command(KEYS[0], "param.set", key="c", value=3), lambda *_: None)
        wait_for(lambda: leader.durability_error is not None)
        assert "fdatasync" in (leader.durability_error or "")
        wait_for(lambda: not leader._replica.tick_thread_alive())  # Raft stopped there
        others = [e for e in cluster.engines.values() if e is not leader]
        successor = wait_for(lambda: next((e for e in others if e.status.is_leader), None))
        assert successor is not None
        put = command(KEYS[0], "param.set", key="d", value=4)
        assert commit(successor, put, 10.0).status == "ok"

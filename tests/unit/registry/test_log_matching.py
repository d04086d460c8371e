"""The Raft rules raft.py restores in pysyncobj's message handler (specs/0005 RAFT-7), driven by
hand: a replica with a recording transport, ticked explicitly, no sockets and no threads."""

from typing import Any

from pysyncobj import SyncObj, SyncObjConf
from pysyncobj.node import Node
from pysyncobj.transport import Transport

from fpai_node.registry import raft_wire
from fpai_node.registry.pre_vote import PreVote
from fpai_node.registry.raft import _Replica

LEADER, OTHER = Node("leader:1"), Node("other:1")


class Recorder(Transport):  # type: ignore[misc]
    def __init__(self, syncObj: SyncObj, selfNode: Node, otherNodes: Any) -> None:
        super().__init__(syncObj, selfNode, otherNodes)
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def send(self, node: Node, message: dict[str, Any]) -> bool:
        self.sent.append((node.id, message))
        return True


class Replica(SyncObj):  # type: ignore[misc]
    """pysyncobj as shipped, with our handler: exactly what _Replica adds to message handling."""

    _SyncObj__onMessageReceived = _Replica._SyncObj__onMessageReceived
    _without_entries_we_have = _Replica._without_entries_we_have
    _received_snapshot_is_valid = _Replica._received_snapshot_is_valid
    _on_pre_vote = _Replica._on_pre_vote
    _on_term_notice = _Replica._on_term_notice
    _tell_term = _Replica._tell_term

    def __init__(self) -> None:
        self.applied: list[bytes] = []
        self._pre_vote = PreVote(election_min_s=1.0)
        conf = SyncObjConf(autoTick=False, dynamicMembershipChange=True)
        super().__init__(Node("me:1"), [LEADER, OTHER], conf=conf, transportClass=Recorder)

    def _SyncObj__doApplyCommand(self, entry: bytes) -> Any:
        """A registry command (raft_wire.command_entry) is recorded, as raft.py would apply it."""
        if entry[:1] == raft_wire.COMMAND_KIND:
            self.applied.append(entry[1:])
            return None
        return SyncObj._SyncObj__doApplyCommand(self, entry)

    @property
    def log(self) -> list[tuple[bytes, int, int]]:
        return list(self._SyncObj__raftLog[:])

    @property
    def sent(self) -> list[tuple[str, dict[str, Any]]]:
        return self._SyncObj__transport.sent  # type: ignore[no-any-return]

    def receive(self, node: Node, message: dict[str, Any]) -> None:
        self._SyncObj__onMessageReceived(node, message)
        self.doTick(0)


def entry(idx: int, term: int, text: str = "") -> tuple[bytes, int, int]:
    return (raft_wire.command_entry((text or f"cmd-{idx}").encode()), idx, term)


def append(prev: int, prev_term: int, entries: list[Any], commit: int, term: int = 1) -> dict:
    return {
        "type": "append_entries",
        "term": term,
        "commit_index": commit,
        "prevLogIdx": prev,
        "prevLogTerm": prev_term,
        "entries": entries,
    }


def follower_with(entries: list[tuple[bytes, int, int]], commit: int, term: int = 1) -> Replica:
    replica = Replica()
    for e in entries:
        replica._SyncObj__raftLog.add(*e)
    replica._SyncObj__raftCurrentTerm = term
    replica._SyncObj__raftCommitIndex = commit
    replica.doTick(0)
    replica.sent.clear()
    return replica


def test_entries_already_held_are_never_truncated() -> None:
    """A late copy of entries 4-5 arrives after 4-8: keep 6-8, acknowledge 4-5."""
    held = [entry(i, 1) for i in range(2, 9)]
    replica = follower_with(held, commit=3)
    before = replica.log
    replica.receive(LEADER, append(3, 1, [entry(4, 1), entry(5, 1)], commit=7))
    assert replica.log == before  # nothing truncated, nothing re-appended
    acks = [m for node, m in replica.sent if m["type"] == "next_node_idx"]
    assert acks == [{"type": "next_node_idx", "next_node_idx": 6, "reset": False, "success": True}]
    assert replica.raftCommitIndex == 5  # up to what matched, not the leader's 7
    assert replica._getLeader() == LEADER


def test_a_conflict_truncates_from_the_first_differing_entry_only() -> None:
    held = [entry(2, 1), entry(3, 1), entry(4, 1), entry(5, 1, "old-term")]
    replica = follower_with(held, commit=3)
    incoming = [entry(4, 1), entry(5, 2, "new-term"), entry(6, 2)]
    replica.receive(LEADER, append(3, 1, incoming, commit=3, term=2))
    assert [(i, t) for _, i, t in replica.log] == [(1, 0), (2, 1), (3, 1), (4, 1), (5, 2), (6, 2)]
    assert replica.log[4][0] == raft_wire.command_entry(b"new-term")


def test_a_snapshot_message_commits_nothing_on_an_unmatched_log() -> None:
    """A deposed leader holds entries 4-6 nobody committed; the new leader, past them, starts
    a snapshot: its commit index must not make those entries applied."""
    held = [entry(2, 1), entry(3, 1), entry(4, 2, "stale"), entry(5, 2, "stale"), entry(6, 2)]
    replica = follower_with(held, commit=3, term=2)
    applied = list(replica.applied)
    for chunk in ((b"part", True, False), None):
        replica.receive(
            LEADER,
            {"type": "append_entries", "term": 3, "commit_index": 50, "serialized": chunk},
        )
    assert replica.raftCommitIndex == 3
    assert replica.applied == applied and b"stale" not in b"".join(replica.applied)


def test_a_leader_never_moves_a_next_index_back_on_a_late_success() -> None:
    replica = Replica()
    replica._SyncObj__onBecomeLeader()
    next_index = replica._SyncObj__raftNextIndex
    next_index[OTHER] = 9  # entries up to 8 already sent
    late = {"type": "next_node_idx", "next_node_idx": 6, "reset": False, "success": True}
    replica._SyncObj__onMessageReceived(OTHER, late)
    assert next_index[OTHER] == 9
    assert replica._SyncObj__raftMatchIndex[OTHER] == 5  # the acknowledgement still counts
    reset = {"type": "next_node_idx", "next_node_idx": 4, "reset": True, "success": False}
    replica._SyncObj__onMessageReceived(OTHER, reset)
    assert next_index[OTHER] == 4  # a mismatch does move it back

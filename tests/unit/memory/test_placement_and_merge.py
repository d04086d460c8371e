"""specs/0007 MEM-8..MEM-12: placement, majorities, merge and history, digests."""

import os

from fpai_node.identity import NodeKey
from fpai_node.memory.merge import BUCKETS, Digest, bucket_of, history, latest, op_key
from fpai_node.memory.operations import (
    SHARDS,
    Content,
    Version,
    new_record_id,
    pack_vector,
    seal_operation,
    shard_of_scope,
)
from fpai_node.memory.placement import (
    DEFAULT_REPLICAS,
    Placement,
    holders,
    majority,
    replicas,
    replication_factor,
)

KEYS = [NodeKey.from_seed(bytes([i]) * 32) for i in range(1, 6)]
NODES = sorted(k.node_id for k in KEYS)
NOW = 1_767_225_600_000


def test_replicas_are_the_top_scores_and_a_join_moves_at_most_one_per_shard() -> None:
    """MEM-8: rendezvous hashing; adding a holder changes each shard's replicas by at most one."""
    three, four = NODES[:3], NODES[:4]
    moved = 0
    for shard in range(SHARDS):
        before, after = replicas(shard, three, 3), replicas(shard, four, 3)
        assert sorted(before) == sorted(three)
        assert len(set(before) - set(after)) <= 1
        moved += before != tuple(sorted(after, key=after.index))
        assert replicas(shard, reversed(four), 3) == after  # input order does not matter
    assert 0 < moved < SHARDS
    assert replicas(0, NODES[:2], 3) == replicas(0, NODES[:2], 2)  # R = min(factor, holders)


def test_holders_are_members_offering_memory_and_the_factor_is_bounded() -> None:
    """MEM-8"""
    services = {
        f"{NODES[0]}/memory": "ok",
        f"{NODES[1]}/memory": "ok",
        f"{NODES[2]}/other": "ok",
        f"{NODES[3]}/memory": "down",  # dead for the registry's leader (RAFT-16)
        "x/memory": "ok",
    }
    assert holders(NODES[:4], services) == sorted(NODES[:2])  # x is not a member
    assert replication_factor({}) == DEFAULT_REPLICAS
    assert replication_factor({"memory.replicas": 5}) == 5
    for bad in (0, 8, "3", True):
        assert replication_factor({"memory.replicas": bad}) == DEFAULT_REPLICAS
    placement = Placement({n: f"127.0.0.1:{i}" for i, n in enumerate(NODES[:2])}, 3)
    assert placement.factor == 2 and set(placement.shards_of(NODES[0])) == set(range(SHARDS))


def test_a_majority_of_replicas() -> None:
    """MEM-9"""
    assert [majority(r) for r in (1, 2, 3, 4, 5)] == [1, 2, 2, 3, 3]


def _op(key: NodeKey, rid: str, at: int, n: int, text: str | None):  # type: ignore[no-untyped-def]
    vector = [0.0] * 384
    vector[1] = 1.0
    content = (
        None
        if text is None
        else Content(text, "{}", "alice", "", "", "memory", NOW, pack_vector(vector))
    )
    action = "delete" if text is None else "add"
    return seal_operation(
        key, rid, action, Version(at, n, key.node_id), content, seq=at + n, now_ms=NOW
    )  # type: ignore[arg-type]


def test_last_writer_wins_by_version_then_node_and_history_is_in_version_order() -> None:
    """MEM-10, MEM-12"""
    rid = new_record_id(shard_of_scope("user_id", "alice"), os.urandom(16))
    a, b = sorted(KEYS[:2], key=lambda k: k.node_id)
    add = _op(a, rid, NOW, 0, "likes tea")
    update_a = _op(a, rid, NOW + 5, 0, "likes coffee")
    update_b = _op(b, rid, NOW + 5, 0, "likes cocoa")  # same time and counter: b's id is greater
    delete = _op(a, rid, NOW + 9, 0, None)
    ops = [delete, update_b, add, update_a]
    assert latest(ops[1:]) is update_b
    assert latest(ops) is delete
    changes = history([*ops, add])  # a duplicate counts once
    assert [c.event for c in changes] == ["ADD", "UPDATE", "UPDATE", "DELETE"]
    assert [c.new.memory if c.new else None for c in changes] == [
        "likes tea",
        "likes coffee",
        "likes cocoa",
        None,
    ]
    assert changes[3].old is not None and changes[3].old.memory == "likes cocoa"
    readd = _op(a, rid, NOW + 20, 0, "likes water")
    assert [c.event for c in history([add, delete, readd, _op(b, rid, NOW + 8, 0, None)])] == [
        "ADD",
        "DELETE",
        "ADD",
    ]  # the second delete deleted nothing


def test_digests_are_order_free_and_name_the_buckets_that_differ() -> None:
    """MEM-11"""
    shard = shard_of_scope("user_id", "alice")
    rids = [new_record_id(shard, os.urandom(16)) for _ in range(50)]
    versions = [Version(NOW + i, 0, NODES[0]) for i in range(50)]
    one, two = Digest(), Digest()
    for rid, v in zip(rids, versions, strict=False):
        one.add(rid, v)
    for rid, v in reversed(list(zip(rids, versions, strict=False))):
        two.add(rid, v)
    assert one.to_bytes() == two.to_bytes() and len(one.to_bytes()) == BUCKETS * 8
    extra = new_record_id(shard, os.urandom(16))
    two.add(extra, Version(NOW, 1, NODES[1]))
    assert Digest.differing(one.to_bytes(), two.to_bytes()) == [bucket_of(extra)]
    assert op_key(extra, Version(NOW, 1, NODES[1])) != op_key(extra, Version(NOW, 2, NODES[1]))

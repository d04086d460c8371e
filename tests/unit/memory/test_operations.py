"""specs/0007 MEM-1..MEM-7: record ids, signed operations and what a replica refuses."""

import dataclasses
import hashlib
import os

import pytest

from fpai_node.identity import NodeKey
from fpai_node.memory.clock import HybridClock
from fpai_node.memory.operations import (
    MAX_MEMORY_BYTES,
    SHARDS,
    Content,
    OperationRejected,
    Version,
    canonical_metadata,
    is_record_id,
    new_record_id,
    pack_vector,
    read_operation,
    seal_operation,
    shard_of_id,
    shard_of_scope,
)
from fpai_node.wire import codec
from fpai_node.wire.envelope import seal

KEY = NodeKey.from_seed(bytes(range(32)))
NOW = 1_767_225_600_000


def unit(i: int = 0) -> bytes:
    values = [0.0] * 384
    values[i] = 1.0
    return pack_vector(values)


def content(**changes: object) -> Content:
    base = Content("Alice likes tea", "{}", "alice", "", "", "memory", NOW, unit())
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def record_id(scope: tuple[str, str] = ("user_id", "alice")) -> str:
    return new_record_id(shard_of_scope(*scope), os.urandom(16))


def sealed(payload: dict[str, codec.Value], ts: int = NOW) -> bytes:
    return seal(KEY, "memory.op", codec.encode(payload), seq=1, now_ms=ts, lifetime_ms=60_000)


def test_record_ids_carry_their_shard_and_are_version_8_uuids() -> None:
    """MEM-1"""
    for shard in (0, 17, SHARDS - 1):
        rid = new_record_id(shard, os.urandom(16))
        assert is_record_id(rid) and shard_of_id(rid) == shard and rid[14] == "8"
    assert not is_record_id("00000000-0000-4000-8000-000000000000")  # version 4
    assert not is_record_id(new_record_id(0, bytes(range(200, 216))).upper())
    assert not is_record_id("ff" + new_record_id(0, bytes(16))[2:])  # shard 255 >= SHARDS


def test_an_operation_round_trips_and_verifies_at_its_own_timestamp() -> None:
    """MEM-5, MEM-6: a kept operation verifies however old it is."""
    rid = record_id()
    op = seal_operation(KEY, rid, "add", Version(NOW, 0, KEY.node_id), content(), seq=1, now_ms=NOW)
    read = read_operation(op.frame, now_ms=NOW + 10 * 365 * 86_400_000)
    assert (read.id, read.action, read.version, read.content) == (rid, "add", op.version, content())
    assert read.content is not None
    assert read.content.hash == hashlib.md5(b"Alice likes tea").hexdigest()  # Mem0's hash


def test_a_version_far_ahead_of_the_receivers_clock_is_refused() -> None:
    """MEM-6: versions move every replica's clock, so one far in the future is refused."""
    op = seal_operation(
        KEY, record_id(), "add", Version(NOW + 60_000, 0, KEY.node_id), content(), seq=1, now_ms=NOW
    )
    with pytest.raises(OperationRejected) as refused:
        read_operation(op.frame, now_ms=NOW)
    assert refused.value.reason == "future"
    assert read_operation(op.frame, now_ms=NOW + 31_000).version.at_ms == NOW + 60_000


def _payload(rid: str, **content_changes: codec.Value) -> dict[str, codec.Value]:
    value = content().to_value()
    value.update(content_changes)
    return {"action": "add", "at": NOW, "content": value, "id": rid, "n": 0}


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"hash": "0" * 32}, "bad_hash"),
        ({"vector": b"\0" * 1536}, "bad_vector"),  # not a unit vector
        ({"vector": b"\0" * 12}, "bad_vector"),
        ({"user_id": "", "agent_id": "", "run_id": ""}, "bad_scope"),
        ({"user_id": "u" * 256}, "bad_scope"),
        ({"memory": "x" * (MAX_MEMORY_BYTES + 1)}, "too_large"),
        ({"metadata": '{"b": 1}'}, "bad_metadata"),  # not canonical text
        ({"metadata": "[1]"}, "bad_metadata"),
        ({"kind": "secret"}, "malformed"),
        ({"user_id": "bob"}, "bad_shard"),  # the id's shard is alice's
    ],
)
def test_a_replica_refuses_content_that_breaks_a_rule(
    changes: dict[str, codec.Value], reason: str
) -> None:
    """MEM-2, MEM-4, MEM-7: every field of a peer's operation is checked."""
    rid = record_id()
    if "memory" in changes:
        changes = {**changes, "hash": content(memory=str(changes["memory"])).hash}
    with pytest.raises(OperationRejected) as refused:
        read_operation(sealed(_payload(rid, **changes)))
    assert refused.value.reason == reason


def test_a_delete_carries_no_content_and_other_shapes_are_malformed() -> None:
    """MEM-5"""
    rid = record_id()
    ok = read_operation(sealed({"action": "delete", "at": NOW, "content": None, "id": rid, "n": 3}))
    assert ok.content is None and ok.version == Version(NOW, 3, KEY.node_id)
    for payload in (
        {"action": "delete", "at": NOW, "content": content().to_value(), "id": rid, "n": 0},
        {"action": "merge", "at": NOW, "content": None, "id": rid, "n": 0},
        {"action": "delete", "at": -1, "content": None, "id": rid, "n": 0},
        {"action": "delete", "at": NOW, "content": None, "id": rid, "n": 1 << 32},
        {"action": "delete", "at": NOW, "content": None, "id": rid},
    ):
        with pytest.raises(OperationRejected) as refused:
            read_operation(sealed(payload))
        assert refused.value.reason == "malformed"
    with pytest.raises(OperationRejected) as refused:
        read_operation(sealed({"action": "delete", "at": NOW, "content": None, "id": "x", "n": 0}))
    assert refused.value.reason == "bad_id"


def test_a_forged_signature_or_another_type_is_refused() -> None:
    """MEM-6: the envelope checks of specs/0002 come first."""
    op = seal_operation(
        KEY, record_id(), "add", Version(NOW, 0, KEY.node_id), content(), seq=1, now_ms=NOW
    )
    tampered = op.frame.replace(b"Alice likes tea", b"Alice likes tee")
    with pytest.raises(OperationRejected) as refused:
        read_operation(tampered)
    assert refused.value.reason == "bad_signature"
    other = seal(KEY, "peer.ping", codec.encode({"nonce": bytes(16)}), seq=1, now_ms=NOW)
    with pytest.raises(OperationRejected) as refused:
        read_operation(other)
    assert refused.value.reason == "unknown_type"


def test_metadata_is_kept_as_canonical_json_text() -> None:
    """MEM-2"""
    assert canonical_metadata({"b": [1, 2.5], "a": "é"}) == '{"a":"é","b":[1,2.5]}'
    for bad in ([1], {"x": float("nan")}, {"x": object()}, {"x": "y" * 17000}):
        with pytest.raises(ValueError):
            canonical_metadata(bad)


def test_the_primary_scope_picks_the_shard() -> None:
    """MEM-7: user, else agent, else run."""
    assert content(user_id="u", agent_id="a").primary_scope == ("user_id", "u")
    assert content(user_id="", agent_id="a", run_id="r").primary_scope == ("agent_id", "a")
    assert content(user_id="", run_id="r").primary_scope == ("run_id", "r")
    assert all(0 <= shard_of_scope("user_id", f"u{i}") < SHARDS for i in range(200))
    assert len({shard_of_scope("user_id", f"u{i}") for i in range(1000)}) == SHARDS


def test_the_clock_never_goes_back_and_follows_what_it_sees() -> None:
    """MEM-3"""
    clock = HybridClock(KEY.node_id)
    first = clock.tick(NOW)
    assert clock.tick(NOW) == Version(NOW, 1, KEY.node_id)
    assert clock.tick(NOW - 5_000) == Version(NOW, 2, KEY.node_id)  # the wall clock went back
    clock.observe(Version(NOW + 900, 7, "fpn1other"))
    assert clock.tick(NOW + 10) == Version(NOW + 900, 8, KEY.node_id)
    assert clock.tick(NOW + 1_000) == Version(NOW + 1_000, 0, KEY.node_id) > first

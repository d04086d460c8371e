"""Hostile peers against the memory routes (specs/0007 MEM-6, MEM-13..MEM-16), in both trust
modes: an outsider is refused before its body is read; a member (here, a real node's key used
by an attacker that took it over) sending forged, future, inconsistent or oversized writes and
floods of keys is refused with the rule's reason, nothing it sent is stored, and the node goes
on serving memory."""

import os
import ssl
import time
from collections.abc import Iterator
from typing import Any

import pytest

from fpai_node.identity import NodeKey
from fpai_node.memory import messages
from fpai_node.memory.operations import (
    Content,
    Version,
    new_record_id,
    pack_vector,
    seal_operation,
    shard_of_scope,
)
from fpai_node.memory.service import CheckedOperations, _operations
from fpai_node.testing.nodeproc import NodeProcess, wait_for
from fpai_node.testing.peer_client import peer_post
from fpai_node.testing.trust import Trust
from fpai_node.wire import codec
from fpai_node.wire.envelope import seal

os.environ["MEM0_TELEMETRY"] = "False"
from mem0 import MemoryClient
from mem0.exceptions import MemoryNotFoundError

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]
SHARD = shard_of_scope("user_id", "victim")


@pytest.fixture(scope="module")
def pair(trust: Trust, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A node, and a member whose key the attacker holds."""
    root = tmp_path_factory.mktemp("memory-attacks")
    nodes: list[NodeProcess] = []
    try:
        target = NodeProcess(trust.home(root / "a"), "--api", "127.0.0.1:0", "--no-model").start()
        nodes.append(target)
        member = NodeProcess(
            trust.home(root / "m"), "--api", "127.0.0.1:0", "--no-model", "--join", target.peer
        ).start()
        nodes.append(member)
        both = {target.node_id, member.node_id}
        wait_for(lambda: set(target.get_json("/fpai/v1/status")["memory"]["holders"]) == both)
        key = NodeKey.load(member.home.key_file)
        yield {"target": target, "member": key, "as_member": trust.member(key), "trust": trust}
    finally:
        for node in nodes:
            node.kill()


def unit(axis: int = 0) -> bytes:
    values = [0.0] * 384
    values[axis] = 1.0
    return pack_vector(values)


def content(**changes: Any) -> Content:
    values = dict(
        memory="the attacker was here",
        metadata="{}",
        user_id="victim",
        agent_id="",
        run_id="",
        kind="memory",
        created_at_ms=time.time_ns() // 1_000_000,
        vector=unit(),
    )
    values.update(changes)
    return Content(**values)


def op_frame(key: NodeKey, record_id: str, at_ms: int, payload: Content | None = None) -> bytes:
    version = Version(at_ms, 0, key.node_id)
    return seal_operation(
        key, record_id, "add", version, payload or content(), seq=at_ms, now_ms=at_ms
    ).frame


def refusals(node: NodeProcess) -> dict[str, int]:
    return dict(node.get_json("/fpai/v1/status")["memory"]["refusals"])


def write(pair: dict[str, Any], body: bytes) -> tuple[int, bytes]:
    return peer_post(pair["as_member"], pair["target"].peer, messages.WRITE_PATH, body)


def test_an_outsider_is_refused_before_its_body_is_read(pair: dict[str, Any]) -> None:
    """MEM-16 (open trust: a stranger's key passes TLS and meets the gate; federation: TLS)."""
    target = pair["target"]
    before = refusals(target).get("not_member", 0)
    body = messages.Get((new_record_id(SHARD, os.urandom(16)),)).encode()
    if pair["trust"].ca is not None:
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            peer_post(Trust.outsider(NodeKey.generate()), target.peer, messages.GET_PATH, body)
        return
    for path in (messages.GET_PATH, messages.WRITE_PATH, messages.DIGEST_PATH):
        status, answer = peer_post(Trust.outsider(NodeKey.generate()), target.peer, path, body)
        assert (status, answer) == (403, b"not_member")
    assert refusals(target)["not_member"] == before + 3


@pytest.mark.parametrize(
    ("attack", "reason"),
    [
        ("forged", "bad_signature"),
        ("future", "future"),
        ("bad_hash", "bad_hash"),
        ("wrong_shard", "bad_shard"),
        ("too_many", "malformed"),
    ],
)
def test_a_members_bad_writes_are_refused_and_nothing_is_stored(
    pair: dict[str, Any], attack: str, reason: str
) -> None:
    """MEM-6, MEM-13: the whole write is refused with the first broken rule's reason."""
    key, target = pair["member"], pair["target"]
    now = time.time_ns() // 1_000_000
    record_id = new_record_id(SHARD, os.urandom(16))
    frames = [op_frame(key, record_id, now)]
    if attack == "forged":
        frames = [frames[0].replace(b"attacker was here", b"attacker was gone")]
    elif attack == "future":
        frames = [op_frame(key, record_id, now + 10 * 60_000)]
    elif attack == "bad_hash":
        raw = codec.decode(codec.decode(codec.decode(frames[0])[0])["body"])  # type: ignore[index]
        raw["content"]["hash"] = "0" * 32  # type: ignore[index]
        frames = [seal(key, "memory.op", codec.encode(raw), seq=1, now_ms=now, lifetime_ms=60_000)]
    elif attack == "wrong_shard":
        other = new_record_id((SHARD + 1) % 64, os.urandom(16))
        frames = [op_frame(key, other, now)]
    elif attack == "too_many":
        frames = [op_frame(key, record_id, now + i) for i in range(messages.MAX_OPS + 1)]
    before = refusals(target).get(reason, 0)
    status, answer = write(pair, messages.Ops(tuple(frames)).encode())
    assert (status, answer.decode()) == (400, reason)
    assert refusals(target)[reason] == before + 1
    client = MemoryClient(host=target.url, api_key="k" * 16)
    with pytest.raises(MemoryNotFoundError):
        client.get(record_id)


def test_oversized_bodies_and_key_floods_are_refused(pair: dict[str, Any]) -> None:
    """MEM-15, MEM-16: bounded before parsing (413) and while parsing (`malformed`)."""
    status, _ = write(pair, b"\x00" * (messages.MAX_BODY_BYTES + 1))
    assert status == 413
    record_id = new_record_id(SHARD, os.urandom(16))
    key = [record_id, 1, 0, pair["member"].node_id]
    flood = codec.encode({"keys": [key] * 10_000, "shard": SHARD})
    status, answer = peer_post(pair["as_member"], pair["target"].peer, messages.FETCH_PATH, flood)
    assert (status, answer) == (400, b"malformed")
    short = codec.encode({"digest": b"\x00" * 8, "shard": SHARD})
    status, answer = peer_post(pair["as_member"], pair["target"].peer, messages.DIGEST_PATH, short)
    assert (status, answer) == (400, b"malformed")


def test_the_node_serves_memory_after_the_attacks(pair: dict[str, Any]) -> None:
    client = MemoryClient(host=pair["target"].url, api_key="k" * 16)
    added = client.add("still standing", user_id="survivor", infer=False)["results"][0]
    found = client.search("standing", filters={"user_id": "survivor"}, top_k=1)["results"]
    assert [r["id"] for r in found] == [added["id"]]


def test_a_replica_cannot_alter_a_record_it_returns() -> None:
    """MEM-14: a reader checks every operation in an answer; a tampered one is dropped and the
    honest replica's copy stands. (In process: a lying replica process would need a node that
    serves forged peer answers, which the liar harness does not do for memory.)"""
    key = NodeKey.from_seed(bytes(range(32)))
    record_id = new_record_id(SHARD, bytes(range(16)))
    honest = op_frame(key, record_id, 1_767_225_600_000)
    tampered = honest.replace(b"attacker was here", b"attacker is king")
    answers = [messages.Ops((tampered,)).encode(), messages.Ops((honest,)).encode()]
    [kept] = _operations(answers, CheckedOperations())
    assert kept.frame == honest and kept.content is not None
    assert kept.content.memory == "the attacker was here"
    assert _operations([messages.Ops((tampered,)).encode()], CheckedOperations()) == []

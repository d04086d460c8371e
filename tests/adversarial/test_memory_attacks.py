"""Hostile peers against the memory routes (specs/0007 MEM-6, MEM-13..MEM-16), in both trust
modes, against real node processes: an outsider is refused before its body is read; a member
(here, a real node's key used by an attacker that took it over) sending forged, future,
inconsistent or oversized writes and floods of keys is refused with the rule's reason, nothing
it sent is stored, and the node goes on serving memory; a replica that tampers with the
records it returns cannot change what the reading node's clients see.

One small federation per trust mode: A, an honest node, and M, a member that runs the real node
with its memory read routes patched to tamper with every record they return, which it does only
while its `lies` file says `tamper-memory`. fpai_node/testing/liar.py tells no memory lie; this
one is patched in the same way (before the CLI runs, switched by the same file), from here.
"""

import functools
import http.client
import inspect
import os
import ssl
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from fpai_node.identity import NodeKey
from fpai_node.identity.tls import TlsIdentity, client_context
from fpai_node.memory import messages
from fpai_node.memory.operations import (
    OP_LIFETIME_MS,
    OP_TYPE,
    SHARDS,
    Content,
    OperationRejected,
    Version,
    new_record_id,
    pack_vector,
    read_operation,
    seal_operation,
    shard_of_scope,
)
from fpai_node.memory.service import CheckedOperations, _operations
from fpai_node.testing.liar import lies_file
from fpai_node.testing.nodeproc import NodeProcess, wait_for
from fpai_node.testing.peer_client import peer_post
from fpai_node.testing.trust import Trust
from fpai_node.wire import codec
from fpai_node.wire.envelope import seal

os.environ["MEM0_TELEMETRY"] = "False"
from mem0 import MemoryClient  # type: ignore[import-untyped]
from mem0.exceptions import MemoryNotFoundError  # type: ignore[import-untyped]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]
SHARD = shard_of_scope("user_id", "victim")
TAMPER = "tamper-memory"
DROPPED = "a replica answered with a bad operation"  # what a reader logs for a forged record


def _tampering_replica() -> None:
    """`fpai-node start ...` whose memory read routes (search, scan, get, history) alter the
    text of every record they return while `<home>/lies` says `tamper-memory`: the memory and
    its hash are rewritten consistently, the signature kept, so only the signature betrays
    the lie. Run in the node's process from its source (`python -c`), so it imports nothing
    but the node."""
    import sys
    from pathlib import Path
    from typing import Any

    from fpai_node.cli import main
    from fpai_node.memory import messages
    from fpai_node.memory.operations import memory_hash
    from fpai_node.memory.service import MemoryService
    from fpai_node.wire import codec

    lies = Path(sys.argv[sys.argv.index("--home") + 1]) / "lies"

    def tampered(frame: bytes) -> bytes:
        outer: Any = codec.decode(frame)
        signed, signature = outer
        header: Any = codec.decode(signed)
        payload: Any = codec.decode(header["body"])
        if payload["content"] is not None:
            text = "TAMPERED " + payload["content"]["memory"]
            payload["content"]["memory"] = text
            payload["content"]["hash"] = memory_hash(text)
        header["body"] = codec.encode(payload)
        return codec.encode([codec.encode(header), signature])

    def lying(honest: Any) -> Any:
        async def route(self: MemoryService, peer: str, body: bytes) -> bytes:
            answer: bytes = await honest(self, peer, body)
            if not lies.exists() or "tamper-memory" not in lies.read_text().split():
                return answer
            frames = messages.Ops.decode(answer, messages.MAX_ANSWER_OPS).ops
            return messages.Ops(tuple(tampered(f) for f in frames)).encode()

        return route

    for name in ("_on_search", "_on_scan", "_on_get", "_on_history"):
        setattr(MemoryService, name, lying(getattr(MemoryService, name)))
    sys.argv = ["fpai-node", *sys.argv[1:]]
    main()


def tampering_replica_command() -> list[str]:
    source = inspect.getsource(_tampering_replica)
    return [sys.executable, "-c", f"{source}\n_tampering_replica()\n"]


@pytest.fixture(scope="module")
def fed(trust: Trust, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A, an honest node, and M, a member whose key the attacker holds and whose replica can
    be told to tamper. Two holders: every shard is on both, and a read needs both answers."""
    root = tmp_path_factory.mktemp("memory-attacks")
    nodes: list[NodeProcess] = []
    try:
        target = NodeProcess(trust.home(root / "a"), "--api", "127.0.0.1:0", "--no-model").start()
        nodes.append(target)
        member = NodeProcess(
            trust.home(root / "m"),
            *("--api", "127.0.0.1:0", "--no-model", "--join", target.peer),
            command=tampering_replica_command(),
        ).start()
        nodes.append(member)
        both = {target.node_id, member.node_id}
        for node in nodes:
            wait_for(functools.partial(sees_holders, node, both))
        key = NodeKey.load(member.home.key_file)
        yield {
            "target": target,
            "member": member,
            "key": key,
            "as_member": trust.member(key),
            "as_target": trust.member(NodeKey.load(target.home.key_file)),
            "trust": trust,
        }
    finally:
        for node in nodes:
            node.kill()


# --- helpers ------------------------------------------------------------------------------


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def unit(axis: int = 0) -> bytes:
    values = [0.0] * 384
    values[axis] = 1.0
    return pack_vector(values)


def content(**changes: Any) -> Content:
    values: dict[str, Any] = dict(
        memory="the attacker was here",
        metadata="{}",
        user_id="victim",
        agent_id="",
        run_id="",
        kind="memory",
        created_at_ms=now_ms(),
        vector=unit(),
    )
    values.update(changes)
    return Content(**values)


def op_frame(key: NodeKey, record_id: str, at_ms: int, *, signed_at_ms: int | None = None) -> bytes:
    """An `add` of the record at version (at_ms, 0, the key's node), signed at `signed_at_ms`
    (default: at the version's time)."""
    stamp = at_ms if signed_at_ms is None else signed_at_ms
    version = Version(at_ms, 0, key.node_id)
    return seal_operation(key, record_id, "add", version, content(), seq=stamp, now_ms=stamp).frame


def memory(node: NodeProcess) -> dict[str, Any]:
    return dict(node.get_json("/fpai/v1/status")["memory"])


def sees_holders(node: NodeProcess, both: set[str]) -> bool:
    return set(memory(node)["holders"]) == both


def refusals(node: NodeProcess) -> dict[str, int]:
    return dict(memory(node)["refusals"])


def channel_refusals(node: NodeProcess) -> dict[str, int]:
    return dict(node.get_json("/fpai/v1/status")["peer_channel"]["refusals"])


def mem0(node: NodeProcess) -> MemoryClient:
    return MemoryClient(host=node.url, api_key="k" * 16)


def held_by(fed: dict[str, Any], record_id: str) -> tuple[bytes, ...]:
    """The operations of the record A holds itself, asked on its peer route as a member."""
    body = messages.Get((record_id,)).encode()
    status, answer = peer_post(fed["as_member"], fed["target"].peer, messages.GET_PATH, body)
    assert status == 200, answer
    return messages.Ops.decode(answer).ops


def post_headers_only(
    sender: TlsIdentity, address: str, path: str, length: int
) -> tuple[int, bytes]:
    """POST that declares a `length`-byte body and sends none of it: a server that read the
    body before deciding would wait until the client's timeout."""
    host, port = address.rsplit(":", 1)
    connection = http.client.HTTPSConnection(
        host.strip("[]"), int(port), context=client_context(sender), timeout=10
    )
    try:
        connection.putrequest("POST", path)
        connection.putheader("Content-Length", str(length))
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def dropped(node: NodeProcess) -> list[dict[str, Any]]:
    return [e for e in node.log_events() if e.get("event") == DROPPED]


# --- an outsider (MEM-16) -----------------------------------------------------------------


def test_an_outsider_is_refused_before_its_body_is_read(fed: dict[str, Any]) -> None:
    """MEM-16: a peer that passes TLS but is no registry member meets the gate: `403
    not_member` on every memory route, before the body is parsed (garbage is not `malformed`),
    before its size is checked (9 MiB is not `413`) and before it is even read (a body
    declared and never sent is answered at once), and counted."""
    target, trust = fed["target"], fed["trust"]
    stranger = trust.member(NodeKey.generate())  # federation: certified by the CA, never joined
    before = refusals(target).get("not_member", 0)
    garbage = b"\xc1 not MessagePack at all"
    for path in (messages.SEARCH_PATH, messages.WRITE_PATH, messages.DIGEST_PATH):
        assert peer_post(stranger, target.peer, path, garbage) == (403, b"not_member"), path
    started = time.monotonic()
    declared = post_headers_only(stranger, target.peer, messages.WRITE_PATH, 9 << 20)
    assert declared == (403, b"not_member")
    assert time.monotonic() - started < 5
    assert refusals(target)["not_member"] == before + 4
    if trust.ca is not None:  # and one the CA never certified does not get past TLS at all
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            peer_post(Trust.outsider(NodeKey.generate()), target.peer, messages.SEARCH_PATH, b"")
        assert refusals(target)["not_member"] == before + 4


# --- a member's writes (MEM-6, MEM-13, MEM-16) ----------------------------------------------


def test_the_members_honest_write_is_stored(fed: dict[str, Any]) -> None:
    """The control for the attacks below: the same member, route and kind of operation, sent
    honestly, is stored and read back, so a refusal there is the attack's alone."""
    record_id = new_record_id(SHARD, os.urandom(16))
    frame = op_frame(fed["key"], record_id, now_ms())
    body = messages.Ops((frame,)).encode()
    status, answer = peer_post(fed["as_member"], fed["target"].peer, messages.WRITE_PATH, body)
    assert (status, messages.Stored.decode(answer)) == (200, messages.Stored(1))
    assert held_by(fed, record_id) == (frame,)
    assert mem0(fed["target"]).get(record_id)["memory"] == "the attacker was here"


def forged(key: NodeKey, record_id: str, now: int) -> list[bytes]:
    """Signed bytes altered after signing: the text, same length (the payload still decodes)."""
    return [op_frame(key, record_id, now).replace(b"attacker was here", b"attacker was gone")]


def future(key: NodeKey, record_id: str, now: int) -> list[bytes]:
    """Signed now (the envelope is fresh), but at a version 10 minutes ahead: it would win
    every merge until then."""
    return [op_frame(key, record_id, now + 10 * 60_000, signed_at_ms=now)]


def bad_hash(key: NodeKey, record_id: str, now: int) -> list[bytes]:
    """Validly signed content whose `hash` is not the MD5 of its `memory`."""
    raw = content().to_value()
    raw["hash"] = "0" * 32
    payload: dict[str, codec.Value] = {
        "action": "add",
        "at": now,
        "content": raw,
        "id": record_id,
        "n": 0,
    }
    return [
        seal(key, OP_TYPE, codec.encode(payload), seq=now, now_ms=now, lifetime_ms=OP_LIFETIME_MS)
    ]


def too_many(key: NodeKey, record_id: str, now: int) -> list[bytes]:
    """129 valid operations in one write (at most 128)."""
    return [op_frame(key, record_id, now + i) for i in range(messages.MAX_OPS + 1)]


def oversized(key: NodeKey, record_id: str, now: int) -> list[bytes]:
    """A valid operation, and 8 MiB of padding after it: the body is over the route's 8 MiB."""
    return [op_frame(key, record_id, now), b"\x00" * messages.MAX_BODY_BYTES]


def valid(key: NodeKey, record_id: str, now: int) -> list[bytes]:
    """An honest operation: sent under an id of the wrong shard, it is the `bad_shard` one."""
    return [op_frame(key, record_id, now)]


@pytest.mark.parametrize(
    ("attack", "shard", "status", "reason"),
    [
        (forged, SHARD, 400, "bad_signature"),
        (future, SHARD, 400, "future"),
        (bad_hash, SHARD, 400, "bad_hash"),
        (valid, (SHARD + 1) % SHARDS, 400, "bad_shard"),  # the victim's scope, another shard
        (too_many, SHARD, 400, "malformed"),
        (oversized, SHARD, 413, "oversized"),
    ],
    ids=["forged", "future", "bad_hash", "wrong_shard", "too_many", "oversized"],
)
def test_a_members_bad_writes_are_refused_and_nothing_is_stored(
    fed: dict[str, Any], attack: Any, shard: int, status: int, reason: str
) -> None:
    """MEM-6, MEM-13, MEM-16: the whole write is refused with the broken rule's reason and
    counted (a 413 by the peer channel, before the body is parsed); neither the replica's
    route nor the Mem0 API finds the record it named, and the node answers the API."""
    target = fed["target"]
    record_id = new_record_id(shard, os.urandom(16))
    body = messages.Ops(tuple(attack(fed["key"], record_id, now_ms()))).encode()
    counted = channel_refusals if status == 413 else refusals
    before = counted(target).get(reason, 0)
    answer = peer_post(fed["as_member"], target.peer, messages.WRITE_PATH, body)
    assert (answer[0], answer[1].decode()) == (status, reason)
    assert counted(target)[reason] == before + 1
    assert held_by(fed, record_id) == ()
    with pytest.raises(MemoryNotFoundError):
        mem0(target).get(record_id)


# --- floods of keys (MEM-15) ----------------------------------------------------------------


def test_key_floods_and_bad_digests_are_refused(fed: dict[str, Any]) -> None:
    """MEM-15: a fetch names 1..128 keys (128 are served: exactly the operations held among
    them), 129 or 10,000 are `malformed`; a digest is 2,048 bytes, else `malformed`; a
    replica holding nothing of a shard answers a digest with the asker's non-zero buckets."""
    target, key = fed["target"], fed["key"]

    def post(path: str, value: Any) -> tuple[int, bytes]:
        return peer_post(fed["as_member"], target.peer, path, codec.encode(value))

    record_id = new_record_id(SHARD, os.urandom(16))
    frame = op_frame(key, record_id, now_ms())
    assert post(messages.WRITE_PATH, {"ops": [frame]})[0] == 200
    held = read_operation(frame)
    real = [record_id, held.version.at_ms, 0, key.node_id]
    made_up = [[new_record_id(SHARD, os.urandom(16)), 1, 0, key.node_id] for _ in range(127)]
    status, answer = post(messages.FETCH_PATH, {"keys": [*made_up, real], "shard": SHARD})
    assert (status, messages.Ops.decode(answer, messages.MAX_OPS)) == (200, messages.Ops((frame,)))

    before = refusals(target).get("malformed", 0)
    for count in (messages.MAX_FETCH_KEYS + 1, 10_000):
        flood = {"keys": [real] * count, "shard": SHARD}
        assert post(messages.FETCH_PATH, flood) == (400, b"malformed"), count
    for size in (8, 2047, 2049):
        assert post(messages.DIGEST_PATH, {"digest": bytes(size), "shard": SHARD}) == (
            400,
            b"malformed",
        ), size
    assert refusals(target)["malformed"] == before + 5

    empty = next(s for s in range(SHARDS) if str(s) not in memory(target)["shards"])
    digest = bytearray(2048)
    digest[7 * 8 + 7] = 1  # bucket 7 differs
    status, answer = post(messages.DIGEST_PATH, {"digest": bytes(digest), "shard": empty})
    assert status == 200
    assert messages.DigestAnswer.decode(answer) == messages.DigestAnswer((7,), ())


# --- a replica that tampers with what it returns (MEM-14) -----------------------------------


def test_a_tampering_replica_cannot_change_what_the_client_sees(fed: dict[str, Any]) -> None:
    """MEM-14: M returns A's record with its text altered (hash made consistent, signature
    kept). A checks every operation in every answer: the forged ones are dropped (and
    logged), the honest copy stands, and get, search and history show the true text."""
    target, member = fed["target"], fed["member"]
    client = mem0(target)
    added = client.add("Prefers window seats", user_id="traveller", infer=False)["results"][0]
    record_id = added["id"]
    lies = lies_file(member.home.root)
    lies.write_text(f"{TAMPER}\n")
    try:
        # The lie is told: M's own answer carries the altered text, which fails its signature.
        body = messages.Get((record_id,)).encode()
        status, answer = peer_post(fed["as_target"], member.peer, messages.GET_PATH, body)
        assert status == 200
        [frame] = messages.Ops.decode(answer).ops
        assert b"TAMPERED Prefers window seats" in frame
        with pytest.raises(OperationRejected) as refused:
            read_operation(frame)
        assert refused.value.reason == "bad_signature"

        seen = len(dropped(target))
        assert client.get(record_id)["memory"] == "Prefers window seats"
        found = client.search("window seats", filters={"user_id": "traveller"}, top_k=5)
        assert [(r["id"], r["memory"]) for r in found["results"]] == [
            (record_id, "Prefers window seats")
        ]
        history = client.history(record_id)
        assert [(h["event"], h["new_memory"]) for h in history] == [("ADD", "Prefers window seats")]
        logged = wait_for(
            lambda: dropped(target)[seen:] if len(dropped(target)) >= seen + 3 else []
        )
        assert {e["reason"] for e in logged} == {"bad_signature"}
    finally:
        lies.unlink(missing_ok=True)
    assert client.get(record_id)["memory"] == "Prefers window seats"


def test_a_replicas_tampered_operation_is_dropped_by_the_merge() -> None:
    """MEM-14, in process and deterministic: whatever order the answers come in, the reader's
    merge (service._operations) keeps the honest operation and drops the altered one; an
    answer holding only the altered one contributes nothing."""
    key = NodeKey.from_seed(bytes(range(32)))
    record_id = new_record_id(SHARD, bytes(range(16)))
    honest = op_frame(key, record_id, 1_767_225_600_000)
    altered = honest.replace(b"attacker was here", b"attacker is king")
    for answers in ((altered, honest), (honest, altered)):
        bodies = [messages.Ops((frame,)).encode() for frame in answers]
        [kept] = _operations(bodies, CheckedOperations())
        assert kept.frame == honest and kept.content is not None
        assert kept.content.memory == "the attacker was here"
    assert _operations([messages.Ops((altered,)).encode()], CheckedOperations()) == []


# --- after it all -----------------------------------------------------------------------------


def test_the_node_serves_memory_after_the_attacks(fed: dict[str, Any]) -> None:
    client = mem0(fed["target"])
    added = client.add("still standing", user_id="survivor", infer=False)["results"][0]
    found = client.search("standing", filters={"user_id": "survivor"}, top_k=1)["results"]
    assert [(r["id"], r["memory"]) for r in found] == [(added["id"], "still standing")]
    assert fed["target"].process is not None and fed["target"].process.poll() is None
    assert fed["member"].process is not None and fed["member"].process.poll() is None

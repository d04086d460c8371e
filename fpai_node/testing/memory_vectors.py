"""protocol/vectors/memory/ (specs/0007-memory.md): operations valid and refused, shards of
scopes, placement for given holders, merge outcomes and histories, digests, route bodies and
filters."""

import dataclasses
import json
from collections.abc import Iterator
from typing import Any

from fpai_node.identity import NodeKey
from fpai_node.memory import filters, messages
from fpai_node.memory.filters import All, AnyOf, Field, Not
from fpai_node.memory.merge import Digest, history, latest, op_key
from fpai_node.memory.operations import (
    SHARDS,
    Content,
    Version,
    new_record_id,
    pack_vector,
    seal_operation,
    shard_of_scope,
)
from fpai_node.memory.placement import replicas
from fpai_node.testing.vectors import ALICE, BOB, NOW_MS, Case, to_json
from fpai_node.wire import codec
from fpai_node.wire.envelope import seal

CAROL = NodeKey.from_seed(bytes(range(64, 96)))
DAVE = NodeKey.from_seed(bytes(range(96, 128)))
ALICE_SHARD = shard_of_scope("user_id", "alice")
RECORD = new_record_id(ALICE_SHARD, bytes(range(16)))
OTHER = new_record_id(ALICE_SHARD, bytes(range(100, 116)))


def _vector(axis: int) -> bytes:
    values = [0.0] * 384
    values[axis] = 1.0
    return pack_vector(values)


def _content(text: str = "Alice likes green tea", **changes: Any) -> Content:
    base = Content(text, '{"topic":"drinks"}', "alice", "", "", "memory", NOW_MS, _vector(0))
    return dataclasses.replace(base, **changes)


def _op(
    key: NodeKey, record: str, at: int, n: int, content: Content | None, action: str = ""
) -> bytes:
    action = action or ("delete" if content is None else "add")
    op = seal_operation(
        key,
        record,
        action,  # type: ignore[arg-type]
        Version(at, n, key.node_id),
        content,
        seq=at + n,
        now_ms=at,
    )
    return op.frame


def _raw_op(payload: dict[str, codec.Value], key: NodeKey = ALICE) -> bytes:
    return seal(key, "memory.op", codec.encode(payload), seq=1, now_ms=NOW_MS, lifetime_ms=60_000)


def _payload(**content_changes: codec.Value) -> dict[str, codec.Value]:
    value = _content().to_value()
    value.update(content_changes)
    return {"action": "add", "at": NOW_MS, "content": value, "id": RECORD, "n": 0}


def _operation_cases() -> Iterator[tuple[str, Case]]:
    valid = _op(ALICE, RECORD, NOW_MS, 0, _content())
    expect = {
        "id": RECORD,
        "action": "add",
        "version": [NOW_MS, 0, ALICE.node_id],
        "content": to_json(_content().to_value()),
        "shard": ALICE_SHARD,
    }
    yield (
        "op-valid-add",
        Case(
            {
                "description": "MEM-5: an add, checked at its own timestamp (MEM-6)",
                "expect": {"ok": expect},
            },
            {"op.bin": valid},
        ),
    )
    delete = _op(BOB, RECORD, NOW_MS + 5, 2, None)
    yield (
        "op-valid-delete",
        Case(
            {
                "description": "MEM-5: a delete carries no content",
                "expect": {
                    "ok": {
                        "id": RECORD,
                        "action": "delete",
                        "version": [NOW_MS + 5, 2, BOB.node_id],
                        "content": None,
                        "shard": ALICE_SHARD,
                    }
                },
            },
            {"op.bin": delete},
        ),
    )
    yield (
        "op-future",
        Case(
            {
                "description": "MEM-6: a version more than 30 s ahead of the receiver's clock",
                "now_ms": NOW_MS - 30_001,
                "expect": {"error": "future"},
            },
            {"op.bin": valid},
        ),
    )
    refused: list[tuple[str, str, dict[str, codec.Value] | bytes]] = [
        ("bad-hash", "MEM-6: hash is not the MD5 of memory", _payload(hash="0" * 32)),
        ("not-unit-vector", "MEM-4: the vector's squared sum is 0", _payload(vector=bytes(1536))),
        ("short-vector", "MEM-2: a vector is 1,536 bytes", _payload(vector=bytes(12))),
        ("no-scope", "MEM-2: one scope id is needed", _payload(user_id="")),
        ("long-scope", "MEM-2: a scope id is at most 255 bytes", _payload(user_id="u" * 256)),
        (
            "metadata-not-canonical",
            "MEM-2: metadata text in canonical form",
            _payload(metadata='{"topic": "drinks"}'),
        ),
        ("metadata-not-object", "MEM-2: metadata is a JSON object", _payload(metadata="[1]")),
        ("unknown-kind", "MEM-2: kind is memory or handoff", _payload(kind="secret")),
        (
            "wrong-shard",
            "MEM-7: the id's first byte is not the scope's shard",
            _payload(user_id="bob"),
        ),
        (
            "not-an-id",
            "MEM-1: a version-4 UUID is not a record id",
            {**_payload(), "id": "00000000-0000-4000-8000-000000000000"},
        ),
        (
            "delete-with-content",
            "MEM-5: only a delete has no content, and it has none",
            {**_payload(), "action": "delete"},
        ),
        ("extra-key", "MEM-5: exactly the payload keys", {**_payload(), "note": "x"}),
        ("counter-too-big", "MEM-3: n is below 2^32", {**_payload(), "n": 1 << 32}),
    ]
    reasons = {
        "bad-hash": "bad_hash",
        "not-unit-vector": "bad_vector",
        "short-vector": "bad_vector",
        "no-scope": "bad_scope",
        "long-scope": "bad_scope",
        "metadata-not-canonical": "bad_metadata",
        "metadata-not-object": "bad_metadata",
        "unknown-kind": "malformed",
        "wrong-shard": "bad_shard",
        "not-an-id": "bad_id",
        "delete-with-content": "malformed",
        "extra-key": "malformed",
        "counter-too-big": "malformed",
    }
    for name, description, payload in refused:
        frame = payload if isinstance(payload, bytes) else _raw_op(payload)
        yield (
            f"op-{name}",
            Case(
                {"description": description, "expect": {"error": reasons[name]}}, {"op.bin": frame}
            ),
        )
    forged = bytearray(valid)
    forged[forged.index(b"green")] ^= 0x20
    yield (
        "op-bad-signature",
        Case(
            {
                "description": "MEM-6: the envelope checks of 0002 come first",
                "expect": {"error": "bad_signature"},
            },
            {"op.bin": bytes(forged)},
        ),
    )
    too_long = "x" * (32 * 1024 + 1)
    yield (
        "op-too-large",
        Case(
            {
                "description": "MEM-2: memory is at most 32,768 bytes",
                "expect": {"error": "too_large"},
            },
            {"op.bin": _raw_op(_payload(memory=too_long, hash=_content(too_long).hash))},
        ),
    )


def _shard_cases() -> Iterator[tuple[str, Case]]:
    scopes = [
        ("user_id", "alice"),
        ("user_id", "bob"),
        ("agent_id", "alice"),
        ("run_id", "r-1"),
        ("user_id", "é"),
    ]
    yield (
        "shard-of-scopes",
        Case(
            {
                "description": "MEM-7: SHA-256(domain, name, 0x00, id), 2 bytes big-endian, mod 64",
                "input": [list(s) for s in scopes],
                "expect": {"ok": [shard_of_scope(*s) for s in scopes]},
            }
        ),
    )
    randoms = [bytes(range(16)), b"\xff" * 16, bytes(16)]
    yield (
        "shard-record-ids",
        Case(
            {
                "description": "MEM-1: byte 0 is the shard; version 8, RFC variant",
                "input": [
                    [shard, r.hex()] for shard, r in zip((0, 17, SHARDS - 1), randoms, strict=True)
                ],
                "expect": {
                    "ok": [
                        new_record_id(s, r)
                        for s, r in zip((0, 17, SHARDS - 1), randoms, strict=True)
                    ]
                },
            }
        ),
    )


def _placement_cases() -> Iterator[tuple[str, Case]]:
    nodes = [k.node_id for k in (ALICE, BOB, CAROL, DAVE)]
    for name, holders, factor in (
        ("place-one-holder", nodes[:1], 3),
        ("place-three-holders", nodes[:3], 3),
        ("place-four-holders", nodes, 3),
        ("place-four-holders-factor-2", nodes, 2),
    ):
        yield (
            name,
            Case(
                {
                    "description": "MEM-8: the min(R, holders) highest rendezvous scores per shard",
                    "input": {"holders": holders, "replicas": factor},
                    "expect": {"ok": [list(replicas(s, holders, factor)) for s in range(SHARDS)]},
                }
            ),
        )


def _merge_cases() -> Iterator[tuple[str, Case]]:
    add = _op(ALICE, RECORD, NOW_MS, 0, _content())
    update_alice = _op(ALICE, RECORD, NOW_MS + 10, 0, _content("Alice likes black tea"), "update")
    update_bob = _op(BOB, RECORD, NOW_MS + 10, 0, _content("Alice likes mint tea"), "update")
    delete = _op(CAROL, RECORD, NOW_MS + 20, 0, None)
    empty_delete = _op(BOB, OTHER, NOW_MS + 1, 0, None)
    for name, description, frames in (
        (
            "merge-concurrent-updates",
            "MEM-10: same time and counter: the greater node id wins",
            [update_bob, add, update_alice],
        ),
        (
            "merge-delete-wins-later",
            "MEM-10, MEM-12: a later delete leaves a tombstone",
            [delete, update_alice, add, add],
        ),
        (
            "merge-delete-of-nothing",
            "MEM-12: a delete of a record that never existed changes nothing",
            [empty_delete],
        ),
    ):
        from fpai_node.memory.operations import read_operation

        ops = [read_operation(f) for f in frames]
        by_id: dict[str, list[Any]] = {}
        for op in ops:
            by_id.setdefault(op.id, []).append(op)
        standing = {}
        for record, held in sorted(by_id.items()):
            top = latest(held)
            standing[record] = {
                "version": [top.version.at_ms, top.version.n, top.version.node],
                "memory": None if top.content is None else top.content.memory,
                "history": [
                    [c.event, c.old.memory if c.old else None, c.new.memory if c.new else None]
                    for c in history(held)
                ],
            }
        yield (
            name,
            Case(
                {
                    "description": description,
                    "input": [f.hex() for f in frames],
                    "expect": {"ok": standing},
                }
            ),
        )


def _digest_cases() -> Iterator[tuple[str, Case]]:
    keys = [
        (RECORD, Version(NOW_MS, 0, ALICE.node_id)),
        (RECORD, Version(NOW_MS + 10, 0, BOB.node_id)),
        (OTHER, Version(NOW_MS + 1, 3, CAROL.node_id)),
    ]
    digest = Digest()
    for record, version in keys:
        digest.add(record, version)
    yield (
        "digest-three-operations",
        Case(
            {
                "description": "MEM-11: key hashes, buckets (the id's second byte), the digest",
                "input": [[r, v.at_ms, v.n, v.node] for r, v in keys],
                "expect": {
                    "ok": {
                        "key_hashes": [f"{op_key(r, v):016x}" for r, v in keys],
                        "digest": digest.to_bytes().hex(),
                    }
                },
            }
        ),
    )


def _body_cases() -> Iterator[tuple[str, Case]]:
    where = All((Field("user_id", "eq", "alice"), Not(Field("metadata.score", "lt", 0.5))))
    valid: list[tuple[str, Any]] = [
        ("search", messages.Search((ALICE_SHARD,), _vector(1), where, 10)),
        ("scan", messages.Scan((0, 1), None, 100)),
        ("get", messages.Get((RECORD, OTHER))),
        ("history", messages.History(RECORD)),
        ("digest", messages.DigestRequest(ALICE_SHARD, bytes(2048))),
        (
            "digest-answer",
            messages.DigestAnswer((3,), ((RECORD, Version(NOW_MS, 0, ALICE.node_id)),)),
        ),
        ("fetch", messages.Fetch(ALICE_SHARD, ((RECORD, Version(NOW_MS, 0, ALICE.node_id)),))),
        ("stored", messages.Stored(2)),
    ]
    for name, body in valid:
        data = body.encode()
        yield (
            f"body-{name}-valid",
            Case(
                {
                    "description": f"MEM-13..MEM-15: a {name} body",
                    "expect": {"ok": to_json(codec.decode(data))},
                },
                {"body.bin": data},
            ),
        )
    invalid: list[tuple[str, str, dict[str, codec.Value], str]] = [
        (
            "search-shard-64",
            "search",
            {"filter": None, "limit": 10, "shards": [64], "vector": bytes(1536)},
            "malformed",
        ),
        (
            "search-limit-101",
            "search",
            {"filter": None, "limit": 101, "shards": [1], "vector": bytes(1536)},
            "malformed",
        ),
        (
            "search-unknown-op",
            "search",
            {
                "filter": ["field", "k", "like", "x"],
                "limit": 1,
                "shards": [1],
                "vector": bytes(1536),
            },
            "bad_filter",
        ),
        ("get-bad-id", "get", {"ids": ["x"]}, "bad_id"),
        ("digest-short", "digest", {"digest": bytes(8), "shard": 1}, "malformed"),
        ("fetch-no-keys", "fetch", {"keys": [], "shard": 1}, "malformed"),
        ("write-too-many", "write", {"ops": [b"x"] * 129}, "malformed"),
    ]
    for name, kind, value, reason in invalid:
        yield (
            f"body-{name}",
            Case(
                {
                    "description": f"MEM-13..MEM-17: a {kind} body refused",
                    "kind": kind,
                    "expect": {"error": reason},
                },
                {"body.bin": codec.encode(value)},
            ),
        )


def _filter_cases() -> Iterator[tuple[str, Case]]:
    payloads = [
        {
            "user_id": "alice",
            "agent_id": "",
            "memory": "Likes Green tea",
            "created_at": 10,
            "metadata": {"score": 0.7, "tags": ["a", "b"]},
        },
        {
            "user_id": "bob",
            "agent_id": "helper",
            "memory": "likes coffee",
            "created_at": 20,
            "metadata": {"flag": True},
        },
    ]
    conditions: dict[str, filters.Condition] = {
        "eq-and-range": All((Field("user_id", "eq", "alice"), Field("created_at", "lte", 10))),
        "ne-missing-key": Field("metadata.score", "ne", 0.7),
        "nin-list-value": Field("metadata.tags", "nin", ("b",)),
        "or-not": AnyOf(
            (Not(Field("user_id", "in", ("alice", "carol"))), Field("metadata.score", "gt", 0.9))
        ),
        "icontains": Field("memory", "icontains", "GREEN"),
        "contains-case": Field("memory", "contains", "green"),
        "bool-is-not-one": Field("metadata.flag", "eq", 1),
    }
    for name, condition in conditions.items():
        yield (
            f"filter-{name}",
            Case(
                {
                    "description": FILTER_DESCRIPTION,
                    "input": {
                        "filter": to_json(filters.to_value(condition)),
                        "payloads": _json_safe(payloads),
                    },
                    "expect": {"ok": [filters.matches(condition, p) for p in payloads]},
                }
            ),
        )


FILTER_DESCRIPTION = (
    "MEM-17: the wire form, and which records it selects (each record's fields, its "
    "filterable metadata entries under `metadata`)"
)


def _json_safe(value: Any) -> Any:
    return json.loads(json.dumps(value))


def memory_cases() -> Iterator[tuple[str, Case]]:
    yield from _operation_cases()
    yield from _shard_cases()
    yield from _placement_cases()
    yield from _merge_cases()
    yield from _digest_cases()
    yield from _body_cases()
    yield from _filter_cases()

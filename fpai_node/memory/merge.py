"""What a set of operations means (specs/0007-memory.md, MEM-10..MEM-12). Pure.

A replica's shard is a set of operations. The record is its greatest-version operation; its
history is all of them in version order; two replicas compare their sets by a digest of 256
buckets, so that anti-entropy sends only the buckets that differ.
"""

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from fpai_node.memory.operations import Content, Operation, Version

BUCKETS = 256  # MEM-11: a digest of 2 KiB; a 100k-record shard differs in few buckets at once
OPKEY_DOMAIN = b"FPAI-MEMORY-OPKEY-V1\x00"


def op_key(record_id: str, version: Version) -> int:
    """MEM-11: an operation's key, the first 8 bytes (big-endian) of SHA-256 over the domain,
    the id's 16 bytes, `at` as 8 bytes and `n` as 4 bytes big-endian, and the node id."""
    data = (
        OPKEY_DOMAIN
        + bytes.fromhex(record_id.replace("-", ""))
        + version.at_ms.to_bytes(8, "big")
        + version.n.to_bytes(4, "big")
        + version.node.encode()
    )
    return int.from_bytes(hashlib.sha256(data).digest()[:8], "big")


def bucket_of(record_id: str) -> int:
    """MEM-11: the id's second byte (the first is its shard), so a record's operations share
    a bucket."""
    return int(record_id[2:4], 16)


class Digest:
    """MEM-11: per bucket, the XOR of the keys of the operations in it; kept as operations
    arrive (XOR needs no order and no recomputation)."""

    def __init__(self) -> None:
        self.buckets = [0] * BUCKETS

    def add(self, record_id: str, version: Version) -> None:
        self.buckets[bucket_of(record_id)] ^= op_key(record_id, version)

    def to_bytes(self) -> bytes:
        return b"".join(b.to_bytes(8, "big") for b in self.buckets)

    @staticmethod
    def differing(mine: bytes, theirs: bytes) -> list[int]:
        """The buckets whose digests differ (both BUCKETS * 8 bytes)."""
        return [b for b in range(BUCKETS) if mine[b * 8 : b * 8 + 8] != theirs[b * 8 : b * 8 + 8]]


def latest(operations: Iterable[Operation]) -> Operation:
    """MEM-10: the operation with the greatest version: the record as it stands."""
    return max(operations, key=lambda op: op.version)


Event = Literal["ADD", "UPDATE", "DELETE"]


@dataclass(frozen=True, slots=True)
class Change:
    """One entry of a record's history (Mem0's history item)."""

    event: Event
    old: Content | None
    new: Content | None
    operation: Operation


def history(operations: Sequence[Operation]) -> list[Change]:
    """MEM-12: the operations in version order, each as the change it made to what came
    before: an add or update of a record that did not exist (or was deleted) is an ADD, of one
    that did an UPDATE; a delete is a DELETE of what existed (a delete of nothing is kept
    out: it changed nothing)."""
    changes: list[Change] = []
    current: Content | None = None
    for op in sorted({op.version: op for op in operations}.values(), key=lambda o: o.version):
        if op.content is None:
            if current is not None:
                changes.append(Change("DELETE", current, None, op))
            current = None
            continue
        changes.append(Change("ADD" if current is None else "UPDATE", current, op.content, op))
        current = op.content
    return changes

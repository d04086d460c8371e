"""Memory records and the signed operations that write them (specs/0007-memory.md, MEM-1..MEM-9).
Pure: time comes in as an argument.

A record is never edited in place. Every write (add, update, delete) is an *operation*: an
envelope of type `memory.op` signed by the node that took the write, carrying the record's id,
a hybrid-logical-clock version and, except for a delete, the record's whole new content
(text, metadata, scope ids and vector). A replica keeps every operation; the record is what its
latest operation says (last writer wins by version), and the operations in version order are its
history. Because an operation is the whole content, replicas merge by keeping the greatest
version, in any order, any number of times: repair is a set union.
"""

import hashlib
import json
import math
import struct
import uuid
from dataclasses import dataclass
from typing import Literal

from fpai_node.identity.keys import NodeKey
from fpai_node.wire import codec
from fpai_node.wire.envelope import MAX_CLOCK_SKEW_MS, Envelope, open_envelope, seal
from fpai_node.wire.errors import MalformedFrame, WireError

OP_TYPE = "memory.op"
# MEM-1: the embedding model every vector comes from (all-MiniLM-L6-v2) has 384 dimensions.
DIMENSIONS = 384
VECTOR_BYTES = DIMENSIONS * 4  # float32, little-endian
# MEM-4: a vector is L2-normalised; float32 rounding leaves its norm within 1e-3 of 1.
NORM_TOLERANCE = 1e-3
# MEM-2: a fact is a sentence and a handoff a page or two; 32 KiB holds several pages and keeps
# an operation far below an envelope's 1 MiB.
MAX_MEMORY_BYTES = 32 * 1024
# MEM-2: Mem0 metadata is a handful of tags and ids; a handoff keeps its sections there too.
MAX_METADATA_BYTES = 16 * 1024
MAX_SCOPE_BYTES = 255  # MEM-2: a user, agent or run id, like every name in the registry
KINDS = ("memory", "handoff")  # MEM-2: a handoff is a record of a known kind (issue 15)
ACTIONS = ("add", "update", "delete")
# MEM-5: an operation lives only as long as it takes to reach the replicas; after that it is
# verified at its own timestamp (MEM-6), like a kept receipt.
OP_LIFETIME_MS = 60_000
_PAYLOAD_KEYS = frozenset({"action", "at", "content", "id", "n"})
_CONTENT_KEYS = frozenset(
    {"agent_id", "created_at", "hash", "kind", "memory", "metadata", "run_id", "user_id", "vector"}
)
_MAX_COUNTER = (1 << 32) - 1  # MEM-3: a node writes fewer than 4 billion times in a millisecond
_MAX_MS = (1 << 53) - 1  # MEM-3: an exact integer everywhere, JSON clients included


class OperationRejected(Exception):
    """An operation that breaks a rule of specs/0007; `reason` is the code vectors name."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True, order=True)
class Version:
    """MEM-3: (milliseconds, counter, node id), compared in that order."""

    at_ms: int
    n: int
    node: str


@dataclass(frozen=True, slots=True)
class Content:
    memory: str
    metadata: str  # MEM-2: a JSON object, as canonical text (sorted keys, no spaces)
    user_id: str
    agent_id: str
    run_id: str
    kind: str
    created_at_ms: int
    vector: bytes  # VECTOR_BYTES

    @property
    def hash(self) -> str:
        return memory_hash(self.memory)

    @property
    def primary_scope(self) -> tuple[str, str]:
        """MEM-7: ("user_id", id), else the agent's, else the run's."""
        for name in ("user_id", "agent_id", "run_id"):
            if value := getattr(self, name):
                return name, value
        raise AssertionError("content has a scope (checked by _content)")

    def floats(self) -> tuple[float, ...]:
        return unpack_vector(self.vector)

    def to_value(self) -> dict[str, codec.Value]:
        return {
            "agent_id": self.agent_id,
            "created_at": self.created_at_ms,
            "hash": self.hash,
            "kind": self.kind,
            "memory": self.memory,
            "metadata": self.metadata,
            "run_id": self.run_id,
            "user_id": self.user_id,
            "vector": self.vector,
        }


@dataclass(frozen=True, slots=True)
class Operation:
    id: str  # the record's id: a UUID in canonical text form
    action: Literal["add", "update", "delete"]
    version: Version
    content: Content | None  # None for a delete
    frame: bytes  # the signed envelope, kept and sent as is

    @property
    def shard(self) -> int:
        return shard_of_id(self.id)


def memory_hash(text: str) -> str:
    """MEM-2: Mem0's record hash, the MD5 of the memory text as lowercase hex (an identifier
    for dedup, not a security measure)."""
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def canonical_metadata(metadata: object) -> str:
    """MEM-2: the canonical text of a metadata object. Raises ValueError if it is not a JSON
    object of finite numbers."""
    if not isinstance(metadata, dict):
        raise ValueError("metadata must be a JSON object")
    try:
        text = json.dumps(
            metadata, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except (TypeError, ValueError, RecursionError):
        raise ValueError("metadata must be JSON: strings, finite numbers, lists, objects") from None
    if len(text.encode()) > MAX_METADATA_BYTES:
        raise ValueError(f"metadata is over {MAX_METADATA_BYTES} bytes as JSON")
    return text


def pack_vector(values: "list[float] | tuple[float, ...]") -> bytes:
    return struct.pack(f"<{DIMENSIONS}f", *values)


def unpack_vector(vector: bytes) -> tuple[float, ...]:
    return struct.unpack(f"<{DIMENSIONS}f", vector)


def seal_operation(
    key: NodeKey,
    record_id: str,
    action: Literal["add", "update", "delete"],
    version: Version,
    content: Content | None,
    *,
    seq: int,
    now_ms: int,
) -> Operation:
    """Sign one write. The version's node must be the signer (MEM-3)."""
    assert version.node == key.node_id, "a node signs only its own versions"
    payload = codec.encode(
        {
            "action": action,
            "at": version.at_ms,
            "content": None if content is None else content.to_value(),
            "id": record_id,
            "n": version.n,
        }
    )
    frame = seal(key, OP_TYPE, payload, seq=seq, now_ms=now_ms, lifetime_ms=OP_LIFETIME_MS)
    return Operation(record_id, action, version, content, frame)


def read_operation(frame: bytes, *, now_ms: int | None = None) -> Operation:
    """MEM-6: verify an operation at its own timestamp (it is kept for ever, like a receipt)
    and check every field. With `now_ms` (an operation arriving from a peer), its version may
    not be ahead of this node's clock by more than the envelope skew (`future`). Raises
    OperationRejected."""
    try:
        outer = codec.decode(frame)
        if not (isinstance(outer, list) and len(outer) == 2 and type(outer[0]) is bytes):
            raise MalformedFrame("a frame is [signed, signature]")
        header = codec.decode(outer[0])
        stamp = header.get("ts") if isinstance(header, dict) else None
        if type(stamp) is not int:
            raise MalformedFrame("the header has no timestamp")
        envelope = open_envelope(frame, now_ms=stamp, known_types={OP_TYPE}, replay_guard=None)
    except WireError as exc:
        raise OperationRejected(exc.reason, str(exc)) from None
    operation = _operation(envelope, frame)
    if now_ms is not None and operation.version.at_ms > now_ms + MAX_CLOCK_SKEW_MS:
        raise OperationRejected("future", f"version {operation.version.at_ms} ms, now {now_ms}")
    return operation


def _operation(envelope: Envelope, frame: bytes) -> Operation:
    try:
        value = codec.decode(envelope.payload)
    except MalformedFrame as exc:
        raise OperationRejected("malformed", str(exc)) from None
    if not isinstance(value, dict) or value.keys() != _PAYLOAD_KEYS:
        raise OperationRejected("malformed", f"payload keys must be {sorted(_PAYLOAD_KEYS)}")
    record_id, action, at, n = value["id"], value["action"], value["at"], value["n"]
    if action not in ACTIONS:
        raise OperationRejected("malformed", f"action must be one of {ACTIONS}")
    if (
        type(at) is not int
        or type(n) is not int
        or not (0 <= at <= _MAX_MS and 0 <= n <= _MAX_COUNTER)
    ):
        raise OperationRejected("malformed", "at and n are bounded unsigned integers (MEM-3)")
    if type(record_id) is not str or not is_record_id(record_id):
        raise OperationRejected("bad_id", "id is not a record id (MEM-1)")
    raw = value["content"]
    if action == "delete":
        if raw is not None:
            raise OperationRejected("malformed", "a delete carries no content")
        content = None
    else:
        content = _content(raw)
        if shard_of_scope(*content.primary_scope) != shard_of_id(record_id):
            raise OperationRejected("bad_shard", "the id's shard is not its scope's (MEM-7)")
    version = Version(at, n, envelope.sender)
    return Operation(record_id, action, version, content, frame)  # type: ignore[arg-type]


def _content(raw: codec.Value) -> Content:
    if not isinstance(raw, dict) or raw.keys() != _CONTENT_KEYS:
        raise OperationRejected("malformed", f"content keys must be {sorted(_CONTENT_KEYS)}")
    texts = {
        k: raw[k] for k in ("agent_id", "hash", "kind", "memory", "metadata", "run_id", "user_id")
    }
    if not all(type(v) is str for v in texts.values()):
        raise OperationRejected("malformed", "content text fields must be strings")
    memory, metadata = str(raw["memory"]), str(raw["metadata"])
    if not 0 < len(memory.encode()) <= MAX_MEMORY_BYTES:
        raise OperationRejected("too_large", f"memory must be 1..{MAX_MEMORY_BYTES} bytes")
    scopes = [str(raw[k]) for k in ("user_id", "agent_id", "run_id")]
    if not any(scopes) or any(len(s.encode()) > MAX_SCOPE_BYTES for s in scopes):
        raise OperationRejected(
            "bad_scope", f"a scope id is needed, each at most {MAX_SCOPE_BYTES} bytes"
        )
    if raw["kind"] not in KINDS:
        raise OperationRejected("malformed", f"kind must be one of {KINDS}")
    try:
        if canonical_metadata(json.loads(metadata)) != metadata:
            raise ValueError("metadata is not in canonical form")
    except (ValueError, RecursionError) as exc:
        raise OperationRejected("bad_metadata", str(exc)) from None
    created, vector = raw["created_at"], raw["vector"]
    if type(created) is not int or not 0 <= created <= _MAX_MS:
        raise OperationRejected("malformed", "created_at is a bounded unsigned integer")
    if type(vector) is not bytes or len(vector) != VECTOR_BYTES:
        raise OperationRejected("bad_vector", f"vector must be {VECTOR_BYTES} bytes")
    content = Content(
        memory, metadata, scopes[0], scopes[1], scopes[2], str(raw["kind"]), created, vector
    )
    if raw["hash"] != content.hash:
        raise OperationRejected("bad_hash", "hash is not the MD5 of memory")
    floats = content.floats()
    if (
        not all(math.isfinite(f) for f in floats)
        or abs(math.fsum(f * f for f in floats) - 1) > 2 * NORM_TOLERANCE
    ):
        raise OperationRejected("bad_vector", "the vector is not a finite unit vector (MEM-4)")
    return content


# --- ids and shards (MEM-1, MEM-7) -------------------------------------------------------

SHARDS = 64  # MEM-7: enough to spread over hundreds of nodes at R=3, few enough to open all
SHARD_DOMAIN = b"FPAI-MEMORY-SHARD-V1\x00"


def shard_of_scope(name: str, value: str) -> int:
    """MEM-7: SHA-256 of the domain, the scope's name, a zero byte and its id, first two bytes
    big-endian, modulo SHARDS."""
    digest = hashlib.sha256(SHARD_DOMAIN + name.encode() + b"\x00" + value.encode()).digest()
    return int.from_bytes(digest[:2], "big") % SHARDS


def new_record_id(shard: int, random16: bytes) -> str:
    """MEM-1: a version-8 UUID whose first byte is the record's shard, so that a request by id
    alone finds the shard; the other bits come from `random16` (the version and variant bits
    overwritten)."""
    raw = bytearray(random16)
    raw[0] = shard
    raw[6] = (raw[6] & 0x0F) | 0x80
    raw[8] = (raw[8] & 0x3F) | 0x80
    return str(uuid.UUID(bytes=bytes(raw)))


def is_record_id(text: str) -> bool:
    """MEM-1: canonical lowercase UUID text, version 8, RFC variant, first byte below SHARDS."""
    if len(text) != 36:
        return False
    try:
        parsed = uuid.UUID(text)
    except ValueError:
        return False
    return (
        str(parsed) == text
        and parsed.version == 8
        and parsed.variant == uuid.RFC_4122
        and parsed.bytes[0] < SHARDS
    )


def shard_of_id(record_id: str) -> int:
    return int(record_id[:2], 16)

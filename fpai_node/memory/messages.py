"""The memory routes of the peer channel and their bodies (specs/0007-memory.md, MEM-13..MEM-16).
Pure.

Every request and answer body is the canonical MessagePack of a map with exactly the keys given
here. Records travel as the signed operations that wrote them, so whoever receives one checks
its signature and content (MEM-6) and computes its score itself: a replica can leave a record
out of an answer, but not forge or alter one.
"""

from dataclasses import dataclass
from typing import Self

from fpai_node.identity.nodeid import is_node_id
from fpai_node.memory import filters
from fpai_node.memory.filters import Condition
from fpai_node.memory.merge import BUCKETS
from fpai_node.memory.operations import SHARDS, VECTOR_BYTES, Version, is_record_id
from fpai_node.wire import codec
from fpai_node.wire.errors import MalformedFrame

WRITE_PATH = "/fpai/peer/v1/memory/write"
SEARCH_PATH = "/fpai/peer/v1/memory/search"
GET_PATH = "/fpai/peer/v1/memory/get"
SCAN_PATH = "/fpai/peer/v1/memory/scan"
HISTORY_PATH = "/fpai/peer/v1/memory/history"
DIGEST_PATH = "/fpai/peer/v1/memory/digest"
FETCH_PATH = "/fpai/peer/v1/memory/fetch"

MAX_BODY_BYTES = 8 << 20  # MEM-16: a write batch or an answer; an operation is at most ~50 KiB
MAX_OPS = 128  # MEM-13: operations in one write or fetch answer: at most ~6.4 MiB
MAX_LIMIT = 100  # MEM-14: records one search, scan or get asks for: Mem0 pages hold 100
MAX_KEYS = 8192  # MEM-15: operation keys one digest answer lists; the rest wait for next round
MAX_FETCH_KEYS = MAX_OPS
# MEM-14: operations in a read answer: a history is every operation of a record (the newest
# that fit in MAX_BODY_BYTES); the others hold at most MAX_LIMIT.
MAX_ANSWER_OPS = 4096


class BadRequest(ValueError):
    """A body that breaks MEM-13..MEM-16; `reason` is the code answered with 400."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def _map(body: bytes, keys: frozenset[str]) -> dict[str, codec.Value]:
    try:
        value = codec.decode(body)
    except MalformedFrame as exc:
        raise BadRequest("malformed", str(exc)) from None
    if not isinstance(value, dict) or value.keys() != keys:
        raise BadRequest("malformed", f"keys must be exactly {sorted(keys)}")
    return value


def _frames(value: codec.Value, limit: int) -> list[bytes]:
    if (
        not isinstance(value, list)
        or len(value) > limit
        or not all(type(f) is bytes for f in value)
    ):
        raise BadRequest("malformed", f"ops is a list of at most {limit} byte strings")
    return value  # type: ignore[return-value]


def _shards(value: codec.Value) -> tuple[int, ...]:
    if (
        not isinstance(value, list)
        or not 0 < len(value) <= SHARDS
        or not all(type(s) is int and 0 <= s < SHARDS for s in value)
        or len(set(value)) != len(value)
    ):
        raise BadRequest("malformed", f"shards is a list of distinct shard numbers 0..{SHARDS - 1}")
    return tuple(value)  # type: ignore[arg-type]


def _limit(value: codec.Value) -> int:
    if type(value) is not int or not 0 < value <= MAX_LIMIT:
        raise BadRequest("malformed", f"limit is 1..{MAX_LIMIT}")
    return value


def _filter(value: codec.Value) -> Condition | None:
    if value is None:
        return None
    try:
        return filters.from_value(value)
    except filters.BadFilter as exc:
        raise BadRequest("bad_filter", str(exc)) from None


def _ids(value: codec.Value) -> tuple[str, ...]:
    if not isinstance(value, list) or not 0 < len(value) <= MAX_LIMIT:
        raise BadRequest("malformed", f"ids is a list of 1..{MAX_LIMIT} record ids")
    if not all(type(i) is str and is_record_id(i) for i in value):
        raise BadRequest("bad_id", "ids are record ids (MEM-1)")
    return tuple(value)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Ops:
    """A write request (MEM-13) and the answer of search, get, scan, history and fetch."""

    ops: tuple[bytes, ...]

    def encode(self) -> bytes:
        return codec.encode({"ops": list(self.ops)})

    @classmethod
    def decode(cls, body: bytes, limit: int = MAX_LIMIT) -> Self:
        return cls(tuple(_frames(_map(body, frozenset({"ops"}))["ops"], limit)))


@dataclass(frozen=True, slots=True)
class Stored:
    """The answer to a write: how many of its operations were new to the replica."""

    stored: int

    def encode(self) -> bytes:
        return codec.encode({"stored": self.stored})

    @classmethod
    def decode(cls, body: bytes) -> Self:
        stored = _map(body, frozenset({"stored"}))["stored"]
        if type(stored) is not int or not 0 <= stored <= MAX_OPS:
            raise BadRequest("malformed", "stored is 0..256")
        return cls(stored)


@dataclass(frozen=True, slots=True)
class Search:
    """MEM-14: the `limit` records of these shards closest to `vector` that `where` selects."""

    shards: tuple[int, ...]
    vector: bytes
    where: Condition | None
    limit: int

    def encode(self) -> bytes:
        return codec.encode(
            {
                "filter": None if self.where is None else filters.to_value(self.where),
                "limit": self.limit,
                "shards": list(self.shards),
                "vector": self.vector,
            }
        )

    @classmethod
    def decode(cls, body: bytes) -> Self:
        value = _map(body, frozenset({"filter", "limit", "shards", "vector"}))
        vector = value["vector"]
        if type(vector) is not bytes or len(vector) != VECTOR_BYTES:
            raise BadRequest("malformed", f"vector is {VECTOR_BYTES} bytes")
        return cls(
            _shards(value["shards"]), vector, _filter(value["filter"]), _limit(value["limit"])
        )


@dataclass(frozen=True, slots=True)
class Scan:
    """MEM-14: up to `limit` records of these shards that `where` selects, in id order, from
    the first id above `after` ("" for the start)."""

    shards: tuple[int, ...]
    where: Condition | None
    limit: int
    after: str = ""

    def encode(self) -> bytes:
        return codec.encode(
            {
                "after": self.after,
                "filter": None if self.where is None else filters.to_value(self.where),
                "limit": self.limit,
                "shards": list(self.shards),
            }
        )

    @classmethod
    def decode(cls, body: bytes) -> Self:
        value = _map(body, frozenset({"after", "filter", "limit", "shards"}))
        after = value["after"]
        if after != "" and not (type(after) is str and is_record_id(after)):
            raise BadRequest("bad_id", 'after is "" or a record id')
        return cls(
            _shards(value["shards"]), _filter(value["filter"]), _limit(value["limit"]), str(after)
        )


@dataclass(frozen=True, slots=True)
class Get:
    """MEM-14: the standing operation of each of these records (a tombstone included)."""

    ids: tuple[str, ...]

    def encode(self) -> bytes:
        return codec.encode({"ids": list(self.ids)})

    @classmethod
    def decode(cls, body: bytes) -> Self:
        return cls(_ids(_map(body, frozenset({"ids"}))["ids"]))


@dataclass(frozen=True, slots=True)
class History:
    """MEM-14: every operation of one record."""

    id: str

    def encode(self) -> bytes:
        return codec.encode({"id": self.id})

    @classmethod
    def decode(cls, body: bytes) -> Self:
        return cls(_ids([_map(body, frozenset({"id"}))["id"]])[0])


Key = tuple[str, Version]


def _key_value(key: Key) -> codec.Value:
    record_id, version = key
    return [record_id, version.at_ms, version.n, version.node]


def _key(value: codec.Value) -> Key:
    match value:
        case [str(record_id), int(at), int(n), str(node)] if (
            is_record_id(record_id) and 0 <= at < 1 << 53 and 0 <= n < 1 << 32 and is_node_id(node)
        ):
            return record_id, Version(at, n, node)
    raise BadRequest("malformed", "a key is [record id, at, n, node id]")


@dataclass(frozen=True, slots=True)
class DigestRequest:
    """MEM-15: the asker's digest of one shard."""

    shard: int
    digest: bytes

    def encode(self) -> bytes:
        return codec.encode({"digest": self.digest, "shard": self.shard})

    @classmethod
    def decode(cls, body: bytes) -> Self:
        value = _map(body, frozenset({"digest", "shard"}))
        digest = value["digest"]
        if type(digest) is not bytes or len(digest) != BUCKETS * 8:
            raise BadRequest("malformed", f"digest is {BUCKETS * 8} bytes")
        return cls(_shards([value["shard"]])[0], digest)


@dataclass(frozen=True, slots=True)
class DigestAnswer:
    """MEM-15: the buckets that differ, and the answerer's operation keys in them (at most
    MAX_KEYS: the buckets listed are those whose keys are all given)."""

    buckets: tuple[int, ...]
    keys: tuple[Key, ...]

    def encode(self) -> bytes:
        return codec.encode(
            {"buckets": list(self.buckets), "keys": [_key_value(k) for k in self.keys]}
        )

    @classmethod
    def decode(cls, body: bytes) -> Self:
        value = _map(body, frozenset({"buckets", "keys"}))
        buckets, keys = value["buckets"], value["keys"]
        if not isinstance(buckets, list) or not all(
            type(b) is int and 0 <= b < BUCKETS for b in buckets
        ):
            raise BadRequest("malformed", f"buckets are 0..{BUCKETS - 1}")
        if not isinstance(keys, list) or len(keys) > MAX_KEYS:
            raise BadRequest("malformed", f"at most {MAX_KEYS} keys")
        return cls(tuple(buckets), tuple(_key(k) for k in keys))  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Fetch:
    """MEM-15: the operations with these keys, from one shard."""

    shard: int
    keys: tuple[Key, ...]

    def encode(self) -> bytes:
        return codec.encode({"keys": [_key_value(k) for k in self.keys], "shard": self.shard})

    @classmethod
    def decode(cls, body: bytes) -> Self:
        value = _map(body, frozenset({"keys", "shard"}))
        keys = value["keys"]
        if not isinstance(keys, list) or not 0 < len(keys) <= MAX_FETCH_KEYS:
            raise BadRequest("malformed", f"keys is a list of 1..{MAX_FETCH_KEYS} keys")
        return cls(_shards([value["shard"]])[0], tuple(_key(k) for k in keys))

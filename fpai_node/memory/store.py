"""The vector store a shard's live records are indexed in (DESIGN.md principle 3: VectorStore).

A store holds the live records of one shard (tombstones and history live in the shard's
operation log, not here): a 384-dimension unit vector and a flat payload per record id. Two
implementations: `edge_store.EdgeStore` (Qdrant's embedded engine, in process, the default) and
`client_store.ClientStore` (qdrant-client: its local mode, or a Qdrant server by URL).

The store is blocking and not thread-safe: the shard that owns it calls it from one thread.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from fpai_node.memory.filters import All, AnyOf, Condition, Field, Not, Scalar

PayloadValue = str | int | float | bool | None | list[str] | dict[str, "PayloadValue"]
Payload = Mapping[str, PayloadValue]
"""`memory`, `hash`, `kind`, `user_id`, `agent_id`, `run_id`, `created_at` and `updated_at`
(ms since the epoch), `metadata_json` (the metadata's canonical text) and `metadata`: the
metadata entries a filter can name (`metadata.<key>`: strings, numbers, booleans, lists of
strings)."""

# Payload keys with a keyword index, so a scoped search or listing filters through an index
# instead of scanning the shard (Mem0's filters almost always name one of them).
INDEXED_KEYWORDS = ("user_id", "agent_id", "run_id", "kind")
# Payload keys with an integer index, for date-range filters.
INDEXED_INTEGERS = ("created_at", "updated_at")
# Records per read when a store applies a filter itself: few calls, bounded memory.
SCROLL_PAGE = 1024
# Doubles hold every integer below this; Qdrant compares numbers as doubles.
EXACT_BELOW = 2**53

T = TypeVar("T")


class Untranslatable(Exception):
    """A condition Qdrant cannot express exactly: the store applies filters.matches itself."""


def exact_number(value: Scalar) -> float:
    """`value` as a bound Qdrant compares exactly with every stored number."""
    if isinstance(value, bool | str) or abs(value) >= EXACT_BELOW:
        raise Untranslatable(value)
    return float(value)


def translatable_parts(where: Condition, translate: Callable[[Condition], T]) -> list[T]:
    """The top-level AND parts of `where` that `translate` can express: together, a superset of
    what `where` selects, to narrow the records a store then tests one by one."""
    native: list[T] = []
    for part in where.parts if isinstance(where, All) else (where,):
        try:
            native.append(translate(part))
        except Untranslatable:
            continue
    return native


def keys_named(where: Condition) -> list[str]:
    """The payload keys `where` names: all filters.matches reads of a record."""
    match where:
        case All(parts) | AnyOf(parts):
            return [key for part in parts for key in keys_named(part)]
        case Not(part):
            return keys_named(part)
        case Field(key):
            return [key]
    raise AssertionError(where)


@dataclass(frozen=True, slots=True)
class StoredPoint:
    id: str  # a UUID in its canonical text form
    vector: Sequence[float]  # DIMENSIONS floats, L2-normalised
    payload: Payload


@dataclass(frozen=True, slots=True)
class Hit:
    id: str
    score: float  # cosine similarity, higher is closer
    payload: Payload


class VectorStore(Protocol):
    def upsert(self, points: Sequence[StoredPoint]) -> None:
        """Insert or replace these records (by id)."""
        ...

    def delete(self, ids: Sequence[str]) -> None:
        """Remove these records; ids not held are ignored."""
        ...

    def search(
        self, vector: Sequence[float], limit: int, where: Condition | None, threshold: float | None
    ) -> list[Hit]:
        """The `limit` records closest to `vector` among those `where` selects, best first;
        with `threshold`, only those scoring at least that."""
        ...

    def get(self, ids: Sequence[str]) -> list[Hit]:
        """The records held among `ids` (score 0), in no particular order."""
        ...

    def scan(self, where: Condition | None, limit: int, after: str = "") -> list[Hit]:
        """Up to `limit` records `where` selects (score 0), in id order, from the first id
        above `after` (a page of a listing)."""
        ...

    def count(self, where: Condition | None = None) -> int: ...

    def flush(self) -> None:
        """Make every write so far durable on disk."""
        ...

    def close(self) -> None: ...

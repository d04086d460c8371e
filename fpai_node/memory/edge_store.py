"""A shard's records in Qdrant's embedded engine (`qdrant-edge-py`), in process, in one folder
(the engine locks it: one process owns a store).

The filter tree becomes Qdrant's `Filter` with the reference semantics (filters.matches). A key
the record lacks is equal to nothing, so `ne` and `nin` are a `must_not` of the match (Qdrant's
MatchExcept drops such records, and keeps a list holding the value); a number is equal as the
range [v, v] (MatchValue(1) would miss a stored 1.0). A filter naming what the engine cannot
express exactly, `icontains` (Qdrant has no case-insensitive substring match), equality to a
boolean (the binding's MatchValue turns True into 1) or a number of 2^53 or more (ranges compare
as doubles), is applied here: the records its other top-level AND parts select are read (the
keys it names), the whole filter is tried on each, and the engine is given the ids that passed.
That read is the cost: about a second for an unscoped `icontains` over 100,000 records,
milliseconds within one user's.
"""

import uuid
from collections.abc import Sequence
from pathlib import Path

import qdrant_edge as q

from fpai_node.memory.filters import All, AnyOf, Condition, Field, Not, Scalar, matches
from fpai_node.memory.operations import DIMENSIONS
from fpai_node.memory.store import (
    INDEXED_INTEGERS,
    INDEXED_KEYWORDS,
    SCROLL_PAGE,
    Hit,
    StoredPoint,
    Untranslatable,
    exact_number,
    keys_named,
    translatable_parts,
)

# The shard calls its store from one thread, and a node opens up to 64 stores: the engine's
# default is a pool of 4 search threads per CPU in each (it gains nothing on one segment).
SEARCH_THREADS = 1
# Integers are filtered by range only (equality is the range [v, v]): without the lookup half,
# the index of a key holds half the pages, which the engine keeps in memory.
RANGES = q.IntegerIndexParams(lookup=False, range=True)
INDEXES: list[tuple[str, q.PayloadSchemaType | q.IntegerIndexParams]] = [
    *((key, q.PayloadSchemaType.Keyword) for key in INDEXED_KEYWORDS),
    *((key, RANGES) for key in INDEXED_INTEGERS),
]

Native = q.Filter | q.FieldCondition | q.HasIdCondition  # what a Condition translates to


class EdgeStore:
    def __init__(self, shard: q.EdgeShard) -> None:
        self._shard = shard

    @classmethod
    def open(cls, path: Path) -> "EdgeStore":
        """The shard at `path`, created if the folder is absent or empty; either way with the
        payload indexes (an index missing after a crash during creation is added here)."""
        config = q.EdgeConfig(
            vectors=q.EdgeVectorParams(size=DIMENSIONS, distance=q.Distance.Cosine),
            max_search_threads=SEARCH_THREADS,
        )
        if path.is_dir() and any(path.iterdir()):
            shard = q.EdgeShard.load(str(path), config)  # the config checks the vector size
        else:
            shard = q.EdgeShard.create(str(path), config)
        indexed = shard.info().payload_schema
        for key, schema in INDEXES:
            if key not in indexed:
                shard.update(q.UpdateOperation.create_field_index(key, schema))
        return cls(shard)

    def upsert(self, points: Sequence[StoredPoint]) -> None:
        self._shard.update(
            q.UpdateOperation.upsert_points(
                [q.Point(uuid.UUID(p.id), list(p.vector), dict(p.payload)) for p in points]
            )
        )

    def delete(self, ids: Sequence[str]) -> None:
        self._shard.update(q.UpdateOperation.delete_points([uuid.UUID(i) for i in ids]))

    def search(
        self, vector: Sequence[float], limit: int, where: Condition | None, threshold: float | None
    ) -> list[Hit]:
        found = self._shard.query(
            q.QueryRequest(
                limit=limit,
                query=q.Query.Nearest(list(vector)),
                filter=self._filter(where),
                score_threshold=threshold,
                with_payload=True,
            )
        )
        return [Hit(str(p.id), p.score, p.payload or {}) for p in found]

    def get(self, ids: Sequence[str]) -> list[Hit]:
        records = self._shard.retrieve([uuid.UUID(i) for i in ids], True, False)
        return [Hit(str(r.id), 0.0, r.payload or {}) for r in records]

    def scan(self, where: Condition | None, limit: int, after: str = "") -> list[Hit]:
        records, _ = self._shard.scroll(
            q.ScrollRequest(
                offset=uuid.UUID(after) if after else None,
                limit=limit + 1,  # the offset is inclusive: `after` itself may come back
                filter=self._filter(where),
                with_payload=True,
            )
        )
        hits = [Hit(str(r.id), 0.0, r.payload or {}) for r in records]
        return [h for h in hits if h.id > after][:limit]

    def count(self, where: Condition | None = None) -> int:
        return self._shard.count(q.CountRequest(exact=True, filter=self._filter(where)))

    def flush(self) -> None:
        """Write the segments out and sync them. Before this, writes are in the engine's
        write-ahead log, unsynced: they survive the process being killed, not the machine."""
        self._shard.flush()

    def optimize(self) -> None:
        """Merge segments and build the HNSW index. The engine never does it by itself: until
        then every search compares the query with every record."""
        self._shard.optimize()

    def close(self) -> None:
        self._shard.close()

    def _filter(self, where: Condition | None) -> q.Filter | None:
        """`where` as an engine filter: translated, or the ids of the records it selects."""
        if where is None:
            return None
        try:
            return _filter(where)
        except Untranslatable:
            pass
        native: list[q.ConditionType] = [*translatable_parts(where, _condition)]
        rough = q.Filter(must=native) if native else None
        named = q.PayloadSelector.Include(keys_named(where))
        offset, chosen = None, set[uuid.UUID | int | str]()
        while True:
            records, offset = self._shard.scroll(
                q.ScrollRequest(offset=offset, limit=SCROLL_PAGE, filter=rough, with_payload=named)
            )
            chosen.update(r.id for r in records if matches(where, r.payload or {}))
            if offset is None:
                return q.Filter(must=[q.HasIdCondition(chosen)])


def _filter(where: Condition) -> q.Filter:
    condition = _condition(where)
    return condition if isinstance(condition, q.Filter) else q.Filter(must=[condition])


def _condition(where: Condition) -> Native:
    match where:
        case All(parts):
            return q.Filter(must=[_condition(p) for p in parts])
        case AnyOf(()):
            return q.HasIdCondition(set())  # Qdrant reads an empty `should` as no condition
        case AnyOf(parts):
            return q.Filter(should=[_condition(p) for p in parts])
        case Not(part):
            return q.Filter(must_not=[_condition(part)])
        case Field(key, "ne", value):
            return q.Filter(must_not=[_field(key, "eq", value)])
        case Field(key, "nin", value):
            return q.Filter(must_not=[_field(key, "in", value)])
        case Field(key, op, value):
            return _field(key, op, value)
    raise AssertionError(where)


def _field(key: str, op: str, value: Scalar | tuple[Scalar, ...]) -> Native:
    if op == "in":
        values = value if isinstance(value, tuple) else (value,)
        if all(isinstance(v, str) for v in values):
            return q.FieldCondition(key, match=q.MatchAny([str(v) for v in values]))
        return q.Filter(should=[_field(key, "eq", v) for v in values])
    if isinstance(value, tuple):
        raise Untranslatable(op)  # a list outside in/nin: filters.matches decides
    if op == "eq" and isinstance(value, str):
        return q.FieldCondition(key, match=q.MatchValue(value))
    if op == "eq":
        number = exact_number(value)
        return q.FieldCondition(key, range=q.RangeFloat(gte=number, lte=number))
    if op in ("gt", "gte", "lt", "lte"):
        return q.FieldCondition(key, range=q.RangeFloat(**{op: exact_number(value)}))
    if op == "contains":
        return q.FieldCondition(key, match=q.MatchSubstring(str(value)))
    raise Untranslatable(op)  # icontains

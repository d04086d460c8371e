"""A shard's records in Qdrant's embedded engine (`qdrant-edge-py`), in process, in one folder.

The filter tree becomes Qdrant's `Filter`. Qdrant has no case-insensitive substring match, so a
filter holding `icontains` (or an equality to a float or a boolean, which the binding's
MatchValue cannot express) is
answered exactly the slow way: the shard's records that the rest of the filter selects are
scanned and the whole filter applied here (filters.matches, the reference semantics).
"""

import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import qdrant_edge as q

from fpai_node.memory.filters import All, AnyOf, Condition, Field, Not, matches
from fpai_node.memory.operations import DIMENSIONS
from fpai_node.memory.store import (
    INDEXED_INTEGERS,
    INDEXED_KEYWORDS,
    Hit,
    StoredPoint,
)

SCROLL_PAGE = 1024  # records per scroll step when a filter is applied here


class Untranslatable(Exception):
    """A condition Qdrant's filter cannot express exactly."""


class EdgeStore:
    def __init__(self, shard: q.EdgeShard) -> None:
        self._shard = shard

    @classmethod
    def open(cls, path: Path) -> "EdgeStore":
        """The shard at `path`, created with its payload indexes if it does not exist."""
        if path.exists() and any(path.iterdir()):
            return cls(q.EdgeShard.load(str(path)))
        config = q.EdgeConfig(
            vectors=q.EdgeVectorParams(size=DIMENSIONS, distance=q.Distance.Cosine)
        )
        shard = q.EdgeShard.create(str(path), config)
        for key in INDEXED_KEYWORDS:
            shard.update(q.UpdateOperation.create_field_index(key, q.PayloadSchemaType.Keyword))
        for key in INDEXED_INTEGERS:
            shard.update(q.UpdateOperation.create_field_index(key, q.PayloadSchemaType.Integer))
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
        try:
            native = None if where is None else _filter(where)
        except Untranslatable:
            return self._search_here(vector, limit, where, threshold)
        found = self._shard.query(
            q.QueryRequest(
                limit=limit,
                query=q.Query.Nearest(list(vector)),
                filter=native,
                score_threshold=threshold,
                with_payload=True,
            )
        )
        return [Hit(str(p.id), float(p.score), p.payload or {}) for p in found]

    def get(self, ids: Sequence[str]) -> list[Hit]:
        records = self._shard.retrieve([uuid.UUID(i) for i in ids], True, False)
        return [Hit(str(r.id), 0.0, r.payload or {}) for r in records]

    def scan(self, where: Condition | None, limit: int, after: str = "") -> list[Hit]:
        try:
            native = None if where is None else _filter(where)
        except Untranslatable:
            assert where is not None
            chosen = (
                h for h in self._scroll(_prefilter(where), after=after) if matches(where, h.payload)
            )
            return [h for _, h in zip(range(limit), chosen, strict=False)]
        records, _ = self._shard.scroll(
            q.ScrollRequest(
                offset=uuid.UUID(after) if after else None,
                limit=limit + 1,  # the offset is inclusive: `after` itself may come back
                filter=native,
                with_payload=True,
            )
        )
        hits = [Hit(str(r.id), 0.0, r.payload or {}) for r in records]
        return [h for h in hits if h.id > after][:limit]

    def count(self, where: Condition | None = None) -> int:
        try:
            native = None if where is None else _filter(where)
        except Untranslatable:
            assert where is not None
            return sum(1 for h in self._scroll(_prefilter(where)) if matches(where, h.payload))
        return int(self._shard.count(q.CountRequest(exact=True, filter=native)))

    def flush(self) -> None:
        self._shard.flush()

    def optimize(self) -> None:
        """Build the HNSW index now (the engine otherwise searches new segments exhaustively)."""
        self._shard.optimize()

    def close(self) -> None:
        self._shard.close()

    def _search_here(
        self, vector: Sequence[float], limit: int, where: Condition | None, threshold: float | None
    ) -> list[Hit]:
        assert where is not None
        hits = []
        for hit, stored in self._scroll(_prefilter(where), with_vector=True):
            if matches(where, hit.payload):
                score = sum(a * b for a, b in zip(vector, stored, strict=True))
                if threshold is None or score >= threshold:
                    hits.append(Hit(hit.id, score, hit.payload))
        hits.sort(key=lambda h: (-h.score, h.id))
        return hits[:limit]

    def _scroll(
        self, native: q.Filter | None, with_vector: bool = False, after: str = ""
    ) -> Iterator[Any]:
        offset: Any = uuid.UUID(after) if after else None
        while True:
            records, offset = self._shard.scroll(
                q.ScrollRequest(
                    offset=offset,
                    limit=SCROLL_PAGE,
                    filter=native,
                    with_payload=True,
                    with_vector=with_vector,
                )
            )
            for r in records:
                hit = Hit(str(r.id), 0.0, r.payload or {})
                if hit.id > after:
                    yield (hit, _dense(r.vector)) if with_vector else hit
            if offset is None:
                return


def _dense(vector: object) -> list[float]:
    if isinstance(vector, dict):  # the unnamed default vector
        vector = next(iter(vector.values()))
    assert isinstance(vector, list)
    return [float(x) for x in vector]


def _prefilter(where: Condition) -> q.Filter | None:
    """The top-level AND parts Qdrant can express: a superset of what `where` selects."""
    parts = where.parts if isinstance(where, All) else (where,)
    native = []
    for part in parts:
        try:
            native.append(_condition(part))
        except Untranslatable:
            continue
    return q.Filter(must=native) if native else None


def _filter(where: Condition) -> q.Filter:
    condition = _condition(where)
    return condition if isinstance(condition, q.Filter) else q.Filter(must=[condition])


def _condition(where: Condition) -> Any:
    match where:
        case All(parts):
            return q.Filter(must=[_condition(p) for p in parts])
        case AnyOf(parts):
            return q.Filter(should=[_condition(p) for p in parts])
        case Not(part):
            return q.Filter(must_not=[_condition(part)])
        case Field(key, op, value):
            return _field(key, op, value)
    raise AssertionError(where)


def _field(key: str, op: str, value: object) -> Any:
    if op == "ne":
        return q.Filter(must_not=[_field(key, "eq", value)])
    if op == "nin":
        return q.Filter(must_not=[_field(key, "in", value)])
    if op == "eq":
        if isinstance(value, float | bool):
            # MatchValue takes no float, and the binding matches a boolean as the integer it is
            raise Untranslatable(key)
        return q.FieldCondition(key, match=q.MatchValue(value))  # type: ignore[arg-type]
    if op == "in":
        assert isinstance(value, tuple)
        if all(type(v) is str for v in value) or all(type(v) is int for v in value):
            return q.FieldCondition(key, match=q.MatchAny(list(value)))
        return q.Filter(should=[_field(key, "eq", v) for v in value])
    if op == "contains":
        return q.FieldCondition(key, match=q.MatchSubstring(str(value)))
    if op in ("gt", "gte", "lt", "lte"):
        return q.FieldCondition(key, range=q.RangeFloat(**{op: float(value)}))  # type: ignore[arg-type]
    raise Untranslatable(op)  # icontains

"""A shard's records in Qdrant through `qdrant-client`: its local mode (tests, and the baseline
benchmarks/memory.py compares with), or a Qdrant server or cluster by URL (`memory_qdrant_url`)
for operators whose memory outgrows a node's disk. One collection per shard.

Filters translate as in edge_store; what Qdrant cannot express exactly (`icontains`, equality to
a float or a boolean) is applied here over the records the rest of the filter selects.
"""

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from qdrant_client import QdrantClient
from qdrant_client import models as qm

from fpai_node.memory.filters import All, AnyOf, Condition, Field, Not, matches
from fpai_node.memory.operations import DIMENSIONS
from fpai_node.memory.store import INDEXED_INTEGERS, INDEXED_KEYWORDS, Hit, StoredPoint

LOCAL_COLLECTION = "shard"
SCROLL_PAGE = 1024  # records per scroll step when a filter is applied here


class Untranslatable(Exception):
    """A condition Qdrant's filter cannot express exactly."""


class ClientStore:
    def __init__(self, client: QdrantClient, collection: str, *, indexed: bool) -> None:
        """`indexed`: create payload indexes (a server uses them; local mode ignores them)."""
        self._client = client
        self._collection = collection
        if not client.collection_exists(collection):
            client.create_collection(
                collection,
                vectors_config=qm.VectorParams(size=DIMENSIONS, distance=qm.Distance.COSINE),
            )
            for key in INDEXED_KEYWORDS if indexed else ():
                client.create_payload_index(collection, key, qm.PayloadSchemaType.KEYWORD)
            for key in INDEXED_INTEGERS if indexed else ():
                client.create_payload_index(collection, key, qm.PayloadSchemaType.INTEGER)

    @classmethod
    def local(cls, path: Path) -> "ClientStore":
        return cls(QdrantClient(path=str(path)), LOCAL_COLLECTION, indexed=False)

    @classmethod
    def remote(cls, url: str, collection: str, api_key: str | None = None) -> "ClientStore":
        return cls(QdrantClient(url=url, api_key=api_key), collection, indexed=True)

    def upsert(self, points: Sequence[StoredPoint]) -> None:
        self._client.upsert(
            self._collection,
            [
                qm.PointStruct(id=p.id, vector=list(p.vector), payload=dict(p.payload))
                for p in points
            ],
            wait=True,
        )

    def delete(self, ids: Sequence[str]) -> None:
        self._client.delete(self._collection, qm.PointIdsList(points=list(ids)), wait=True)

    def search(
        self, vector: Sequence[float], limit: int, where: Condition | None, threshold: float | None
    ) -> list[Hit]:
        try:
            native = None if where is None else _filter(where)
        except Untranslatable:
            return self._search_here(vector, limit, where, threshold)
        found = self._client.query_points(
            self._collection,
            query=list(vector),
            limit=limit,
            query_filter=native,
            score_threshold=threshold,
            with_payload=True,
        ).points
        return [Hit(str(p.id), float(p.score), p.payload or {}) for p in found]

    def get(self, ids: Sequence[str]) -> list[Hit]:
        records = self._client.retrieve(self._collection, list(ids), with_payload=True)
        return [Hit(str(r.id), 0.0, r.payload or {}) for r in records]

    def scan(self, where: Condition | None, limit: int, after: str = "") -> list[Hit]:
        try:
            native = None if where is None else _filter(where)
        except Untranslatable:
            assert where is not None
            chosen = (
                h
                for h, _ in self._scroll(_prefilter(where), after=after)
                if matches(where, h.payload)
            )
            return [h for _, h in zip(range(limit), chosen, strict=False)]
        records, _ = self._client.scroll(
            self._collection,
            scroll_filter=native,
            offset=after or None,
            limit=limit + 1,  # the offset is inclusive: `after` itself may come back
            with_payload=True,
        )
        hits = [Hit(str(r.id), 0.0, r.payload or {}) for r in records]
        return [h for h in hits if h.id > after][:limit]

    def count(self, where: Condition | None = None) -> int:
        try:
            native = None if where is None else _filter(where)
        except Untranslatable:
            assert where is not None
            return sum(1 for h, _ in self._scroll(_prefilter(where)) if matches(where, h.payload))
        return int(self._client.count(self._collection, count_filter=native, exact=True).count)

    def flush(self) -> None:
        """Every write waited for the server (`wait=True`); local mode persists as it goes."""

    def close(self) -> None:
        self._client.close()

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
        self, native: qm.Filter | None, with_vector: bool = False, after: str = ""
    ) -> Iterator[tuple[Hit, list[float]]]:
        offset: Any = after or None
        while True:
            records, offset = self._client.scroll(
                self._collection,
                scroll_filter=native,
                limit=SCROLL_PAGE,
                offset=offset,
                with_payload=True,
                with_vectors=with_vector,
            )
            for r in records:
                vector = r.vector if isinstance(r.vector, list) else []
                if str(r.id) > after:
                    yield Hit(str(r.id), 0.0, r.payload or {}), [float(x) for x in vector]  # type: ignore[arg-type]
            if offset is None:
                return


def _prefilter(where: Condition) -> qm.Filter | None:
    """The top-level AND parts Qdrant can express: a superset of what `where` selects."""
    parts = where.parts if isinstance(where, All) else (where,)
    native: list[Any] = []
    for part in parts:
        try:
            native.append(_condition(part))
        except Untranslatable:
            continue
    return qm.Filter(must=native) if native else None


def _filter(where: Condition) -> qm.Filter:
    condition = _condition(where)
    return condition if isinstance(condition, qm.Filter) else qm.Filter(must=[condition])


def _condition(where: Condition) -> Any:
    match where:
        case All(parts):
            return qm.Filter(must=[_condition(p) for p in parts])
        case AnyOf(parts):
            return qm.Filter(should=[_condition(p) for p in parts])
        case Not(part):
            return qm.Filter(must_not=[_condition(part)])
        case Field(key, op, value):
            return _field(key, op, value)
    raise AssertionError(where)


def _field(key: str, op: str, value: object) -> Any:
    if op == "ne":
        return qm.Filter(must_not=[_field(key, "eq", value)])
    if op == "nin":
        return qm.Filter(must_not=[_field(key, "in", value)])
    if op == "eq":
        if isinstance(value, float | bool):
            raise Untranslatable(key)
        return qm.FieldCondition(key=key, match=qm.MatchValue(value=value))  # type: ignore[arg-type]
    if op == "in":
        assert isinstance(value, tuple)
        if all(type(v) is str for v in value) or all(type(v) is int for v in value):
            return qm.FieldCondition(key=key, match=qm.MatchAny(any=list(value)))
        return qm.Filter(should=[_field(key, "eq", v) for v in value])
    if op == "contains":
        return qm.FieldCondition(key=key, match=qm.MatchSubstring(substring=str(value)))
    if op in ("gt", "gte", "lt", "lte"):
        return qm.FieldCondition(key=key, range=qm.Range(**{op: float(value)}))  # type: ignore[arg-type]
    raise Untranslatable(op)  # icontains

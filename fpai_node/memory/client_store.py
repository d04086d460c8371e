"""A shard's records in Qdrant through `qdrant-client`: its local mode (tests, and the baseline
benchmarks/memory.py compares with), or a Qdrant server or cluster by URL (`memory_qdrant_url`)
for operators whose memory outgrows a node's disk. One collection per shard.

Filters translate as in edge_store, with the same reference semantics, except that a boolean is
matched by value (the REST model keeps it a boolean). What Qdrant cannot express exactly,
`icontains` or a number of 2^53 or more, is applied here as there: over the records the rest of
the filter selects, then as a list of ids (sent whole to a server).
"""

from collections.abc import Sequence
from pathlib import Path

from qdrant_client import QdrantClient
from qdrant_client import models as qm

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

LOCAL_COLLECTION = "shard"  # local mode keeps one store per folder
# Integers are filtered by range only (equality is the range [v, v]): no lookup half to keep.
RANGES = qm.IntegerIndexParams(type=qm.IntegerIndexType.INTEGER, lookup=False, range=True)
INDEXES: list[tuple[str, qm.PayloadSchemaType | qm.IntegerIndexParams]] = [
    *((key, qm.PayloadSchemaType.KEYWORD) for key in INDEXED_KEYWORDS),
    *((key, RANGES) for key in INDEXED_INTEGERS),
]

Native = qm.Filter | qm.FieldCondition | qm.HasIdCondition  # what a Condition translates to


class ClientStore:
    def __init__(self, client: QdrantClient, collection: str, *, indexed: bool) -> None:
        """The collection, created if absent. `indexed`: with the payload indexes (a server
        uses them; local mode has none and warns)."""
        self._client = client
        self._collection = collection
        if not client.collection_exists(collection):
            client.create_collection(
                collection,
                vectors_config=qm.VectorParams(size=DIMENSIONS, distance=qm.Distance.COSINE),
            )
        if indexed:
            held = client.get_collection(collection).payload_schema
            for key, schema in INDEXES:
                if key not in held:
                    client.create_payload_index(collection, key, schema, wait=True)

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
        found = self._client.query_points(
            self._collection,
            query=list(vector),
            limit=limit,
            query_filter=self._filter(where),
            score_threshold=threshold,
            with_payload=True,
        ).points
        return [Hit(str(p.id), p.score, p.payload or {}) for p in found]

    def get(self, ids: Sequence[str]) -> list[Hit]:
        records = self._client.retrieve(self._collection, list(ids), with_payload=True)
        return [Hit(str(r.id), 0.0, r.payload or {}) for r in records]

    def scan(self, where: Condition | None, limit: int, after: str = "") -> list[Hit]:
        records, _ = self._client.scroll(
            self._collection,
            scroll_filter=self._filter(where),
            offset=after or None,
            limit=limit + 1,  # the offset is inclusive: `after` itself may come back
            with_payload=True,
        )
        hits = [Hit(str(r.id), 0.0, r.payload or {}) for r in records]
        return [h for h in hits if h.id > after][:limit]

    def count(self, where: Condition | None = None) -> int:
        filter_ = self._filter(where)
        return self._client.count(self._collection, count_filter=filter_, exact=True).count

    def flush(self) -> None:
        """Nothing to do: a server has every write once it answers (`wait=True`), and local
        mode commits each write to its SQLite file."""

    def close(self) -> None:
        self._client.close()

    def _filter(self, where: Condition | None) -> qm.Filter | None:
        """`where` as a Qdrant filter: translated, or the ids of the records it selects."""
        if where is None:
            return None
        try:
            return _filter(where)
        except Untranslatable:
            pass
        native: list[qm.Condition] = [*translatable_parts(where, _condition)]
        rough = qm.Filter(must=native) if native else None
        offset, chosen = None, list[qm.ExtendedPointId]()
        while True:
            records, offset = self._client.scroll(
                self._collection,
                scroll_filter=rough,
                limit=SCROLL_PAGE,
                offset=offset,
                with_payload=keys_named(where),
            )
            chosen += [r.id for r in records if matches(where, r.payload or {})]
            if offset is None:
                return qm.Filter(must=[qm.HasIdCondition(has_id=chosen)])


def _filter(where: Condition) -> qm.Filter:
    condition = _condition(where)
    return condition if isinstance(condition, qm.Filter) else qm.Filter(must=[condition])


def _condition(where: Condition) -> Native:
    match where:
        case All(parts):
            return qm.Filter(must=[_condition(p) for p in parts])
        case AnyOf(()):
            return qm.HasIdCondition(has_id=[])  # Qdrant reads an empty `should` as no condition
        case AnyOf(parts):
            return qm.Filter(should=[_condition(p) for p in parts])
        case Not(part):
            return qm.Filter(must_not=[_condition(part)])
        case Field(key, "ne", value):
            return qm.Filter(must_not=[_field(key, "eq", value)])
        case Field(key, "nin", value):
            return qm.Filter(must_not=[_field(key, "in", value)])
        case Field(key, op, value):
            return _field(key, op, value)
    raise AssertionError(where)


def _field(key: str, op: str, value: Scalar | tuple[Scalar, ...]) -> Native:
    if op == "in":
        values = value if isinstance(value, tuple) else (value,)
        if all(isinstance(v, str) for v in values):
            return qm.FieldCondition(key=key, match=qm.MatchAny(any=[str(v) for v in values]))
        return qm.Filter(should=[_field(key, "eq", v) for v in values])
    if isinstance(value, tuple):
        raise Untranslatable(op)  # a list outside in/nin: filters.matches decides
    if op == "eq" and isinstance(value, str | bool):
        return qm.FieldCondition(key=key, match=qm.MatchValue(value=value))
    if op == "eq":
        number = exact_number(value)
        return qm.FieldCondition(key=key, range=qm.Range(gte=number, lte=number))
    if op in ("gt", "gte", "lt", "lte"):
        return qm.FieldCondition(key=key, range=qm.Range(**{op: exact_number(value)}))
    if op == "contains":
        return qm.FieldCondition(key=key, match=qm.MatchSubstring(substring=str(value)))
    raise Untranslatable(op)  # icontains

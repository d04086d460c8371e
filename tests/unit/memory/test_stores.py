"""Both VectorStores, Qdrant's embedded engine (EdgeStore) and qdrant-client's local mode
(ClientStore), on hand-made records whose answers are written out: ranking and scores,
thresholds, every filter op with the reference semantics (filters.matches), paging, replacing,
and what survives a reopen."""

import math
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from fpai_node.memory.client_store import ClientStore
from fpai_node.memory.edge_store import EdgeStore
from fpai_node.memory.filters import All, AnyOf, Condition, Field, Not, matches
from fpai_node.memory.operations import DIMENSIONS
from fpai_node.memory.store import (
    INDEXED_INTEGERS,
    INDEXED_KEYWORDS,
    Payload,
    PayloadValue,
    StoredPoint,
    VectorStore,
)

KINDS = ["edge", "client"]
BIG = 2**60  # beyond what a double holds exactly: the stores must not compare it as one


def _vector(weights: dict[int, float]) -> list[float]:
    """A unit vector with these components (the rest zero)."""
    norm = math.sqrt(sum(w * w for w in weights.values()))
    return [weights.get(i, 0.0) / norm for i in range(DIMENSIONS)]


def _id(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, name))


def _payload(user: str, memory: str, created_at: int, **rest: PayloadValue) -> Payload:
    """A record's payload as the shard writes it (store.Payload); `rest` overrides."""
    return {
        "memory": memory,
        "hash": f"h-{memory}",
        "kind": "memory",
        "user_id": user,
        "agent_id": "",
        "run_id": "",
        "created_at": created_at,
        "updated_at": created_at,
        "metadata_json": "{}",
        "metadata": {},
        **rest,
    }


RECORDS: dict[str, Payload] = {
    "ann": _payload(
        "alice",
        "Green tea in the morning",
        1000,
        metadata={"rank": 1, "tags": ["drink", "morning"], "flag": True, "my-key": "x"},
    ),
    "bea": _payload(
        "bob",
        "black coffee",
        2000,
        agent_id="helper",
        metadata={"rank": 1.0, "score": 2.5, "tags": ["drink"], "flag": False},
    ),
    "cat": _payload(
        "carol",
        "GREENHOUSE visit",
        3000,
        agent_id="helper",
        kind="handoff",
        metadata={"rank": 7, "tags": []},
    ),
    "dan": _payload("alice", "Ünïcode Straße", 4000, metadata={"rank": "1", "big": BIG + 1}),
    "eve": _payload("", "tea", 5000, run_id="r1"),
}
NAMES = list(RECORDS)
QUERY = _vector({0: 1.0})


def _point(name: str) -> StoredPoint:
    """Record i scores 1/sqrt(1 + (i/10)^2) against QUERY: the records rank in NAMES order."""
    i = NAMES.index(name) + 1
    return StoredPoint(_id(name), _vector({0: 1.0, i: i / 10}), RECORDS[name])


def _open(kind: str, path: Path) -> VectorStore:
    return EdgeStore.open(path) if kind == "edge" else ClientStore.local(path)


@pytest.fixture(scope="module", params=KINDS)
def loaded(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[VectorStore]:
    """A store holding RECORDS, shared by the tests that only read."""
    store = _open(request.param, tmp_path_factory.mktemp(request.param))
    store.upsert([_point(name) for name in NAMES])
    yield store
    store.close()


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def empty(kind: str, tmp_path: Path) -> Iterator[VectorStore]:
    store = _open(kind, tmp_path / "store")
    yield store
    store.close()


CASES: list[tuple[Condition, list[str]]] = [
    (Field("user_id", "eq", "alice"), ["ann", "dan"]),
    (Field("agent_id", "eq", ""), ["ann", "dan", "eve"]),
    (Field("user_id", "ne", "alice"), ["bea", "cat", "eve"]),
    (Field("metadata.flag", "eq", False), ["bea"]),
    (Field("metadata.flag", "ne", True), ["bea", "cat", "dan", "eve"]),  # lacking it: not equal
    (Field("metadata.rank", "eq", 1), ["ann", "bea"]),  # 1 == 1.0; the text "1" is not a number
    (Field("metadata.rank", "eq", 1.0), ["ann", "bea"]),
    (Field("metadata.rank", "eq", "1"), ["dan"]),
    (Field("metadata.big", "eq", BIG + 1), ["dan"]),
    (Field("user_id", "in", ("alice", "carol")), ["ann", "cat", "dan"]),
    (Field("metadata.rank", "in", (1, 7)), ["ann", "bea", "cat"]),
    (Field("user_id", "nin", ("alice", "")), ["bea", "cat"]),
    (Field("metadata.tags", "nin", ("morning",)), ["bea", "cat", "dan", "eve"]),
    (Field("metadata.tags", "eq", "drink"), ["ann", "bea"]),  # a list equals each element
    (Field("metadata.tags", "ne", "drink"), ["cat", "dan", "eve"]),
    (Field("metadata.tags", "in", ("morning", "none")), ["ann"]),
    (Field("created_at", "gt", 2000), ["cat", "dan", "eve"]),
    (Field("created_at", "gte", 2000), ["bea", "cat", "dan", "eve"]),
    (Field("created_at", "lt", 2000), ["ann"]),
    (Field("created_at", "lte", 2000), ["ann", "bea"]),
    (Field("metadata.rank", "gt", 0.5), ["ann", "bea", "cat"]),
    (Field("metadata.score", "lte", 2.5), ["bea"]),
    (Field("metadata.big", "gt", BIG), ["dan"]),  # as doubles, BIG + 1 == BIG
    (Field("memory", "contains", "tea"), ["ann", "eve"]),
    (Field("memory", "contains", "Green"), ["ann"]),
    (Field("metadata.tags", "contains", "ink"), ["ann", "bea"]),
    (Field("memory", "icontains", "green"), ["ann", "cat"]),
    (Field("memory", "icontains", "STRASSE"), ["dan"]),  # case folding, not lower-casing
    (Field("metadata.my-key", "eq", "x"), ["ann"]),
    (
        All(
            (
                Field("user_id", "eq", "alice"),
                Field("kind", "eq", "memory"),
                Field("created_at", "gt", 1),
            )
        ),
        ["ann", "dan"],
    ),
    (
        AnyOf((Field("user_id", "eq", "bob"), Field("memory", "icontains", "GREEN"))),
        ["ann", "bea", "cat"],
    ),
    (Not(Field("user_id", "eq", "alice")), ["bea", "cat", "eve"]),
    (Not(AnyOf((Field("user_id", "eq", "alice"), Field("agent_id", "eq", "helper")))), ["eve"]),
    (
        All(
            (
                AnyOf((Field("kind", "eq", "handoff"), Field("metadata.rank", "eq", 1))),
                Not(All((Field("user_id", "eq", "bob"), Field("agent_id", "eq", "helper")))),
            )
        ),
        ["ann", "cat"],
    ),
    (Not(Field("memory", "icontains", "TEA")), ["bea", "cat", "dan"]),
    (All((Field("user_id", "eq", "alice"), Field("memory", "icontains", "straße"))), ["dan"]),
    (AnyOf(()), []),
]


@pytest.mark.parametrize(("where", "expected"), CASES, ids=[repr(c)[:70] for c, _ in CASES])
def test_a_filter_selects_what_it_says(
    loaded: VectorStore, where: Condition, expected: list[str]
) -> None:
    """MEM-17 through the engine: search, scan and count select the records written out, which
    are what filters.matches selects."""
    assert [n for n in NAMES if matches(where, RECORDS[n])] == expected
    assert [h.id for h in loaded.search(QUERY, 10, where, None)] == [_id(n) for n in expected]
    assert [h.id for h in loaded.scan(where, 10)] == sorted(_id(n) for n in expected)
    assert loaded.count(where) == len(expected)


def test_search_ranks_by_cosine_within_limit_and_threshold(empty: VectorStore) -> None:
    vectors = {
        "same": {0: 1.0},
        "near": {0: 1.0, 1: 0.5},
        "half": {0: 1.0, 1: 1.0},
        "square": {1: 1.0},
        "opposite": {0: -1.0},
    }
    empty.upsert([StoredPoint(_id(n), _vector(v), RECORDS["ann"]) for n, v in vectors.items()])
    hits = empty.search(QUERY, 10, None, None)
    assert [h.id for h in hits] == [_id(n) for n in vectors]
    assert [h.score for h in hits] == pytest.approx(
        [1.0, 1 / math.sqrt(1.25), 1 / math.sqrt(2), 0.0, -1.0], abs=1e-6
    )
    assert [h.id for h in empty.search(QUERY, 2, None, None)] == [_id("same"), _id("near")]
    assert [h.id for h in empty.search(QUERY, 10, None, 0.7)] == [
        _id("same"),
        _id("near"),
        _id("half"),
    ]
    assert [h.id for h in empty.search(QUERY, 10, None, 0.9)] == [_id("same")]
    assert empty.search(QUERY, 10, Field("user_id", "ne", "alice"), None) == []
    assert hits[0].payload == RECORDS["ann"]


def test_upsert_get_delete_count(empty: VectorStore) -> None:
    empty.upsert([_point(n) for n in NAMES])
    assert empty.count() == 5
    got = empty.get([_id("bea"), _id("nobody"), _id("dan")])
    assert sorted((h.id, h.score) for h in got) == sorted([(_id("bea"), 0.0), (_id("dan"), 0.0)])
    assert {h.id: h.payload for h in got} == {
        _id("bea"): RECORDS["bea"],
        _id("dan"): RECORDS["dan"],
    }
    bea = next(h.payload for h in got if h.id == _id("bea"))
    assert isinstance(bea["metadata"], dict) and isinstance(bea["metadata"]["rank"], float)
    empty.delete([_id("bea"), _id("nobody")])
    assert empty.count() == 4
    assert empty.get([_id("bea")]) == []
    assert _id("bea") not in [h.id for h in empty.search(QUERY, 10, None, None)]


def test_upsert_replaces_a_records_vector_and_whole_payload(empty: VectorStore) -> None:
    empty.upsert([_point("ann")])
    replaced = _payload("alice", "now coffee", 1001)  # no metadata.flag any more
    empty.upsert([StoredPoint(_id("ann"), _vector({1: 1.0}), replaced)])
    assert [h.payload for h in empty.get([_id("ann")])] == [replaced]
    assert empty.count() == 1
    assert empty.count(Field("metadata.flag", "eq", True)) == 0
    assert empty.search(QUERY, 1, None, None)[0].score == pytest.approx(0.0, abs=1e-6)


def test_scan_pages_in_id_order(loaded: VectorStore) -> None:
    everyone = sorted(_id(n) for n in NAMES)
    assert [h.id for h in loaded.scan(None, 2)] == everyone[:2]
    assert [h.id for h in loaded.scan(None, 2, after=everyone[1])] == everyone[2:4]
    assert [h.id for h in loaded.scan(None, 10, after=everyone[3])] == everyone[4:]
    assert loaded.scan(None, 10, after=everyone[-1]) == []
    assert all(h.score == 0.0 for h in loaded.scan(None, 10))
    blank = sorted(_id(n) for n in ("ann", "dan", "eve"))
    where = Field("agent_id", "eq", "")
    assert [h.id for h in loaded.scan(where, 1)] == blank[:1]
    assert [h.id for h in loaded.scan(where, 5, after=blank[0])] == blank[1:]
    slow = Field("memory", "icontains", "E")  # every record; applied here, paged the same way
    assert [h.id for h in loaded.scan(slow, 2, after=everyone[0])] == everyone[1:3]


def test_records_survive_flush_close_and_reopen(kind: str, tmp_path: Path) -> None:
    store = _open(kind, tmp_path / "s")
    store.upsert([_point(n) for n in NAMES])
    store.delete([_id("eve")])
    store.flush()
    store.close()
    again = _open(kind, tmp_path / "s")
    try:
        assert again.count() == 4
        assert {h.id: h.payload for h in again.get([_id(n) for n in NAMES])} == {
            _id(n): RECORDS[n] for n in ("ann", "bea", "cat", "dan")
        }
        assert [h.id for h in again.search(QUERY, 2, Field("user_id", "eq", "alice"), None)] == [
            _id("ann"),
            _id("dan"),
        ]
    finally:
        again.close()


def test_an_edge_store_has_its_payload_indexes_after_a_reopen(tmp_path: Path) -> None:
    wanted = set(INDEXED_KEYWORDS + INDEXED_INTEGERS)
    store = EdgeStore.open(tmp_path / "s")
    assert set(store._shard.info().payload_schema) == wanted
    store.close()
    again = EdgeStore.open(tmp_path / "s")
    assert set(again._shard.info().payload_schema) == wanted
    again.close()

"""The vector stores against the reference semantics: Qdrant's embedded engine (EdgeStore) and
qdrant-client's local mode (ClientStore) must select, rank and keep exactly what the in-memory
store (filters.matches, exact search) does."""

import math
import random
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from fpai_node.memory.client_store import ClientStore
from fpai_node.memory.edge_store import EdgeStore
from fpai_node.memory.filters import All, AnyOf, Condition, Field, Not
from fpai_node.memory.store import StoredPoint, VectorStore
from fpai_node.testing.memory_store import MemoryStore

USERS = ("alice", "bob", "carol")


def _unit(rng: random.Random) -> list[float]:
    values = [rng.gauss(0, 1) for _ in range(384)]
    norm = math.sqrt(sum(v * v for v in values))
    return [v / norm for v in values]


def _points(n: int = 60) -> list[StoredPoint]:
    rng = random.Random(7)
    points = []
    for i in range(n):
        user = USERS[i % 3]
        metadata: dict[str, object] = {
            "n": i,
            "score": i / 10,
            "tags": ["even" if i % 2 == 0 else "odd"],
        }
        if i % 5 == 0:
            metadata["flag"] = True
        payload = {
            "memory": f"{'Green' if i % 4 == 0 else 'black'} tea note {i}",
            "hash": f"{i:032x}",
            "kind": "handoff" if i % 7 == 0 else "memory",
            "user_id": user,
            "agent_id": "helper" if i % 2 else "",
            "run_id": "",
            "created_at": 1_000 + i,
            "updated_at": 2_000 + i,
            "metadata_json": "{}",
            "metadata": metadata,
        }
        points.append(StoredPoint(str(uuid.UUID(int=rng.getrandbits(128))), _unit(rng), payload))  # type: ignore[arg-type]
    return points


def _open(kind: str, path: Path) -> VectorStore:
    return EdgeStore.open(path) if kind == "edge" else ClientStore.local(path)


@pytest.fixture(params=["edge", "client"])
def stores(
    tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[VectorStore, MemoryStore]]:
    edge = _open(request.param, tmp_path / "store")
    reference = MemoryStore()
    points = _points()
    edge.upsert(points)
    reference.upsert(points)
    yield edge, reference
    edge.close()


CONDITIONS: list[Condition] = [
    Field("user_id", "eq", "alice"),
    Field("agent_id", "eq", ""),
    Field("user_id", "ne", "alice"),
    Field("user_id", "in", ("alice", "carol")),
    Field("user_id", "nin", ("alice",)),
    Field("metadata.n", "gt", 30),
    Field("metadata.n", "gte", 30),
    Field("created_at", "lt", 1_010),
    Field("metadata.score", "lte", 2.5),
    Field("memory", "contains", "Green"),
    Field("memory", "icontains", "GREEN"),
    Field("metadata.tags", "eq", "even"),
    Field("metadata.tags", "in", ("odd", "none")),
    Field("metadata.flag", "eq", True),
    Field("metadata.flag", "ne", True),  # records without the key are selected too
    Field("metadata.score", "eq", 0.5),  # float equality: answered exactly, the slow way
    All((Field("user_id", "eq", "bob"), Field("kind", "eq", "memory"))),
    AnyOf((Field("user_id", "eq", "bob"), Field("metadata.n", "lt", 5))),
    Not(All((Field("user_id", "eq", "alice"), Field("agent_id", "eq", "helper")))),
    All((Field("user_id", "eq", "carol"), Field("memory", "icontains", "green tea"))),
]


@pytest.mark.parametrize("where", CONDITIONS, ids=[repr(c)[:60] for c in CONDITIONS])
def test_filters_select_what_the_reference_selects(
    stores: tuple[VectorStore, MemoryStore], where: Condition
) -> None:
    """MEM-17 through the engine: search, scan and count agree with filters.matches."""
    edge, reference = stores
    query = _unit(random.Random(1))
    expected = reference.search(query, 100, where, None)
    assert expected, "every condition here selects something"
    got = edge.search(query, 100, where, None)
    assert [h.id for h in got] == [h.id for h in expected]
    assert all(abs(a.score - b.score) < 1e-4 for a, b in zip(got, expected, strict=True))
    assert [h.id for h in edge.scan(where, 100)] == [h.id for h in reference.scan(where, 100)]
    assert edge.count(where) == reference.count(where)


def test_ranking_limit_threshold_get_delete(stores: tuple[VectorStore, MemoryStore]) -> None:
    edge, reference = stores
    query = _unit(random.Random(2))
    top = edge.search(query, 5, None, None)
    assert [h.id for h in top] == [h.id for h in reference.search(query, 5, None, None)]
    floor = top[2].score - 1e-6  # the engine rounds scores in float32
    assert [h.id for h in edge.search(query, 100, None, floor)] == [h.id for h in top[:3]]
    ids = [top[0].id, top[1].id, str(uuid.uuid4())]
    assert sorted(h.id for h in edge.get(ids)) == sorted(ids[:2])
    edge.delete([top[0].id, str(uuid.uuid4())])
    assert edge.count() == 59 and top[0].id not in {h.id for h in edge.search(query, 5, None, None)}


@pytest.mark.parametrize("kind", ["edge", "client"])
def test_records_survive_a_reopen_and_an_upsert_replaces(tmp_path: Path, kind: str) -> None:
    store = _open(kind, tmp_path / "s")
    points = _points(10)
    store.upsert(points)
    changed = StoredPoint(
        points[0].id, points[0].vector, {**points[0].payload, "memory": "changed"}
    )
    store.upsert([changed])
    store.flush()
    store.close()
    again = _open(kind, tmp_path / "s")
    assert again.count() == 10
    assert again.get([points[0].id])[0].payload["memory"] == "changed"
    assert again.count(Field("user_id", "eq", "alice")) == 4  # the indexes came back too
    again.close()

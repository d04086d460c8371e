"""Mem0's semantics over one node's real memory service (no peers): extraction that never drops
a memory, dedup by hash within a scope, updates that keep the scope, listings newest first."""

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from fpai_node.identity import NodeKey
from fpai_node.identity.tls import TlsIdentity
from fpai_node.memory.embeddings import Embedder
from fpai_node.memory.extraction import ExtractionFailed, Message, parse_facts
from fpai_node.memory.filters import Field
from fpai_node.memory.memories import Memories, MemoryError_, Scope
from fpai_node.memory.operations import canonical_metadata
from fpai_node.memory.service import MemoryService
from fpai_node.peer.client import PeerClient
from fpai_node.registry.state import RegistryState
from fpai_node.testing.memory_store import MemoryStore

KEY = NodeKey.from_seed(bytes(range(32)))


class NoRegistry:
    """A node whose registry lists no memory holder yet: it holds every shard itself."""

    state = RegistryState()

    async def propose(self, *args: object, **kwargs: object) -> None:
        return None


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder.bundled()


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[MemoryService]:
    stores: dict[Path, MemoryStore] = {}
    identity = TlsIdentity.open(KEY, dt.datetime.now(dt.UTC))
    memory = MemoryService(
        KEY,
        PeerClient(identity),
        tmp_path / "memory",
        lambda path: stores.setdefault(path, MemoryStore()),
        NoRegistry(),  # type: ignore[arg-type]
        "127.0.0.1:1",
    )
    await memory.start()
    yield memory
    await memory.stop(leave=False)


def answers(*texts: str):  # type: ignore[no-untyped-def]
    """A chat model that gives these answers, one per call, and records what it was asked."""
    asked: list[list[Message]] = []
    queue = list(texts)

    async def complete(conversation: list[Message]) -> str:
        asked.append(conversation)
        return queue.pop(0)

    complete.asked = asked  # type: ignore[attr-defined]
    return complete


CONVERSATION = [
    Message("system", "You are helpful."),
    Message("user", "I moved to Lyon and I am vegetarian."),
    Message("assistant", "Noted!"),
]


async def test_extracted_facts_are_stored_one_per_record(
    service: MemoryService, embedder: Embedder
) -> None:
    complete = answers('Sure: {"facts": ["Lives in Lyon", "Is vegetarian"]}')
    memories = Memories(service, embedder, complete)
    outcome = await memories.add(CONVERSATION, Scope(user_id="u"), "{}", infer=True)
    assert outcome.inferred and outcome.note == ""
    assert [a.found.content.memory for a in outcome.added] == ["Lives in Lyon", "Is vegetarian"]
    assert complete.asked == [CONVERSATION]  # type: ignore[attr-defined]


@pytest.mark.parametrize("answer", ["I cannot answer that.", '{"facts": "Lyon"}', "{broken"])
async def test_a_failed_extraction_keeps_the_text_and_says_so(
    service: MemoryService, embedder: Embedder, answer: str
) -> None:
    memories = Memories(service, embedder, answers(answer))
    outcome = await memories.add(CONVERSATION, Scope(user_id="u"), "{}", infer=True)
    assert not outcome.inferred and "extraction failed" in outcome.note
    stored = [a.found.content.memory for a in outcome.added]
    assert stored == ["I moved to Lyon and I am vegetarian.", "Noted!"]  # never the system prompt


async def test_nothing_worth_remembering_is_said_not_guessed(
    service: MemoryService, embedder: Embedder
) -> None:
    outcome = await Memories(service, embedder, answers('{"facts": []}')).add(
        CONVERSATION, Scope(user_id="u"), "{}", infer=True
    )
    assert outcome.added == [] and outcome.inferred and "nothing worth" in outcome.note


async def test_dedup_is_by_text_within_a_scope_and_updates_keep_it(
    service: MemoryService, embedder: Embedder
) -> None:
    memories = Memories(service, embedder, None)
    tea = [Message("user", "Likes tea")]
    first = (await memories.add(tea, Scope(user_id="u"), "{}", infer=False)).added[0]
    again = (await memories.add(tea, Scope(user_id="u"), "{}", infer=False)).added[0]
    other = (await memories.add(tea, Scope(user_id="v"), "{}", infer=False)).added[0]
    assert (first.event, again.event, other.event) == ("ADD", "NONE", "ADD")
    assert again.found.operation.id == first.found.operation.id != other.found.operation.id
    updated = await memories.update(first.found.operation.id, "Likes coffee", None)
    assert (
        updated.content.user_id == "u"
        and updated.content.created_at_ms == first.found.content.created_at_ms
    )
    assert updated.operation.version > first.found.operation.version
    found = await memories.search("coffee", Field("user_id", "eq", "u"), 5, None)
    assert [f.content.memory for f in found] == ["Likes coffee"]
    await memories.delete(first.found.operation.id)
    with pytest.raises(MemoryError_) as missing:
        await memories.get(first.found.operation.id)
    assert missing.value.status == 404
    assert [c.event for c in await memories.history(first.found.operation.id)] == [
        "ADD",
        "UPDATE",
        "DELETE",
    ]


async def test_listings_are_newest_first_across_pages(
    service: MemoryService, embedder: Embedder
) -> None:
    memories = Memories(service, embedder, None)
    texts = [f"fact number {i}" for i in range(130)]  # more than one 100-record page
    for start in range(0, 130, 64):  # at most 64 texts per add
        batch = [Message("user", t) for t in texts[start : start + 64]]
        await memories.add(batch, Scope(agent_id="a"), "{}", infer=False)
        await asyncio.sleep(0.002)
    listed = await memories.listing(Field("agent_id", "eq", "a"), 200)
    assert len(listed) == 130
    created = [f.content.created_at_ms for f in listed]
    assert created == sorted(created, reverse=True)
    assert await memories.delete_all(Field("agent_id", "eq", "a")) == 130
    assert await memories.listing(Field("agent_id", "eq", "a"), 200) == []


async def test_bad_input_is_refused_with_a_status(
    service: MemoryService, embedder: Embedder
) -> None:
    memories = Memories(service, embedder, None)
    with pytest.raises(MemoryError_) as no_scope:
        await memories.add([Message("user", "x")], Scope(), "{}", infer=False)
    assert no_scope.value.status == 400
    with pytest.raises(MemoryError_) as too_many:
        await memories.add(
            [Message("user", str(i)) for i in range(65)], Scope(user_id="u"), "{}", infer=False
        )
    assert too_many.value.status == 400
    with pytest.raises(MemoryError_) as unknown:
        await memories.update("not-an-id", "x", None)
    assert unknown.value.status == 404
    assert json.loads(canonical_metadata({"b": 1, "a": [True, None]})) == {
        "a": [True, None],
        "b": 1,
    }


def test_facts_are_found_in_fences_and_prose_and_bounded() -> None:
    assert parse_facts('```json\n{"facts": ["a", "b", "a", ""]}\n```') == ["a", "b"]
    assert parse_facts('Here you go: ["x", 3, "y"] hope it helps') == ["x", "y"]
    assert len(parse_facts(json.dumps({"facts": [f"f{i}" for i in range(100)]}))) == 32
    for answer in ("no json here", '{"facts": "one"}', "[[[" * 10_000):
        with pytest.raises(ExtractionFailed):
            parse_facts(answer)

"""What Mem0's API means, over the federation's replicated shards: add (with optional fact
extraction and dedup by content hash within a scope), search, get, list, update, delete,
delete all, history.

Embedding runs off the event loop. A write is acknowledged only when a majority of its shard's
replicas hold it (MemoryService.write); a failure raises, it is never dropped silently.
"""

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from fpai_node.errors import FpaiError
from fpai_node.memory.embeddings import Embedder
from fpai_node.memory.extraction import ExtractionFailed, Message, parse_facts
from fpai_node.memory.filters import All, Condition, Field
from fpai_node.memory.merge import Change, history
from fpai_node.memory.messages import MAX_LIMIT
from fpai_node.memory.operations import (
    MAX_MEMORY_BYTES,
    MAX_SCOPE_BYTES,
    SHARDS,
    Content,
    Operation,
    is_record_id,
    memory_hash,
    new_record_id,
    pack_vector,
    shard_of_scope,
    unpack_vector,
)
from fpai_node.memory.service import Found, MemoryService

Complete = Callable[[list[Message]], Awaitable[str]]
"""Sends the extraction prompt for a conversation to a chat model; returns its answer text."""
SCOPES = ("user_id", "agent_id", "run_id")
MAX_TEXTS = 64  # memories one add may write: a conversation's facts, or its messages with infer off
MAX_LISTED = 10_000  # records a listing sorts: get_all's 100 pages of 100


class MemoryError_(FpaiError):
    """A request Mem0 would answer with a 4xx: `status` and a one-line message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Scope:
    user_id: str = ""
    agent_id: str = ""
    run_id: str = ""

    def check(self) -> None:
        if not (self.user_id or self.agent_id or self.run_id):
            raise MemoryError_(400, "one of user_id, agent_id or run_id is required")
        for name in SCOPES:
            if utf8_bytes(getattr(self, name), name) > MAX_SCOPE_BYTES:
                raise MemoryError_(400, f"{name} is over {MAX_SCOPE_BYTES} bytes")

    def condition(self) -> Condition:
        return All(tuple(Field(name, "eq", getattr(self, name)) for name in SCOPES))

    @property
    def shard(self) -> int:
        for name in SCOPES:
            if value := getattr(self, name):
                return shard_of_scope(name, value)
        raise AssertionError("checked scope")


@dataclass(frozen=True, slots=True)
class Added:
    event: Literal["ADD", "NONE"]  # NONE: the same text was already stored in this scope
    found: Found


@dataclass(frozen=True, slots=True)
class AddOutcome:
    added: list[Added]
    inferred: bool  # facts came from the model (False: the raw text was stored)
    note: str  # why not, when extraction was asked for and failed


class Memories:
    def __init__(
        self, service: MemoryService, embedder: Embedder, complete: Complete | None
    ) -> None:
        self.service = service
        self._embedder = embedder
        self._complete = complete

    async def vectors(self, texts: Sequence[str]) -> list[bytes]:
        rows = await asyncio.to_thread(self._embedder.embed, list(texts))
        return [pack_vector(row.tolist()) for row in rows]

    # --- writes ---------------------------------------------------------------------------

    async def add(
        self,
        conversation: Sequence[Message],
        scope: Scope,
        metadata: str,
        *,
        infer: bool,
        kind: str = "memory",
    ) -> AddOutcome:
        scope.check()
        texts, inferred, note = await self._texts(conversation, infer)
        for text in texts:
            if not 0 < utf8_bytes(text, "a memory") <= MAX_MEMORY_BYTES:
                raise MemoryError_(400, f"a memory is 1..{MAX_MEMORY_BYTES} bytes of text")
        if not texts:
            return AddOutcome([], inferred, note)
        existing = await self._existing(scope, texts)
        fresh = list(dict.fromkeys(t for t in texts if t not in existing))
        vectors = await self.vectors(fresh) if fresh else []
        ops = []
        for text, vector in zip(fresh, vectors, strict=True):
            version = self.service.clock.tick(time.time_ns() // 1_000_000)
            content = Content(
                text,
                metadata,
                scope.user_id,
                scope.agent_id,
                scope.run_id,
                kind,
                version.at_ms,  # created when first written
                vector,
            )
            record_id = new_record_id(scope.shard, os.urandom(16))
            ops.append(self.service.sign(record_id, "add", content, version))
        await self.service.write(ops)
        by_text = {op.content.memory: op for op in ops if op.content is not None}
        added = [
            Added("NONE", Found(existing[t])) if t in existing else Added("ADD", Found(by_text[t]))
            for t in dict.fromkeys(texts)
        ]
        return AddOutcome(added, inferred, note)

    async def _texts(
        self, conversation: Sequence[Message], infer: bool
    ) -> tuple[list[str], bool, str]:
        """What to store: the extracted facts, or (infer off, or extraction failed) the
        messages' own text, one memory per message that is not a system prompt."""
        raw = [m.content for m in conversation if m.role != "system" and m.content.strip()]
        if len(raw) > MAX_TEXTS:
            raise MemoryError_(400, f"at most {MAX_TEXTS} messages per add")
        if not infer:
            return raw, False, ""
        if self._complete is None:
            return (
                raw,
                False,
                "no chat model is configured for extraction; stored the text as given",
            )
        try:
            facts = parse_facts(await self._complete(list(conversation)))
        except ExtractionFailed as exc:
            return raw, False, f"extraction failed ({exc}); stored the text as given"
        except FpaiError as exc:
            return raw, False, f"extraction failed ({exc}); stored the text as given"
        if not facts:
            return [], True, "the model found nothing worth remembering"
        return facts, True, ""

    async def _existing(self, scope: Scope, texts: Sequence[str]) -> dict[str, Operation]:
        """Records of this scope holding one of these texts already (dedup by hash)."""
        hashes = {memory_hash(t): t for t in texts}
        where = All((scope.condition(), Field("hash", "in", tuple(hashes))))
        found = await self.service.scan(where, len(hashes), [scope.shard])
        return {f.content.memory: f.operation for f in found}

    async def update(self, record_id: str, text: str | None, metadata: str | None) -> Found:
        current = await self._current(record_id)
        content = current.content
        assert content is not None
        memory = content.memory if text is None else text
        if not 0 < utf8_bytes(memory, "a memory") <= MAX_MEMORY_BYTES:
            raise MemoryError_(400, f"a memory is 1..{MAX_MEMORY_BYTES} bytes of text")
        vector = content.vector if text is None else (await self.vectors([memory]))[0]
        op = self.service.sign(
            record_id,
            "update",
            Content(
                memory,
                content.metadata if metadata is None else metadata,
                content.user_id,
                content.agent_id,
                content.run_id,
                content.kind,
                content.created_at_ms,
                vector,
            ),
        )
        await self.service.write([op])
        return Found(op)

    async def delete(self, record_id: str) -> None:
        await self._current(record_id)
        await self.service.write([self.service.sign(record_id, "delete", None)])

    async def delete_all(self, where: Condition) -> int:
        """Delete every record `where` selects; returns how many."""
        deleted = 0
        while batch := await self.service.scan(where, MAX_LIMIT, shards_for(where)):
            await self.service.write(
                [self.service.sign(f.operation.id, "delete", None) for f in batch]
            )
            deleted += len(batch)
        return deleted

    # --- reads ----------------------------------------------------------------------------

    async def search(
        self, query: str, where: Condition | None, top_k: int, threshold: float | None
    ) -> list[Found]:
        utf8_bytes(query, "the query")
        vector = (await self.vectors([query]))[0]
        found = await self.service.search(
            vector, unpack_vector(vector), where, top_k, shards_for(where)
        )
        return [f for f in found if threshold is None or f.score >= threshold]

    async def get(self, record_id: str) -> Found:
        return Found(await self._current(record_id))

    async def listing(self, where: Condition | None, limit: int) -> list[Found]:
        """The newest `limit` records `where` selects. Newest first needs every selected
        record: they are read a page at a time, at most MAX_LISTED."""
        shards = shards_for(where)
        found: list[Found] = []
        after = ""
        while len(found) < MAX_LISTED:
            page = await self.service.scan(where, MAX_LIMIT, shards, after)
            found += page
            if len(page) < MAX_LIMIT:
                break
            after = page[-1].operation.id
        found.sort(key=lambda f: (-f.content.created_at_ms, f.operation.id))
        return found[:limit]

    async def history(self, record_id: str) -> list[Change]:
        _check_id(record_id)
        changes = history(await self.service.history(record_id))
        if not changes:
            raise MemoryError_(404, f"memory {record_id} not found")
        return changes

    async def _current(self, record_id: str) -> Operation:
        _check_id(record_id)
        op = (await self.service.get([record_id])).get(record_id)
        if op is None or op.content is None:
            raise MemoryError_(404, f"memory {record_id} not found")
        return op


def utf8_bytes(text: str, what: str) -> int:
    """Its UTF-8 length; a 400 for text no UTF-8 can hold (a lone surrogate, which JSON
    allows as an escape)."""
    try:
        return len(text.encode())
    except UnicodeEncodeError:
        raise MemoryError_(400, f"{what} is not valid Unicode text") from None


def _check_id(record_id: str) -> None:
    if not is_record_id(record_id):
        raise MemoryError_(404, f"memory {record_id} not found")


def shards_for(where: Condition | None) -> list[int]:
    """MEM-7: a filter that pins the user id (alone, or in a top-level AND) touches that
    user's shard only; any other filter every shard."""
    parts = where.parts if isinstance(where, All) else (where,)
    for part in parts:
        pinned = isinstance(part, Field) and part.key == "user_id" and part.op == "eq"
        if pinned and isinstance(part.value, str) and part.value:  # type: ignore[union-attr]
            return [shard_of_scope("user_id", part.value)]  # type: ignore[union-attr]
    return list(range(SHARDS))

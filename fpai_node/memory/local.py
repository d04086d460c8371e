"""The shards this node holds, behind one worker thread.

Every shard call (log appends and fsyncs, index updates, searches) runs on one thread, so the
stores need no locks and the event loop never blocks on a disk or an index. Appends queue up
while the thread is busy and go to disk together: a burst of writes pays one fsync per shard,
not one per write (group commit).
"""

import asyncio
import re
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import structlog

from fpai_node.memory.filters import Condition
from fpai_node.memory.messages import MAX_ANSWER_OPS, MAX_BODY_BYTES
from fpai_node.memory.operations import SHARDS, Operation, Version
from fpai_node.memory.shard import OpenStore, Shard
from fpai_node.memory.store import Hit

_T = TypeVar("_T")
_SHARD_FOLDER = re.compile(r"shard-(\d\d)")
log = structlog.get_logger("fpai.memory")


class LocalShards:
    def __init__(self, directory: Path, open_store: OpenStore) -> None:
        self.directory = directory
        self._open_store = open_store
        self._shards: dict[int, Shard] = {}
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="memory")
        self._pending: list[tuple[Operation, asyncio.Future[bool]]] = []
        self._writing: asyncio.Future[None] | None = None

    @property
    def held(self) -> list[int]:
        return sorted(self._shards)

    def shard(self, number: int) -> Shard | None:
        """The shard, for reads of its in-memory tables from the event loop (its digest and
        record table change only on the worker thread, between event-loop steps' reads)."""
        return self._shards.get(number)

    async def run(self, call: Callable[[], _T]) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, call)

    async def open(self) -> list[Version]:
        """Open every shard on disk; returns each record's standing version (the clock
        observes them)."""

        def open_all() -> list[Version]:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            for folder in sorted(self.directory.iterdir()):
                match = _SHARD_FOLDER.fullmatch(folder.name)
                if match and int(match[1]) < SHARDS:
                    self._shards[int(match[1])] = Shard(int(match[1]), folder, self._open_store)
            return [r.latest for s in self._shards.values() for r in s.records.values()]

        return await self.run(open_all)

    async def close(self) -> None:
        def close_all() -> None:
            for shard in self._shards.values():
                try:
                    shard.close()
                except Exception:
                    log.exception("memory shard did not close cleanly", shard=shard.number)
            self._shards.clear()

        await self.run(close_all)
        self._thread.shutdown(wait=True)

    async def append(self, operations: Sequence[Operation]) -> int:
        """Log and index these (checked) operations durably; returns how many were new.
        Concurrent calls share one fsync per shard."""
        loop = asyncio.get_running_loop()
        futures = []
        for op in operations:
            future: asyncio.Future[bool] = loop.create_future()
            self._pending.append((op, future))
            futures.append(future)
        if self._writing is None:
            self._writing = asyncio.ensure_future(self._drain())
        return sum(await asyncio.gather(*futures))

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                ops = [op for op, _ in batch]
                try:
                    new = await self.run(lambda ops=ops: self._append_now(ops))  # type: ignore[misc]
                except Exception as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for op, future in batch:
                    if not future.done():
                        future.set_result(id(op) in new)
        finally:
            self._writing = None

    def _append_now(self, operations: list[Operation]) -> set[int]:
        by_shard: dict[int, list[Operation]] = {}
        for op in operations:
            by_shard.setdefault(op.shard, []).append(op)
        new: set[int] = set()
        for number, ops in by_shard.items():
            shard = self._shards.get(number)
            if shard is None:
                folder = self.directory / f"shard-{number:02d}"
                shard = self._shards[number] = Shard(number, folder, self._open_store)
            new.update(id(op) for op in shard.append(ops))
        return new

    async def search(
        self, shards: Iterable[int], vector: Sequence[float], where: Condition | None, limit: int
    ) -> list[bytes]:
        """The standing operations of the `limit` best records of the held shards among
        `shards`, best first."""

        def search() -> list[bytes]:
            return self._frames(
                sorted(
                    (
                        hit
                        for shard in self._among(shards)
                        for hit in shard.search(vector, limit, where, None)
                    ),
                    key=lambda hit: (-hit.score, hit.id),
                )[:limit]
            )

        return await self.run(search)

    async def scan(
        self, shards: Iterable[int], where: Condition | None, limit: int, after: str = ""
    ) -> list[bytes]:
        """The standing operations of the first `limit` records (in id order, above `after`)
        of the held shards among `shards` that `where` selects."""

        def scan() -> list[bytes]:
            return self._frames(
                sorted(
                    (
                        hit
                        for shard in self._among(shards)
                        for hit in shard.scan(where, limit, after)
                    ),
                    key=lambda hit: hit.id,
                )[:limit]
            )

        return await self.run(scan)

    def _among(self, numbers: Iterable[int]) -> list[Shard]:
        return [self._shards[n] for n in numbers if n in self._shards]

    def _frames(self, hits: Iterable[Hit]) -> list[bytes]:
        frames: list[bytes] = []
        for hit in hits:
            frames += self._shards[int(hit.id[:2], 16)].latest_frames([hit.id])
        return frames

    async def latest(self, ids: Iterable[str]) -> list[bytes]:
        def latest() -> list[bytes]:
            frames: list[bytes] = []
            for record_id in ids:
                shard = self._shards.get(int(record_id[:2], 16))
                if shard is not None:
                    frames += shard.latest_frames([record_id])
            return frames

        return await self.run(latest)

    async def history(self, record_id: str) -> list[bytes]:
        """The record's operations, the newest that fit in an answer (MEM-14)."""

        def history() -> list[bytes]:
            shard = self._shards.get(int(record_id[:2], 16))
            frames = shard.history_frames(record_id) if shard is not None else []
            kept: list[bytes] = []
            room = MAX_BODY_BYTES - 1024  # the answer's own framing
            for frame in reversed(frames):
                room -= len(frame) + 8
                if room < 0 or len(kept) == MAX_ANSWER_OPS:
                    break
                kept.append(frame)
            return kept[::-1]

        return await self.run(history)

    async def checkpoint(self) -> None:
        def checkpoint() -> None:
            for shard in self._shards.values():
                shard.checkpoint()

        await self.run(checkpoint)

    async def drop(self, number: int) -> None:
        def drop() -> None:
            shard = self._shards.pop(number, None)
            if shard is not None:
                shard.drop()

        await self.run(drop)

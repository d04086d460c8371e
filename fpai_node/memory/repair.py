"""Anti-entropy between a shard's replicas (specs/0007-memory.md, MEM-15).

For each shard it holds, a node sends its digest to each other replica; the replica answers with
the buckets that differ and its operation keys in them; the node pushes what the replica lacks
(as a write) and fetches what it lacks itself. Operations are a set that only grows, so repair
can run any number of times, from both sides, in any order. It runs every REPAIR_PERIOD_S and
at once when the placement changes (a holder joined or left), which is how a new replica gets
its shards. A node that holds a shard it no longer replicates drops it once every replica has
confirmed, by an equal digest, that it holds everything the node had.
"""

import asyncio
import time
from typing import TYPE_CHECKING

import structlog

from fpai_node.memory import messages as m
from fpai_node.memory.merge import Digest
from fpai_node.memory.operations import SHARDS, OperationRejected, read_operation
from fpai_node.memory.placement import Placement

if TYPE_CHECKING:
    from fpai_node.memory.service import Handler, MemoryService

# MEM-15: a replica that missed writes (it was down, or a write reached only a majority)
# catches up within seconds; a round over shards in sync costs one 2 KiB digest per replica.
REPAIR_PERIOD_S = 5.0
REPAIR_CONCURRENCY = 8  # shards reconciled at once: a round stays short when a replica is down
CHECK_PERIOD_S = 0.5  # how often the placement is compared with the last round's
CHECKPOINT_PERIOD_S = 30.0  # index flushes: a restart reindexes at most this much of the log
log = structlog.get_logger("fpai.memory")


class Repair:
    def __init__(self, service: "MemoryService") -> None:
        self._service = service
        self._task: asyncio.Task[None] | None = None
        self.rounds = 0
        self.pushed = 0
        self.pulled = 0
        self.dropped = 0

    def counts(self) -> dict[str, int]:
        """Rounds run, operations sent to and fetched from other replicas, shards handed over."""
        return {
            "rounds": self.rounds,
            "pushed": self.pushed,
            "pulled": self.pulled,
            "dropped": self.dropped,
        }

    def handlers(self) -> "dict[str, Handler]":
        return {m.DIGEST_PATH: self._on_digest, m.FETCH_PATH: self._on_fetch}

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _loop(self) -> None:
        last: tuple[tuple[str, ...], ...] | None = None
        next_round = next_checkpoint = time.monotonic()
        while True:
            try:
                await self._service.offer()
                placement = self._service.placement()
                layout = tuple(placement.of(s) for s in range(SHARDS))
                now = time.monotonic()
                if layout != last or now >= next_round:
                    last, next_round = layout, now + REPAIR_PERIOD_S
                    await self.round(placement)
                if now >= next_checkpoint:
                    next_checkpoint = now + CHECKPOINT_PERIOD_S
                    await self._service.local.checkpoint()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("memory repair round failed")
            await asyncio.sleep(CHECK_PERIOD_S)

    async def round(self, placement: Placement) -> None:
        """One exchange with every other replica of every shard held here, a few shards at
        a time: an unreachable replica costs its timeout once per batch, not once per shard."""
        self.rounds += 1
        slots = asyncio.Semaphore(REPAIR_CONCURRENCY)

        async def repair(shard: int) -> None:
            async with slots:
                await self._repair_shard(placement, shard)

        await asyncio.gather(*(repair(shard) for shard in self._service.local.held))

    async def _repair_shard(self, placement: Placement, shard: int) -> None:
        me = self._service.node_id
        replicas = placement.of(shard)
        peers = [n for n in replicas if n != me]
        in_sync = [await self.exchange(placement, shard, peer) for peer in peers]
        if me not in replicas and peers and all(in_sync):
            log.info("memory shard moved to its replicas; dropped here", shard=shard)
            await self._service.local.drop(shard)
            self.dropped += 1

    async def exchange(self, placement: Placement, shard: int, peer: str) -> bool:
        """Reconcile one shard with one replica; True when the two held the same set."""
        local = self._service.local
        held = local.shard(shard)
        if held is None:
            return False
        digest = await local.run(held.digest.to_bytes)
        body = await self._service._ask(
            placement, peer, m.DIGEST_PATH, m.DigestRequest(shard, digest).encode()
        )
        if body is None:
            return False
        try:
            answer = m.DigestAnswer.decode(body)
        except m.BadRequest as exc:
            log.warning("bad digest answer", peer=peer, reason=exc.reason)
            return False
        if not answer.buckets:
            return True
        mine = set(await local.run(lambda: held.keys_in(answer.buckets)))
        theirs = set(answer.keys)
        await self._push(placement, shard, peer, sorted(mine - theirs))
        await self._pull(placement, shard, peer, sorted(theirs - mine))
        return False

    async def _push(self, placement: Placement, shard: int, peer: str, keys: list[m.Key]) -> None:
        local = self._service.local
        held = local.shard(shard)
        for start in range(0, len(keys), m.MAX_OPS):
            batch = keys[start : start + m.MAX_OPS]
            frames = await local.run(lambda b=batch: held.frames_of(b) if held else [])  # type: ignore[misc]
            answer = await self._service._ask(
                placement, peer, m.WRITE_PATH, m.Ops(tuple(frames)).encode()
            )
            if answer is None:
                return
            self.pushed += len(frames)

    async def _pull(self, placement: Placement, shard: int, peer: str, keys: list[m.Key]) -> None:
        for start in range(0, len(keys), m.MAX_FETCH_KEYS):
            batch = keys[start : start + m.MAX_FETCH_KEYS]
            body = await self._service._ask(
                placement, peer, m.FETCH_PATH, m.Fetch(shard, tuple(batch)).encode()
            )
            if body is None:
                return
            wanted = set(batch)
            now = time.time_ns() // 1_000_000
            ops = []
            try:
                for frame in m.Ops.decode(body, m.MAX_OPS).ops:
                    op = read_operation(frame, now_ms=now)
                    if (op.id, op.version) in wanted:  # MEM-15: only what was asked for
                        ops.append(op)
            except (m.BadRequest, OperationRejected) as exc:
                log.warning("bad fetch answer", peer=peer, reason=str(exc))
                return
            await self._service.local.append(ops)
            for op in ops:
                self._service.clock.observe(op.version)
            self.pulled += len(ops)

    async def _on_digest(self, peer: str, body: bytes) -> bytes:
        request = m.DigestRequest.decode(body)
        local = self._service.local
        held = local.shard(request.shard)
        if held is None:
            if not self._service.accepts(request.shard):
                raise m.BadRequest("not_replica", f"shard {request.shard} is not replicated here")
            mine = bytes(len(request.digest))
            differing = Digest.differing(mine, request.digest)
            return m.DigestAnswer(tuple(differing), ()).encode()
        digest = await local.run(held.digest.to_bytes)
        differing = Digest.differing(digest, request.digest)

        def listed() -> tuple[list[int], list[m.Key]]:
            buckets: list[int] = []
            keys: list[m.Key] = []
            for bucket in differing:
                more = held.keys_in([bucket])
                if keys and len(keys) + len(more) > m.MAX_KEYS:
                    break
                buckets.append(bucket)
                keys += more[: m.MAX_KEYS - len(keys)]
            return buckets, keys

        buckets, keys = await local.run(listed)
        return m.DigestAnswer(tuple(buckets), tuple(keys)).encode()

    async def _on_fetch(self, peer: str, body: bytes) -> bytes:
        request = m.Fetch.decode(body)
        held = self._service.local.shard(request.shard)
        if held is None:
            return m.Ops(()).encode()
        frames = await self._service.local.run(lambda: held.frames_of(request.keys))
        return m.Ops(tuple(frames)).encode()

"""Federated memory as a node service (specs/0007-memory.md): this node's shards, the peer routes
that serve them, and the coordinator that writes to and reads from a shard's replicas.

A write is acknowledged once a majority of the shard's replicas have it in their fsynced log
(MEM-9); a read asks every replica, waits for a majority, and keeps each record's greatest
version (MEM-14). Both sets are majorities of the same replicas, so a read sees every write
acknowledged before it began. Replicas that disagree are reconciled by `repair.Repair`.
"""

import asyncio
import time
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import structlog
from aiohttp import web
from prometheus_client.core import Metric

from fpai_node.errors import FpaiError
from fpai_node.identity import NodeKey
from fpai_node.memory import messages as m
from fpai_node.memory.clock import HybridClock
from fpai_node.memory.filters import Condition
from fpai_node.memory.local import LocalShards
from fpai_node.memory.operations import (
    Content,
    Operation,
    OperationRejected,
    Version,
    read_operation,
    seal_operation,
    unpack_vector,
)
from fpai_node.memory.placement import (
    HEALTHY,
    SERVICE_SUFFIX,
    Placement,
    holders,
    majority,
    replication_factor,
)
from fpai_node.memory.shard import OpenStore
from fpai_node.peer.client import PeerClient
from fpai_node.registry.service import RegistryService, RegistryUnavailable
from fpai_node.registry.state import RegistryState
from fpai_node.service import PeerRoute, Service, StreamRoute, counter, gauge
from fpai_node.wire import codec
from fpai_node.wire.messages import SequenceCounter

log = structlog.get_logger("fpai.memory")

# A replica that has not answered in 15 s is treated as down for this request. An fsync and an
# index update take milliseconds, but a burst of writes to new shards makes a replica create
# each one (about 70 ms each, 4.5 s for all 64); a dead replica refuses the connection at
# once, and the wait only matters when a majority is unreachable.
REPLICA_TIMEOUT_S = 15.0
# MEM-16: memory traffic per peer: a busy coordinator sends a write and a read per client call
# to each replica; repair adds a few digests a second.
ROUTE_RATE_PER_S = 2000.0
CONNECTIONS_PER_PEER = 8  # concurrent memory requests to one replica before they queue
# Checked operations kept (about 2 KiB each, so ~16 MiB): the records a node reads often.
CHECKED_CACHE = 8192


class ShardUnavailable(FpaiError):
    """Fewer than a majority of a shard's replicas answered: nothing is acknowledged."""

    def __init__(self, shard: int, answered: int, replicas: int) -> None:
        super().__init__(
            f"memory shard {shard} reached {answered} of its {replicas} replicas; "
            f"a majority ({majority(replicas)}) is needed"
        )
        self.shard = shard


@dataclass(frozen=True, slots=True)
class Found:
    """A record as it stands, with its search score when it came from a search."""

    operation: Operation
    score: float = 0.0

    @property
    def content(self) -> Content:
        assert self.operation.content is not None
        return self.operation.content


Handler = Callable[[str, bytes], Awaitable[bytes]]


class MemoryService(Service):
    name = "memory"

    def __init__(
        self,
        key: NodeKey,
        client: PeerClient,
        directory: Path,
        open_store: OpenStore,
        registry: RegistryService,
        peer_address: str,
    ) -> None:
        self.node_id = key.node_id
        self._key = key
        self._pool = client.pool(
            connections_per_peer=CONNECTIONS_PER_PEER, timeout_s=REPLICA_TIMEOUT_S
        )
        self.local = LocalShards(directory, open_store)
        self.clock = HybridClock(key.node_id)
        self._seq = SequenceCounter(time.time_ns() // 1000)
        self._registry = registry
        self._peer_address = peer_address
        self._placement_cache: tuple[int, Placement] | None = None
        self.refusals: Counter[str] = Counter()
        self.checked = CheckedOperations()
        self._handlers: dict[str, Handler] = {
            m.WRITE_PATH: self._on_write,
            m.SEARCH_PATH: self._on_search,
            m.SCAN_PATH: self._on_scan,
            m.GET_PATH: self._on_get,
            m.HISTORY_PATH: self._on_history,
        }
        self._background: set[asyncio.Future[bytes | None]] = set()
        self.repair: Repair | None = None

    # --- lifecycle ------------------------------------------------------------------------

    def peer_routes(self) -> Sequence[PeerRoute]:
        from fpai_node.memory.repair import Repair

        self.repair = Repair(self)
        self._handlers.update(self.repair.handlers())
        return [
            StreamRoute(path, self._route(handler), m.MAX_BODY_BYTES, ROUTE_RATE_PER_S, self._gate)
            for path, handler in self._handlers.items()
        ]

    async def start(self) -> None:
        for version in await self.local.open():
            self.clock.observe(version)
        if self.repair is not None:
            self.repair.start()

    async def stop(self, leave: bool) -> None:
        if self.repair is not None:
            await self.repair.stop()
        for task in list(self._background):
            task.cancel()
        await self.local.close()

    def status_sections(self) -> Mapping[str, object]:
        shards = {}
        for number in self.local.held:
            shard = self.local.shard(number)
            if shard is not None:
                shards[str(number)] = {
                    "records": shard.live,
                    "operations": shard.operations,
                }
        placement = self.placement()
        return {
            "memory": {
                "holders": sorted(placement.addresses),
                "replicas": placement.factor,
                "shards": shards,
                "repair": self.repair.counts() if self.repair is not None else {},
                "refusals": dict(self.refusals),
            }
        }

    def metrics(self) -> Iterable[Metric]:
        held = [self.local.shard(n) for n in self.local.held]
        yield gauge(
            "fpai_memory_records",
            "Live memory records in the shards this node holds.",
            sum(s.live for s in held if s is not None),
        )
        yield counter(
            "fpai_memory_refusals",
            "Memory requests from peers refused, by reason.",
            "reason",
            self.refusals,
        )

    # --- placement ------------------------------------------------------------------------

    def placement(self) -> Placement:
        """MEM-8 under the local registry state. A node not yet in the registry's memory
        holders (it has just started) places every shard on itself alone."""
        state = self._registry.state
        cached = self._placement_cache
        if cached is not None and cached[0] == state.index:
            return cached[1]
        placement = placement_of(state, self.node_id, self._peer_address)
        self._placement_cache = (state.index, placement)
        return placement

    async def offer(self) -> None:
        """Keep this node listed as a memory holder (MEM-8) at its current peer address."""
        name = f"{self.node_id}{SERVICE_SUFFIX}"
        listed = self._registry.state.services.get(name)
        if listed is not None and (listed.endpoints, listed.health) == (
            (self._peer_address,),
            HEALTHY,
        ):
            return  # listed, and up (the leader marks a node down that was away: RAFT-16)
        args: dict[str, codec.Value] = {
            "name": name,
            "endpoints": [self._peer_address],
            "health": HEALTHY,
        }
        try:
            await self._registry.propose("service.set", args, timeout_s=2.0)
        except RegistryUnavailable as exc:
            log.info("memory offer deferred", reason=str(exc))

    # --- writing --------------------------------------------------------------------------

    def sign(
        self,
        record_id: str,
        action: str,
        content: Content | None,
        version: Version | None = None,
    ) -> Operation:
        """A write signed by this node, at `version` (from `clock.tick`) or the next one."""
        version = version or self.clock.tick(time.time_ns() // 1_000_000)
        return seal_operation(
            self._key,
            record_id,
            action,  # type: ignore[arg-type]
            version,
            content,
            seq=self._seq.next(),
            now_ms=time.time_ns() // 1_000_000,
        )

    async def write(self, operations: Sequence[Operation]) -> None:
        """MEM-9: every operation is durable on a majority of its shard's replicas, or this
        raises ShardUnavailable (and what reached a minority stays there, to be repaired
        everywhere or superseded)."""
        placement = self.placement()
        by_shard: dict[int, list[Operation]] = {}
        for op in operations:
            by_shard.setdefault(op.shard, []).append(op)
        await asyncio.gather(*(self._write_shard(placement, s, ops) for s, ops in by_shard.items()))

    async def _write_shard(self, placement: Placement, shard: int, ops: list[Operation]) -> None:
        replicas = placement.of(shard)
        body = m.Ops(tuple(op.frame for op in ops)).encode()
        answers = await self._gather(
            {node: self._ask(placement, node, m.WRITE_PATH, body) for node in replicas},
            need=majority(len(replicas)),
            keep_going=True,
        )
        if len(answers) < majority(len(replicas)):
            raise ShardUnavailable(shard, len(answers), len(replicas))

    # --- reading --------------------------------------------------------------------------

    async def search(
        self,
        vector: bytes,
        floats: Sequence[float],
        where: Condition | None,
        limit: int,
        shards: Sequence[int],
    ) -> list[Found]:
        """MEM-14: the `limit` records closest to the query among `shards`, best first."""
        request = lambda s: m.Search(tuple(s), vector, where, limit).encode()  # noqa: E731
        standing = await self._read(m.SEARCH_PATH, request, shards)
        scored = [
            Found(op, _dot(floats, op.content.floats()))
            for op in standing.values()
            if op.content is not None
        ]
        scored.sort(key=lambda f: (-f.score, f.operation.id))
        return scored[:limit]

    async def scan(
        self, where: Condition | None, limit: int, shards: Sequence[int], after: str = ""
    ) -> list[Found]:
        """MEM-14: the first `limit` records above `after` in id order, or fewer when there
        are no more (the next page starts after the last id returned)."""
        request = lambda s: m.Scan(tuple(s), where, limit, after).encode()  # noqa: E731
        standing = await self._read(m.SCAN_PATH, request, shards)
        found = [Found(op) for op in standing.values() if op.content is not None]
        found.sort(key=lambda f: f.operation.id)
        return found[:limit]

    async def get(self, ids: Sequence[str]) -> dict[str, Operation]:
        """MEM-14: the standing operation of each record found (tombstones included)."""
        if len(ids) > m.MAX_LIMIT:
            chunks = [ids[i : i + m.MAX_LIMIT] for i in range(0, len(ids), m.MAX_LIMIT)]
            found: dict[str, Operation] = {}
            for part in await asyncio.gather(*(self.get(chunk) for chunk in chunks)):
                found.update(part)
            return found
        placement = self.placement()
        by_node: dict[str, list[str]] = {}
        shards = sorted({int(i[:2], 16) for i in ids})
        for record_id in ids:
            for node in placement.of(int(record_id[:2], 16)):
                by_node.setdefault(node, []).append(record_id)
        answers = await self._read_majority(
            placement, shards, {n: m.Get(tuple(i)).encode() for n, i in by_node.items()}, m.GET_PATH
        )
        return _standing(_operations(answers.values(), self.checked))

    async def history(self, record_id: str) -> list[Operation]:
        """Every operation of the record any replica of a majority holds (MEM-12)."""
        placement = self.placement()
        shard = int(record_id[:2], 16)
        body = m.History(record_id).encode()
        answers = await self._read_majority(
            placement, [shard], {n: body for n in placement.of(shard)}, m.HISTORY_PATH
        )
        ops = _operations(answers.values(), self.checked)
        return list({op.version: op for op in ops}.values())

    async def _read(
        self, path: str, request: Callable[[list[int]], bytes], shards: Sequence[int]
    ) -> dict[str, Operation]:
        """Ask each replica of `shards` once, for all of them it holds; keep each record's
        greatest version. Replicas that disagree on what they found are asked for the
        standing version of every record any of them found, so that a replica that missed an
        update or a delete cannot bring back the old record (MEM-14)."""
        placement = self.placement()
        by_node: dict[str, list[int]] = {}
        for shard in shards:
            for node in placement.of(shard):
                by_node.setdefault(node, []).append(shard)
        answers = await self._read_majority(
            placement, shards, {n: request(s) for n, s in by_node.items()}, path
        )
        seen = {node: _operations([body], self.checked) for node, body in answers.items()}
        standing = _standing(op for ops in seen.values() for op in ops)
        keys = {frozenset((op.id, op.version) for op in ops) for ops in seen.values()}
        if len(keys) > 1:
            standing = await self.get(sorted(standing))
        return standing

    async def _read_majority(
        self, placement: Placement, shards: Iterable[int], bodies: Mapping[str, bytes], path: str
    ) -> dict[str, bytes]:
        answers = await self._gather(
            {node: self._ask(placement, node, path, body) for node, body in bodies.items()},
            need=len(bodies),
            keep_going=False,
            enough=lambda answered: all(
                len(answered & set(placement.of(s))) >= majority(len(placement.of(s)))
                for s in shards
            ),
        )
        for shard in shards:
            got = len(set(answers) & set(placement.of(shard)))
            if got < majority(len(placement.of(shard))):
                raise ShardUnavailable(shard, got, len(placement.of(shard)))
        return answers

    # --- talking to replicas --------------------------------------------------------------

    async def _gather(
        self,
        calls: Mapping[str, Awaitable[bytes | None]],
        *,
        need: int,
        keep_going: bool,
        enough: Callable[[set[str]], bool] | None = None,
    ) -> dict[str, bytes]:
        """Run the calls; return the answers once `need` succeeded (or `enough` says so), all
        ended, or the timeout passed. With `keep_going`, calls still running go on in the
        background (a write still reaches a slow replica)."""
        tasks = {asyncio.ensure_future(call): node for call, node in _swap(calls)}
        answers: dict[str, bytes] = {}
        pending = set(tasks)
        deadline = asyncio.get_running_loop().time() + REPLICA_TIMEOUT_S
        while pending and len(answers) < need and not (enough and enough(set(answers))):
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                break
            done, pending = await asyncio.wait(
                pending, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
            )
            for task in done:
                failure = task.exception()
                if failure is not None:  # a bug, not a refusal (those answer None): say so
                    log.error("memory request failed", node=tasks[task], exc_info=failure)
                elif (answer := task.result()) is not None:
                    answers[tasks[task]] = answer
        for task in pending:
            if keep_going:
                self._background.add(task)
                task.add_done_callback(self._background.discard)
            else:
                task.cancel()
        return answers

    async def _ask(self, placement: Placement, node: str, path: str, body: bytes) -> bytes | None:
        """One request to one replica (this node's own handler for itself); None when it
        refused or could not be reached."""
        if node == self.node_id:
            try:
                return await self._handlers[path](node, body)
            except (m.BadRequest, OperationRejected) as exc:
                log.warning(
                    "memory request refused by this node itself", path=path, reason=str(exc)
                )
                return None
        address = placement.addresses.get(node)
        if address is None:
            return None
        try:
            async with self._pool.stream(
                address, path, body, aiohttp.ClientTimeout(total=REPLICA_TIMEOUT_S)
            ) as response:
                if response.status != 200:
                    log.info("memory replica refused", node=node, path=path, status=response.status)
                    return None
                answer = await response.content.read(m.MAX_BODY_BYTES + 1)
                more = await response.content.read(1)
                if len(answer) > m.MAX_BODY_BYTES or more:
                    log.warning("memory replica answered too much", node=node, path=path)
                    return None
                return answer
        except (TimeoutError, aiohttp.ClientError, OSError):
            return None

    # --- serving peers --------------------------------------------------------------------

    def _gate(self, peer: str) -> web.Response | None:
        """MEM-16: only registry members use the memory routes."""
        if peer in self._registry.state.members:
            return None
        self.refusals["not_member"] += 1
        return web.Response(status=403, text="not_member")

    def _route(
        self, handler: Handler
    ) -> Callable[[str, bytes, web.Request], Awaitable[web.StreamResponse]]:
        async def serve(peer: str, body: bytes, request: web.Request) -> web.StreamResponse:
            try:
                answer = await handler(peer, body)
            except (m.BadRequest, OperationRejected) as exc:
                self.refusals[exc.reason] += 1
                log.warning(
                    "memory request refused", peer=peer, path=request.path, reason=exc.reason
                )
                status = 409 if exc.reason == "not_replica" else 400
                return web.Response(status=status, text=exc.reason)
            return web.Response(body=answer, content_type="application/msgpack")

        return serve

    def accepts(self, shard: int) -> bool:
        """MEM-13: this node takes operations of shards it replicates or still holds."""
        return self.node_id in self.placement().of(shard) or self.local.shard(shard) is not None

    async def _on_write(self, peer: str, body: bytes) -> bytes:
        request = m.Ops.decode(body, m.MAX_OPS)
        now = time.time_ns() // 1_000_000
        ops = [
            read_operation(frame, now_ms=now) for frame in request.ops
        ]  # never cached: MEM-6's clock check
        for op in ops:
            if not self.accepts(op.shard):
                raise m.BadRequest("not_replica", f"shard {op.shard} is not replicated here")
        stored = await self.local.append(ops)
        for op in ops:
            self.clock.observe(op.version)
            self.checked.remember(op)
        return m.Stored(stored).encode()

    async def _on_search(self, peer: str, body: bytes) -> bytes:
        request = m.Search.decode(body)
        floats = unpack_vector(request.vector)
        frames = await self.local.search(request.shards, floats, request.where, request.limit)
        return m.Ops(tuple(frames)).encode()

    async def _on_scan(self, peer: str, body: bytes) -> bytes:
        request = m.Scan.decode(body)
        frames = await self.local.scan(request.shards, request.where, request.limit, request.after)
        return m.Ops(tuple(frames)).encode()

    async def _on_get(self, peer: str, body: bytes) -> bytes:
        return m.Ops(tuple(await self.local.latest(m.Get.decode(body).ids))).encode()

    async def _on_history(self, peer: str, body: bytes) -> bytes:
        return m.Ops(tuple(await self.local.history(m.History.decode(body).id))).encode()


def placement_of(state: RegistryState, node_id: str, peer_address: str) -> Placement:
    nodes = holders(state.members, {name: s.health for name, s in state.services.items()})
    addresses = {n: state.members[n].peer for n in nodes}
    if not addresses:
        addresses = {node_id: peer_address}
    return Placement(addresses, replication_factor(state.parameters))


def _swap(
    calls: Mapping[str, Awaitable[bytes | None]],
) -> list[tuple[Awaitable[bytes | None], str]]:
    return [(call, node) for node, call in calls.items()]


class CheckedOperations:
    """Operations already checked (MEM-6), by their signed bytes, most recently used kept: a
    record every replica returns, or that is read again, is verified once (a check costs about
    0.2 ms: the signature, the vector's norm, the metadata's JSON)."""

    def __init__(self, size: int = CHECKED_CACHE) -> None:
        self._size = size
        self._held: OrderedDict[bytes, Operation] = OrderedDict()

    def read(self, frame: bytes) -> Operation:
        """The operation, checked now or before; raises OperationRejected."""
        op = self._held.get(frame)
        if op is None:
            op = read_operation(frame)
            self.remember(op)
        else:
            self._held.move_to_end(frame)
        return op

    def remember(self, op: Operation) -> None:
        self._held[op.frame] = op
        if len(self._held) > self._size:
            self._held.popitem(last=False)


def _operations(
    bodies: Iterable[bytes], checked: CheckedOperations | None = None
) -> list[Operation]:
    """The checked operations in replicas' answers; one that fails its checks is dropped (a
    replica cannot forge a record: MEM-14)."""
    checked = checked or CheckedOperations()
    found: dict[bytes, Operation] = {}
    for body in bodies:
        try:
            frames = m.Ops.decode(body, m.MAX_ANSWER_OPS).ops
        except m.BadRequest:
            continue
        for frame in frames:
            if frame not in found:
                try:
                    found[frame] = checked.read(frame)
                except OperationRejected as exc:
                    log.warning("a replica answered with a bad operation", reason=exc.reason)
    return list(found.values())


def _standing(operations: Iterable[Operation]) -> dict[str, Operation]:
    best: dict[str, Operation] = {}
    for op in operations:
        held = best.get(op.id)
        if held is None or op.version > held.version:
            best[op.id] = op
    return best


def _dot(a: Sequence[float], b: Sequence[float]) -> float:
    return float(sum(x * y for x, y in zip(a, b, strict=True)))


from fpai_node.memory.repair import Repair  # noqa: E402  (repair uses this module's types)

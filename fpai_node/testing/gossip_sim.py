"""A seeded in-memory federation of real `GossipNode`s (specs/0004-gossip.md). No sockets.

Every message is sealed by its sender and opened by its receiver with `open_envelope` and the
receiver's own `ReplayGuard`, exactly as the peer channel does. Time is simulated: nodes tick
every `tick_ms`, messages arrive after `latency_ms` plus any extra delay set on their link, and a
seeded RNG decides which messages are lost. One round is one probe period.
"""

import hashlib
import heapq
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from fpai_node.gossip.messages import (
    HOP_LIFETIME_MS,
    HOP_TYPES,
    Capabilities,
    GossipMessage,
    Hardware,
    Model,
    Rumor,
    Status,
    SyncReply,
    decode_message,
)
from fpai_node.gossip.state import GossipConfig, GossipNode, Outgoing
from fpai_node.identity.keys import NodeKey
from fpai_node.wire.envelope import open_envelope, seal
from fpai_node.wire.errors import WireError
from fpai_node.wire.messages import SequenceCounter
from fpai_node.wire.replay import ReplayGuard

EPOCH_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z: envelopes need a plausible wall clock


@dataclass(slots=True)
class SimNode:
    index: int
    key: NodeKey
    gossip: GossipNode
    guard: ReplayGuard
    seq: SequenceCounter
    alive: bool = True


@dataclass(slots=True)
class SimStats:
    sent: int = 0
    delivered: int = 0
    lost: int = 0
    rejected: int = 0
    bytes_sent: dict[int, int] = field(default_factory=dict)


@dataclass(order=True, slots=True)
class _Event:
    at_ms: int
    order: int
    sender: int = field(compare=False)
    receiver: int = field(compare=False)
    frame: bytes = field(compare=False)


def sim_key(index: int, seed: int = 0) -> NodeKey:
    """A fast deterministic key for node `index`."""
    return NodeKey.from_seed(hashlib.sha256(f"gossip-sim:{seed}:{index}".encode()).digest())


def sim_address(index: int) -> str:
    return f"sim-{index}:7100"


def sample_capabilities(index: int) -> Capabilities:
    model = Model("gemma-3-270m-q4", 32_768, "llamacpp")
    hardware = Hardware("x86_64 8 cores", "", 16_384)
    return Capabilities(sim_address(index), f"10.0.0.{index % 250}:8100", (model,), hardware, 0, 0)


class GossipSim:
    """N nodes, one simulated clock; `run_rounds` and `run_until` advance it."""

    def __init__(
        self,
        n: int,
        seed: int,
        *,
        config: Callable[[str], GossipConfig] = GossipConfig,
        loss: float = 0.0,
        latency_ms: int = 5,
        tick_ms: int = 100,
    ) -> None:
        self.now_ms = EPOCH_MS
        self.loss = loss
        self.stats = SimStats()
        self._rng = random.Random(seed)  # noqa: S311 (a reproducible simulation)
        self._latency_ms = latency_ms
        self._tick_ms = tick_ms
        self._queue: list[_Event] = []
        self._order = 0
        self._link_delay: dict[tuple[int, int], int] = {}
        self._cut: set[tuple[int, int]] = set()
        self._node_loss: dict[int, float] = {}
        self.nodes = [self._make_node(i, seed, config) for i in range(n)]
        self._by_id = {node.key.node_id: node.index for node in self.nodes}
        self.round_ms = config("").probe_interval_ms

    def _make_node(self, i: int, seed: int, config: Callable[[str], GossipConfig]) -> SimNode:
        key = sim_key(i, seed)
        gossip = GossipNode(key, config(sim_address(i)), random.Random(f"{seed}:{i}"))  # noqa: S311
        return SimNode(i, key, gossip, ReplayGuard(), SequenceCounter(self.now_ms * 1000))

    # Scenario controls

    def node_id(self, index: int) -> str:
        return self.nodes[index].key.node_id

    def live(self) -> list[SimNode]:
        return [node for node in self.nodes if node.alive]

    def join_all(self, bootstrap: int = 0) -> None:
        """Every node but `bootstrap` joins through it."""
        for node in self.nodes:
            if node.index != bootstrap:
                self.send(node.index, node.gossip.join([sim_address(bootstrap)]))

    def seed_membership(self, count: int | None = None, bootstrap: int = 0) -> None:
        """A fast start for the first `count` nodes (default all; the rest are not started):
        each receives, through a real sealed frame, the member list the bootstrap node would
        return to a join once all had joined: all alive at incarnation 0. The bootstrap node
        gets the same list from the next node. Each node opens the frame with its own guard."""
        started = self.nodes[: len(self.nodes) if count is None else count]
        for node in self.nodes[len(started) :]:
            node.alive = False
        members = tuple(
            Rumor(node.key.node_id, sim_address(node.index), 0, Status.ALIVE) for node in started
        )
        reply = SyncReply(members, (), ())
        peer = (bootstrap + 1) % len(started)
        from_bootstrap = self.seal_from(bootstrap, reply)
        self.deliver_at(self.now_ms, peer, bootstrap, self.seal_from(peer, reply))
        for node in started:
            if node.index != bootstrap:
                self.deliver_at(self.now_ms, bootstrap, node.index, from_bootstrap)
        self._deliver_until(self.now_ms + 1)

    def start(self, index: int, bootstrap: int = 0) -> None:
        """Start a node that was not running and join it through `bootstrap`."""
        node = self.nodes[index]
        node.alive = True
        self.send(index, node.gossip.join([sim_address(bootstrap)]))

    def kill(self, index: int) -> None:
        """The node stops sending, receiving and ticking, as a crashed process does."""
        self.nodes[index].alive = False

    def slow_link(self, a: int, b: int, extra_ms: int) -> None:
        self._link_delay[(a, b)] = extra_ms
        self._link_delay[(b, a)] = extra_ms

    def partition(self, *sides: Iterable[int]) -> None:
        """Cut every link between nodes on different sides (frames drop silently, both ways);
        a node on no side keeps all its links."""
        groups = [set(side) for side in sides]
        for i, a in enumerate(groups):
            for b in groups[i + 1 :]:
                self._cut |= {(x, y) for x in a for y in b} | {(y, x) for x in a for y in b}

    def heal(self) -> None:
        self._cut.clear()

    def bad_uplink(self, index: int, loss: float) -> None:
        """Every message to or from node `index` is also lost with probability `loss`."""
        self._node_loss[index] = loss

    def send(self, sender: int, outgoing: Iterable[Outgoing]) -> None:
        """Seal each message with the sender's key and schedule its delivery."""
        for out in outgoing:
            receiver = self._resolve(out.to)
            frame = self.seal_from(sender, out.message)
            self.stats.sent += 1
            self.stats.bytes_sent[sender] = self.stats.bytes_sent.get(sender, 0) + len(frame)
            cut = (sender, receiver) in self._cut
            loss = self.loss
            for end in (sender, receiver):
                if end is not None and end in self._node_loss:
                    loss = 1 - (1 - loss) * (1 - self._node_loss[end])
            if receiver is None or cut or self._rng.random() < loss:
                self.stats.lost += 1
                continue
            delay = self._latency_ms + self._link_delay.get((sender, receiver), 0)
            self.deliver_at(self.now_ms + delay, sender, receiver, frame)

    def seal_from(self, index: int, message: GossipMessage) -> bytes:
        """A hop frame from node `index`, with its next sequence number."""
        node = self.nodes[index]
        return seal(
            node.key,
            message.TYPE,
            message.encode(),
            seq=node.seq.next(),
            now_ms=self.now_ms,
            lifetime_ms=HOP_LIFETIME_MS,
        )

    def deliver_at(self, at_ms: int, sender: int, receiver: int, frame: bytes) -> None:
        """Schedule raw bytes, as an attacker on the link could."""
        self._order += 1
        heapq.heappush(self._queue, _Event(at_ms, self._order, sender, receiver, frame))

    def _resolve(self, to: str) -> int | None:
        if to.startswith("sim-"):
            return int(to.removeprefix("sim-").removesuffix(":7100"))
        return self._by_id.get(to)

    # Running

    def run_rounds(self, rounds: int) -> None:
        self.run_ms(rounds * self.round_ms)

    def run_until(self, done: Callable[[], bool], max_rounds: int) -> int | None:
        """Rounds until `done()` holds (checked after each round), or None within `max_rounds`."""
        for completed in range(1, max_rounds + 1):
            self.run_rounds(1)
            if done():
                return completed
        return None

    def run_ms(self, duration_ms: int) -> None:
        end = self.now_ms + duration_ms
        while self.now_ms < end:
            next_tick = self.now_ms + self._tick_ms
            self._deliver_until(next_tick)
            self.now_ms = next_tick
            for node in self.nodes:
                if node.alive:
                    self.send(node.index, node.gossip.tick(self.now_ms))

    def _deliver_until(self, until_ms: int) -> None:
        while self._queue and self._queue[0].at_ms < until_ms:
            event = heapq.heappop(self._queue)
            self.now_ms = max(self.now_ms, event.at_ms)
            self._deliver(event)

    def _deliver(self, event: _Event) -> None:
        node = self.nodes[event.receiver]
        if not node.alive:
            self.stats.lost += 1
            return
        try:
            envelope = open_envelope(
                event.frame, now_ms=self.now_ms, known_types=HOP_TYPES, replay_guard=node.guard
            )
            message = decode_message(envelope.type, envelope.payload)
        except WireError:
            self.stats.rejected += 1
            return
        self.stats.delivered += 1
        self.send(node.index, node.gossip.receive(envelope.sender, message, self.now_ms))

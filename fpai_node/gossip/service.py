"""The gossip I/O shell: runs a GossipNode over the peer channel (specs/0004-gossip.md).

Outgoing messages are sealed with the node key and POSTed to the destination's frame route;
incoming frames (this service serves the frame route, PEER-1) are verified (envelope, replay
guard, and the envelope's sender must be the node whose key the TLS handshake proved) before the
state machine sees them.
"""

import asyncio
import os
import platform
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import structlog
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from fpai_node.gossip.incarnation_file import load_incarnation, save_incarnation
from fpai_node.gossip.messages import (
    HOP_LIFETIME_MS,
    HOP_TYPES,
    Capabilities,
    Status,
    decode_message,
)
from fpai_node.gossip.state import GossipConfig, GossipNode, MemberView, Outgoing
from fpai_node.identity import NodeKey, is_node_id
from fpai_node.peer.client import PeerClient
from fpai_node.peer.server import FRAME_PATH
from fpai_node.service import FrameRefused, PeerRoute, RpcRoute, Service, counter
from fpai_node.wire import ReplayGuard, SequenceCounter, WireError, open_envelope, seal

TICK_S = 0.1  # timers need a tick well inside the 300 ms ping timeout
RECHECK_CAPABILITIES_S = 5.0  # load changes are re-announced at most this often
CONNECTIONS_PER_PEER = 4  # gossip sends a handful of small frames a second to any one peer
SEND_TIMEOUT_S = 5.0  # a frame not taken in 5 s is lost; SWIM's timers already gave up on it
log = structlog.get_logger("fpai.gossip")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class GossipService(Service):
    name = "gossip"

    def __init__(
        self,
        key: NodeKey,
        address: str,
        client: PeerClient,
        join: tuple[str, ...],
        capabilities: Callable[[str], Capabilities],
        incarnation_file: Path,
    ) -> None:
        """`address` is this node's peer channel address, as it announces it; the node's
        incarnation is kept in `incarnation_file` across restarts (GOSSIP-12)."""
        self.address = address
        self._key = key
        self._join = join
        self._capabilities = capabilities
        self._incarnation_file = incarnation_file
        self._kept_incarnation = load_incarnation(incarnation_file)
        self.node = GossipNode(
            key,
            GossipConfig(address=self.address),
            random.SystemRandom(),
            incarnation=self._kept_incarnation,
        )
        self._seq = SequenceCounter(time.time_ns() // 1_000)
        self._guard = ReplayGuard()
        self._pool = client.pool(
            connections_per_peer=CONNECTIONS_PER_PEER, timeout_s=SEND_TIMEOUT_S
        )
        self._sending: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._announced: Capabilities | None = None
        # for /metrics: messages by type, failures and rejections by reason
        self.sent: Counter[str] = Counter()
        self.send_failures: Counter[str] = Counter()
        self.received: Counter[str] = Counter()
        self.rejected: Counter[str] = Counter()

    def peer_routes(self) -> Sequence[PeerRoute]:
        return (RpcRoute(FRAME_PATH, self._on_frame),)

    async def start(self) -> None:
        self._announce_if_changed()
        self._dispatch(self.node.join(list(self._join)))
        self._loop_task = asyncio.create_task(self._run(), name="gossip")
        log.info("gossip started", peer=self.address, join=list(self._join))

    async def stop(self, leave: bool) -> None:
        """Say goodbye (GOSSIP-15) if we ever said hello, with or without `leave`: a node that
        will be back rejoins gossip as a new incarnation. Safe after a start that failed half
        way, and more than once."""
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)
            self._loop_task = None
            self._dispatch(self.node.leave(now_ms()))
            if self._sending:
                await asyncio.wait(self._sending, timeout=1.0)

    def members(self) -> list[MemberView]:
        return [m for m in self.node.members().values() if m.node_id != self._key.node_id]

    def is_live_member(self, node_id: str) -> bool:
        """Alive or suspected: a node this one currently counts as part of the federation."""
        member = self.node.member(node_id)
        return member is not None and member.status in (Status.ALIVE, Status.SUSPECT)

    def is_declared_dead(self, node_id: str) -> bool:
        """Held `dead`: gossip's verdict that the node failed (not `left`, not unknown)."""
        member = self.node.member(node_id)
        return member is not None and member.status is Status.DEAD

    def status_sections(self) -> Mapping[str, object]:
        """`peers`: state, incarnation and announced capabilities of every other member."""
        table: list[dict[str, object]] = []
        for member in sorted(self.members(), key=lambda m: m.node_id):
            entry: dict[str, object] = {
                "node_id": member.node_id,
                "address": member.address,
                "state": str(member.status),
                "incarnation": member.incarnation,
            }
            if member.announcement is not None:
                caps = member.announcement.capabilities
                entry.update(
                    api=caps.api_address,
                    models=[
                        {"id": m.model_id, "context_length": m.context_length, "backend": m.backend}
                        for m in caps.models
                    ],
                    hardware={
                        "cpu": caps.hardware.cpu,
                        "gpu": caps.hardware.gpu,
                        "memory_mb": caps.hardware.memory_mb,
                    },
                    load_permille=caps.load_permille,
                    queue_depth=caps.queue_depth,
                    protocol_version=member.announcement.protocol_version,
                )
            table.append(entry)
        return {"peers": table}

    def metrics(self) -> Iterable[Metric]:
        by_state = dict.fromkeys((str(s) for s in Status), 0)
        for member in self.members():
            by_state[str(member.status)] += 1
        peers = GaugeMetricFamily(
            "fpai_peers", "Other nodes in this node's gossip table, by state.", labels=["state"]
        )
        for state, count in by_state.items():
            peers.add_metric([state], count)
        yield peers
        yield counter(
            "fpai_gossip_messages_sent",
            "Gossip messages sealed and sent, by message type.",
            "type",
            self.sent,
        )
        yield counter(
            "fpai_gossip_send_failures",
            "Gossip messages a peer did not take: unreachable, or refused (any non-204 answer).",
            "reason",
            self.send_failures,
        )
        yield counter(
            "fpai_gossip_messages_received",
            "Gossip messages accepted and handed to the membership state machine, by type.",
            "type",
            self.received,
        )
        yield counter(
            "fpai_gossip_messages_rejected",
            "Gossip frames rejected after the peer channel let them through, by reason.",
            "reason",
            self.rejected,
        )
        stats = self.node.stats
        yield counter(
            "fpai_gossip_transitions",
            "Peers this node marked suspect or dead, by the state they moved to.",
            "state",
            {"suspect": stats.suspicions, "dead": stats.deaths},
        )
        yield CounterMetricFamily(
            "fpai_gossip_refutations",
            "Times this node refuted a suspicion about itself.",
            value=stats.refutations,
        )
        yield CounterMetricFamily(
            "fpai_gossip_reconnects",
            "Syncs sent to a member held dead, or, with no member live, to the join addresses "
            "(GOSSIP-22).",
            value=stats.reconnects,
        )
        yield GaugeMetricFamily(
            "fpai_gossip_local_health",
            "Lifeguard's local health multiplier (GOSSIP-23): 0 while probes are answered; "
            "probes and suspicions run (1 + this) times slower.",
            value=self.node.local_health,
        )
        yield counter(
            "fpai_gossip_announcements",
            "Capability announcements handled: accepted, stale (an older one), or rejected.",
            "result",
            {
                "accepted": stats.announcements_accepted,
                "stale": stats.announcements_stale,
                "rejected": stats.announcements_rejected,
            },
        )
        yield counter(
            "fpai_gossip_rumors_refused",
            "Rumors ignored: an incarnation beyond the step from the one held (GOSSIP-10).",
            "reason",
            {"incarnation_jump": stats.rumors_refused},
        )
        yield counter(
            "fpai_gossip_table_events",
            "The member table: newcomers refused when full, members evicted for a newcomer, "
            "members forgotten after forget_after_ms dead or left.",
            "event",
            {
                "refused": stats.members_refused,
                "evicted": stats.members_evicted,
                "forgotten": stats.members_forgotten,
            },
        )

    async def _run(self) -> None:
        next_check = time.monotonic() + RECHECK_CAPABILITIES_S
        while True:
            await asyncio.sleep(TICK_S)
            try:
                self._dispatch(self.node.tick(now_ms()))
                if time.monotonic() >= next_check:
                    next_check = time.monotonic() + RECHECK_CAPABILITIES_S
                    self._announce_if_changed()
            except Exception:  # one bad state must not end failure detection for good
                log.exception("gossip tick failed")

    def _announce_if_changed(self) -> None:
        capabilities = self._capabilities(self.address)
        if capabilities != self._announced:
            self.node.announce(capabilities, now_ms())
            self._announced = capabilities

    async def _on_frame(self, peer: str, frame: bytes) -> None:
        """The frame route (PEER-1, PEER-2): verified, then handed to the state machine. The
        sender is checked before the replay guard sees the frame: a peer relaying another
        node's frame must not move that node's window here (PEER-2)."""
        now = now_ms()
        try:
            envelope = open_envelope(frame, now_ms=now, known_types=HOP_TYPES, replay_guard=None)
            if envelope.sender != peer:
                self.rejected["sender_not_peer"] += 1
                raise FrameRefused("sender_not_peer")
            message = decode_message(envelope.type, envelope.payload)
            self._guard.accept(
                envelope.sender, envelope.seq, envelope.timestamp_ms, envelope.expires_ms, now
            )
        except WireError as exc:
            self.rejected[exc.reason] += 1
            raise FrameRefused(exc.reason) from None
        self.received[envelope.type] += 1
        try:
            self._dispatch(self.node.receive(envelope.sender, message, now))
            self._keep_incarnation()
        except Exception:
            log.exception("gossip message could not be handled", peer=peer, type=envelope.type)
            self.rejected["internal"] += 1
            raise FrameRefused("internal") from None

    def _keep_incarnation(self) -> None:
        if self.node.incarnation != self._kept_incarnation:
            save_incarnation(self._incarnation_file, self.node.incarnation)
            self._kept_incarnation = self.node.incarnation

    def _dispatch(self, outgoing: list[Outgoing]) -> None:
        for out in outgoing:
            address = out.to
            if is_node_id(out.to):
                member = self.node.member(out.to)
                if member is None:
                    continue
                address = member.address
            try:
                frame = seal(
                    self._key,
                    out.message.TYPE,
                    out.message.encode(),
                    seq=self._seq.next(),
                    now_ms=now_ms(),
                    lifetime_ms=HOP_LIFETIME_MS,
                )
            except ValueError as exc:  # e.g. a sync reply over the frame limit: skip this one
                log.error("gossip message not sent", type=out.message.TYPE, error=str(exc))
                continue
            self.sent[out.message.TYPE] += 1
            task = asyncio.create_task(self._send(address, frame))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _send(self, address: str, frame: bytes) -> None:
        status = await self._pool.send(address, frame)
        if status == 0:
            self.send_failures["unreachable"] += 1
        elif status != 204:
            self.send_failures["refused"] += 1
            log.debug("peer refused our frame", peer=address, status=status)


def hardware_summary() -> tuple[str, str, int]:
    """(CPU description, GPU vendor or "", memory in MiB) of this machine, for announcements."""
    cpu = f"{platform.machine()} x{os.cpu_count() or 1}"
    gpu = "nvidia" if Path("/dev/nvidiactl").exists() else ""
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1 << 20)
    except (ValueError, OSError):
        memory = 0
    return cpu, gpu, memory

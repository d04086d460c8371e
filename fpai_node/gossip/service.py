"""The gossip I/O shell: runs a GossipNode over the peer channel (specs/0004-gossip.md).

Outgoing messages are sealed with the node key and POSTed to the destination's peer address;
incoming frames are verified (envelope, replay guard, and the envelope's sender must be the
node whose key the TLS handshake proved) before the state machine sees them.
"""

import asyncio
import os
import platform
import random
import socket
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import structlog

from fpai_node.api.peer.channel import FrameRefused, PeerClient, PeerServer
from fpai_node.gossip.messages import HOP_TYPES, Capabilities, Status, decode_message
from fpai_node.gossip.state import GossipConfig, GossipNode, MemberView, Outgoing
from fpai_node.identity import NodeKey, is_node_id
from fpai_node.identity.tls import TlsIdentity
from fpai_node.wire import ReplayGuard, SequenceCounter, WireError, open_envelope, seal

TICK_S = 0.1  # timers need a tick well inside the 300 ms ping timeout
HOP_LIFETIME_MS = 10_000  # a hop message is acted on within a protocol period or never
RECHECK_CAPABILITIES_S = 5.0  # load changes are re-announced at most this often
log = structlog.get_logger("fpai.gossip")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class GossipService:
    def __init__(
        self,
        key: NodeKey,
        identity: TlsIdentity,
        peer_socket: socket.socket,
        join: tuple[str, ...],
        capabilities: Callable[[str], Capabilities],
    ) -> None:
        host, port = peer_socket.getsockname()[:2]
        self.address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self._key = key
        self._socket = peer_socket
        self._join = join
        self._capabilities = capabilities
        self.node = GossipNode(key, GossipConfig(address=self.address), random.SystemRandom())
        self._seq = SequenceCounter(time.time_ns() // 1_000)
        self._guard = ReplayGuard()
        self.server = PeerServer(identity, self._on_frame)
        self._client = PeerClient(identity)
        self._sending: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._announced: Capabilities | None = None
        # for /metrics: messages by type, failures and rejections by reason
        self.sent: Counter[str] = Counter()
        self.send_failures: Counter[str] = Counter()
        self.received: Counter[str] = Counter()
        self.rejected: Counter[str] = Counter()

    async def start(self) -> None:
        await self._client.start()
        await self.server.start(self._socket)
        self._announce_if_changed()
        self._dispatch(self.node.join(list(self._join)))
        self._loop_task = asyncio.create_task(self._run(), name="gossip")
        log.info("gossip started", peer=self.address, join=list(self._join))

    async def stop(self) -> None:
        """Say goodbye (GOSSIP-15) if we ever said hello, then release everything start() got:
        safe to call after a start that failed half way, and more than once."""
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)
            self._loop_task = None
            self._dispatch(self.node.leave(now_ms()))
            if self._sending:
                await asyncio.wait(self._sending, timeout=1.0)
        try:
            await self.server.stop()
        finally:
            await self._client.close()

    def members(self) -> list[MemberView]:
        return [m for m in self.node.members().values() if m.node_id != self._key.node_id]

    def is_live_member(self, node_id: str) -> bool:
        """Alive or suspected: a node this one currently counts as part of the federation."""
        member = self.node.member(node_id)
        return member is not None and member.status in (Status.ALIVE, Status.SUSPECT)

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
        try:
            envelope = open_envelope(
                frame, now_ms=now_ms(), known_types=HOP_TYPES, replay_guard=self._guard
            )
            message = decode_message(envelope.type, envelope.payload)
        except WireError as exc:
            self.rejected[exc.reason] += 1
            raise FrameRefused(exc.reason) from None
        if envelope.sender != peer:
            self.rejected["sender_not_peer"] += 1
            raise FrameRefused("sender_not_peer")
        self.received[envelope.type] += 1
        try:
            self._dispatch(self.node.receive(envelope.sender, message, now_ms()))
        except Exception:
            log.exception("gossip message could not be handled", peer=peer, type=envelope.type)
            self.rejected["internal"] += 1
            raise FrameRefused("internal") from None

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
        status = await self._client.send(address, frame)
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


def peers_json(gossip: "GossipService | None") -> list[dict[str, object]]:
    """The peer table for /fpai/v1/status: state, incarnation and announced capabilities."""
    if gossip is None:
        return []
    table: list[dict[str, object]] = []
    for member in sorted(gossip.members(), key=lambda m: m.node_id):
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
    return table


def peer_channel_json(gossip: "GossipService | None") -> dict[str, object] | None:
    """The peer channel's address and its refusals by reason, for status and operators."""
    if gossip is None:
        return None
    return {"address": gossip.address, "refusals": dict(gossip.server.refusals)}

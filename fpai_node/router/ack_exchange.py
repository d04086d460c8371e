"""Acknowledgements on their way back to the servers (specs/0010-rewards.md RWD-3).

The requester signs an acknowledgement when an answer ends and keeps the pair at once; the
server gets its copy in the background, in batches, so that a forwarded request waits for no
extra round trip. The server accepts an acknowledgement only for a receipt it signed for that
requester and has not seen acknowledged, and keeps the pair.
"""

import asyncio
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from fpai_node.peer.client import PeerClient
from fpai_node.router.acks import (
    ACKS_PATH,
    MAX_ACKS_PER_BATCH,
    Pair,
    decode_acks,
    encode_ack_result,
    encode_acks,
    read_ack,
    read_pair,
    receipt_hash,
)
from fpai_node.router.messages import RECEIPT_LIFETIME_MS, ReceiptRejected
from fpai_node.router.receipts import ReceiptLog, Recent
from fpai_node.service import FrameRefused, RpcRoute
from fpai_node.wire import codec
from fpai_node.wire.errors import WireError

FLUSH_S = 0.5  # acknowledgements wait at most this long for others to the same server
RETRY_S = 5.0  # a server that did not take a batch is asked again this much later
DELIVERY_WINDOW_MS = 600_000  # RWD-3: a requester retries for 10 minutes, then gives up
# RWD-3: a server waits this long for a receipt's acknowledgement: signed while the receipt
# is live, delivered within the window
PENDING_MS = RECEIPT_LIFETIME_MS + DELIVERY_WINDOW_MS
MAX_PENDING = 1 << 16  # receipts awaiting acknowledgement: 11 minutes at 100 requests/s
MAX_QUEUED = 1 << 16  # acknowledgements awaiting delivery, all servers together
CONNECTIONS_PER_PEER = 2  # batches are small and rare: two connections carry them
CALL_TIMEOUT_S = 10.0
log = structlog.get_logger("fpai.router")


@dataclass(frozen=True, slots=True)
class _Expected:
    frame: bytes
    requester: str
    at_ms: int


class AckInbox:
    """The server's side: receipts it signed, waiting for their acknowledgements."""

    def __init__(self, node_id: str, receipts: ReceiptLog) -> None:
        self._node_id = node_id
        self._receipts = receipts
        self._expected: OrderedDict[bytes, _Expected] = OrderedDict()
        # acknowledged lately, by receipt: a requester that restarted sends its last ones again
        self._acknowledged: OrderedDict[bytes, int] = OrderedDict()
        self.accepted = 0
        self.refused: Counter[str] = Counter()
        self.on_pair: Callable[[Pair], None] | None = None  # rewards' digests (RWD-5)

    def expect(self, frame: bytes, requester: str, at_ms: int) -> None:
        """A receipt was signed for `requester` at `at_ms`: its acknowledgement may come within
        PENDING_MS."""
        self._forget_old(at_ms)
        self._expected[receipt_hash(frame)] = _Expected(frame, requester, at_ms)

    def _forget_old(self, now_ms: int) -> None:
        while self._expected and (
            len(self._expected) >= MAX_PENDING
            or next(iter(self._expected.values())).at_ms + PENDING_MS < now_ms
        ):
            self._expected.popitem(last=False)
        while self._acknowledged and (
            len(self._acknowledged) >= MAX_PENDING
            or next(iter(self._acknowledged.values())) + PENDING_MS < now_ms
        ):
            self._acknowledged.popitem(last=False)

    def route(self) -> RpcRoute:
        return RpcRoute(ACKS_PATH, self.handle)

    async def handle(self, peer: str, body: bytes) -> bytes:
        try:
            frames = decode_acks(body)
        except WireError as exc:
            raise FrameRefused("malformed") from exc
        refused: Counter[str] = Counter()
        accepted = 0
        for frame in frames:
            try:
                self._accept(peer, frame)
                accepted += 1
            except ReceiptRejected as exc:
                refused[exc.reason] += 1
        self.accepted += accepted
        self.refused.update(refused)
        if refused:
            log.warning("acknowledgements refused", peer=peer, refused=dict(refused))
        return encode_ack_result(accepted, dict(refused))

    def _accept(self, peer: str, frame: bytes) -> None:
        """RWD-3: the acknowledgement is the caller's, of a receipt this node signed for it and
        has not seen acknowledged; then the pair is kept."""
        ack = read_ack(frame)
        if ack.requester != peer:
            raise ReceiptRejected("sender_not_peer", "an acknowledgement comes from its signer")
        if ack.server != self._node_id:
            raise ReceiptRejected("wrong_server", "the acknowledgement is for another server")
        if ack.receipt in self._acknowledged:
            return  # a requester that restarted: already kept
        expected = self._expected.get(ack.receipt)
        if expected is None or expected.requester != peer:
            raise ReceiptRejected("unknown_receipt", "no receipt of ours awaits it")
        pair = read_pair(expected.frame, frame)
        del self._expected[ack.receipt]
        self._acknowledged[ack.receipt] = expected.at_ms
        self._receipts.add("acked", pair.receipt_frame, pair.ack_frame)
        if self.on_pair is not None:
            self.on_pair(pair)

    def restore(self, recent: Recent) -> None:
        """After a restart: the served receipts of the last PENDING_MS, acknowledged or not."""
        for digest, at_ms in sorted(recent.acknowledged, key=lambda item: item[1]):
            self._acknowledged[digest] = at_ms
        for frame, receipt in sorted(recent.unacknowledged, key=lambda item: item[1].at_ms):
            self.expect(frame, receipt.requester, receipt.at_ms)


class AckOutbox:
    """The requester's side: acknowledgements queued per server, sent in batches, retried
    until the server answers or the delivery window closes."""

    def __init__(self, client: PeerClient) -> None:
        self._pool = client.pool(
            connections_per_peer=CONNECTIONS_PER_PEER, timeout_s=CALL_TIMEOUT_S
        )
        self.address_of: Callable[[str], str | None] = lambda node_id: None
        self._queues: dict[str, list[tuple[int, bytes]]] = {}  # server -> (signed at, frame)
        self._addresses: dict[str, str] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.delivered = 0
        self.retries = 0  # rounds that left acknowledgements for later (a server unreachable)
        self.dropped: Counter[str] = Counter()  # by reason: expired, overflow, refused

    @property
    def queued(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def send(self, pair: Pair, address: str | None = None) -> None:
        """Queue `pair`'s acknowledgement for its server, reached at `address` or wherever
        gossip says it is when the batch goes."""
        if self.queued >= MAX_QUEUED:
            self.dropped["overflow"] += 1
            return
        server = pair.receipt.server
        if address is not None:
            self._addresses[server] = address
        self._queues.setdefault(server, []).append((pair.ack.at_ms, pair.ack_frame))
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._deliver(), name="acknowledgements")

    async def stop(self) -> None:
        """Stop sending: what is still queued goes again after a restart (RouterService
        sends the acknowledgements of the last DELIVERY_WINDOW_MS; servers take them once)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _deliver(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(FLUSH_S)
            self._wake.clear()
            if not await self._flush_all():
                self.retries += 1
                await asyncio.sleep(RETRY_S)
                self._wake.set()

    async def _flush_all(self) -> bool:
        """Every queue once; False when something is left for a retry."""
        results = await asyncio.gather(*(self._flush(server) for server in list(self._queues)))
        return all(results)

    async def _flush(self, server: str) -> bool:
        """One server's queue in batches; what is not taken goes back for a retry, unless the
        server refused it for good (a 4xx other than 429: it does not know the route)."""
        queue = self._queues.pop(server, [])
        now_ms = time.time_ns() // 1_000_000
        live = [item for item in queue if now_ms - item[0] <= DELIVERY_WINDOW_MS]
        if len(live) < len(queue):
            self.dropped["expired"] += len(queue) - len(live)
        address = self._addresses.get(server) or self.address_of(server)
        while live:
            batch = live[:MAX_ACKS_PER_BATCH]
            frames = [frame for _, frame in batch]
            status, answer = (
                await self._pool.call(address, ACKS_PATH, encode_acks(frames))
                if address
                else (0, b"")
            )
            if status == 0 or status == 429 or status >= 500:
                self._queues[server] = live + self._queues.get(server, [])
                log.info("acknowledgements not delivered yet", peer=server, status=status)
                return False
            del live[: len(batch)]
            if status != 200:
                self.dropped[f"http_{status}"] += len(batch)
                log.warning("server does not take acknowledgements", peer=server, status=status)
                continue
            self.delivered += len(batch)
            _count_refusals(server, answer, self.dropped)
        return True


def _count_refusals(server: str, answer: bytes, dropped: Counter[str]) -> None:
    """RWD-3's answer: how many the server refused (a well-behaved requester sees none)."""
    try:
        value = codec.decode(answer)
    except WireError:
        return
    refused = value.get("refused") if isinstance(value, dict) else None
    if not isinstance(refused, dict):
        return
    total = sum(v for v in refused.values() if type(v) is int and v > 0)
    if total:
        dropped["refused"] += total
        log.warning("server refused acknowledgements", peer=server, refused=total)

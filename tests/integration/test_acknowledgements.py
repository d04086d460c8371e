"""Acknowledgements between a real requester and a real server over mutual TLS (specs/0010
RWD-1..RWD-3): the requester keeps the pair at once, the server gets its copy in the background
and keeps the same pair; a hostile member's acknowledgements are refused, a resent one is taken
once, and an unreachable server gets its batch when it is back."""

import datetime as dt
import hashlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fpai_node.identity import NodeKey
from fpai_node.identity.tls import TlsIdentity
from fpai_node.inference.base import Finish, TextChunk, Usage
from fpai_node.inference.service import InferenceService
from fpai_node.peer.client import PeerClient, PeerPool
from fpai_node.peer.server import PeerServer
from fpai_node.router import ack_exchange
from fpai_node.router.ack_exchange import PENDING_MS, AckInbox
from fpai_node.router.acks import ACKS_PATH, acknowledge, encode_acks, read_ack
from fpai_node.router.forward import Acknowledged, Forwarder, Timing
from fpai_node.router.jobs import parse_job
from fpai_node.router.messages import InferRequest, read_stored_receipt
from fpai_node.router.receipts import Kept, ReceiptLog, read_receipts, recent
from fpai_node.router.select import Candidate
from fpai_node.router.serve import PeerInference
from fpai_node.testing.nodeproc import until
from fpai_node.testing.scripted_backend import ScriptedBackend
from fpai_node.wire import codec

pytestmark = pytest.mark.timeout(30)
SERVER, REQUESTER, STRANGER = NodeKey.generate(), NodeKey.generate(), NodeKey.generate()
BODY = b'{"model": "x", "messages": [{"role": "user", "content": "Hi"}]}'


def listening() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    sock.setblocking(False)
    return sock


@dataclass
class Server:
    serving: PeerInference
    log: ReceiptLog
    peer: PeerServer
    address: str


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    backend = ScriptedBackend(
        [TextChunk("Hel"), TextChunk("lo"), Finish("stop", Usage(7, 2))], model="x"
    )
    inference = InferenceService([backend], max_waiting=4)
    await inference.start()
    log = ReceiptLog(tmp_path / "served.log")
    serving = PeerInference(SERVER, inference, log, lambda peer: True)
    now = dt.datetime.now(dt.UTC)
    peer = PeerServer(TlsIdentity.open(SERVER, now), [serving.route(), serving.acks.route()])
    sock = listening()
    await peer.start(sock)
    yield Server(serving, log, peer, peer.address)
    await peer.stop()
    await log.close()
    await inference.close()


async def requester(
    tmp_path: Path, key: NodeKey = REQUESTER
) -> tuple[Forwarder, PeerClient, ReceiptLog]:
    log = ReceiptLog(tmp_path / f"{key.node_id}.log")
    client = PeerClient(TlsIdentity.open(key, dt.datetime.now(dt.UTC)))
    forwarder = Forwarder(key, client, log, is_dead=lambda peer: False)
    OWN_POOLS[key.node_id] = client.pool(connections_per_peer=1, timeout_s=5)
    await client.start()
    return forwarder, client, log


OWN_POOLS: dict[str, PeerPool] = {}  # a pool of the requester's own, for raw posts


async def forward(forwarder: Forwarder, address: str, request_id: str = "req-1") -> list[object]:
    job = parse_job("chat", BODY)
    request = InferRequest("chat", BODY, request_id, (forwarder_id(forwarder),))
    candidate = Candidate(SERVER.node_id, address, 0)
    return [e async for e in forwarder.attempt(candidate, job, request, Timing())]


def forwarder_id(forwarder: Forwarder) -> str:
    return forwarder._key.node_id


def pairs(path: Path) -> list[Kept]:
    return [k for k in read_receipts(path) if isinstance(k, Kept) and k.pair is not None]


async def test_both_sides_keep_the_same_pair(server: Server, tmp_path: Path) -> None:
    forwarder, client, log = await requester(tmp_path)
    seen: list[Acknowledged] = []
    forwarder.on_acknowledged = seen.append
    forwarder.acks.start()
    try:
        events = await forward(forwarder, server.address)
        assert events[-1] == Finish("stop", Usage(7, 2))
        await until(lambda: server.serving.acks.accepted == 1)
    finally:
        await forwarder.acks.stop()
        await client.close()
        await log.close()
    await server.log.close()
    [used] = pairs(tmp_path / f"{REQUESTER.node_id}.log")
    [acked] = pairs(tmp_path / "served.log")
    assert used.direction == "used" and acked.direction == "acked"
    assert used.pair == acked.pair  # the same frames on both sides
    assert used.pair is not None
    assert used.pair.ack.output == hashlib.sha256(b"Hello").digest()
    [offered] = seen  # what spot checks get: the pair, the request and the text
    assert (offered.pair, offered.text) == (used.pair, "Hello")
    assert server.serving.acks.refused == {}


async def test_hostile_acknowledgements_are_refused_and_a_resent_one_kept_once(
    server: Server, tmp_path: Path
) -> None:
    forwarder, client, log = await requester(tmp_path)
    stranger_pool = PeerClient(TlsIdentity.open(STRANGER, dt.datetime.now(dt.UTC)))
    pool = stranger_pool.pool(connections_per_peer=1, timeout_s=5)
    own = OWN_POOLS[REQUESTER.node_id]
    await stranger_pool.start()
    try:
        await forward(forwarder, server.address)
        await log.close()
        [used] = pairs(tmp_path / f"{REQUESTER.node_id}.log")
        assert used.pair is not None
        frame = used.pair.ack_frame
        # the requester's own acknowledgement, sent by another member: not the signer
        status, answer = await pool.call(server.address, ACKS_PATH, encode_acks([frame]))
        assert status == 200
        assert codec.decode(answer) == {"accepted": 0, "refused": {"sender_not_peer": 1}}
        # the stranger acknowledges the requester's receipt itself: no receipt of ours for it
        receipt = read_stored_receipt(used.pair.receipt_frame)
        forged = acknowledge(
            STRANGER, used.pair.receipt_frame, receipt, output=bytes(32), verdict="ok",
            seq=1, now_ms=receipt.at_ms + 1,
        ).ack_frame  # fmt: skip
        status, answer = await pool.call(server.address, ACKS_PATH, encode_acks([forged]))
        assert codec.decode(answer) == {"accepted": 0, "refused": {"unknown_receipt": 1}}
        # garbage is refused whole
        status, _ = await pool.call(server.address, ACKS_PATH, b"\xc1")
        assert status == 400
        # the requester sends its acknowledgement twice (as after a restart): kept once
        for _ in range(2):
            status, answer = await own.call(server.address, ACKS_PATH, encode_acks([frame]))
            assert codec.decode(answer) == {"accepted": 1, "refused": {}}
    finally:
        await stranger_pool.close()
        await client.close()
    await server.log.close()
    assert len(pairs(tmp_path / "served.log")) == 1


async def test_a_server_that_was_away_gets_its_acknowledgements_when_back(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ack_exchange, "RETRY_S", 0.1)
    monkeypatch.setattr(ack_exchange, "FLUSH_S", 0.05)
    forwarder, client, log = await requester(tmp_path)
    try:
        await forward(forwarder, server.address)
        away = listening()  # a port where nobody answers TLS: the server "moved"
        port = away.getsockname()[1]
        away.close()
        assert forwarder.acks.queued == 1
        forwarder.acks._addresses[SERVER.node_id] = f"127.0.0.1:{port}"
        forwarder.acks.start()
        await until(lambda: forwarder.acks.retries >= 2)  # two rounds found nobody there
        assert server.serving.acks.accepted == 0 and forwarder.acks.queued == 1
        forwarder.acks._addresses.clear()
        forwarder.acks.address_of = lambda node_id: server.address  # gossip knows where it is
        await until(lambda: server.serving.acks.accepted == 1)
        assert forwarder.acks.queued == 0 and forwarder.acks.delivered == 1
    finally:
        await forwarder.acks.stop()
        await client.close()
        await log.close()


async def test_a_restarted_server_waits_for_and_recognizes_its_receipts(
    server: Server, tmp_path: Path
) -> None:
    forwarder, client, log = await requester(tmp_path)
    try:
        await forward(forwarder, server.address, "req-1")
        await forward(forwarder, server.address, "req-2")
        await log.close()
        used = pairs(tmp_path / f"{REQUESTER.node_id}.log")
        assert len(used) == 2 and used[0].pair is not None and used[1].pair is not None
        first = used[0].pair.ack_frame
        status, _ = await OWN_POOLS[REQUESTER.node_id].call(
            server.address, ACKS_PATH, encode_acks([first])
        )
        assert status == 200
    finally:
        await client.close()
    await server.log.close()
    now_ms = used[0].receipt.at_ms
    found = recent(tmp_path / "served.log", SERVER.node_id, now_ms - PENDING_MS, now_ms)
    assert [read_ack(first).receipt] == [digest for digest, _ in found.acknowledged]
    assert [p.ack_frame for p in found.pairs] == [first]  # for rewards, from the same pass
    assert len(found.unacknowledged) == 1
    again = ReceiptLog(tmp_path / "again.log")
    restarted = AckInbox(SERVER.node_id, again)
    restarted.restore(found)
    assert await restarted.handle(REQUESTER.node_id, encode_acks([first])) == codec.encode(
        {"accepted": 1, "refused": {}}
    )
    second = used[1].pair.ack_frame
    assert codec.decode(await restarted.handle(REQUESTER.node_id, encode_acks([second]))) == {
        "accepted": 1,
        "refused": {},
    }
    await again.close()
    assert len(pairs(tmp_path / "again.log")) == 1  # the one that was still awaited

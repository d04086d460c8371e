"""The frame route of the peer channel as the gossip service serves it (specs/0003 PEER-1,
PEER-3; specs/0002 MSG-3; specs/0004 GOSSIP-1): what it accepts, what it refuses, and where
its replies go. The handler is called as the peer server calls it, with the node id the
caller's certificate proved; sending is recorded instead of reaching the network."""

import asyncio
import datetime as dt
import time
from pathlib import Path

import pytest

from fpai_node.gossip.messages import (
    Capabilities,
    Hardware,
    Piggyback,
    Ping,
    Push,
    Rumor,
    Status,
    Sync,
)
from fpai_node.gossip.service import GossipService
from fpai_node.identity import NodeKey
from fpai_node.identity.tls import TlsIdentity
from fpai_node.peer.client import PeerClient
from fpai_node.peer.server import FRAME_PATH
from fpai_node.service import FrameRefused, RpcRoute
from fpai_node.wire import messages as peer_messages
from fpai_node.wire import seal

NODE = NodeKey.from_seed(bytes([40]) * 32)
BOB = NodeKey.from_seed(bytes([41]) * 32)
CAROL = NodeKey.from_seed(bytes([42]) * 32)
NONCE = bytes(range(16))


class Sent:
    """What the service's pool was asked to send: (address, frame)."""

    def __init__(self) -> None:
        self.frames: list[tuple[str, bytes]] = []

    async def send(self, address: str, frame: bytes) -> int:
        self.frames.append((address, frame))
        return 204


@pytest.fixture
def service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[GossipService, Sent]:
    identity = TlsIdentity.open(NODE, dt.datetime.now(dt.UTC))
    gossip = GossipService(
        NODE,
        "127.0.0.1:7100",
        PeerClient(identity),
        join=(),
        capabilities=lambda address: Capabilities(address, "", (), Hardware("", "", 0), 0, 0),
        incarnation_file=tmp_path / "gossip-incarnation",
    )
    sent = Sent()
    monkeypatch.setattr(gossip._pool, "send", sent.send)
    return gossip, sent


def frame_route(gossip: GossipService) -> RpcRoute:
    (route,) = gossip.peer_routes()
    assert isinstance(route, RpcRoute)
    return route


def frame(key: NodeKey, msg_type: str, payload: bytes) -> bytes:
    now = time.time_ns() // 1_000_000
    return seal(key, msg_type, payload, seq=time.time_ns(), now_ms=now, lifetime_ms=10_000)


async def deliver(gossip: GossipService, peer: str, raw: bytes) -> bytes | None:
    answer = await frame_route(gossip).handler(peer, raw)
    for _ in range(3):  # let the replies it dispatched be sent
        await asyncio.sleep(0)
    return answer


async def refused(gossip: GossipService, peer: str, raw: bytes) -> str:
    with pytest.raises(FrameRefused) as info:
        await frame_route(gossip).handler(peer, raw)
    return info.value.reason


async def test_the_frame_route_accepts_a_hop_frame_with_an_empty_answer(
    service: tuple[GossipService, Sent],
) -> None:
    """PEER-1: frames arrive at POST /fpai/peer/v1/frame; an accepted one is answered with
    no body (the server's `204`, PEER-3)."""
    gossip, _ = service
    assert frame_route(gossip).path == FRAME_PATH == "/fpai/peer/v1/frame"
    ping = frame(BOB, Ping.TYPE, Ping(NONCE).encode())
    assert await deliver(gossip, BOB.node_id, ping) is None
    assert gossip.received == {"gossip.ping": 1}


async def test_peer_ping_and_gossip_announce_are_not_in_the_peer_channels_table(
    service: tuple[GossipService, Sent],
) -> None:
    """MSG-3: `peer.ping` and `peer.pong` are not peer-channel types; GOSSIP-1: nor is
    `gossip.announce`, which travels only inside hop messages. Both are `unknown_type`."""
    gossip, _ = service
    for msg_type, payload in (
        (peer_messages.Ping.TYPE, peer_messages.Ping(NONCE).encode()),
        (peer_messages.Pong.TYPE, peer_messages.Pong(NONCE).encode()),
        ("gossip.announce", b"\x80"),
    ):
        assert await refused(gossip, BOB.node_id, frame(BOB, msg_type, payload)) == "unknown_type"
    assert gossip.rejected == {"unknown_type": 3}


async def test_replies_go_to_the_address_held_for_the_sender_and_strangers_get_none(
    service: tuple[GossipService, Sent],
) -> None:
    """PEER-3: a reply is a separate POST to the address the member table holds for the
    sender; a ping from a node the table does not hold goes unanswered, a sync is answered at
    the address its sender gives for itself (GOSSIP-19)."""
    gossip, sent = service
    await deliver(gossip, BOB.node_id, frame(BOB, Ping.TYPE, Ping(NONCE).encode()))
    assert sent.frames == []  # Bob is no member: no ack

    bob_says = Rumor(BOB.node_id, "bob.example:7100", 0, Status.ALIVE)
    await deliver(gossip, BOB.node_id, frame(BOB, Push.TYPE, Push(Piggyback((bob_says,))).encode()))
    await deliver(gossip, BOB.node_id, frame(BOB, Ping.TYPE, Ping(NONCE).encode()))
    assert [address for address, _ in sent.frames] == ["bob.example:7100"]

    carol_says = Rumor(CAROL.node_id, "carol.example:7100", 0, Status.ALIVE)
    sync = Sync((carol_says,), ()).encode()
    await deliver(gossip, CAROL.node_id, frame(CAROL, Sync.TYPE, sync))
    assert [address for address, _ in sent.frames][1:] == ["carol.example:7100"]

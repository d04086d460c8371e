"""The pairs behind a digest, on the peer channel (specs/0010-rewards.md RWD-7): a member asks
for an epoch and gets every pair this node holds of it, in id order, to recompute the digest."""

import datetime as dt
from types import SimpleNamespace

import pytest

from fpai_node.identity.tls import TlsIdentity
from fpai_node.peer.client import PeerClient
from fpai_node.rewards.digests import merkle_root, summarize
from fpai_node.rewards.service import RewardsService
from fpai_node.router.acks import read_pair
from fpai_node.service import FrameRefused
from fpai_node.testing.pairs import NOW, REQUESTER, SERVER, make_pair
from fpai_node.wire import codec


async def test_a_member_gets_the_pairs_of_an_epoch_and_recomputes_the_digest() -> None:
    registry = SimpleNamespace(state=SimpleNamespace(parameters={"rewards.epoch_s": 60}))
    client = PeerClient(TlsIdentity.open(SERVER, dt.datetime.now(dt.UTC)))
    service = RewardsService(
        SERVER,
        registry,
        None,
        None,
        client,
        is_member=bool,  # type: ignore[arg-type]
    )
    epoch = NOW // 60_000
    inside = [make_pair(i, at_ms=NOW + i) for i in range(3)]
    for p in [*inside, make_pair(9, at_ms=NOW + 60_000)]:  # the last is in the next epoch
        service._add(p)
    answer = codec.decode(
        await service._pairs_of(REQUESTER.node_id, codec.encode({"epoch": epoch}))
    )
    assert answer == [[p.receipt_frame, p.ack_frame] for p in sorted(inside, key=lambda p: p.id)]
    pairs = [read_pair(r, a) for r, a in answer]  # type: ignore[union-attr,misc]
    digest = summarize(SERVER.node_id, epoch, pairs)
    assert digest.root == merkle_root(p.id for p in inside) and digest.pairs == 3
    for bad in (b"\xc1", codec.encode({"epoch": "1"}), codec.encode({"epoch": 1, "x": 2})):
        with pytest.raises(FrameRefused):
            await service._pairs_of(REQUESTER.node_id, bad)

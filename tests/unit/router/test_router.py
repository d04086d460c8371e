"""The router's shell over a hand-made peer table (specs/0006 ROUTE-1, ROUTE-7): who is a
candidate, and what a client gets when no candidate could serve. Nothing is forwarded: the
tests stop at the candidates, or at the answer given when there are none."""

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from fpai_node.gossip.messages import Announcement, Capabilities, Hardware, Model, Status
from fpai_node.gossip.state import MemberView
from fpai_node.identity import NodeKey
from fpai_node.identity.tls import TlsIdentity
from fpai_node.inference.base import InvalidRequest, ModelNotFound, Overloaded
from fpai_node.inference.service import InferenceService
from fpai_node.peer.client import PeerClient
from fpai_node.router.forward import Forwarder, PeerRefused, PeerUnavailable
from fpai_node.router.jobs import parse_job
from fpai_node.router.messages import Failed
from fpai_node.router.receipts import ReceiptLog
from fpai_node.router.router import NoRoute, Router, _exhausted
from fpai_node.router.select import Candidate
from fpai_node.testing.scripted_backend import ScriptedBackend
from fpai_node.wire import PROTOCOL_VERSION

ME = NodeKey.from_seed(bytes([70]) * 32)
BODY = b'{"model": "x", "messages": [{"role": "user", "content": "Hi"}]}'


def node(n: int) -> str:
    return NodeKey.from_seed(bytes([71 + n]) * 32).node_id


def member(
    n: int,
    status: Status = Status.ALIVE,
    *,
    models: tuple[str, ...] = ("x",),
    left: bool = False,
    protocol: int = PROTOCOL_VERSION,
    announced: bool = True,
) -> MemberView:
    address = f"10.0.0.{n}:7100"
    caps = Capabilities(
        address, "", tuple(Model(m, 4096, "llamacpp") for m in models), Hardware("", "", 0), 0, 0
    )
    announcement = Announcement(1, protocol, left, caps) if announced else None
    return MemberView(node(n), address, status, 0, announcement)


@pytest.fixture
async def forwarder(tmp_path: Path) -> AsyncIterator[Forwarder]:
    receipts = ReceiptLog(tmp_path / "receipts.log")
    identity = TlsIdentity.open(ME, dt.datetime.now(dt.UTC))
    yield Forwarder(ME, PeerClient(identity), receipts, is_dead=lambda peer: False)
    await receipts.close()


def proven(forwarder: Forwarder, *members: MemberView) -> None:
    """Each announced model of `members` answered a probe (ROUTE-9)."""
    for view in members:
        assert view.announcement is not None
        for offered in view.announcement.capabilities.models:
            forwarder.proofs.answered(view.node_id, offered.model_id)


async def test_candidates_are_this_node_and_live_current_proven_peers_offering_the_model(
    forwarder: Forwarder,
) -> None:
    """ROUTE-1: a peer is a candidate when its latest announcement lists the model, is not
    `left`, carries this node's protocol version, it is `alive` or `suspect`, and it proved
    the model; this node is one when a backend of its own serves the model."""
    table = [
        member(1),
        member(2, Status.SUSPECT),
        member(3, Status.DEAD),
        member(4, Status.LEFT, left=True),
        member(5, left=True),  # its `left` announcement, before the status caught up
        member(6, protocol=PROTOCOL_VERSION + 1),
        member(7, models=("other",)),
        member(8, announced=False),
        member(9),  # never proved the model
    ]
    proven(forwarder, *(m for m in table if m.node_id != node(9) and m.announcement))
    local = InferenceService([ScriptedBackend(model="x", context_length=4096)], max_waiting=1)
    await local.start()
    try:
        for inference, expected in (
            (InferenceService([], max_waiting=0), {node(1), node(2)}),
            (local, {ME.node_id, node(1), node(2)}),
        ):
            router = Router(ME.node_id, inference, members=lambda: table, forwarder=forwarder)
            chosen = router.candidates(parse_job("chat", BODY), "req-1")
            assert {c.node_id for c in chosen} == expected
    finally:
        await local.close()


async def test_with_no_candidate_the_client_learns_who_served_the_model_or_that_nobody_did(
    forwarder: Forwarder,
) -> None:
    """ROUTE-7: `503 model_unavailable` naming the nodes last known to serve the model, with
    their state, from gossip or the registry; `404 model_not_found` listing the federation's
    models when no node ever offered it."""
    table = [member(3, Status.DEAD), member(4, Status.LEFT, left=True), member(5, models=("y",))]
    proven(forwarder, *table)
    router = Router(
        ME.node_id,
        InferenceService([], max_waiting=0),
        members=lambda: table,
        forwarder=forwarder,
        registry_models=lambda: {"x": frozenset({node(6)})},
    )
    with pytest.raises(NoRoute) as unavailable:
        await router.open(parse_job("chat", BODY), "req-1")
    assert (unavailable.value.status, unavailable.value.code) == (503, "model_unavailable")
    message = str(unavailable.value)
    assert "'x'" in message
    assert f"{node(3)} (dead)" in message and f"{node(4)} (left)" in message
    assert node(6) in message and node(5) not in message

    nowhere = parse_job("chat", BODY.replace(b'"x"', b'"z"'))
    with pytest.raises(ModelNotFound) as not_found:
        await router.open(nowhere, "req-2")
    assert (not_found.value.status, not_found.value.code) == (404, "model_not_found")
    assert "models: y" in str(not_found.value)


def test_when_every_candidate_failed_the_answer_says_whose_fault_it_was() -> None:
    """ROUTE-7: a `400` when some candidates blamed the request and the rest were only
    overloaded; `429` with the smallest Retry-After when all were overloaded; else `503`."""
    a, b, c = (Candidate(node(n), f"10.0.0.{n}:7100", 0) for n in (1, 2, 3))
    too_long = PeerRefused(400, Failed("context_length_exceeded", "too long"))
    busy = [(a, Overloaded("full", 7)), (b, Overloaded("full", 3))]

    blamed = _exhausted("x", [(a, too_long), (b, Overloaded("full", 3))])
    assert blamed is too_long
    assert _exhausted("x", [(a, InvalidRequest("bad")), (b, too_long)]).status == 400

    overloaded = _exhausted("x", busy)
    assert isinstance(overloaded, Overloaded)
    assert (overloaded.status, overloaded.retry_after_s) == (429, 3)

    for failures in (
        [*busy, (c, PeerUnavailable("unreachable"))],
        [(a, too_long), (c, PeerUnavailable("cut the stream"))],
    ):
        unavailable = _exhausted("x", failures)
        assert isinstance(unavailable, NoRoute)
        assert unavailable.status == 503 and "'x'" in str(unavailable)
        assert all(candidate.node_id in str(unavailable) for candidate, _ in failures)

"""protocol/vectors/gossip/ (specs/0004-gossip.md): what a rumor does to the view a node holds
(GOSSIP-10, GOSSIP-12), and rumor payloads a node must refuse."""

import random
from collections.abc import Iterator
from typing import Any

from fpai_node.gossip.messages import MAX_INCARNATION, Piggyback, Push, Rumor, Status
from fpai_node.gossip.state import MAX_INCARNATION_STEP, GossipConfig, GossipNode
from fpai_node.testing.vectors import ALICE, BOB, NOW_MS, Case, to_json
from fpai_node.wire import codec

_BOB_ADDRESS = "127.0.0.1:7101"
_MOVED = "127.0.0.1:7199"
_STEP = MAX_INCARNATION_STEP


def held_view(held: tuple[str, int] | None, own_incarnation: int = 0) -> GossipNode:
    """ALICE's node holding BOB at (state, incarnation), or not at all, and at
    `own_incarnation` itself: built only from rumors, as a receiver would."""
    node = GossipNode(ALICE, GossipConfig("127.0.0.1:7100"), random.Random(0))  # noqa: S311
    if own_incarnation:
        rumor = Rumor(ALICE.node_id, "127.0.0.1:7100", own_incarnation - 1, Status.SUSPECT)
        node.receive(BOB.node_id, Push(Piggyback((rumor,))), NOW_MS)
    if held is not None:
        state, incarnation = held
        alive = Rumor(BOB.node_id, _BOB_ADDRESS, 0, Status.ALIVE)
        node.receive(BOB.node_id, Push(Piggyback((alive,))), NOW_MS)
        if (state, incarnation) != ("alive", 0):
            rumor = Rumor(BOB.node_id, _BOB_ADDRESS, incarnation, Status(state))
            node.receive(BOB.node_id, Push(Piggyback((rumor,))), NOW_MS)
    return node


def _rumor_case(
    description: str, held: tuple[str, int] | None, state: str, incarnation: int
) -> Case:
    node = held_view(held)
    rumor = Rumor(BOB.node_id, _MOVED, incarnation, Status(state))
    node.receive(BOB.node_id, Push(Piggyback((rumor,))), NOW_MS + 1)
    member = node.member(BOB.node_id)
    view = None if member is None else [str(member.status), member.incarnation, member.address]
    return Case(
        {
            "description": description,
            "held": None if held is None else list(held),
            "rumor": {"st": state, "inc": incarnation, "addr": _MOVED},
            "expect": {"ok": view},
        }
    )


def _self_case(description: str, own: int, state: str, incarnation: int) -> Case:
    node = held_view(None, own)
    assert node.incarnation == own
    rumor = Rumor(ALICE.node_id, "127.0.0.1:7100", incarnation, Status(state))
    node.receive(BOB.node_id, Push(Piggyback((rumor,))), NOW_MS + 1)
    return Case(
        {
            "description": description,
            "own_incarnation": own,
            "rumor": {"st": state, "inc": incarnation},
            "expect": {"ok": node.incarnation},
        }
    )


def _payload_case(description: str, value: dict[str, Any], error: str | None) -> Case:
    return Case(
        {
            "description": description,
            "rumor": to_json(value),
            "expect": {"error": error} if error else {"ok": to_json(value)},
        },
        {"rumor.bin": codec.encode(value)},
    )


def gossip_cases() -> Iterator[tuple[str, Case]]:
    rumors: list[tuple[str, str, tuple[str, int] | None, str, int]] = [
        ("unknown-alive", "an unknown node is added", None, "alive", 3),
        ("unknown-suspect", "an unknown node is added, suspect", None, "suspect", 0),
        ("unknown-dead", "a dead rumor never adds a node", None, "dead", 0),
        (
            "unknown-beyond-step",
            "counted from 0 beyond the step: ignored",
            None,
            "alive",
            _STEP + 1,
        ),
        ("unknown-at-step", "exactly the step from 0 applies", None, "alive", _STEP),
        (
            "alive-alive-same",
            "alive at the held incarnation changes nothing",
            ("alive", 4),
            "alive",
            4,
        ),
        (
            "alive-alive-higher",
            "alive above the held incarnation applies",
            ("alive", 4),
            "alive",
            5,
        ),
        (
            "alive-suspect-same",
            "suspect at the held incarnation applies",
            ("alive", 4),
            "suspect",
            4,
        ),
        (
            "alive-suspect-lower",
            "suspect below the held incarnation is old",
            ("alive", 4),
            "suspect",
            3,
        ),
        ("alive-dead-same", "dead at the held incarnation applies", ("alive", 4), "dead", 4),
        (
            "suspect-suspect-same",
            "suspect again at the same incarnation",
            ("suspect", 4),
            "suspect",
            4,
        ),
        ("suspect-alive-same", "alive must be above a suspicion", ("suspect", 4), "alive", 4),
        ("suspect-alive-higher", "a refutation applies", ("suspect", 4), "alive", 5),
        ("dead-suspect-higher", "only alive brings the dead back", ("dead", 4), "suspect", 9),
        ("dead-alive-higher", "the node came back", ("dead", 4), "alive", 5),
        ("alive-dead-jump", "dead beyond the step: ignored", ("alive", 4), "dead", 4 + _STEP + 1),
        (
            "alive-dead-at-step",
            "dead exactly the step above applies",
            ("alive", 4),
            "dead",
            4 + _STEP,
        ),
        ("dead-alive-jump", "alive beyond the step: ignored", ("dead", 4), "alive", 4 + _STEP + 1),
    ]
    for name, description, held, state, incarnation in rumors:
        yield f"rumor-{name}", _rumor_case(description, held, state, incarnation)
    yield (
        "self-suspect",
        _self_case("a suspicion at its own incarnation is refuted", 2, "suspect", 2),
    )
    yield "self-dead-above", _self_case("refutes above the rumor, not its own", 2, "dead", 9)
    yield "self-alive-same", _self_case("alive at its own incarnation: nothing", 2, "alive", 2)
    yield "self-suspect-old", _self_case("an older suspicion is not refuted", 5, "suspect", 4)
    yield "self-beyond-step", _self_case("beyond the step: ignored", 2, "dead", 2 + _STEP + 1)
    base = {"addr": _BOB_ADDRESS, "id": BOB.node_id, "st": "alive"}
    yield (
        "payload-max",
        _payload_case("the highest incarnation", {**base, "inc": MAX_INCARNATION}, None),
    )
    yield (
        "payload-above-max",
        _payload_case(
            "an incarnation above 2^53 - 1", {**base, "inc": MAX_INCARNATION + 1}, "malformed"
        ),
    )
    yield (
        "payload-left",
        _payload_case("left is never a rumor", {**base, "st": "left", "inc": 1}, "malformed"),
    )

"""protocol/vectors/gossip/ (specs/0004-gossip.md): what a rumor, a member list's entry or an
announcement does to the view a node holds (GOSSIP-10, GOSSIP-12, GOSSIP-19), and rumor payloads
a node must refuse."""

import random
from collections.abc import Iterator
from typing import Any

from fpai_node.gossip.messages import (
    ANNOUNCE,
    MAX_INCARNATION,
    Announcement,
    AnnouncementItem,
    Capabilities,
    Hardware,
    Piggyback,
    Push,
    Rumor,
    Status,
    SyncReply,
)
from fpai_node.gossip.state import MAX_INCARNATION_STEP, GossipConfig, GossipNode
from fpai_node.identity.keys import NodeKey
from fpai_node.testing.vectors import ALICE, BOB, NOW_MS, Case, to_json
from fpai_node.wire import codec
from fpai_node.wire.envelope import PROTOCOL_VERSION, seal

_BOB_ADDRESS = "127.0.0.1:7101"
CAROL = NodeKey.from_seed(bytes(range(64, 96)))  # GOSSIP-19: a third node's member list
CAROL_ADDRESS = "127.0.0.1:7102"
_MOVED = "127.0.0.1:7199"
_STEP = MAX_INCARNATION_STEP


def bob_announcement(
    incarnation: int, version: int = NOW_MS * 1000, left: bool = False
) -> AnnouncementItem:
    """BOB's signed announcement, at `incarnation` (GOSSIP-4, GOSSIP-10, GOSSIP-15)."""
    caps = Capabilities(_BOB_ADDRESS, "", (), Hardware("", "", 0), 0, 0)
    payload = Announcement(version, PROTOCOL_VERSION, left, caps, incarnation).encode()
    frame = seal(BOB, ANNOUNCE, payload, seq=version, now_ms=NOW_MS, lifetime_ms=600_000)
    return AnnouncementItem(BOB.node_id, version, frame)


def held_view(held: tuple[str, int, int | None] | None, own_incarnation: int = 0) -> GossipNode:
    """ALICE's node holding BOB at (state, incarnation), with BOB's announcement at the signed
    incarnation (None: none held), or not holding BOB at all; and at `own_incarnation`
    itself. Built from messages, as a receiver would. `left`: Bob was held alive at 0 by a
    rumor, then left with an announcement at the signed incarnation."""
    node = GossipNode(ALICE, GossipConfig("127.0.0.1:7100"), random.Random(0))  # noqa: S311
    if own_incarnation:
        rumor = Rumor(ALICE.node_id, "127.0.0.1:7100", own_incarnation - 1, Status.SUSPECT)
        node.receive(BOB.node_id, Push(Piggyback((rumor,))), NOW_MS)
    if held is not None:
        state, incarnation, signed = held
        if state == "left":
            alive = Rumor(BOB.node_id, _BOB_ADDRESS, 0, Status.ALIVE)
            goodbye = bob_announcement(signed or 0, left=True)
            node.receive(BOB.node_id, Push(Piggyback((alive,))), NOW_MS)
            node.receive(BOB.node_id, Push(Piggyback((), (goodbye,))), NOW_MS)
        elif signed is None:
            alive = Rumor(BOB.node_id, _BOB_ADDRESS, 0, Status.ALIVE)
            node.receive(BOB.node_id, Push(Piggyback((alive,))), NOW_MS)
        else:
            node.receive(BOB.node_id, Push(Piggyback((), (bob_announcement(incarnation),))), NOW_MS)
            if signed != incarnation:  # a newer announcement, after a restart: lower
                later = bob_announcement(signed, NOW_MS * 1000 + 1)
                node.receive(BOB.node_id, Push(Piggyback((), (later,))), NOW_MS)
        if state not in ("alive", "left"):
            rumor = Rumor(BOB.node_id, _BOB_ADDRESS, incarnation, Status(state))
            node.receive(BOB.node_id, Push(Piggyback((rumor,))), NOW_MS)
        member = node.member(BOB.node_id)
        assert member is not None and (str(member.status), member.incarnation) == held[:2]
    return node


def _rumor_case(
    description: str, held: tuple[str, int, int | None] | None, state: str, incarnation: int
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


def _members_case(
    description: str, held: tuple[str, int, int | None] | None, state: str, incarnation: int
) -> Case:
    """GOSSIP-19: Carol's sync reply lists herself alive and Bob in `state` at `incarnation`."""
    node = held_view(held)
    entries = (
        Rumor(CAROL.node_id, CAROL_ADDRESS, 0, Status.ALIVE),
        Rumor(BOB.node_id, _BOB_ADDRESS, incarnation, Status(state)),
    )
    node.receive(CAROL.node_id, SyncReply(entries, (), ()), NOW_MS + 1)
    member = node.member(BOB.node_id)
    return Case(
        {
            "description": description,
            "held": None if held is None else list(held),
            "entry": {"st": state, "inc": incarnation},
            "expect": {"ok": None if member is None else [str(member.status), member.incarnation]},
        }
    )


def _announcement_case(description: str, held: tuple[str, int, int | None], signed: int) -> Case:
    node = held_view(held)
    item = bob_announcement(signed, NOW_MS * 1000 + 2)
    node.receive(BOB.node_id, Push(Piggyback((), (item,))), NOW_MS + 1)
    member = node.member(BOB.node_id)
    assert member is not None
    return Case(
        {
            "description": description,
            "held": list(held),
            "announcement_inc": signed,
            "expect": {"ok": [str(member.status), member.incarnation]},
        },
        {"announcement.bin": item.frame},
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
    rumors: list[tuple[str, str, tuple[str, int, int | None] | None, str, int]] = [
        ("unknown-alive", "an unknown node is added at 0", None, "alive", 0),
        ("unknown-suspect", "an unknown node is added, suspect", None, "suspect", 0),
        ("unknown-dead", "a dead rumor never adds a node", None, "dead", 0),
        ("unknown-above", "above 0 about an unknown node: signed by no one", None, "alive", 3),
        ("alive-alive-same", "alive at the held incarnation", ("alive", 4, 4), "alive", 4),
        ("alive-suspect-same", "suspect at the held incarnation", ("alive", 4, 4), "suspect", 4),
        ("alive-suspect-lower", "suspect below the held one is old", ("alive", 4, 4), "suspect", 3),
        ("alive-dead-same", "dead at the held incarnation applies", ("alive", 4, 4), "dead", 4),
        ("suspect-suspect-same", "suspect again", ("suspect", 4, 4), "suspect", 4),
        ("suspect-alive-same", "alive must be above a suspicion", ("suspect", 4, 4), "alive", 4),
        (
            "suspect-alive-unsigned",
            "alive above what Bob signed: ignored (his announcement refutes)",
            ("suspect", 4, 4),
            "alive",
            5,
        ),
        (
            "dead-suspect-same",
            "only alive above brings the dead back",
            ("dead", 4, 4),
            "suspect",
            4,
        ),
        ("alive-dead-unsigned", "dead above what Bob signed: ignored", ("alive", 4, 4), "dead", 5),
        ("alive-dead-far", "far above: ignored", ("alive", 4, 4), "dead", 4 + _STEP + 1),
        (
            "no-announcement",
            "Bob known by rumor only: nothing above 0",
            ("alive", 0, None),
            "dead",
            1,
        ),
        (
            "left-alive-signed",
            "Bob left at 1 (his goodbye signed 1, the held view said 0): his refutation at 1, "
            "still travelling, does not bring him back (GOSSIP-15)",
            ("left", 1, 1),
            "alive",
            1,
        ),
        ("left-dead", "a node that left is never dead", ("left", 1, 1), "dead", 1),
        (
            "restarted",
            "Bob restarted (his newer announcement signs 0): the held 5 still bounds rumors",
            ("alive", 5, 0),
            "suspect",
            5,
        ),
    ]
    for name, description, held, state, incarnation in rumors:
        yield f"rumor-{name}", _rumor_case(description, held, state, incarnation)
    entries: list[tuple[str, str, tuple[str, int, int | None] | None, str, int]] = [
        (
            "dead-alive",
            "a listed death of a member held alive: a suspicion",
            ("alive", 4, 4),
            "dead",
            4,
        ),
        ("dead-suspect", "held suspect already: unchanged", ("suspect", 4, 4), "dead", 4),
        ("dead-dead", "held dead: unchanged", ("dead", 4, 4), "dead", 4),
        ("dead-unknown", "a listed death adds no one", None, "dead", 0),
        (
            "dead-lower",
            "a listed death below the held incarnation is old",
            ("alive", 4, 4),
            "dead",
            3,
        ),
        (
            "suspect-alive",
            "a listed suspicion applies as a rumor does",
            ("alive", 4, 4),
            "suspect",
            4,
        ),
    ]
    for name, description, held, state, incarnation in entries:
        yield f"members-{name}", _members_case(description, held, state, incarnation)
    yield (
        "announce-refutes",
        _announcement_case("Bob's announcement above the held suspicion", ("suspect", 4, 4), 5),
    )
    yield (
        "announce-revives",
        _announcement_case("Bob's announcement above the held death", ("dead", 4, 4), 5),
    )
    yield (
        "announce-lower",
        _announcement_case("a newer announcement at a lower incarnation", ("dead", 4, 4), 0),
    )
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

"""The pure gossip state machine and its payloads (specs/0004-gossip.md), driven by hand."""

import contextlib
import dataclasses
import random
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fpai_node.gossip import Status
from fpai_node.gossip.messages import (
    ANNOUNCE,
    ANNOUNCE_TYPES,
    HOP_TYPES,
    MAX_INCARNATION,
    Ack,
    Announcement,
    AnnouncementItem,
    GossipMessage,
    Piggyback,
    Ping,
    PingReq,
    Push,
    Rumor,
    Sync,
    SyncReply,
    decode_message,
)
from fpai_node.gossip.state import (
    MAX_INCARNATION_STEP,
    MAX_MEMBERS,
    GossipConfig,
    GossipNode,
    Outgoing,
)
from fpai_node.testing.gossip_sim import sample_capabilities, sim_address, sim_key
from fpai_node.wire import codec
from fpai_node.wire.envelope import open_envelope, seal
from fpai_node.wire.errors import MalformedFrame, UnknownType

NOW = 1_767_225_600_000
KEYS = [sim_key(i, seed=99) for i in range(5)]
IDS = [k.node_id for k in KEYS]
ID = IDS[0]
NONCE = b"\x00" * 16


def make_node(i: int, **config: int) -> GossipNode:
    return GossipNode(KEYS[i], GossipConfig(sim_address(i), **config), random.Random(i))


def introduce(node: GossipNode, *others: int) -> None:
    """Tell `node` about `others` as a bootstrap node's sync reply would."""
    members = tuple(Rumor(IDS[i], sim_address(i), 0, Status.ALIVE) for i in others)
    node.receive(IDS[others[0]], SyncReply(members, (), ()), NOW)


def published(node: GossipNode, now_ms: int = NOW) -> list[AnnouncementItem]:
    """The announcements `node` holds, as its answer to an empty sync shows them."""
    (reply,) = node.receive(IDS[4], Sync((), ()), now_ms)
    assert isinstance(reply.message, SyncReply)
    return list(reply.message.announcements)


def push(*items: AnnouncementItem, rumors: tuple[Rumor, ...] = ()) -> Push:
    return Push(Piggyback(rumors, items))


def signed(i: int, incarnation: int, version: int = NOW * 1000) -> AnnouncementItem:
    """Node i's announcement, signing `incarnation` as its own (GOSSIP-10)."""
    caps = dataclasses.replace(sample_capabilities(i), peer_address=sim_address(i))
    payload = Announcement(version, 1, False, caps, incarnation).encode()
    frame = seal(KEYS[i], ANNOUNCE, payload, seq=version, now_ms=NOW, lifetime_ms=600_000)
    return AnnouncementItem(IDS[i], version, frame)


def probe_traffic(out: list[Outgoing]) -> list[Outgoing]:
    return [o for o in out if not isinstance(o.message, Sync)]


def first_probe(node: GossipNode) -> tuple[int, Outgoing]:
    """Start the timers, then tick past the random phase: the first probe goes out."""
    node.tick(NOW)
    (ping,) = probe_traffic(node.tick(NOW + 1_000))
    assert isinstance(ping.message, Ping)
    return NOW + 1_000, ping


# Payloads


SAMPLES: list[GossipMessage] = [
    Ping(b"\x01" * 16),
    Ack(b"\x02" * 16, Piggyback((Rumor(IDS[1], "sim-1:7100", 3, Status.SUSPECT),))),
    PingReq(b"\x03" * 16, IDS[2], "sim-2:7100"),
    Sync((Rumor(IDS[0], "sim-0:7100", 0, Status.ALIVE),), ((IDS[1], 7),)),
    SyncReply((), (AnnouncementItem(IDS[1], 7, b"frame"),), (IDS[3],)),
    Push(Piggyback((Rumor(IDS[4], "sim-4:7100", 1, Status.DEAD),))),
]


@pytest.mark.parametrize("message", SAMPLES, ids=lambda m: m.TYPE)
def test_each_hop_message_round_trips_through_canonical_bytes(message: GossipMessage) -> None:
    payload = message.encode()
    assert codec.encode(codec.decode(payload)) == payload
    assert decode_message(message.TYPE, payload) == message


def test_announcement_payload_round_trips() -> None:
    announcement = Announcement(42, 1, False, sample_capabilities(3), incarnation=7)
    assert Announcement.decode(announcement.encode()) == announcement


@pytest.mark.parametrize(
    "value",
    [
        {"nonce": b"\x00" * 15, "anns": [], "rumors": []},
        {"nonce": NONCE, "anns": [], "rumors": [], "extra": 1},
        {"nonce": NONCE, "anns": [], "rumors": [{"addr": "a", "id": "x", "inc": 0, "st": "alive"}]},
        {"nonce": NONCE, "anns": [], "rumors": [{"addr": "a", "id": ID, "inc": -1, "st": "alive"}]},
        {"nonce": NONCE, "anns": [], "rumors": [{"addr": "a", "id": ID, "inc": 0, "st": "left"}]},
        # An address is HOST:PORT: a path or query would let a peer aim this node's requests.
        {
            "nonce": NONCE,
            "anns": [],
            "rumors": [{"addr": "1.2.3.4:1/x?", "id": ID, "inc": 0, "st": "alive"}],
        },
        {
            "nonce": NONCE,
            "anns": [],
            "rumors": [{"addr": "a:99999", "id": ID, "inc": 0, "st": "alive"}],
        },
        {"nonce": NONCE, "anns": [{"frame": b"", "origin": ID, "ver": 1}], "rumors": []},
    ],
)
def test_malformed_payloads_are_rejected_as_malformed(value: codec.Value) -> None:
    """GOSSIP-3, MSG-2: a short nonce, an unknown key, a bad node id, a negative incarnation,
    a `left` rumor, an address that is no HOST:PORT, an empty announcement frame."""
    with pytest.raises(MalformedFrame):
        Ping.decode(codec.encode(value))


@given(st.sampled_from(sorted({m.TYPE for m in SAMPLES})), st.binary(max_size=256))
def test_decoders_raise_nothing_but_malformed_frame(msg_type: str, payload: bytes) -> None:
    """Paired with a valid message of the type read back: a decoder that refused everything
    would pass the suppressed half alone."""
    valid = next(m for m in SAMPLES if msg_type == m.TYPE)
    assert decode_message(msg_type, valid.encode()) == valid
    with contextlib.suppress(MalformedFrame):
        decode_message(msg_type, payload)


@given(
    st.sampled_from(SAMPLES),
    st.integers(min_value=0, max_value=10_000),
    st.integers(min_value=1, max_value=255),
)
def test_corrupted_payloads_decode_or_raise_malformed_frame(
    message: GossipMessage, position: int, flip: int
) -> None:
    assert decode_message(message.TYPE, message.encode()) == message  # uncorrupted: read back
    payload = bytearray(message.encode())
    payload[position % len(payload)] ^= flip
    with contextlib.suppress(MalformedFrame):
        decode_message(message.TYPE, bytes(payload))


# Announcements


def test_forwarded_announcement_still_verifies_as_its_origins() -> None:
    """GOSSIP-2: a forwarder passes the origin's frame on byte for byte, so it still verifies
    as the origin's."""
    a, b, c = make_node(0), make_node(1), make_node(2)
    a.announce(sample_capabilities(0), NOW)
    (item,) = published(a)

    b.receive(IDS[0], push(item), NOW)
    (ack,) = b.receive(IDS[2], Ping(NONCE), NOW)  # b forwards it on its answer
    assert isinstance(ack.message, Ack)
    assert ack.message.piggyback.announcements == (item,)
    c.receive(IDS[1], ack.message, NOW)

    view = c.member(IDS[0])
    assert view is not None and view.announcement == a.own_announcement
    assert view.status is Status.ALIVE
    assert c.stats.announcements_accepted == 1


def test_stale_versions_and_replays_are_ignored_without_changing_the_view() -> None:
    """GOSSIP-7: per origin the highest `ver` is kept; items at or below it are stale and
    counted; a changed capability is a new announcement (GOSSIP-6)."""
    a, b = make_node(0), make_node(1)
    a.announce(sample_capabilities(0), NOW)
    (old,) = published(a)
    a.announce(dataclasses.replace(sample_capabilities(0), queue_depth=5), NOW + 3_000)
    (new,) = published(a, NOW + 3_000)

    b.receive(IDS[0], push(new), NOW + 3_000)
    b.receive(IDS[0], push(new, old), NOW + 3_000)  # a replay and an older version

    view = b.member(IDS[0])
    assert view is not None and view.announcement is not None
    assert view.announcement.capabilities.queue_depth == 5
    assert (b.stats.announcements_accepted, b.stats.announcements_stale) == (1, 2)


def test_announcement_is_re_signed_before_it_could_expire() -> None:
    """GOSSIP-6: the current announcement is re-signed every `announce_refresh_ms`."""
    config = GossipConfig("sim-0:7100")
    node = make_node(0)
    node.announce(sample_capabilities(0), NOW)
    (first,) = published(node)
    node.tick(NOW + config.announce_refresh_ms - 1)
    assert published(node, NOW + config.announce_refresh_ms - 1) == [first]

    node.tick(NOW + config.announce_refresh_ms)
    (second,) = published(node, NOW + config.announce_refresh_ms)
    assert second.version > first.version
    assert node.own_announcement is not None
    assert node.own_announcement.capabilities == sample_capabilities(0)


def test_expired_announcements_are_not_forwarded() -> None:
    """GOSSIP-8: a sync reply never carries an announcement whose frame has expired."""
    a, b = make_node(0), make_node(1)
    a.announce(sample_capabilities(0), NOW)
    b.receive(IDS[0], push(*published(a)), NOW)
    lifetime = GossipConfig("sim-0:7100").announce_lifetime_ms

    assert [i.origin for i in published(b, NOW + lifetime - 1)] == [IDS[0]]
    assert published(b, NOW + lifetime) == []


def _forged_items() -> list[AnnouncementItem]:
    payload = Announcement(NOW * 1000, 1, False, sample_capabilities(0)).encode()
    genuine = seal(KEYS[0], ANNOUNCE, payload, seq=1, now_ms=NOW)
    by_other = seal(KEYS[2], ANNOUNCE, payload, seq=1, now_ms=NOW)
    tampered = genuine[:-1] + bytes([genuine[-1] ^ 1])
    wrong_type = seal(KEYS[0], "peer.ping", payload, seq=2, now_ms=NOW)
    return [
        AnnouncementItem(IDS[0], NOW * 1000, tampered),  # bad signature
        AnnouncementItem(IDS[0], NOW * 1000, by_other),  # signed by someone else
        AnnouncementItem(IDS[0], NOW * 1000 + 1, genuine),  # label claims a newer version
        AnnouncementItem(IDS[0], NOW * 1000, wrong_type),
    ]


@pytest.mark.parametrize("item", _forged_items(), ids=["tampered", "sender", "version", "type"])
def test_forged_announcements_are_rejected(item: AnnouncementItem) -> None:
    """GOSSIP-7: a newer item is verified as the origin's `gossip.announce` frame, its `ver`
    the payload's, before use; anything else is rejected and counted."""
    b = make_node(1)
    b.receive(IDS[2], push(item), NOW)

    assert b.member(IDS[0]) is None
    assert b.stats.announcements_rejected == 1


# Failure detection and membership


def test_unanswered_probe_goes_indirect_then_suspect_then_dead() -> None:
    """GOSSIP-11, GOSSIP-13: a member suspected for `suspicion_mult * log(N)` periods is
    declared dead, not a period before; the suspect is told at once (GOSSIP-11's buddy push);
    the periods are the prober's own, doubled by the probe it lost (GOSSIP-23)."""
    node = make_node(0, ping_timeout_ms=300, indirect_probes=2)
    introduce(node, 1, 2, 3)
    start, ping = first_probe(node)

    retry = probe_traffic(node.tick(start + 300))
    assert sorted(type(o.message).__name__ for o in retry) == ["Ping", "PingReq", "PingReq"]
    assert ping.to not in {o.to for o in retry if isinstance(o.message, PingReq)}

    told = [o for o in node.tick(start + 1_000) if o.to == ping.to]
    assert node.member(ping.to).status is Status.SUSPECT  # type: ignore[union-attr]
    assert isinstance(told[0].message, Push)
    assert told[0].message.piggyback.rumors[0].node_id == ping.to
    assert told[0].message.piggyback.rumors[0].status is Status.SUSPECT
    assert node.local_health == 1
    timeout = 3 * 2_000  # suspicion_mult 1 * ceil(log2(4 + 1)) periods of (1 + 1) seconds
    node.tick(start + 1_000 + timeout - 100)
    assert node.member(ping.to).status is Status.SUSPECT  # type: ignore[union-attr]
    node.tick(start + 1_000 + timeout)
    assert node.member(ping.to).status is Status.DEAD  # type: ignore[union-attr]


def test_local_health_slows_probes_while_acks_go_missing_and_recovers_with_them() -> None:
    """GOSSIP-23: each probe that ends unanswered raises the multiplier (up to its maximum),
    scaling the next probe's timeout and period; each answered one lowers it."""
    node = make_node(0, ping_timeout_ms=300, max_local_health=1)
    introduce(node, 1, 2, 3, 4)
    start, _ = first_probe(node)
    out = node.tick(start + 1_000)  # unanswered: h = 1, and the next probe starts, scaled
    assert node.local_health == 1
    (second,) = [o for o in out if isinstance(o.message, Ping)]
    assert [o for o in node.tick(start + 1_500) if isinstance(o.message, PingReq)] == []
    assert [o for o in node.tick(start + 1_600) if isinstance(o.message, PingReq)] != []
    node.tick(start + 2_900)
    assert node.member(second.to).status is Status.ALIVE  # type: ignore[union-attr]
    out = node.tick(start + 3_000)  # its 2 s period ends unanswered: h stays at the maximum
    assert node.member(second.to).status is Status.SUSPECT  # type: ignore[union-attr]
    assert node.local_health == 1
    (third,) = [o for o in out if isinstance(o.message, Ping) and o.to != second.to]
    node.receive(third.to, Ack(third.message.nonce), start + 3_100)  # type: ignore[union-attr]
    assert node.local_health == 0


def test_a_node_held_suspect_hears_so_in_every_message_until_it_refutes() -> None:
    """GOSSIP-16: while the sender holds the receiver suspect, its suspicion goes first in
    every message to it, long after the queued copies are spent."""
    node = make_node(0)
    introduce(node, 1, 2)
    suspicion = Rumor(IDS[1], sim_address(1), 0, Status.SUSPECT)
    node.receive(IDS[2], push(rumors=(suspicion,)), NOW)
    for _ in range(20):  # far more than the retransmit limit
        node.receive(IDS[2], Ping(b"p" * 8), NOW)
    (ack,) = node.receive(IDS[1], Ping(b"q" * 8), NOW)
    assert isinstance(ack.message, Ack)
    assert ack.message.piggyback.rumors[0] == suspicion


def test_a_refutation_goes_straight_back_to_the_accuser() -> None:
    """GOSSIP-12: in the reply to a sync that calls this node dead, else in a push."""
    accused = make_node(1)
    introduce(accused, 0)
    accused.announce(sample_capabilities(1), NOW)
    dead = Rumor(IDS[1], sim_address(1), 0, Status.DEAD)
    alive = Rumor(IDS[0], sim_address(0), 0, Status.ALIVE)
    (reply,) = accused.receive(IDS[0], Sync((alive, dead), ()), NOW)
    assert isinstance(reply.message, SyncReply)
    (signed,) = reply.message.announcements
    assert signed.origin == IDS[1]
    accuser = make_node(0)
    introduce(accuser, 1)
    accuser.receive(IDS[2], push(rumors=(dead,)), NOW)  # held dead at 0
    accuser.receive(IDS[1], reply.message, NOW + 1)
    assert accuser.member(IDS[1]).status is Status.ALIVE  # type: ignore[union-attr]

    suspicion = Rumor(IDS[1], sim_address(1), 1, Status.SUSPECT)
    out = accused.receive(IDS[0], push(rumors=(suspicion,)), NOW + 2)
    assert [(o.to, type(o.message)) for o in out] == [(IDS[0], Push)]
    assert out[0].message.piggyback.announcements[0].origin == IDS[1]  # type: ignore[union-attr]
    assert accused.incarnation == 2


def test_a_member_list_calling_a_held_member_dead_spreads_a_suspicion() -> None:
    """GOSSIP-19: the death is old news or not; as a suspicion the member can refute it."""
    node = make_node(0)
    introduce(node, 1, 2)
    listed = (
        Rumor(IDS[2], sim_address(2), 0, Status.ALIVE),
        Rumor(IDS[1], sim_address(1), 0, Status.DEAD),
    )
    node.receive(IDS[2], SyncReply(listed, (), ()), NOW)
    assert node.member(IDS[1]).status is Status.SUSPECT  # type: ignore[union-attr]
    (ack,) = node.receive(IDS[2], Ping(b"p" * 8), NOW)
    assert Rumor(IDS[1], sim_address(1), 0, Status.SUSPECT) in ack.message.piggyback.rumors  # type: ignore[union-attr]


def test_alone_a_node_syncs_with_its_join_addresses_every_reconnect_interval() -> None:
    """GOSSIP-22: a node whose join went unanswered has no member to probe or sync with."""
    node = make_node(0)
    assert [o.to for o in node.join(["boot-a:7100", sim_address(0), "boot-b:7100"])] == [
        "boot-a:7100",
        "boot-b:7100",
    ]
    out = [o for t in range(NOW, NOW + 10_001, 100) for o in node.tick(t)]
    targets = [o.to for o in out if isinstance(o.message, Sync)]
    assert targets in (["boot-a:7100", "boot-b:7100"] * 2, ["boot-a:7100", "boot-b:7100"] * 3)
    assert node.stats.reconnects == len(targets) // 2


def test_an_indirect_ack_clears_the_probe() -> None:
    node = make_node(0, indirect_probes=1)
    introduce(node, 1, 2)
    start, ping = first_probe(node)
    (request,) = [o for o in node.tick(start + 300) if isinstance(o.message, PingReq)]
    helper = make_node(IDS.index(request.to))
    introduce(helper, IDS.index(ping.to))

    (relay_ping,) = helper.receive(IDS[0], request.message, start + 310)
    assert relay_ping.to == ping.to  # the member, at the address the helper holds
    assert isinstance(relay_ping.message, Ping)
    answer = helper.receive(ping.to, Ack(relay_ping.message.nonce), start + 320)
    assert [o.to for o in answer] == [IDS[0]]
    node.receive(request.to, answer[0].message, start + 330)
    node.tick(start + 1_000)

    assert node.member(ping.to).status is Status.ALIVE  # type: ignore[union-attr]
    assert node.stats.suspicions == 0


def test_suspicion_about_itself_is_refuted_with_a_higher_incarnation() -> None:
    """GOSSIP-12: the refutation is signed in a new announcement and spread as a rumor."""
    node = make_node(0)
    introduce(node, 1)
    node.announce(sample_capabilities(0), NOW)
    node.receive(IDS[1], push(rumors=(Rumor(IDS[0], "sim-0:7100", 0, Status.SUSPECT),)), NOW)

    assert node.incarnation == 1
    assert node.stats.refutations == 1
    assert node.own_announcement is not None and node.own_announcement.incarnation == 1
    (ack,) = node.receive(IDS[1], Ping(NONCE), NOW)
    assert isinstance(ack.message, Ack)
    assert Rumor(IDS[0], "sim-0:7100", 1, Status.ALIVE) in ack.message.piggyback.rumors
    (item,) = ack.message.piggyback.announcements
    bystander = make_node(2)
    bystander.receive(IDS[1], push(rumors=(Rumor(IDS[0], sim_address(0), 0, Status.SUSPECT),)), NOW)
    bystander.receive(IDS[1], push(item, rumors=ack.message.piggyback.rumors), NOW)
    view = bystander.member(IDS[0])
    assert view is not None and (view.status, view.incarnation) == (Status.ALIVE, 1)


@pytest.mark.parametrize(
    ("current", "rumor", "expected"),
    [
        ((Status.ALIVE, 2), (Status.SUSPECT, 1), Status.ALIVE),  # older incarnation
        ((Status.ALIVE, 2), (Status.SUSPECT, 2), Status.SUSPECT),
        ((Status.SUSPECT, 2), (Status.ALIVE, 2), Status.SUSPECT),  # must refute with 3
        ((Status.SUSPECT, 2), (Status.ALIVE, 3), Status.SUSPECT),  # 3 is signed by no one yet
        ((Status.SUSPECT, 2), (Status.DEAD, 2), Status.DEAD),
        ((Status.DEAD, 2), (Status.SUSPECT, 5), Status.DEAD),
        ((Status.DEAD, 2), (Status.ALIVE, 3), Status.DEAD),  # only its signature brings it back
    ],
)
def test_rumor_precedence_follows_incarnations(
    current: tuple[Status, int], rumor: tuple[Status, int], expected: Status
) -> None:
    node = make_node(0)
    status, inc = current
    node.receive(IDS[2], push(signed(1, inc)), NOW)
    node.receive(IDS[2], push(rumors=(Rumor(IDS[1], "sim-1:7100", inc, status),)), NOW)
    assert node.member(IDS[1]).status is status  # type: ignore[union-attr]
    node.receive(IDS[2], push(rumors=(Rumor(IDS[1], "sim-1:7100", rumor[1], rumor[0]),)), NOW)

    assert node.member(IDS[1]).status is expected  # type: ignore[union-attr]


def test_a_signed_incarnation_refutes_and_sets_the_ceiling() -> None:
    """GOSSIP-10, GOSSIP-12: the node's own announcement at a higher incarnation brings it back
    from suspicion or death; rumors may then use that incarnation, never one above."""
    node = make_node(0)
    node.receive(IDS[2], push(signed(1, 2)), NOW)
    node.receive(IDS[2], push(rumors=(Rumor(IDS[1], sim_address(1), 2, Status.DEAD),)), NOW)
    node.receive(IDS[2], push(signed(1, 3, version=NOW * 1000 + 1)), NOW)
    view = node.member(IDS[1])
    assert view is not None and (view.status, view.incarnation) == (Status.ALIVE, 3)
    node.receive(IDS[2], push(rumors=(Rumor(IDS[1], sim_address(1), 4, Status.DEAD),)), NOW)
    assert node.member(IDS[1]).status is Status.ALIVE  # type: ignore[union-attr]
    assert node.stats.rumors_refused == 1
    node.receive(IDS[2], push(rumors=(Rumor(IDS[1], sim_address(1), 3, Status.SUSPECT),)), NOW)
    assert node.member(IDS[1]).status is Status.SUSPECT  # type: ignore[union-attr]


def test_left_is_final_against_suspicion_and_death_rumors() -> None:
    leaver, other = make_node(1), make_node(0)
    introduce(leaver, 0)
    leaver.announce(sample_capabilities(1), NOW)
    (goodbye,) = leaver.leave(NOW)
    assert goodbye.to == IDS[0]

    other.receive(IDS[1], goodbye.message, NOW)
    other.receive(IDS[2], push(rumors=(Rumor(IDS[1], "sim-1:7100", 0, Status.DEAD),)), NOW)

    assert other.member(IDS[1]).status is Status.LEFT  # type: ignore[union-attr]
    assert leaver.tick(NOW + 5_000) == []
    assert leaver.receive(IDS[0], Ping(b"\x00" * 16), NOW) == []


def test_a_refutation_still_travelling_cannot_bring_back_a_node_that_left() -> None:
    """Issue 14 place 12: the leaver refuted a suspicion (alive at 1, signed), then left; the
    alive rumor, still queued elsewhere, arrives after the `left` announcement. It brought
    the node back as alive, and the next suspicion made it dead. `left` is final against
    rumors (GOSSIP-15); only a newer announcement without `left` brings the node back."""
    leaver, other = make_node(1), make_node(0)
    introduce(leaver, 0)
    introduce(other, 1)  # holds the leaver alive at 0
    leaver.announce(sample_capabilities(1), NOW)
    leaver.receive(IDS[0], push(rumors=(Rumor(IDS[1], sim_address(1), 0, Status.SUSPECT),)), NOW)
    assert leaver.incarnation == 1
    (goodbye,) = leaver.leave(NOW + 1)
    other.receive(IDS[1], goodbye.message, NOW + 1)
    refutation = Rumor(IDS[1], sim_address(1), 1, Status.ALIVE)
    other.receive(IDS[2], push(rumors=(refutation,)), NOW + 2)
    view = other.member(IDS[1])
    assert view is not None and (view.status, view.incarnation) == (Status.LEFT, 1)
    back = signed(1, 1, version=(NOW + 100) * 1000)  # restarted: announces without `left`
    other.receive(IDS[2], push(back), NOW + 3)
    assert other.member(IDS[1]).status is Status.ALIVE  # type: ignore[union-attr]


def test_sync_returns_newer_announcements_and_asks_for_missing_ones() -> None:
    """GOSSIP-19: the reply's `anns` are those newer than the digest, its `want` the origins
    the digest has newer; the requester answers `want` with a push. GOSSIP-20: `join` is a
    sync to the bootstrap address."""
    a, b = make_node(0), make_node(1)
    introduce(a, 1)
    a.announce(sample_capabilities(0), NOW)
    introduce(b, 0)
    b.announce(sample_capabilities(1), NOW)

    (request,) = b.join([sim_address(0)])
    (reply,) = a.receive(IDS[1], request.message, NOW)
    assert isinstance(reply.message, SyncReply)
    assert [i.origin for i in reply.message.announcements] == [IDS[0]]
    assert reply.message.want == (IDS[1],)

    (answer,) = b.receive(IDS[0], reply.message, NOW)
    a.receive(IDS[1], answer.message, NOW)
    assert a.member(IDS[1]).announcement == b.own_announcement  # type: ignore[union-attr]
    assert b.member(IDS[0]).announcement == a.own_announcement  # type: ignore[union-attr]


def test_a_flood_of_invented_members_is_bounded() -> None:
    """Review finding: unbounded members made the node's own sync exceed the frame limit."""
    node = GossipNode(sim_key(0), GossipConfig("sim-0:7100"), random.Random(1))
    invented = tuple(
        Rumor(sim_key(i).node_id, f"x{i}.invalid:1", 0, Status.ALIVE)
        for i in range(1, MAX_MEMBERS + 200)
    )
    node.receive(invented[0].node_id, Sync(invented, ()), NOW)
    assert len(node.members()) <= MAX_MEMBERS


def test_a_ping_req_for_a_node_the_helper_does_not_hold_is_ignored() -> None:
    """Review finding: a requester could make a helper dial any address it named."""
    helper = make_node(1)
    request = PingReq(b"n" * 8, IDS[2], "victim.example:22")
    assert helper.receive(IDS[0], request, NOW) == []
    introduce(helper, 2)
    helper.receive(IDS[0], push(rumors=(Rumor(IDS[2], sim_address(2), 0, Status.DEAD),)), NOW)
    assert helper.receive(IDS[0], request, NOW) == []  # nor one it holds dead


def test_a_rumor_cannot_jump_a_known_nodes_incarnation() -> None:
    """Review finding: one `dead` rumor at 2^64-1 killed a node for good (GOSSIP-10)."""
    node = make_node(0)
    introduce(node, 1, 2)
    jump = Rumor(IDS[1], sim_address(1), MAX_INCARNATION, Status.DEAD)
    node.receive(IDS[2], Push(Piggyback((jump,))), NOW)
    assert node.member(IDS[1]).status is Status.ALIVE  # type: ignore[union-attr]
    assert node.stats.rumors_refused == 1
    held = Rumor(IDS[1], sim_address(1), 0, Status.DEAD)  # at what it signed: a real death
    node.receive(IDS[2], Push(Piggyback((held,))), NOW)
    assert node.member(IDS[1]).status is Status.DEAD  # type: ignore[union-attr]
    unknown = Rumor(IDS[3], sim_address(3), 2, Status.ALIVE)
    node.receive(IDS[2], Push(Piggyback((unknown,))), NOW)
    assert node.member(IDS[3]) is None  # a node first heard of has signed nothing above 0


def test_a_node_refutes_a_rumor_about_itself_only_within_the_step() -> None:
    node = make_node(0)
    far = Rumor(IDS[0], sim_address(0), MAX_INCARNATION_STEP + 1, Status.SUSPECT)
    node.receive(IDS[1], Push(Piggyback((far,))), NOW)
    assert node.incarnation == 0
    near = Rumor(IDS[0], sim_address(0), 7, Status.SUSPECT)
    node.receive(IDS[1], Push(Piggyback((near,))), NOW)
    assert node.incarnation == 8


def test_an_incarnation_above_the_maximum_is_malformed() -> None:
    rumor = Rumor(IDS[1], sim_address(1), MAX_INCARNATION + 1, Status.DEAD)
    with pytest.raises(MalformedFrame):
        Rumor.from_value(rumor.to_value())
    highest = dataclasses.replace(rumor, incarnation=MAX_INCARNATION)
    assert Rumor.from_value(highest.to_value()) == highest


def invented(count: int, start: int = 1) -> tuple[Rumor, ...]:
    return tuple(
        Rumor(sim_key(i).node_id, f"x{i}.invalid:1", 0, Status.ALIVE)
        for i in range(start, start + count)
    )


def test_a_newcomer_with_an_announcement_displaces_invented_members() -> None:
    """Review finding: a sync of 2,100 invented live members filled the table for good."""
    node = make_node(0)
    node.receive(IDS[1], Sync(invented(MAX_MEMBERS + 60, start=100), ()), NOW)
    assert len(node.members()) == MAX_MEMBERS
    newcomer = make_node(1)
    newcomer.announce(sample_capabilities(1), NOW)
    (item,) = published(newcomer)
    node.receive(IDS[1], Push(Piggyback((Rumor(IDS[1], sim_address(1), 0, Status.ALIVE),))), NOW)
    assert node.member(IDS[1]) is None  # a rumor alone takes no live member's place
    assert node.stats.members_refused >= 1
    node.receive(IDS[1], Push(Piggyback((), (item,))), NOW + 1)
    assert node.member(IDS[1]) is not None  # its signed announcement does
    assert len(node.members()) == MAX_MEMBERS
    assert node.stats.members_evicted == 1


def test_the_dead_are_forgotten_and_make_room() -> None:
    node = make_node(0, forget_after_ms=60_000)
    introduce(node, 1, 2)
    node.receive(IDS[2], Push(Piggyback((Rumor(IDS[1], sim_address(1), 0, Status.DEAD),))), NOW)
    node.tick(NOW + 30_000)
    assert node.member(IDS[1]) is not None
    for t in range(NOW + 30_000, NOW + 62_000, 1_000):
        node.tick(t)
    assert node.member(IDS[1]) is None
    assert node.stats.members_forgotten == 1
    assert node.member(IDS[2]) is not None  # the live stay


def test_a_full_table_makes_room_from_the_dead_first() -> None:
    node = make_node(0)
    flood = invented(MAX_MEMBERS)
    node.receive(IDS[1], Sync(flood, ()), NOW)
    dead = dataclasses.replace(flood[5], status=Status.DEAD)
    node.receive(IDS[1], Push(Piggyback((dead,))), NOW + 1)
    node.receive(
        IDS[2], Push(Piggyback((Rumor(IDS[2], sim_address(2), 0, Status.ALIVE),))), NOW + 2
    )
    assert node.member(IDS[2]) is not None
    assert node.member(flood[5].node_id) is None


def test_a_sync_from_a_node_the_full_table_refused_is_still_answered() -> None:
    """GOSSIP-19: the answer's `want` is how the newcomer gets to prove itself with its
    announcement."""
    node = make_node(0)
    node.receive(IDS[1], Sync(invented(MAX_MEMBERS), ()), NOW)
    me = Rumor(IDS[2], sim_address(2), 0, Status.ALIVE)
    (reply,) = node.receive(IDS[2], Sync((me,), ((IDS[2], 7),)), NOW + 1)
    assert node.member(IDS[2]) is None
    assert reply.to == sim_address(2)
    assert isinstance(reply.message, SyncReply) and reply.message.want == (IDS[2],)


def test_no_run_of_rumors_climbs_above_the_signed_incarnation() -> None:
    """Review findings: rumors at STEP, 2 STEP, ... about one node climbed past what the node
    itself would refute, in one message, or over a few (the step was counted per message).
    A rumor now never goes above the incarnation the node signed."""
    node = make_node(0)
    node.receive(IDS[2], push(signed(1, 0)), NOW)
    for k in range(1, 20):
        ladder = (Rumor(IDS[1], sim_address(1), k * MAX_INCARNATION_STEP, Status.ALIVE),)
        node.receive(IDS[2], Push(Piggyback(ladder)), NOW + k)
    kill = Rumor(IDS[1], sim_address(1), 19 * MAX_INCARNATION_STEP, Status.DEAD)
    node.receive(IDS[2], Push(Piggyback((kill,))), NOW + 20)
    member = node.member(IDS[1])
    assert member is not None
    assert (member.status, member.incarnation) == (Status.ALIVE, 0)
    assert node.stats.rumors_refused == 20


def test_a_refused_sender_gets_only_want_at_its_own_address() -> None:
    """Review finding: a refused sender got the whole member list at whatever address it
    claimed, an amplification toward any host. GOSSIP-19: only this node's own entry."""
    node = make_node(0)
    introduce(node, 1)
    node.receive(IDS[1], Sync(invented(MAX_MEMBERS), ()), NOW)
    me = Rumor(IDS[2], "victim.example:443", 0, Status.ALIVE)
    (reply,) = node.receive(IDS[2], Sync((me,), ()), NOW + 1)
    assert reply.to == "victim.example:443"
    assert reply.message == SyncReply((Rumor(IDS[0], sim_address(0), 0, Status.ALIVE),), (), ())


# Message types, versions and dissemination


def test_the_hop_types_are_six_and_an_announcement_is_never_one() -> None:
    """GOSSIP-1: the six hop types and their payloads' keys; `gossip.announce` is not a hop
    type, so a receiver's peer-channel table refuses it as one (GOSSIP-2)."""
    assert (
        {m.TYPE for m in SAMPLES}
        == HOP_TYPES
        == {
            "gossip.ping",
            "gossip.ack",
            "gossip.ping_req",
            "gossip.sync",
            "gossip.sync_reply",
            "gossip.push",
        }
    )
    keys = {m.TYPE: sorted(codec.decode(m.encode())) for m in SAMPLES}  # type: ignore[arg-type]
    assert keys == {
        "gossip.ping": ["anns", "nonce", "rumors"],
        "gossip.ack": ["anns", "nonce", "rumors"],
        "gossip.ping_req": ["anns", "nonce", "rumors", "target", "target_addr"],
        "gossip.sync": ["digest", "members"],
        "gossip.sync_reply": ["anns", "members", "want"],
        "gossip.push": ["anns", "rumors"],
    }
    assert ANNOUNCE == "gossip.announce" and {ANNOUNCE} == ANNOUNCE_TYPES
    item = signed(1, 0)
    with pytest.raises(UnknownType):
        open_envelope(item.frame, now_ms=NOW, known_types=HOP_TYPES, replay_guard=None)


def test_each_announcement_has_a_greater_ver_which_is_its_envelope_seq() -> None:
    """GOSSIP-5: `ver` starts at the clock in microseconds, grows with every announcement
    signed, even within one millisecond, and is the envelope's `seq`."""
    node = make_node(0)
    node.announce(sample_capabilities(0), NOW)
    (first,) = published(node)
    node.announce(dataclasses.replace(sample_capabilities(0), queue_depth=1), NOW)
    (second,) = published(node)
    assert first.version == NOW * 1000
    assert second.version == first.version + 1
    for item in (first, second):
        envelope = open_envelope(
            item.frame, now_ms=NOW, known_types=ANNOUNCE_TYPES, replay_guard=None
        )
        assert envelope.seq == item.version == Announcement.decode(envelope.payload).version


def test_an_origin_first_heard_of_by_its_announcement_is_alive_at_its_signed_incarnation() -> None:
    """GOSSIP-8: added `alive` at the announcement's `inc`, at the announcement's `peer`."""
    node = make_node(0)
    node.receive(IDS[2], push(signed(1, 3)), NOW)
    view = node.member(IDS[1])
    assert view is not None
    assert (view.status, view.incarnation, view.address) == (Status.ALIVE, 3, sim_address(1))


def test_an_expired_announcement_is_not_piggybacked() -> None:
    """GOSSIP-8: a node never sends an announcement whose frame has expired, on a hop
    message's piggyback either."""
    a, b = make_node(0), make_node(1)
    a.announce(sample_capabilities(0), NOW)
    b.receive(IDS[0], push(*published(a)), NOW)
    lifetime = GossipConfig("sim-0:7100").announce_lifetime_ms
    (ack,) = b.receive(IDS[2], Ping(NONCE), NOW + lifetime)
    assert isinstance(ack.message, Ack)
    assert ack.message.piggyback.announcements == ()


def held_alive_dead_and_left() -> GossipNode:
    """Node 0 holding 1 and 4 alive (both announced), 2 dead, 3 left."""
    node = make_node(0, sync_interval_ms=1_000)
    node.announce(sample_capabilities(0), NOW)
    node.receive(IDS[4], push(signed(1, 0), signed(4, 0)), NOW)
    for status in (Status.ALIVE, Status.DEAD):
        node.receive(IDS[1], push(rumors=(Rumor(IDS[2], sim_address(2), 0, status),)), NOW)
    leaver = make_node(3)
    introduce(leaver, 0)
    leaver.announce(sample_capabilities(3), NOW)
    (goodbye,) = leaver.leave(NOW)
    node.receive(IDS[3], goodbye.message, NOW)
    states = {i: node.member(IDS[i]).status for i in (1, 2, 3, 4)}  # type: ignore[union-attr]
    assert states == {1: Status.ALIVE, 2: Status.DEAD, 3: Status.LEFT, 4: Status.ALIVE}
    return node


def test_members_dead_or_left_are_not_probed_asked_to_help_or_sent_syncs() -> None:
    """GOSSIP-14: ten seconds of timers, nothing acknowledged: probes, ping requests and syncs
    go to the live members only. Member 2 is dead and known by rumor only: no reconnects
    either (GOSSIP-22 takes only members that signed where they listen); 1 and 4, declared
    dead by these very timers, get theirs at their signed addresses."""
    node = held_alive_dead_and_left()
    out = [o for t in range(NOW, NOW + 10_000, 100) for o in node.tick(t)]
    kinds = {type(o.message) for o in out}
    assert {Ping, PingReq, Sync} <= kinds
    assert {o.to for o in out} <= {IDS[1], IDS[4], sim_address(1), sim_address(4)}
    assert all(isinstance(o.message, Sync) for o in out if o.to in (sim_address(1), sim_address(4)))
    assert {o.message.target for o in out if isinstance(o.message, PingReq)} <= {IDS[1], IDS[4]}


def test_a_dead_member_that_signed_its_address_gets_a_reconnect_sync_every_interval() -> None:
    """GOSSIP-22: one sync per `reconnect_interval_ms`, at the address its announcement signed
    (a rumor moving the address elsewhere does not move the reconnects)."""
    node = make_node(0)
    introduce(node, 1)
    node.receive(IDS[3], push(signed(2, 0)), NOW)
    node.receive(IDS[1], push(rumors=(Rumor(IDS[2], "elsewhere:1", 0, Status.DEAD),)), NOW)
    assert node.member(IDS[2]).status is Status.DEAD  # type: ignore[union-attr]
    out = [o for t in range(NOW, NOW + 10_000, 100) for o in node.tick(t)]
    reconnects = [o for o in out if o.to in (sim_address(2), "elsewhere:1", IDS[2])]
    # the first at a random phase within the interval, then one every 5 s
    assert [(o.to, type(o.message)) for o in reconnects] in (
        [(sim_address(2), Sync)],
        [(sim_address(2), Sync)] * 2,
    )


def test_a_sync_lists_itself_first_then_every_member_not_left_and_every_announcement() -> None:
    """GOSSIP-18: within the first interval, to an alive member: `members` is this node's own
    entry, then one per member not `left`; `digest` every announcement held, its own too."""
    node = held_alive_dead_and_left()
    syncs = [
        (t, o)
        for t in range(NOW, NOW + 1_100, 100)
        for o in node.tick(t)
        if isinstance(o.message, Sync)
    ]
    assert syncs, "no sync within the first interval"
    _, first = syncs[0]
    assert first.to in (IDS[1], IDS[4])
    assert isinstance(first.message, Sync)
    members = first.message.members
    assert members[0] == Rumor(IDS[0], sim_address(0), 0, Status.ALIVE)
    assert sorted((r.node_id, r.status) for r in members[1:]) == sorted(
        [(IDS[1], Status.ALIVE), (IDS[2], Status.DEAD), (IDS[4], Status.ALIVE)]
    )
    assert node.own_announcement is not None
    digest = dict(first.message.digest)
    assert set(digest) == {IDS[0], IDS[1], IDS[3], IDS[4]}
    assert digest[IDS[0]] == node.own_announcement.version


def test_piggybacked_rumors_are_bounded_and_each_sent_retransmit_mult_log_n_times() -> None:
    """GOSSIP-16: at most `max_rumors` a message; a rumor about the receiver goes first, then
    those sent fewest times; each is sent `retransmit_mult * log(N)` times (N = 4 here: 3
    members and the node, so 2 * 3); at most `max_announcements` items a message."""
    node = make_node(0, max_rumors=2, max_announcements=1)
    members = tuple(Rumor(IDS[i], sim_address(i), 0, Status.ALIVE) for i in (1, 2, 3))
    node.receive(IDS[4], SyncReply(members, (), ()), NOW)  # third parties: nothing queued
    suspicions = tuple(Rumor(IDS[i], sim_address(i), 0, Status.SUSPECT) for i in (1, 2, 3))
    node.receive(IDS[4], push(rumors=suspicions), NOW)
    node.announce(sample_capabilities(0), NOW)
    node.receive(IDS[4], push(signed(1, 0)), NOW)  # two items queued: its own and 1's

    (to_three,) = node.receive(IDS[3], Ping(NONCE), NOW)
    assert isinstance(to_three.message, Ack)
    first = to_three.message.piggyback
    assert len(first.rumors) == 2 and first.rumors[0].node_id == IDS[3]
    assert len(first.announcements) == 1
    (to_four,) = node.receive(IDS[4], Ping(NONCE), NOW)
    assert isinstance(to_four.message, Ack)
    second = {r.node_id for r in to_four.message.piggyback.rumors}
    unsent = {IDS[1], IDS[2], IDS[3]} - {r.node_id for r in first.rumors}
    assert len(unsent) == 1 and unsent <= second  # those sent fewest times first
    sent = Counter(r.node_id for r in (*first.rumors, *to_four.message.piggyback.rumors))
    for _ in range(20):
        (ack,) = node.receive(IDS[4], Ping(NONCE), NOW)
        assert isinstance(ack.message, Ack)
        assert len(ack.message.piggyback.rumors) <= 2
        sent.update(r.node_id for r in ack.message.piggyback.rumors)
    assert sent == {IDS[1]: 6, IDS[2]: 6, IDS[3]: 6}


def test_a_newer_rumor_replaces_the_queued_one() -> None:
    """GOSSIP-16: a newer rumor about a node replaces the one queued about it."""
    node = make_node(0)
    node.receive(IDS[4], SyncReply((Rumor(IDS[1], sim_address(1), 0, Status.ALIVE),), (), ()), NOW)
    for status in (Status.SUSPECT, Status.DEAD):
        node.receive(IDS[4], push(rumors=(Rumor(IDS[1], sim_address(1), 0, status),)), NOW)
    carried = []
    for _ in range(10):
        (ack,) = node.receive(IDS[4], Ping(NONCE), NOW)
        assert isinstance(ack.message, Ack)
        carried += [r.status for r in ack.message.piggyback.rumors if r.node_id == IDS[1]]
    assert carried and set(carried) == {Status.DEAD}


def test_what_a_node_queues_for_dissemination() -> None:
    """GOSSIP-17: rumors that changed its view, never third parties' entries of a member list
    (GOSSIP-19: only the sender's own), its own refutation, announcements it accepted or
    published."""
    node = make_node(0)
    members = tuple(Rumor(IDS[i], sim_address(i), 0, Status.ALIVE) for i in (1, 2, 3))
    node.receive(IDS[1], Sync(members, ()), NOW)
    (ack,) = node.receive(IDS[4], Ping(NONCE), NOW)
    assert isinstance(ack.message, Ack)
    assert ack.message.piggyback.rumors == (members[0],)
    changes = Rumor(IDS[2], sim_address(2), 0, Status.SUSPECT)
    same = Rumor(IDS[3], sim_address(3), 0, Status.ALIVE)  # already held: no change
    about_me = Rumor(IDS[0], sim_address(0), 0, Status.SUSPECT)
    node.receive(IDS[4], push(signed(1, 0), rumors=(changes, same, about_me)), NOW)
    (ack,) = node.receive(IDS[4], Ping(NONCE), NOW)
    assert isinstance(ack.message, Ack)
    rumors = set(ack.message.piggyback.rumors)
    assert rumors == {members[0], changes, Rumor(IDS[0], sim_address(0), 1, Status.ALIVE)}
    origins = {i.origin for i in ack.message.piggyback.announcements}
    assert origins == {IDS[0], IDS[1]}  # its refutation's announcement, and 1's it accepted


def test_a_joining_node_syncs_with_each_bootstrap_address_and_is_spread_from_there() -> None:
    """GOSSIP-20: a sync to every bootstrap address (not its own); the bootstrap node's reply
    holds its whole table, and it disseminates the newcomer's `alive` entry."""
    newcomer, bootstrap = make_node(1), make_node(0)
    introduce(bootstrap, 2)
    out = newcomer.join([sim_address(0), sim_address(1), sim_address(3)])
    assert [o.to for o in out] == [sim_address(0), sim_address(3)]
    assert all(isinstance(o.message, Sync) for o in out)
    (reply,) = bootstrap.receive(IDS[1], out[0].message, NOW)
    assert isinstance(reply.message, SyncReply)
    assert {r.node_id for r in reply.message.members} == {IDS[0], IDS[1], IDS[2]}
    (ack,) = bootstrap.receive(IDS[2], Ping(NONCE), NOW)
    assert isinstance(ack.message, Ack)
    assert Rumor(IDS[1], sim_address(1), 0, Status.ALIVE) in ack.message.piggyback.rumors

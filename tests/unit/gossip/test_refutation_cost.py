"""GOSSIP-12 after issue 13's adversarial review: a refutation is one signed announcement per
message, whatever the message holds; a node that never announced still signs one; and the
incarnation a node signed survives its restart (fpai_node/gossip/incarnation_file.py)."""

import random
from pathlib import Path

from fpai_node.gossip.incarnation_file import load_incarnation, save_incarnation
from fpai_node.gossip.messages import MAX_INCARNATION, Piggyback, Push, Rumor, Status
from fpai_node.gossip.state import GossipConfig, GossipNode
from fpai_node.testing.gossip_sim import sample_capabilities, sim_address, sim_key

NOW = 1_767_225_600_000
KEYS = [sim_key(i, seed=5) for i in range(2)]


def node(incarnation: int = 0) -> GossipNode:
    config = GossipConfig(sim_address(0))
    return GossipNode(KEYS[0], config, random.Random(0), incarnation=incarnation)


def about_me(*incarnations: int) -> Push:
    return Push(
        Piggyback(
            tuple(Rumor(KEYS[0].node_id, sim_address(0), i, Status.SUSPECT) for i in incarnations)
        )
    )


def test_one_message_of_many_suspicions_costs_one_signature() -> None:
    """The review measured 8,192 signatures (0.47 s of the event loop) for one message
    carrying 8,192 rumors about the receiver, each one above the last."""
    me = node()
    me.announce(sample_capabilities(0), NOW)
    before = me.own_announcement
    assert before is not None
    me.receive(KEYS[1].node_id, about_me(*range(1_000)), NOW + 1)
    after = me.own_announcement
    assert me.incarnation == 1_000 and after is not None
    assert after.incarnation == 1_000
    assert after.version == max(before.version + 1, (NOW + 1) * 1000)  # one new version


def test_a_node_that_never_announced_signs_its_refutation() -> None:
    me = node()
    assert me.own_announcement is None
    me.receive(KEYS[1].node_id, about_me(0), NOW)
    assert me.own_announcement is not None and me.own_announcement.incarnation == 1


def test_a_restarted_node_resumes_at_the_incarnation_it_kept(tmp_path: Path) -> None:
    """The review: a liar made B refute its way 2 steps up; B restarted at 0, and every later
    suspicion at what the others held was beyond B's step: B could never refute again."""
    path = tmp_path / "gossip-incarnation"
    assert load_incarnation(path) == 0
    first = node()
    first.receive(KEYS[1].node_id, about_me(65_536), NOW)
    first.receive(KEYS[1].node_id, about_me(131_072), NOW + 1)
    save_incarnation(path, first.incarnation)
    restarted = node(load_incarnation(path))
    restarted.receive(KEYS[1].node_id, about_me(131_073), NOW + 2)  # what the others hold
    assert restarted.incarnation == 131_074


def test_a_kept_incarnation_that_is_none_starts_at_zero(tmp_path: Path) -> None:
    path = tmp_path / "gossip-incarnation"
    for text in ("", "-1", "seven", str(MAX_INCARNATION + 1), "\xff"):
        path.write_text(text, encoding="latin-1")
        assert load_incarnation(path) == 0
    save_incarnation(path, MAX_INCARNATION)
    assert load_incarnation(path) == MAX_INCARNATION
    assert not list(tmp_path.glob("*.tmp"))

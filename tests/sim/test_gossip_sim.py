"""Seeded in-memory federations of real gossip state machines (specs/0004-gossip.md, issue 4)."""

import math

import pytest

from fpai_node.gossip import Status
from fpai_node.gossip.messages import Piggyback, Push, Rumor
from fpai_node.gossip.state import GossipConfig
from fpai_node.testing.gossip_sim import GossipSim, sample_capabilities

SPREAD_C = 2  # an announcement reaches everyone within 2*log2(N) rounds (measured: ~log2(N)/2)
DEATH_C = 4  # detection + suspicion (log2 N periods) + spreading the verdict


def seeded(n: int, seed: int = 7, loss: float = 0.0) -> GossipSim:
    sim = GossipSim(n, seed, loss=loss)
    sim.seed_membership()
    return sim


def announcement_reached_all(sim: GossipSim, origin: int) -> bool:
    origin_id = sim.node_id(origin)
    for node in sim.live():
        if node.index == origin:
            continue
        member = node.gossip.member(origin_id)
        if member is None or member.announcement is None:
            return False
    return True


def status_everywhere(sim: GossipSim, subject: int, status: Status) -> bool:
    subject_id = sim.node_id(subject)
    views = (node.gossip.member(subject_id) for node in sim.live() if node.index != subject)
    return all(view is not None and view.status is status for view in views)


def total(sim: GossipSim, counter: str) -> int:
    return sum(getattr(node.gossip.stats, counter) for node in sim.nodes)


@pytest.mark.parametrize(
    ("n", "loss"),
    [
        (100, 0.0),
        (100, 0.1),
        pytest.param(500, 0.0, marks=pytest.mark.slow),
        pytest.param(500, 0.1, marks=pytest.mark.slow),
    ],
)
def test_announcement_reaches_every_live_node_within_c_log2_n_rounds(n: int, loss: float) -> None:
    sim = seeded(n, loss=loss)
    bound = math.ceil(SPREAD_C * math.log2(n))
    sim.nodes[3].gossip.announce(sample_capabilities(3), sim.now_ms)

    rounds = sim.run_until(lambda: announcement_reached_all(sim, 3), bound)

    assert rounds is not None, f"not everywhere after {bound} rounds"
    view = sim.nodes[n - 1].gossip.member(sim.node_id(3))
    assert view is not None and view.announcement is not None
    assert view.announcement.capabilities == sample_capabilities(3)
    assert total(sim, "announcements_rejected") == 0


@pytest.mark.parametrize("n", [100, pytest.param(500, marks=pytest.mark.slow)])
def test_killed_node_is_declared_dead_by_every_live_node_within_bound(n: int) -> None:
    sim = seeded(n)
    sim.run_rounds(2)
    bound = math.ceil(DEATH_C * math.log2(n))
    sim.kill(9)

    rounds = sim.run_until(lambda: status_everywhere(sim, 9, Status.DEAD), bound)

    assert rounds is not None, f"not dead everywhere after {bound} rounds"
    assert total(sim, "deaths") == n - 1  # nobody else died anywhere


def slow_link_run(indirect_probes: int) -> GossipSim:
    def config(address: str) -> GossipConfig:
        return GossipConfig(address, indirect_probes=indirect_probes)

    sim = GossipSim(40, seed=3, config=config)
    sim.seed_membership()
    extra = 4 * sim.nodes[0].gossip.config.ping_timeout_ms  # no direct ack within a period
    sim.slow_link(1, 2, extra)
    sim.run_rounds(60)  # every node probes every other at least once
    return sim


def test_one_slow_link_never_gets_a_healthy_node_suspected_or_declared_dead() -> None:
    sim = slow_link_run(indirect_probes=3)

    assert total(sim, "suspicions") == 0
    assert total(sim, "deaths") == 0
    assert status_everywhere(sim, 1, Status.ALIVE)
    assert status_everywhere(sim, 2, Status.ALIVE)


def test_without_indirect_probes_the_slow_link_raises_false_suspicions() -> None:
    """The control for the test above: the slow link is slow enough to matter."""
    sim = slow_link_run(indirect_probes=0)

    assert total(sim, "suspicions") > 0
    assert total(sim, "refutations") > 0


def test_late_joiner_learns_the_whole_table_and_everyone_learns_it() -> None:
    n = 30
    sim = GossipSim(n + 1, seed=11)
    sim.seed_membership(count=n)
    for i in range(n):
        sim.nodes[i].gossip.announce(sample_capabilities(i), sim.now_ms)
    spread = sim.run_until(lambda: all(announcement_reached_all(sim, i) for i in range(n)), 30)
    assert spread is not None

    sim.start(n, bootstrap=0)
    sim.run_rounds(1)

    joiner = sim.nodes[n].gossip.members()
    assert {sim.node_id(i) for i in range(n)} == set(joiner)
    assert all(view.status is Status.ALIVE for view in joiner.values())
    assert all(
        view.announcement == sim.nodes[i].gossip.own_announcement
        for i in range(n)
        for view in [joiner[sim.node_id(i)]]
    )
    bound = math.ceil(SPREAD_C * math.log2(n))
    assert sim.run_until(lambda: status_everywhere(sim, n, Status.ALIVE), bound) is not None


def test_nodes_joining_through_one_bootstrap_address_find_each_other() -> None:
    n = 30
    sim = GossipSim(n, seed=5)
    sim.join_all(bootstrap=0)

    def everyone_knows_everyone() -> bool:
        return all(
            sum(v.status is Status.ALIVE for v in node.gossip.members().values()) == n - 1
            for node in sim.nodes
        )

    assert sim.run_until(everyone_knows_everyone, 40) is not None
    assert total(sim, "suspicions") == 0


def test_graceful_leave_is_left_everywhere_never_dead() -> None:
    n = 100
    sim = seeded(n)
    sim.run_rounds(2)

    sim.send(5, sim.nodes[5].gossip.leave(sim.now_ms))
    bound = math.ceil(SPREAD_C * math.log2(n))
    rounds = sim.run_until(lambda: status_everywhere(sim, 5, Status.LEFT), bound)

    assert rounds is not None
    sim.run_rounds(2 * bound)  # long past any suspicion timeout
    assert status_everywhere(sim, 5, Status.LEFT)
    assert total(sim, "deaths") == 0
    assert sim.nodes[5].gossip.tick(sim.now_ms) == []


def test_forged_and_replayed_hop_frames_are_rejected_by_the_envelope_layer() -> None:
    sim = seeded(10)
    frame = sim.seal_from(0, Push(Piggyback()))
    forged = frame[:-1] + bytes([frame[-1] ^ 1])

    for raw in (frame, frame, forged):  # the original, its replay, a bad signature
        sim.deliver_at(sim.now_ms, 0, 1, raw)
    sim.run_rounds(1)

    assert sim.stats.rejected == 2


def test_a_false_suspicion_is_refuted_everywhere_by_the_nodes_signature() -> None:
    """GOSSIP-10, GOSSIP-12: a rumor about a node never goes above the incarnation the node
    signed, so its refutation travels in its own new announcement. Every node announces, as
    real nodes do at start; one false suspicion about node 5 must end with node 5 alive at
    incarnation 1 everywhere."""
    n = 40
    sim = seeded(n)
    for node in sim.nodes:
        node.gossip.announce(sample_capabilities(node.index), sim.now_ms)
    spread = sim.run_until(lambda: all(announcement_reached_all(sim, i) for i in range(n)), 40)
    assert spread is not None
    subject = sim.node_id(5)
    lie = Rumor(subject, sim.nodes[5].gossip.config.address, 0, Status.SUSPECT)
    sim.deliver_at(sim.now_ms, 1, 0, sim.seal_from(1, Push(Piggyback((lie,)))))

    def refuted() -> bool:
        views = [node.gossip.member(subject) for node in sim.live() if node.index != 5]
        return all(v is not None and (v.status, v.incarnation) == (Status.ALIVE, 1) for v in views)

    rounds = sim.run_until(refuted, math.ceil(DEATH_C * math.log2(n)))
    assert rounds is not None, "node 5 is not alive at incarnation 1 everywhere"
    assert sim.nodes[5].gossip.incarnation == 1
    assert total(sim, "deaths") == 0, "the refutation came after a suspicion timed out"

"""Gossip convergence and bandwidth in the seeded simulation (specs/0004-gossip.md).

    .venv/bin/python benchmarks/gossip.py

Convergence: in a federation of N nodes that already know each other, one node publishes a new
capability announcement; we count the rounds (probe periods) until every other node holds it and
compare with the ideal log2(N) of a perfect doubling. `wall` is the real time the simulation took
for those rounds, with every message sealed and verified. Each row is the median over SEEDS.

Bandwidth: N = 100 nodes that all announce at once, measured over the first BANDWIDTH_ROUNDS
rounds (announcements draining from the piggyback queues) and again over BANDWIDTH_ROUNDS rounds
after round 200 (quiet: probes, acks, the periodic push-pull). Bytes are whole sealed frames as
sent. Per second is per round divided by the configured probe interval.
"""

import math
import statistics
import time

from fpai_node.gossip.state import GossipConfig
from fpai_node.testing.gossip_sim import GossipSim, sample_capabilities

SIZES = (10, 100, 500)
SEEDS = (1, 2, 3)
BANDWIDTH_N = 100
BANDWIDTH_ROUNDS = 60  # two push-pull intervals at the default 30 s
MAX_ROUNDS = 100


def convergence(n: int, seed: int) -> tuple[int, float]:
    sim = GossipSim(n, seed)
    sim.seed_membership()
    sim.run_rounds(1)
    origin = sim.node_id(1)
    sim.nodes[1].gossip.announce(sample_capabilities(1), sim.now_ms)

    def reached() -> bool:
        views = (node.gossip.member(origin) for node in sim.nodes if node.index != 1)
        return all(v is not None and v.announcement is not None for v in views)

    start = time.perf_counter()
    rounds = sim.run_until(reached, MAX_ROUNDS)
    elapsed = time.perf_counter() - start
    if rounds is None:
        raise SystemExit(f"N={n} seed={seed}: no convergence in {MAX_ROUNDS} rounds")
    return rounds, elapsed


def bandwidth() -> list[tuple[str, float, float]]:
    """(phase, bytes per node per round, messages per node per round) for each phase."""
    sim = GossipSim(BANDWIDTH_N, seed=1)
    sim.seed_membership()
    for node in sim.nodes:
        node.gossip.announce(sample_capabilities(node.index), sim.now_ms)
    phases = []
    for phase, skip in (("all announce at once", 0), ("quiet (after 200 rounds)", 140)):
        sim.run_rounds(skip)
        bytes_before, sent_before = sum(sim.stats.bytes_sent.values()), sim.stats.sent
        sim.run_rounds(BANDWIDTH_ROUNDS)
        per_node = BANDWIDTH_N * BANDWIDTH_ROUNDS
        sent_bytes = sum(sim.stats.bytes_sent.values()) - bytes_before
        phases.append((phase, sent_bytes / per_node, (sim.stats.sent - sent_before) / per_node))
    return phases


def main() -> None:
    print(f"convergence of one new announcement (median of {len(SEEDS)} seeds)")
    print(f"{'N':>5} {'rounds':>7} {'log2(N)':>8} {'ratio':>6} {'wall s':>7}")
    for n in SIZES:
        runs = [convergence(n, seed) for seed in SEEDS]
        rounds = statistics.median(r for r, _ in runs)
        wall = statistics.median(w for _, w in runs)
        ideal = math.log2(n)
        print(f"{n:>5} {rounds:>7} {ideal:>8.2f} {rounds / ideal:>6.2f} {wall:>7.2f}")
    interval_s = GossipConfig("").probe_interval_ms / 1000
    print()
    print(
        f"bandwidth at N={BANDWIDTH_N}, {BANDWIDTH_ROUNDS} rounds a phase, a round {interval_s:g} s"
    )
    print(f"{'phase':<26} {'B/node/round':>12} {'B/node/s':>9} {'msgs/node/round':>15}")
    for phase, per_round, messages in bandwidth():
        print(f"{phase:<26} {per_round:>12,.0f} {per_round / interval_s:>9,.0f} {messages:>15.2f}")


if __name__ == "__main__":
    main()

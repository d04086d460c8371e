"""What applying one registry command costs, as the registry grows (every replica pays it).

    .venv/bin/python benchmarks/registry_apply.py [--writes 3000]

Three cases, each the mean over `--writes` commands applied one after the other:
- a voter's param.set of one of 64 keys, in a registry of 64 parameters (the shape of
  benchmarks/registry_vs_etcd.py);
- the same with 10,000 other parameters held;
- a learner's new parameter under its own name (`member.<id>.`, REG-16's quota applies), among
  1,000 learners holding 20 parameters each (22,000 in all): a reward digest or a ballot.
To compare two source trees, run it under each: PYTHONPATH=TREE .venv/bin/python ...
"""

import argparse
import os
import time
from collections.abc import Callable

from fpai_node.identity.nodeid import node_id_from_public_key
from fpai_node.registry.state import RegistryState, apply
from fpai_node.testing.registry_script import ADDRESSES, T0, command
from fpai_node.wire import codec

LEARNERS = 1_000
LEARNER_PARAMETERS = 20  # under each learner's name: its digests, reports and ballots


def new_id() -> str:
    return node_id_from_public_key(os.urandom(32))


class Registry:
    """A state built through apply, and how many commands were made for it (each one's
    idempotency key, and its time in ms after T0)."""

    def __init__(self) -> None:
        self.state = RegistryState()
        self.made = 0

    def command(self, op: str, by: str, **args: codec.Value) -> bytes:
        self.made += 1
        return command(op, self.made, at=T0 + self.made, by=by, **args)

    def run(self, op: str, by: str, **args: codec.Value) -> None:
        applied = apply(self.state, self.command(op, by, **args))
        if applied.result.status != "ok":
            raise SystemExit(f"{op} by {by[:12]}: {applied.result}")
        self.state = applied.state


def mean_us(registry: Registry, commands: list[bytes]) -> float:
    """Apply `commands` in order; the mean time of one, in µs."""
    state = registry.state
    started = time.perf_counter()
    for made in commands:
        state = apply(state, made).state
    elapsed = time.perf_counter() - started
    registry.state = state
    return elapsed / len(commands) * 1e6


def voter_writes(extra: int, writes: int) -> float:
    registry, voter = Registry(), new_id()
    registry.run("member.add", voter, node_id=voter, role="voter", **ADDRESSES)
    for i in range(extra):
        registry.run("param.set", voter, key=f"held.{i}", value=i)
    commands = [
        registry.command("param.set", voter, key=f"bench.k{i % 64}", value="v" * 64)
        for i in range(writes)
    ]
    return mean_us(registry, commands)


def learner_writes(writes: int) -> float:
    registry, voter = Registry(), new_id()
    registry.run("member.add", voter, node_id=voter, role="voter", **ADDRESSES)
    learners = [new_id() for _ in range(LEARNERS)]
    for learner in learners:
        registry.run("member.add", voter, node_id=learner, role="learner", **ADDRESSES)
        for i in range(LEARNER_PARAMETERS):
            registry.run("param.set", learner, key=f"member.{learner}.k{i}", value=i)
    commands = []
    for i in range(writes):
        learner = learners[i % LEARNERS]
        # a new key each; learners[i % LEARNERS] is asked at most writes/LEARNERS times, and
        # writes stays below LEARNERS * (64 - LEARNER_PARAMETERS), so all fit the quota
        commands.append(
            registry.command("param.set", learner, key=f"member.{learner}.new{i}", value=i)
        )
    return mean_us(registry, commands)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=3000, help="commands timed per case")
    args = parser.parse_args()
    cases: list[tuple[str, Callable[[], float]]] = [
        ("voter, 64 parameters", lambda: voter_writes(0, args.writes)),
        ("voter, 10,064 parameters", lambda: voter_writes(10_000, args.writes)),
        ("learner's new key, 22,000 parameters", lambda: learner_writes(args.writes)),
    ]
    print(f"{'case':<40} {'µs per apply':>13}")
    for name, case in cases:
        print(f"{name:<40} {case():>13.1f}")


if __name__ == "__main__":
    main()

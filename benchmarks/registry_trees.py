"""The registry from two (or more) source trees side by side, to measure a change to it.

    .venv/bin/python benchmarks/registry_trees.py NAME=TREE[,VAR=VALUE...] NAME=TREE ...
        [--clients 1,16,64] [--seconds 3] [--warmup 0.5] [--rounds 4] [--keys 0]

Each TREE (a checkout, e.g. from `git worktree add`) runs a three-node registry of its own,
its `fpai-node` processes started with PYTHONPATH=TREE and any VAR=VALUE given after it; all
the clusters stay up for the whole run, and their phases alternate as in registry_vs_etcd.py
(same client, same writes), so a machine whose speed drifts from hour to hour (ours does, by
up to a third) weighs on every tree alike. Compare the trees within a run: the numbers across
runs are not comparable. Prints writes/s, p50 and p99 per tree and client count, and each
one's ratio to the first tree.
"""

import argparse
import asyncio
import contextlib
import dataclasses
import tempfile
from pathlib import Path

from registry_vs_etcd import Sample, add_load_options, measure, ours_side, progress

from fpai_node.testing.registry_cluster import registry_cluster

MEMBERS = 3  # as in registry_vs_etcd.py: the smallest cluster that survives losing one


def parse_tree(spec: str) -> tuple[str, dict[str, str]]:
    """NAME=TREE[,VAR=VALUE...] -> (NAME, the environment its nodes start with)."""
    name, sep, rest = spec.partition("=")
    tree, *assignments = rest.split(",")
    if not (name and sep and tree) or not all("=" in a for a in assignments):
        raise SystemExit(f"not NAME=TREE[,VAR=VALUE...]: {spec!r}")
    if not (Path(tree) / "fpai_node").is_dir():
        raise SystemExit(f"{tree} has no fpai_node package")
    return name, {"PYTHONPATH": str(Path(tree).resolve())} | dict(
        a.split("=", 1) for a in assignments
    )


def print_table(levels: list[int], names: list[str], samples: dict[int, dict[str, Sample]]) -> None:
    first = names[0]
    print(
        f"{'clients':>7} | {'tree':<16} | {'w/s':>7} {'ratio':>6} | {'p50 ms':>7} {'ratio':>6}"
        f" | {'p99 ms':>7} {'ratio':>6} | errors"
    )
    for clients in levels:
        base = samples[clients][first].row()
        for name in names:
            row = samples[clients][name].row()
            cells = []
            for key in ("writes_s", "p50_ms", "p99_ms"):
                ratio = row[key] / base[key] if base[key] else 0.0
                cells.append(f"{row[key]:7.{0 if key == 'writes_s' else 2}f} {ratio:6.2f}")
            errors = row["errors"] or "none"
            print(f"{clients:>7} | {name:<16} | " + " | ".join(cells) + f" | {errors}")
    print(f"ratios are to {first}: for w/s above 1 is faster, for p50 and p99 below 1 is faster")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", nargs="+", help="NAME=TREE[,VAR=VALUE...], the first the base")
    add_load_options(parser, seconds=3.0, warmup=0.5, rounds=4)
    args = parser.parse_args()
    trees = [parse_tree(spec) for spec in args.trees]
    if len({name for name, _ in trees}) != len(trees):
        raise SystemExit("each tree needs a name of its own")
    levels = [int(n) for n in args.clients.split(",")]
    with contextlib.ExitStack() as stack:
        sides = []
        for name, env in trees:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f"fpai-{name}-")))
            progress(f"starting {MEMBERS} fpai-node processes from {env['PYTHONPATH']} ({name})")
            nodes = stack.enter_context(registry_cluster(root, size=MEMBERS, env=env))
            sides.append(dataclasses.replace(ours_side(nodes), kind=name))
        samples = asyncio.run(measure(sides, levels, args))
    print_table(levels, [name for name, _ in trees], samples)


if __name__ == "__main__":
    main()

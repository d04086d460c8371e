"""A local testnet's start-up time and a node's idle cost (issue 7).

    .venv/bin/python benchmarks/testnet.py [--nodes 3] [--idle-seconds 30] [--base-port 28100]

Runs `fpai-node testnet up --nodes N` in a fresh directory as a user would and times it from
the command's start to its return (all nodes healthy, registered, and seeing each other), three
times: a fresh testnet, then `down` and `up` again (a resume, with state), then a fresh one
again. Then, with the federation idle (no requests), samples each node's CPU time and resident
memory from /proc over `--idle-seconds`: node1 serves the bundled model, node2 serves nothing
(a gateway). Baseline for the idle CPU: the same node process would ideally use none; gossip
probes once a second and Raft heartbeats ten times a second, so a small constant is expected.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fpai_node.testnet import Testnet

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def run(*args: str) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "fpai_node", "testnet", *args],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    parser.add_argument("--base-port", type=int, default=28100)
    args = parser.parse_args()
    print(
        f"testnet benchmark: {args.nodes} nodes on 127.0.0.1, node1 serves the bundled model; "
        f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.2f} at start"
    )
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "testnet"
        common = ["--dir", str(directory)]
        times = {}
        try:
            times["fresh"] = run(
                "up", "--nodes", str(args.nodes), "--base-port", str(args.base_port), *common
            )
            run("down", *common)
            times["resume"] = run("up", *common)
            run("down", "--purge", *common)
            times["fresh again"] = run(
                "up", "--nodes", str(args.nodes), "--base-port", str(args.base_port), *common
            )
            testnet = Testnet.load(directory)
            assert testnet is not None
            watched = {
                "node1 (bundled model)": testnet.nodes[0],
                "node2 (no model)": testnet.nodes[1],
            }
            time.sleep(5.0)  # let start-up work (model warm-up, registry writes) settle
            before = {name: cpu_seconds(n.pid or 0) for name, n in watched.items()}
            time.sleep(args.idle_seconds)
            after = {name: cpu_seconds(n.pid or 0) for name, n in watched.items()}
            rss = {name: rss_mib(n.pid or 0) for name, n in watched.items()}
        finally:
            subprocess.run(
                [sys.executable, "-m", "fpai_node", "testnet", "down", "--purge", *common],
                check=False,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
    print(f"\n{'testnet up --nodes ' + str(args.nodes):<32}{'seconds':>10}")
    for label, seconds in times.items():
        print(f"{'  ' + label:<32}{seconds:>10.1f}")
    print(f"\n{'idle node, ' + str(int(args.idle_seconds)) + ' s':<32}{'CPU %':>10}{'RSS MiB':>10}")
    for name in watched:
        cpu = (after[name] - before[name]) / args.idle_seconds * 100
        print(f"{'  ' + name:<32}{cpu:>10.2f}{rss[name]:>10.0f}")


if __name__ == "__main__":
    main()

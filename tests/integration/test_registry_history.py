"""Linearizability of the registry under kill -9 and restart, checked on recorded histories.

Clients write unique values to one parameter and read it back (linearizable reads) through
random nodes, while a nemesis kills a random node with SIGKILL and starts it again. Every
operation is recorded with its invocation and answer times; a write that got no clear answer is
recorded as of unknown outcome. The history must be linearizable for a register (the checker is
fpai_node/testing/linearizability.py, with unit tests that show it finds violations).
"""

import math
import random
import threading
import time
import urllib.error
from pathlib import Path

import pytest

from fpai_node.testing.linearizability import Operation, check
from fpai_node.testing.registry_cluster import RegistryNode, leader_of, registry_cluster

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]
KEY = "register"
CLIENTS = 3
WORKLOAD_S = 12.0
REQUEST_TIMEOUT_S = 5.0


class History:
    def __init__(self) -> None:
        self.operations: list[Operation] = []
        self.unclear_writes = 0
        self.failed_reads = 0
        self._lock = threading.Lock()

    def add(self, operation: Operation) -> None:
        with self._lock:
            self.operations.append(operation)


def client(
    number: int,
    nodes: list[RegistryNode],
    history: History,
    rng: random.Random,
    stop: threading.Event,
) -> None:
    sequence = 0
    while not stop.is_set():
        node = rng.choice(nodes)
        start = time.monotonic()
        if rng.random() < 0.5:
            sequence += 1
            value = f"c{number}-{sequence}"
            try:
                node.put(KEY, value, timeout_s=REQUEST_TIMEOUT_S)
            except (OSError, urllib.error.HTTPError, ValueError):
                history.unclear_writes += 1  # refused, timed out or cut: it may still apply
                history.add(Operation("write", value, start, math.inf, number))
            else:
                history.add(Operation("write", value, start, time.monotonic(), number))
        else:
            try:
                value = node.get(KEY, timeout_s=REQUEST_TIMEOUT_S)
            except urllib.error.HTTPError as exc:
                if exc.code != 404:
                    history.failed_reads += 1
                    continue
                value = None
            except (OSError, ValueError):
                history.failed_reads += 1  # a read without an answer says nothing
                continue
            history.add(Operation("read", value, start, time.monotonic(), number))


def nemesis(
    nodes: list[RegistryNode], rng: random.Random, stop: threading.Event, kills: list[str]
) -> None:
    """Kill one node at a time with SIGKILL and start it again: a majority stays up."""
    while not stop.wait(rng.uniform(1.0, 2.5)):
        victim = rng.choice(nodes)
        victim.kill()
        kills.append(victim.home.name)
        stop.wait(rng.uniform(0.5, 2.0))
        victim.start()


@pytest.mark.parametrize("seed", [1, 2])
def test_register_history_is_linearizable_under_kill_and_restart(seed: int, tmp_path: Path) -> None:
    check_history(seed, CLIENTS, tmp_path)


def test_a_history_of_64_concurrent_clients_is_linearizable(tmp_path: Path) -> None:
    """Group commit batches many clients' writes into one entry batch and one fdatasync, and
    the leader answers reads by read index (RAFT-18): both under 64 clients, kill and restart."""
    check_history(3, 64, tmp_path)


def check_history(seed: int, clients: int, tmp_path: Path) -> None:
    rng = random.Random(seed)
    history = History()
    kills: list[str] = []
    with registry_cluster(tmp_path) as nodes:
        leader_of(nodes)
        stop = threading.Event()
        threads = [
            threading.Thread(
                target=client, args=(i, nodes, history, random.Random(seed * 100 + i), stop)
            )
            for i in range(clients)
        ]
        threads.append(threading.Thread(target=nemesis, args=(nodes, rng, stop, kills)))
        for thread in threads:
            thread.start()
        time.sleep(WORKLOAD_S)
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
            assert not thread.is_alive()
        leader_of(nodes)
        for node in nodes:  # a last read from every node, after the dust settles
            start = time.monotonic()
            value = node.get(KEY)
            history.add(Operation("read", value, start, time.monotonic(), -1))

    operations = history.operations
    writes = [op for op in operations if op.kind == "write" and op.completed]
    reads = [op for op in operations if op.kind == "read"]
    assert kills, "the nemesis never struck"
    assert len(writes) >= 20 * clients // CLIENTS and len(reads) >= 20, (len(writes), len(reads))
    verdict = check(operations)
    assert verdict.linearizable, (
        f"seed {seed}: {verdict.detail}; {len(operations)} operations, kills {kills}"
    )
    print(
        f"seed {seed}: {len(writes)} writes, {len(reads)} reads, {history.unclear_writes} "
        f"unclear writes, {history.failed_reads} failed reads, {len(kills)} kills, "
        f"{verdict.explored} states explored"
    )

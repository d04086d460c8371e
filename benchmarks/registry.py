"""Raft registry: our engine against raw pysyncobj, 3 loopback processes a side (specs/0005).

    .venv/bin/python benchmarks/registry.py [--seconds 5] [--warmup 1] [--clients 16] [--trials 5]

Both sides run pysyncobj's Raft with the same settings (those `RaftTiming().conf()` builds) and
the same write, one committed log entry each. OURS is `RaftEngine`: mutual TLS 1.3 between the
node certificates, canonical MessagePack frames, a journal fdatasync'd for every entry, and
registry commands (`param.set`) applied to the registry state. RAW is a `pysyncobj.SyncObj` with
one replicated setter: plain TCP, pickle, pysyncobj's mmap journal without fsync (and its pickled
snapshot file, as ours has its own: both compact the log at RaftTiming's count). So ours/raw is
the price of the TLS transport, the canonical encoding, durability and the registry's state
machine together, not of Raft. The registry keeps every write's idempotency key for an hour
(REG-4, fpai_node/registry/dedup.py); the last lines say how many there were.

Each side is three processes on 127.0.0.1 (this script, re-invoked with `--worker`), journals in
the system temp directory (TMPDIR; its disk sets the cost of ours' fdatasync). The load runs inside
the leader's process, so replication is measured, not HTTP: one client (propose, wait for the
commit, repeat) and then `--clients` threads doing the same; after a warm-up, writes/s counts only
writes that committed, and latency is from the proposal to the commit callback. Failover: `kill -9`
of the leader, then the two survivors propose writes, retrying until one commits through a new
leader; the time is from the kill to that first commit, median of `--trials`, the killed process
restarted on its journal between trials. Phases alternate between the sides, so drift (heat, other
load) hits both alike. For writes/s, ours/raw below 1 means ours is slower; for times, above 1
means ours is slower.
"""

import argparse
import contextlib
import functools
import importlib.metadata
import itertools
import json
import os
import platform
import queue
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

from pysyncobj import SyncObj, SyncObjConf, replicated
from pysyncobj.config import FAIL_REASON

# Nothing from fpai_node is imported at module level: fpai_node.registry.raft patches pysyncobj's
# globals (pickle, journal) process-wide, and the raw workers must run pysyncobj as shipped.

HOST = "127.0.0.1"
VOTERS = 3
KINDS = ("ours", "raw")
WRITE_TIMEOUT_S = 5.0  # a write with no outcome by then counts as failed
FAILOVER_TIMEOUT_S = 20.0
ANSWER_TIMEOUT_S = 30.0  # a worker's answer to anything but a load or a failover
STABLE_TIMEOUT_S = 30.0  # for all three to agree on one leader and be caught up
ROWS = (("writes_s", "writes/s", 0), ("p50_ms", "p50 ms", 1), ("p99_ms", "p99 ms", 1))

Done = Callable[[bool], None]


# ---- worker processes ----------------------------------------------------------------------


class Replica(Protocol):
    def write(self, done: Done) -> None: ...
    def setup(self) -> None: ...
    def status(self) -> dict[str, Any]: ...
    def stop(self) -> None: ...


class Ours:
    """`RaftEngine` with node identities from fixed seeds and a registry members table."""

    def __init__(self, index: int, ports: list[int], directory: Path) -> None:
        from datetime import UTC, datetime

        from fpai_node.identity import NodeKey
        from fpai_node.identity.tls import TlsIdentity
        from fpai_node.log import configure_logging
        from fpai_node.registry.raft import RaftEngine, RaftTiming, TransportCounters
        from fpai_node.registry.raft_wire import raft_id
        from fpai_node.registry.state import encode_command

        configure_logging("json", "warning")
        keys = [NodeKey.from_seed(bytes([i + 1]) * 32) for i in range(len(ports))]
        self._encode = encode_command
        self._values = itertools.count(1)
        self._node_id = keys[index].node_id
        self._members = [(k.node_id, f"{HOST}:{port}") for k, port in zip(keys, ports, strict=True)]
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((HOST, ports[index]))
        listener.listen(16)
        listener.setblocking(False)
        self._engine = RaftEngine(
            member=raft_id(self._node_id, f"{HOST}:{ports[index]}"),
            learner=False,
            voters=[raft_id(node_id, address) for node_id, address in self._members],
            directory=directory,
            identity=TlsIdentity.open(keys[index], datetime.now(UTC)),
            listener=listener,
            timing=RaftTiming(),
            admits_learner=lambda node_id: True,
            counters=TransportCounters(),
        )

    def _propose(self, op: str, args: dict[str, Any], done: Done) -> None:
        at_ms = time.time_ns() // 1_000_000
        command = self._encode(op, args, key=os.urandom(16), by=self._node_id, at_ms=at_ms)
        self._engine.propose(
            command,
            lambda result, error: done(error == 0 and result is not None and result.status == "ok"),
        )

    def write(self, done: Done) -> None:
        self._propose("param.set", {"key": "bench", "value": next(self._values)}, done)

    def setup(self) -> None:
        """Fill the members table, or the leader's membership policy hands leadership away."""
        deadline = time.monotonic() + STABLE_TIMEOUT_S
        unused = f"{HOST}:1"  # no peer channel or API in this benchmark
        for node_id, address in self._members:
            args = {
                "node_id": node_id,
                "role": "voter",
                "peer": unused,
                "api": unused,
                "raft": address,
            }
            add = functools.partial(self._propose, "member.add", args)
            while node_id not in self._engine.state.members:
                if time.monotonic() > deadline:
                    raise SystemExit(f"member.add {node_id} did not commit")
                commit_one(add)

    def status(self) -> dict[str, Any]:
        s = self._engine.status
        return {
            "leader": s.leader,
            "is_leader": s.is_leader,
            "applied": s.applied_index,
            "keys": len(self._engine.state.applied),
        }

    def stop(self) -> None:
        self._engine.stop()


class RawStore(SyncObj):  # type: ignore[misc]
    """pysyncobj as shipped: one replicated value."""

    def __init__(self, me: str, others: list[str], conf: SyncObjConf) -> None:
        super().__init__(me, others, conf)
        self.value = 0

    @replicated  # type: ignore[untyped-decorator]
    def set_value(self, value: int) -> int:
        self.value = value
        return value


class Raw:
    """`RawStore` over pysyncobj's TCPTransport, no password."""

    def __init__(self, index: int, ports: list[int], directory: Path, settings: dict[str, Any]):
        journal, dump = str(directory / "journal"), str(directory / "dump")
        conf = SyncObjConf(**settings, journalFile=journal, fullDumpFile=dump)
        addresses = [f"{HOST}:{port}" for port in ports]
        others = [a for i, a in enumerate(addresses) if i != index]
        self._store = RawStore(addresses[index], others, conf)
        self._values = itertools.count(1)

    def write(self, done: Done) -> None:
        self._store.set_value(
            next(self._values), callback=lambda result, error: done(error == FAIL_REASON.SUCCESS)
        )

    def setup(self) -> None:
        """Nothing to do: raw pysyncobj has no membership policy."""

    def status(self) -> dict[str, Any]:
        leader = self._store._getLeader()
        return {
            "leader": None if leader is None else leader.id,
            "is_leader": self._store._isLeader(),
            "applied": self._store.raftLastApplied,
        }

    def stop(self) -> None:
        self._store.destroy_synchronous()


def commit_one(write: Callable[[Done], None], timeout: float = WRITE_TIMEOUT_S) -> float | None:
    """Propose one write and wait: the monotonic time its commit was reported, or None."""
    finished = threading.Event()
    committed: list[float] = []

    def done(ok: bool) -> None:
        if ok:
            committed.append(time.monotonic())
        finished.set()

    write(done)
    finished.wait(timeout)
    return committed[0] if committed else None


def load(replica: Replica, clients: int, seconds: float) -> dict[str, Any]:
    """`clients` threads, each writing sequentially for `seconds`."""
    latencies: list[float] = []
    failures: list[None] = []
    start = time.monotonic()
    deadline = start + seconds

    def client() -> None:
        while time.monotonic() < deadline:
            began = time.monotonic()
            committed = commit_one(replica.write)
            if committed is None:
                failures.append(None)
            else:
                latencies.append(committed - began)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if len(latencies) < 2:
        raise SystemExit(f"only {len(latencies)} writes committed in {seconds} s")
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return {
        "writes_s": len(latencies) / (time.monotonic() - start),
        "p50_ms": cuts[49] * 1000,
        "p99_ms": cuts[98] * 1000,
        "failed": len(failures),
    }


def failover(replica: Replica) -> dict[str, Any]:
    """Write until a write commits; the leader is gone, so it commits through a new one."""
    deadline = time.monotonic() + FAILOVER_TIMEOUT_S
    while time.monotonic() < deadline:
        committed = commit_one(replica.write)
        if committed is not None:
            return {"committed_at": committed}
    raise SystemExit(f"no write committed in {FAILOVER_TIMEOUT_S} s")


def worker(kind: str, index: int, ports: list[int], directory: Path, settings: str) -> None:
    """Answer one JSON request a line from stdin until it closes; stdout carries only answers."""
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything a library prints goes to the worker's log
    replica: Replica = (
        Ours(index, ports, directory)
        if kind == "ours"
        else Raw(index, ports, directory, json.loads(settings))
    )
    for line in sys.stdin:
        request = json.loads(line)
        op = request.pop("op")
        if op == "load":
            answer = load(replica, **request)
        elif op == "failover":
            answer = failover(replica)
        elif op == "setup":
            replica.setup()
            answer = {}
        else:
            answer = replica.status()
        answers.write(json.dumps(answer) + "\n")
    replica.stop()


# ---- the parent ----------------------------------------------------------------------------


class Worker:
    """One worker process, restartable on the same port and directory."""

    def __init__(self, kind: str, index: int, ports: list[int], root: Path, settings: str) -> None:
        self.name = f"{kind} {index}"
        self._dir = root / kind / str(index)
        self._dir.mkdir(parents=True)
        self._log = self._dir.parent / f"{index}.log"
        self._args = [
            *(sys.executable, __file__, "--worker", kind, "--index", str(index)),
            *("--ports", ",".join(map(str, ports)), "--dir", str(self._dir)),
            *("--settings", settings),
        ]
        self.start()

    def start(self) -> None:
        with open(self._log, "ab") as log:
            self._proc = subprocess.Popen(
                self._args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True
            )
        self._answers: queue.Queue[dict[str, Any] | None] = queue.Queue()
        threading.Thread(target=self._read, args=(self._proc.stdout,), daemon=True).start()

    def _read(self, stdout: IO[str]) -> None:
        for line in stdout:
            self._answers.put(json.loads(line))
        self._answers.put(None)

    def send(self, **request: Any) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.write(json.dumps(request) + "\n")
        self._proc.stdin.flush()

    def answer(self, timeout: float = ANSWER_TIMEOUT_S) -> dict[str, Any]:
        with contextlib.suppress(queue.Empty):
            answer = self._answers.get(timeout=timeout)
            if answer is not None:
                return answer
        tail = self._log.read_text(errors="replace")[-2000:]
        raise SystemExit(f"worker {self.name} gave no answer; the end of its log:\n{tail}")

    def ask(self, timeout: float = ANSWER_TIMEOUT_S, **request: Any) -> dict[str, Any]:
        self.send(**request)
        return self.answer(timeout)

    def kill(self) -> None:
        self._proc.kill()

    def close(self) -> None:
        """Ask the worker to stop, kill it if it has not within 5 s."""
        with contextlib.suppress(OSError):
            assert self._proc.stdin is not None
            self._proc.stdin.close()
        try:
            self._proc.wait(5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(5)


class Cluster:
    """Three workers of one kind."""

    def __init__(self, kind: str, ports: list[int], root: Path, settings: str) -> None:
        self.kind = kind
        self.workers = [Worker(kind, i, ports, root, settings) for i in range(VOTERS)]

    def leader(self) -> Worker:
        """The worker all three agree leads, once all three have applied the same entries."""
        deadline = time.monotonic() + STABLE_TIMEOUT_S
        while True:
            statuses = [w.ask(op="status") for w in self.workers]
            leads = [w for w, s in zip(self.workers, statuses, strict=True) if s["is_leader"]]
            leaders = {s["leader"] for s in statuses}
            applied = {s["applied"] for s in statuses}
            if len(leads) == 1 and len(leaders) == 1 and None not in leaders and len(applied) == 1:
                return leads[0]
            if time.monotonic() > deadline:
                raise SystemExit(f"{self.kind}: no stable leader in {STABLE_TIMEOUT_S} s")
            time.sleep(0.05)

    def failover(self) -> float:
        """Seconds from `kill -9` of the leader to a survivor's first commit; then restart it."""
        leader = self.leader()
        survivors = [w for w in self.workers if w is not leader]
        killed_at = time.monotonic()
        leader.kill()
        for survivor in survivors:
            survivor.send(op="failover")
        committed = min(s.answer(FAILOVER_TIMEOUT_S + 10)["committed_at"] for s in survivors)
        leader.close()
        leader.start()
        return float(committed - killed_at)

    def close(self) -> None:
        for w in self.workers:
            w.close()


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind((HOST, 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def raft_settings() -> dict[str, Any]:
    """Every SyncObjConf field `RaftTiming().conf()` sets away from pysyncobj's default, for a
    raw side to run with: read off the two, so that a field RaftTiming takes up later (as it
    took up the compaction threshold) reaches the raw side too."""
    from fpai_node.registry.raft import RaftTiming  # the parent runs no Raft: patching is moot

    ours, default = vars(RaftTiming().conf()), vars(SyncObjConf())
    return {name: value for name, value in ours.items() if default.get(name) != value}


@dataclass
class Results:
    loads: dict[tuple[str, int], dict[str, float]] = field(default_factory=dict)  # (kind, clients)
    failovers: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in KINDS})
    failed: Counter[str] = field(default_factory=Counter)  # writes failed or timed out, by kind
    keys: dict[int, int] = field(default_factory=dict)  # clients -> idempotency keys ours holds


def run(args: argparse.Namespace, settings: dict[str, Any]) -> Results:
    """Both clusters, phases interleaved."""
    results = Results()
    ports = free_ports(VOTERS * len(KINDS))
    clusters: list[Cluster] = []
    with tempfile.TemporaryDirectory(prefix="fpai-bench-registry-") as tmp:
        try:
            for i, kind in enumerate(KINDS):
                mine = ports[i * VOTERS : (i + 1) * VOTERS]
                clusters.append(Cluster(kind, mine, Path(tmp), json.dumps(settings)))
            for cluster in clusters:
                cluster.leader()
                cluster.workers[0].ask(op="setup")
            for clients in (1, args.clients):
                for cluster in clusters:
                    leader = cluster.leader()
                    timeout = args.warmup + args.seconds + WRITE_TIMEOUT_S + ANSWER_TIMEOUT_S
                    leader.ask(timeout, op="load", clients=clients, seconds=args.warmup)
                    row = leader.ask(timeout, op="load", clients=clients, seconds=args.seconds)
                    results.failed[cluster.kind] += row.pop("failed")
                    results.loads[cluster.kind, clients] = row
                    if cluster.kind == "ours":
                        results.keys[clients] = leader.ask(op="status")["keys"]
            for _ in range(args.trials):
                for cluster in clusters:
                    results.failovers[cluster.kind].append(cluster.failover())
        finally:
            for cluster in clusters:
                cluster.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="measured load, per row")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured load before it")
    parser.add_argument("--clients", type=int, default=16, help="threads in the concurrent row")
    parser.add_argument("--trials", type=int, default=5, help="failovers a side")
    parser.add_argument("--worker", choices=KINDS, help=argparse.SUPPRESS)
    parser.add_argument("--index", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--ports", help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--settings", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        ports = [int(p) for p in args.ports.split(",")]
        worker(args.worker, args.index, ports, args.dir, args.settings)
        return

    settings = raft_settings()
    print(
        f"registry benchmark: {VOTERS} voter processes a side on {HOST}; Python "
        f"{platform.python_version()}, {os.cpu_count()} CPUs, "
        f"pysyncobj {importlib.metadata.version('pysyncobj')}"
    )
    print("raft settings, both sides: " + ", ".join(f"{k}={v}" for k, v in settings.items()))
    print(
        f"load in the leader's process: {args.warmup:g} s warm-up, then {args.seconds:g} s a row; "
        f"failover: median of {args.trials} kill -9 of the leader"
    )
    sys.stdout.flush()
    started = time.monotonic()
    results = run(args, settings)
    print(f"{'':<24}{'ours':>10}{'raw':>10}{'ours/raw':>10}")
    print("-" * 54)
    for clients in (1, args.clients):
        label = f"{clients} client{'s' if clients > 1 else ''}"
        for key, unit, digits in ROWS:
            a, b = results.loads["ours", clients][key], results.loads["raw", clients][key]
            print(f"{label + ', ' + unit:<24}{a:>10.{digits}f}{b:>10.{digits}f}{a / b:>10.3f}")
    a, b = (statistics.median(results.failovers[kind]) for kind in KINDS)
    print(f"{'failover s, median':<24}{a:>10.2f}{b:>10.2f}{a / b:>10.3f}")
    print()
    for kind in KINDS:
        trials = " ".join(f"{t:.2f}" for t in results.failovers[kind])
        failed = results.failed[kind]
        print(f"{kind} failover trials, s: {trials}; writes failed or timed out: {failed}")
    held = ", ".join(f"{n:,} after the {c}-client row" for c, n in results.keys.items())
    print(f"idempotency keys in ours' registry (REG-4 keeps each an hour): {held}")
    print(f"wall time {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()

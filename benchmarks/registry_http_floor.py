"""Where the one-client write gap to etcd is (issue 20): each side's HTTP floor beside its write.

One aiohttp client, one request at a time, against the leader of each side's three members on
loopback (the clusters of benchmarks/registry_vs_etcd.py). For each side: a request that
involves no Raft round (ours: `/healthz` and a `?stale=1` parameter read; etcd: `/version`,
and a serializable range and `maintenance/status` through the same JSON gateway as its puts),
then the write itself. The write's p50 minus the side's floor is what its Raft round costs
from handler to answer.

    .venv/bin/python benchmarks/registry_http_floor.py [--seconds 4] [--rounds 2]
"""

import argparse
import asyncio
import base64
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from registry_vs_etcd import VALUE, etcd_cluster, etcd_leader, wait_until

from fpai_node.testing.registry_cluster import leader_of, registry_cluster

Call = Callable[[aiohttp.ClientSession], Awaitable[None]]
WARM_UP = 200  # requests before timing: connections open, caches warm
KEY = "bench.k0"


def request(method: str, url: str, **options: Any) -> Call:
    async def call(session: aiohttp.ClientSession) -> None:
        async with session.request(method, url, **options) as answer:
            await answer.read()
            if answer.status != 200:
                raise SystemExit(f"{method} {url} answered {answer.status}")

    return call


async def p50_us(call: Call, seconds: float) -> tuple[float, int]:
    async with aiohttp.ClientSession() as session:
        for _ in range(WARM_UP):
            await call(session)
        latencies = []
        stop = time.perf_counter() + seconds
        while (began := time.perf_counter()) < stop:
            await call(session)
            latencies.append(time.perf_counter() - began)
    latencies.sort()
    return latencies[len(latencies) // 2] * 1e6, len(latencies)


def phases(ours: str, etcd: str) -> list[tuple[str, Call]]:
    key = base64.b64encode(KEY.encode()).decode()
    value = base64.b64encode(VALUE.encode()).decode()
    parameter = f"{ours}/fpai/v1/registry/parameters/{KEY}"
    return [
        ("ours GET /healthz", request("GET", f"{ours}/healthz")),
        ("ours GET a parameter ?stale=1", request("GET", f"{parameter}?stale=1")),
        ("etcd GET /version", request("GET", f"{etcd}/version")),
        (
            "etcd POST /v3/kv/range serializable",
            request("POST", f"{etcd}/v3/kv/range", json={"key": key, "serializable": True}),
        ),
        ("etcd POST /v3/maintenance/status", request("POST", f"{etcd}/v3/maintenance/status")),
        ("ours PUT a parameter (Raft)", request("PUT", parameter, json={"value": VALUE})),
        (
            "etcd POST /v3/kv/put (Raft)",
            request("POST", f"{etcd}/v3/kv/put", json={"key": key, "value": value}),
        ),
    ]


async def measure(ours: str, etcd: str, seconds: float, rounds: int) -> None:
    for round_number in range(1, rounds + 1):
        print(f"round {round_number}/{rounds}: p50 of one client, {seconds:.0f} s each")
        p50s: dict[str, float] = {}
        for name, call in phases(ours, etcd):
            p50s[name], count = await p50_us(call, seconds)
            print(f"  {name:38s} {p50s[name]:7.0f} us  ({count} requests)", flush=True)
        # each side's Raft round: its write less its cheapest call through the same stack
        rounds_us = {
            "ours": p50s["ours PUT a parameter (Raft)"] - p50s["ours GET /healthz"],
            "etcd": p50s["etcd POST /v3/kv/put (Raft)"] - p50s["etcd POST /v3/maintenance/status"],
        }
        print(
            f"  Raft round, write less floor: ours {rounds_us['ours']:.0f} us, etcd "
            f"{rounds_us['etcd']:.0f} us, ratio {rounds_us['ours'] / rounds_us['etcd']:.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="per phase [4]")
    parser.add_argument("--rounds", type=int, default=2, help="of every phase [2]")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="registry-floor-") as tmp:
        root = Path(tmp)
        (root / "ours").mkdir()
        (root / "etcd").mkdir()
        with registry_cluster(root / "ours") as nodes, etcd_cluster(root / "etcd") as members:
            leader = leader_of(nodes)
            etcd = wait_until(lambda: etcd_leader(members), 30.0, "an etcd leader")
            leader.put(KEY, VALUE)  # the stale read needs the parameter to exist
            asyncio.run(measure(leader.url, etcd, args.seconds, args.rounds))


if __name__ == "__main__":
    main()

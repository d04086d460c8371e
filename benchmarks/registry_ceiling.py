"""The ceiling pysyncobj sets (issue 20): etcd, pysyncobj as shipped, and ours, side by side.

    .venv/bin/python benchmarks/registry_ceiling.py [--clients 1,16,64] [--seconds 5]
        [--warmup 1] [--rounds 2] [--keys 0]

DESIGN.md builds the registry on pysyncobj; issue 20 asks it to match etcd. This measures how
far pysyncobj itself can go through the same client: three processes running it as shipped
(`stock`), beside etcd and our registry (the clusters of registry_vs_etcd.py), phases alternated
through one aiohttp client. Each stock process is this script re-invoked with `--node`: a
`pysyncobj.batteries.ReplDict` with the settings `RaftTiming().conf()` gives ours, pysyncobj's
own TCP transport (plain TCP, pickle) and its mmap journal, which it never syncs, behind the
smallest aiohttp handler that answers the same `PUT /fpai/v1/registry/parameters/{key}` as
ours. Stock keeps none of the promises ours does (an acknowledged write survives no crash, any
host can join its Raft port, a late answer can lose a committed entry: RAFT-7): what it cannot
reach against etcd on a machine, no registry on pysyncobj that keeps them can.

Prints writes/s, p50 and p99 of each side with its ratio to etcd, and the cores its three
servers kept busy.
"""

import argparse
import asyncio
import contextlib
import json
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvloop
from aiohttp import web
from pysyncobj import SyncObj, SyncObjConf
from pysyncobj.batteries import ReplDict
from registry import raft_settings
from registry_vs_etcd import (
    MEMBERS,
    Side,
    add_load_options,
    etcd_cluster,
    etcd_side,
    measure,
    ours_side,
    ours_write,
    progress,
    stop_all,
    wait_until,
)

from fpai_node.testing.registry_cluster import free_port, registry_cluster

# Nothing imported here patches pysyncobj, and only the parent calls raft_settings (which
# imports fpai_node.registry.raft, which does): the stock nodes run pysyncobj as shipped.
HOST = "127.0.0.1"
STOCK_READY_S = 30.0  # pysyncobj elects within a few of its 1 to 2 s election timeouts


# ---- a stock node (this script with --node) -------------------------------------------------


def stock_node(index: int, http_port: int, raft_ports: list[int], directory: Path) -> None:
    """pysyncobj as shipped behind one PUT handler; runs until killed."""
    settings = json.loads(sys.stdin.read())
    addresses = [f"{HOST}:{port}" for port in raft_ports]
    conf = SyncObjConf(
        **settings,
        journalFile=str(directory / f"journal{index}"),
        fullDumpFile=str(directory / f"dump{index}"),
    )
    parameters = ReplDict()
    raft = SyncObj(
        addresses[index],
        [a for i, a in enumerate(addresses) if i != index],
        conf=conf,
        consumers=[parameters],
    )

    async def put(request: web.Request) -> web.Response:
        key = request.match_info["key"]
        value = json.loads(await request.read())["value"]
        loop = asyncio.get_running_loop()
        outcome: asyncio.Future[int] = loop.create_future()
        parameters.set(
            key,
            value,
            callback=lambda _, error: loop.call_soon_threadsafe(outcome.set_result, error),
        )
        if await outcome != 0:  # pysyncobj's FAIL_REASON.SUCCESS
            return web.json_response({"error": "not committed"}, status=503)
        return web.json_response({"key": key, "value": value, "status": "applied"})

    async def leader(request: web.Request) -> web.Response:
        return web.json_response({"leader": raft._isLeader()})

    async def serve() -> None:
        app = web.Application()
        app.router.add_put("/fpai/v1/registry/parameters/{key}", put)
        app.router.add_get("/leader", leader)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, HOST, http_port).start()
        await asyncio.Event().wait()

    uvloop.run(serve())


# ---- the parent ------------------------------------------------------------------------------


@dataclass
class StockNode:
    url: str  # its client API
    process: subprocess.Popen[bytes]
    log: Path  # its output

    def pid(self) -> int:
        """Its pid, or exit with the end of its log if it has exited."""
        if self.process.poll() is not None:
            tail = self.log.read_text(errors="replace")[-3000:]
            raise SystemExit(f"a stock pysyncobj node exited; the end of its log:\n{tail}")
        return self.process.pid


@contextlib.contextmanager
def stock_cluster(root: Path, settings: dict[str, Any]) -> Iterator[list[StockNode]]:
    """Three stock nodes, stopped on the way out."""
    http_ports = [free_port() for _ in range(MEMBERS)]
    raft_ports = ",".join(str(free_port()) for _ in range(MEMBERS))
    nodes: list[StockNode] = []
    try:
        for index, http_port in enumerate(http_ports):
            log = root / f"stock{index}.log"
            with log.open("wb") as output:
                arguments = [str(index), str(http_port), raft_ports, str(root)]
                process = subprocess.Popen(
                    [sys.executable, __file__, "--node", *arguments],
                    stdin=subprocess.PIPE,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                )
            nodes.append(StockNode(f"http://{HOST}:{http_port}", process, log))
            assert process.stdin is not None
            process.stdin.write(json.dumps(settings).encode())
            process.stdin.close()
        yield nodes
    finally:
        stop_all([node.process for node in nodes])


def stock_leader(nodes: list[StockNode]) -> str | None:
    for node in nodes:
        try:
            with urllib.request.urlopen(f"{node.url}/leader", timeout=1) as answer:
                if json.loads(answer.read())["leader"]:
                    return node.url
        except OSError:
            pass
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_load_options(parser, seconds=5.0, warmup=1.0, rounds=2)
    args = parser.parse_args()
    levels = [int(n) for n in args.clients.split(",")]
    with tempfile.TemporaryDirectory(prefix="fpai-bench-registry-ceiling-") as tmp:
        root = Path(tmp)
        for side in ("ours", "stock"):
            (root / side).mkdir()
        progress(f"starting {MEMBERS} members each of etcd, stock pysyncobj and ours in {tmp}")
        with (
            etcd_cluster(root) as etcd,
            stock_cluster(root / "stock", raft_settings()) as stock,
            registry_cluster(root / "ours", size=MEMBERS) as nodes,
        ):

            def stock_pids() -> list[int]:
                return [node.pid() for node in stock]

            def find_stock() -> str:
                return wait_until(lambda: stock_leader(stock), STOCK_READY_S, "a stock leader")

            sides = [
                etcd_side(etcd, root),
                Side("stock", find_stock, ours_write, stock_pids),
                ours_side(nodes),
            ]
            samples = asyncio.run(measure(sides, levels, args))
    print(
        f"{'clients':>7} | {'side':<5} | {'w/s':>6} {'ratio':>5} | {'p50 ms':>6} {'ratio':>5}"
        f" | {'p99 ms':>6} {'ratio':>5} | cores | errors"
    )
    for clients in levels:
        etcd_row = samples[clients]["etcd"].row()
        for kind, sample in samples[clients].items():
            row = sample.row()
            cells = [
                f"{row[key]:6.{0 if key == 'writes_s' else 2}f} {row[key] / etcd_row[key]:5.2f}"
                for key in ("writes_s", "p50_ms", "p99_ms")
            ]
            errors = row["errors"] or "none"
            print(
                f"{clients:>7} | {kind:<5} | "
                + " | ".join(cells)
                + f" | {row['server_cores']:5.2f} | {errors}"
            )
    print("ratios are to etcd: for w/s above 1 is faster, for p50 and p99 below 1 is faster")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--node"]:
        index, http_port, raft_ports, directory = sys.argv[2:6]
        stock_node(
            int(index), int(http_port), [int(p) for p in raft_ports.split(",")], Path(directory)
        )
    else:
        main()

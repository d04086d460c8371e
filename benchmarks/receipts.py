"""Two-sided receipts: what acknowledging every receipt (specs/0010-rewards.md RWD-1..RWD-3)
adds to a forwarded request, against the code before it, and the registry bytes a node's
epoch digest takes (RWD-6).

    .venv/bin/python benchmarks/receipts.py [--requests 1000] [--rounds 4] [--baseline f6cc3fa]

Latency: one process per code tree (ours, and `--baseline` checked out in a temporary git
worktree) runs a real requester (Forwarder) and a real server (PeerInference) over mutual TLS
on 127.0.0.1, the server answering from a scripted backend at once (16 text events and a
finish), so the time measured is the protocol's, not a model's: from sending the request to
the answer's last event, `--requests` sequential requests a round. Ours also signs each
acknowledgement, keeps the pair and delivers it in the background (every 0.5 s, in batches),
as a node does. Rounds alternate between the trees so drift hits both; the table shows p50 and
p99 per tree over all rounds and the p50 difference, which is the overhead.

Digest bytes: the signed digest record a node commits per epoch, for 1 to 256 rows (each row
a peer and model it served or used), whatever its request count: the registry holds one per
member per epoch.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Runs in a fresh interpreter with one code tree first on sys.path; works with both trees' APIs.
HARNESS = textwrap.dedent(
    """
    import asyncio, datetime as dt, inspect, json, socket, sys, tempfile, time
    from pathlib import Path
    from fpai_node.identity import NodeKey
    from fpai_node.identity.tls import TlsIdentity
    from fpai_node.inference.base import Finish, TextChunk, Usage
    from fpai_node.inference.service import InferenceService
    from fpai_node.peer.client import PeerClient
    from fpai_node.peer.server import PeerServer
    from fpai_node.router.forward import Forwarder, Timing
    from fpai_node.router.jobs import parse_job
    from fpai_node.router.messages import InferRequest
    from fpai_node.router.receipts import ReceiptLog
    from fpai_node.router.select import Candidate
    from fpai_node.router.serve import PeerInference
    from fpai_node.testing.scripted_backend import ScriptedBackend

    BODY = b'{"model": "x", "messages": [{"role": "user", "content": "Hi"}]}'

    async def main(requests):
        server_key, requester_key = NodeKey.generate(), NodeKey.generate()
        events = [TextChunk(" word") for _ in range(16)] + [Finish("stop", Usage(9, 16))]
        inference = InferenceService([ScriptedBackend(events, model="x")], max_waiting=4)
        await inference.start()
        work = Path(tempfile.mkdtemp())
        served, used = ReceiptLog(work / "s.log"), ReceiptLog(work / "u.log")
        serving = PeerInference(server_key, inference, served, lambda peer: True)
        routes = [serving.route()] + ([serving.acks.route()] if hasattr(serving, "acks") else [])
        now = dt.datetime.now(dt.UTC)
        peer = PeerServer(TlsIdentity.open(server_key, now), routes)
        sock = socket.socket(); sock.bind(("127.0.0.1", 0)); sock.listen(); sock.setblocking(False)
        await peer.start(sock)
        client = PeerClient(TlsIdentity.open(requester_key, now))
        two_sided = "key" in inspect.signature(Forwarder).parameters
        forwarder = (
            Forwarder(requester_key, client, used) if two_sided else Forwarder(client, used)
        )
        await client.start()
        if two_sided:
            forwarder.acks.start()
        job = parse_job("chat", BODY)
        candidate = Candidate(server_key.node_id, peer.address, 0)
        times = []
        for i in range(requests + 50):  # the first 50 warm the connection pool up
            request = InferRequest("chat", BODY, f"r{i}", (requester_key.node_id,))
            start = time.perf_counter()
            async for _ in forwarder.attempt(candidate, job, request, Timing()):
                pass
            if i >= 50:
                times.append((time.perf_counter() - start) * 1000)
        if two_sided:
            await asyncio.sleep(1.0)  # the last batch of acknowledgements
            assert serving.acks.accepted == requests + 50, serving.acks.accepted
            await forwarder.acks.stop()
        await client.close(); await peer.stop()
        await served.close(); await used.close(); await inference.close()
        print(json.dumps(times))

    asyncio.run(main(int(sys.argv[1])))
    """
)


def run_round(tree: Path, requests: int) -> list[float]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(
        [sys.executable, "-c", HARNESS, str(requests)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tree,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"the harness failed in {tree}:\n{done.stderr[-3000:]}")
    return [float(t) for t in json.loads(done.stdout.strip().splitlines()[-1])]


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1]


def digest_bytes() -> list[tuple[int, int]]:
    from fpai_node.identity import NodeKey
    from fpai_node.rewards.digests import Digest, Row, RowKey, seal_digest

    key = NodeKey.generate()
    sizes = []
    for rows in (1, 10, 100, 256):
        peers = [NodeKey.generate().node_id for _ in range(rows)]
        served = {
            RowKey(p, "gemma-3-270m-it-q4_k_m", os.urandom(32)): Row(10**4, 10**7, 10**7, 3)
            for p in peers
        }
        digest = Digest(key.node_id, 493_921, os.urandom(32), 10**5, served, {})
        sizes.append((rows, len(seal_digest(key, digest, 1_767_225_600_000))))
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--baseline", default="f6cc3fa", help="the commit before issue 18")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        baseline = Path(scratch) / "baseline"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(baseline), args.baseline],
            check=True,
            capture_output=True,
        )
        try:
            times: dict[str, list[float]] = {"baseline": [], "ours": []}
            for r in range(args.rounds):
                order = [("baseline", baseline), ("ours", ROOT)]
                for name, tree in order if r % 2 == 0 else reversed(order):
                    times[name] += run_round(tree, args.requests)
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(baseline)],
                check=False,
                capture_output=True,
            )
    print(f"forwarded request, {args.rounds} x {args.requests} a tree, scripted backend, mTLS")
    print(f"{'tree':<10}{'p50 ms':>10}{'p99 ms':>10}")
    for name, values in times.items():
        print(f"{name:<10}{statistics.median(values):>10.3f}{percentile(values, 99):>10.3f}")
    overhead = statistics.median(times["ours"]) - statistics.median(times["baseline"])
    ratio = statistics.median(times["ours"]) / statistics.median(times["baseline"])
    print(f"two-sided receipts add {overhead:.3f} ms at p50 (ours/baseline {ratio:.3f})")
    print("digest record bytes per node per epoch (RWD-6):")
    for rows, size in digest_bytes():
        print(f"  {rows:>4} rows: {size:>6} bytes")


if __name__ == "__main__":
    main()

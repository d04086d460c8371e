"""Federated memory (issue 15, specs/0007): adds and searches on one node's shards against
qdrant-client's local mode on the same vectors, recall against exact search, embeddings per
second, and replicated adds on 3 nodes against 1.

    .venv/bin/python benchmarks/memory.py [--sizes 10000,100000] [--queries 200] [--quick]
                                          [--skip-federation]

Store: N records spread over 100 users land in their users' shards (MEM-7), as real signed
operations written through the node's own path (`MemoryService.write` with this node the
shards' only replica: each operation checked as a replica checks it, the fsynced log, then
Qdrant's embedded engine), in batches of 256 as group commit gives a busy node; one record at a
time shows the single-write latency (one fsync each). The operations are signed before the
clock starts (signing is the coordinator's cost). Vectors are seeded
random unit vectors, so embedding time is not in these numbers: it is measured on its own. The
baseline is qdrant-client's local mode (`QdrantClient(path=...)`) holding the same N vectors in
one collection with the users as payload: the store a Mem0 user runs on one machine. Searches
(top 10) go both ways: scoped to a user (our node searches one shard; the baseline filters on
user_id) and unscoped (our node searches every shard and merges). Recall@10 is against exact
cosine search (numpy) with the same filter. Search times exclude embedding the query.

Federation: real node processes on 127.0.0.1 (`--no-model`), 1 and then 3, Mem0's client
adding records (`infer=False`, each text new) on one node; a 3-node add waits for 2 of the 3
replicas to fsync. These times include embedding the text.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fpai_node.identity import NodeKey
from fpai_node.memory.edge_store import EdgeStore
from fpai_node.memory.embeddings import Embedder
from fpai_node.memory.filters import Field
from fpai_node.memory.operations import (
    Content,
    Operation,
    Version,
    new_record_id,
    seal_operation,
    shard_of_scope,
)
from fpai_node.registry.state import RegistryState

USERS = 100
BATCH = 256
TOP_K = 10
KEY = NodeKey.from_seed(bytes(range(32)))
Vectors = npt.NDArray[np.float32]


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def unit_vectors(n: int, seed: int) -> Vectors:
    rng = np.random.default_rng(seed)
    raw = rng.standard_normal((n, 384)).astype(np.float32)
    return raw / np.linalg.norm(raw, axis=1, keepdims=True)


def percentiles(samples_ms: Sequence[float]) -> tuple[float, float]:
    ordered = sorted(samples_ms)
    return ordered[len(ordered) // 2], ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def build_operations(vectors: Vectors, users: list[str]) -> list[Operation]:
    now = time.time_ns() // 1_000_000
    ops = []
    for i, (vector, user) in enumerate(zip(vectors, users, strict=True)):
        record_id = new_record_id(shard_of_scope("user_id", user), os.urandom(16))
        content = Content(
            f"memory {i} of {user}", "{}", user, "", "", "memory", now, vector.tobytes()
        )
        ops.append(
            seal_operation(
                KEY, record_id, "add", Version(now, i, KEY.node_id), content, seq=i, now_ms=now
            )
        )
        if i and i % 20_000 == 0:
            progress(f"  signed {i} operations")
    return ops


class NoRegistry:
    """A node alone: no memory holder registered, so it holds every shard itself (MEM-8)."""

    state = RegistryState()


async def ours(
    root: Path, ops: list[Operation], queries: Vectors, query_users: list[str]
) -> dict[str, Any]:
    """Through the node's own write and read paths (MemoryService: bodies encoded and decoded,
    every operation checked, the log fsynced, the index updated; reads merged and scored),
    with this node its shards' only replica: no network."""
    import datetime as dt

    from fpai_node.identity.tls import TlsIdentity
    from fpai_node.memory.service import MemoryService
    from fpai_node.peer.client import PeerClient

    identity = TlsIdentity.open(KEY, dt.datetime.now(dt.UTC))
    service = MemoryService(
        KEY,
        PeerClient(identity),
        root,
        EdgeStore.open,
        NoRegistry(),
        "127.0.0.1:1",  # type: ignore[arg-type]
    )
    await service.start()
    started = time.perf_counter()
    for start in range(0, len(ops), BATCH):
        await service.write(ops[start : start + BATCH])
        if start and start % 20_000 == 0:
            progress(f"  ours: {start} written")
    add_s = time.perf_counter() - started
    started = time.perf_counter()
    local = service.local

    def optimize() -> None:
        for number in local.held:  # a benchmark may reach into the shards' stores
            shard = local.shard(number)
            assert shard is not None
            shard._store.optimize()  # type: ignore[attr-defined]

    await local.run(optimize)
    optimize_s = time.perf_counter() - started
    scoped, unscoped, scoped_ids, unscoped_ids = [], [], [], []
    for vector, user in zip(queries, query_users, strict=True):
        raw, floats = vector.tobytes(), vector.tolist()
        where = Field("user_id", "eq", user)
        t = time.perf_counter()
        found = await service.search(raw, floats, where, TOP_K, [shard_of_scope("user_id", user)])
        scoped.append((time.perf_counter() - t) * 1000)
        scoped_ids.append([f.operation.id for f in found])
        t = time.perf_counter()
        found = await service.search(raw, floats, None, TOP_K, list(range(64)))
        unscoped.append((time.perf_counter() - t) * 1000)
        unscoped_ids.append([f.operation.id for f in found])
    singles = []  # after the searches: the records they look for are exactly the N above
    for op in build_operations(unit_vectors(200, 99), ["single"] * 200):
        t = time.perf_counter()
        await service.write([op])
        singles.append((time.perf_counter() - t) * 1000)
    await service.stop(leave=False)
    return {
        "add_per_s": len(ops) / add_s,
        "single_add_p50_ms": percentiles(singles)[0],
        "optimize_s": optimize_s,
        "scoped": percentiles(scoped),
        "unscoped": percentiles(unscoped),
        "scoped_ids": scoped_ids,
        "unscoped_ids": unscoped_ids,
    }


def baseline(
    root: Path,
    ids: list[str],
    vectors: Vectors,
    users: list[str],
    queries: Vectors,
    query_users: list[str],
) -> dict[str, Any]:
    from qdrant_client import QdrantClient
    from qdrant_client import models as qm

    client = QdrantClient(path=str(root))
    client.create_collection(
        "memories", vectors_config=qm.VectorParams(size=384, distance=qm.Distance.COSINE)
    )
    started = time.perf_counter()
    for start in range(0, len(ids), BATCH):
        client.upsert(
            "memories",
            [
                qm.PointStruct(id=ids[i], vector=vectors[i].tolist(), payload={"user_id": users[i]})
                for i in range(start, min(start + BATCH, len(ids)))
            ],
        )
        if start and start % 20_000 == 0:
            progress(f"  qdrant-client: {start} upserted")
    add_s = time.perf_counter() - started
    scoped, unscoped, scoped_ids, unscoped_ids = [], [], [], []
    for vector, user in zip(queries, query_users, strict=True):
        where = qm.Filter(must=[qm.FieldCondition(key="user_id", match=qm.MatchValue(value=user))])
        t = time.perf_counter()
        found = client.query_points(
            "memories", query=vector.tolist(), limit=TOP_K, query_filter=where
        ).points
        scoped.append((time.perf_counter() - t) * 1000)
        scoped_ids.append([str(p.id) for p in found])
        t = time.perf_counter()
        found = client.query_points("memories", query=vector.tolist(), limit=TOP_K).points
        unscoped.append((time.perf_counter() - t) * 1000)
        unscoped_ids.append([str(p.id) for p in found])
    client.close()
    return {
        "add_per_s": len(ids) / add_s,
        "scoped": percentiles(scoped),
        "unscoped": percentiles(unscoped),
        "scoped_ids": scoped_ids,
        "unscoped_ids": unscoped_ids,
    }


def exact(
    ids: list[str], vectors: Vectors, users: list[str], queries: Vectors, query_users: list[str]
) -> tuple[list[list[str]], list[list[str]]]:
    scores = queries @ vectors.T
    user_of = np.array(users)
    scoped, unscoped = [], []
    for row, user in zip(scores, query_users, strict=True):
        unscoped.append([ids[i] for i in np.argsort(-row)[:TOP_K]])
        masked = np.where(user_of == user, row, -np.inf)
        scoped.append([ids[i] for i in np.argsort(-masked)[:TOP_K]])
    return scoped, unscoped


def recall(found: list[list[str]], truth: list[list[str]]) -> float:
    return statistics.fmean(
        len(set(f) & set(t)) / len(t) for f, t in zip(found, truth, strict=True)
    )


def store_phase(n: int, queries_n: int) -> dict[str, Any]:
    import asyncio

    progress(f"{n} records: building signed operations")
    vectors = unit_vectors(n, seed=n)
    rng = np.random.default_rng(1)
    users = [f"user-{rng.integers(USERS)}" for _ in range(n)]
    ops = build_operations(vectors, users)
    ids = [op.id for op in ops]
    near = vectors[rng.integers(n, size=queries_n // 2)] + 0.05 * unit_vectors(queries_n // 2, 5)
    near /= np.linalg.norm(near, axis=1, keepdims=True)
    queries = np.concatenate([near, unit_vectors(queries_n - len(near), 7)]).astype(np.float32)
    query_users = [users[i] for i in rng.integers(n, size=queries_n)]
    with tempfile.TemporaryDirectory() as ours_dir, tempfile.TemporaryDirectory() as theirs_dir:
        progress(f"{n} records: our node's shards")
        mine = asyncio.run(ours(Path(ours_dir), ops, queries, query_users))
        progress(f"{n} records: qdrant-client local mode")
        theirs = baseline(Path(theirs_dir), ids, vectors, users, queries, query_users)
    truth_scoped, truth_unscoped = exact(ids, vectors, users, queries, query_users)
    return {
        "n": n,
        "ours": mine,
        "baseline": theirs,
        "recall": {
            "ours_scoped": recall(mine["scoped_ids"], truth_scoped),
            "ours_unscoped": recall(mine["unscoped_ids"], truth_unscoped),
            "baseline_scoped": recall(theirs["scoped_ids"], truth_scoped),
            "baseline_unscoped": recall(theirs["unscoped_ids"], truth_unscoped),
        },
    }


def embeddings_phase() -> dict[str, float]:
    embedder = Embedder.bundled()
    sentences = [
        f"The user mentioned that item number {i} matters to them today." for i in range(640)
    ]
    embedder.embed(sentences[:32])  # warm up
    started = time.perf_counter()
    embedder.embed(sentences)
    per_s = len(sentences) / (time.perf_counter() - started)
    singles = []
    for sentence in sentences[:100]:
        t = time.perf_counter()
        embedder.embed([sentence])
        singles.append((time.perf_counter() - t) * 1000)
    return {"per_s": per_s, "single_p50_ms": percentiles(singles)[0]}


def federation_phase(adds: int) -> dict[str, Any]:
    os.environ["MEM0_TELEMETRY"] = "False"
    from fpai_node.testing.registry_cluster import registry_cluster

    result: dict[str, Any] = {}
    for size in (1, 3):
        progress(f"federation: {size} node(s)")
        with (
            tempfile.TemporaryDirectory() as root,
            registry_cluster(Path(root), size=size) as nodes,
        ):
            result[f"{size}_nodes"] = federation_run(nodes, adds)
    return result


def federation_run(nodes: list[Any], adds: int) -> dict[str, Any]:
    from mem0 import MemoryClient

    from fpai_node.testing.registry_cluster import wait_for

    ids = {n.node_id for n in nodes}
    for node in nodes:
        wait_for(lambda n=node: set(n.status()["memory"]["holders"]) == ids, timeout_s=30)
    client = MemoryClient(host=nodes[0].url, api_key="k" * 16)
    client.add("warm up", user_id="bench", infer=False)

    def add(i: int) -> object:
        return client.add(f"fact {i} about the benchmark", user_id=f"u{i % 10}", infer=False)

    def search(i: int) -> object:
        return client.search(f"fact {i}", filters={"user_id": f"u{i % 10}"})

    return {"add": percentiles(timed(add, adds)), "search": percentiles(timed(search, adds // 2))}


def timed(call: Callable[[int], object], n: int) -> list[float]:
    samples = []
    for i in range(n):
        t = time.perf_counter()
        call(i)
        samples.append((time.perf_counter() - t) * 1000)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--adds", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="2,000 records, 100 queries, 40 adds")
    parser.add_argument("--skip-federation", action="store_true")
    args = parser.parse_args()
    sizes = [2000] if args.quick else [int(s) for s in args.sizes.split(",")]
    queries = 100 if args.quick else args.queries
    adds = 40 if args.quick else args.adds

    report: dict[str, Any] = {"embeddings": embeddings_phase()}
    e = report["embeddings"]
    print(f"embeddings: {e['per_s']:.0f}/s batched (goal >= 300/s)")
    print(f"embeddings: one sentence p50 {e['single_p50_ms']:.1f} ms")
    report["store"] = [store_phase(n, queries) for n in sizes]
    print(f"\n{'records':>8} {'':<22} {'ours':>10} {'qdrant-client':>14} {'ours/baseline':>14}")
    for phase in report["store"]:
        mine, theirs = phase["ours"], phase["baseline"]
        rows = [
            ("add/s (batches of 256)", mine["add_per_s"], theirs["add_per_s"]),
            ("scoped search p50 ms", mine["scoped"][0], theirs["scoped"][0]),
            ("scoped search p99 ms", mine["scoped"][1], theirs["scoped"][1]),
            ("unscoped search p50 ms", mine["unscoped"][0], theirs["unscoped"][0]),
            ("unscoped search p99 ms", mine["unscoped"][1], theirs["unscoped"][1]),
            (
                "recall@10 scoped",
                phase["recall"]["ours_scoped"],
                phase["recall"]["baseline_scoped"],
            ),
            (
                "recall@10 unscoped",
                phase["recall"]["ours_unscoped"],
                phase["recall"]["baseline_unscoped"],
            ),
        ]
        for name, a, b in rows:
            ratio = a / b if b else float("nan")
            print(f"{phase['n']:>8} {name:<22} {a:>10.3f} {b:>14.3f} {ratio:>14.3f}")
        single, build = mine["single_add_p50_ms"], mine["optimize_s"]
        print(f"{phase['n']:>8} single add p50 {single:.2f} ms (one fsync)")
        print(f"{phase['n']:>8} HNSW build (optimize) {build:.1f} s")
        for key in ("scoped_ids", "unscoped_ids"):
            del mine[key], theirs[key]
    if not args.skip_federation:
        report["federation"] = federation_phase(adds)
        one, three = report["federation"]["1_nodes"], report["federation"]["3_nodes"]
        print("\nMem0 client on one node of N, p50/p99 ms (adds include embedding the text)")
        for what in ("add", "search"):
            a, b = one[what], three[what]
            one_node, three_nodes = f"{a[0]:.1f}/{a[1]:.1f}", f"{b[0]:.1f}/{b[1]:.1f}"
            print(f"{what:<7} 1 node {one_node}  3 nodes {three_nodes}  p50 x{b[0] / a[0]:.2f}")
    print(json.dumps(report))


if __name__ == "__main__":
    main()

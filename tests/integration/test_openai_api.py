"""A real node process serving the bundled model, driven by the official `openai` client."""

import base64
import http.server
import json
import struct
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import openai
import pytest
from llama_cpp import Llama

from fpai_node.testing.nodeproc import NodeProcess, run_cli

MODEL = "gemma-3-270m"
KEY = "test-key-0123456789abcdef"
pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def node(gguf_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    home = tmp_path_factory.mktemp("api") / "home"
    args = ("--api", "127.0.0.1:0", "--model", f"{gguf_model}={MODEL}")
    # One sequence: a request after an abandoned stream is served only once the engine has freed
    # the abandoned one's sequence, which is what the leaving-client test checks. Many sequences
    # at once are tested in test_concurrent_streams.py.
    env = {"FPAI_CONTEXT_LENGTH": "512", "FPAI_BATCH_SEQUENCES": "1"}
    with NodeProcess(home, *args, env=env) as running:
        yield running


@pytest.fixture(scope="module")
def client(node: NodeProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=node.url + "/v1", api_key="unused", max_retries=0, timeout=60)


def post(node: NodeProcess, path: str, body: bytes, headers: dict[str, str] | None = None) -> Any:
    request = urllib.request.Request(
        node.url + path, data=body, headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read()), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read()), dict(exc.headers)


def test_models_lists_the_served_model(client: openai.OpenAI) -> None:
    models = client.models.list().data
    assert [m.id for m in models] == [MODEL, "all-minilm-l6-v2"]
    assert models[0].model_extra["fpai"] == {
        "backend": "llamacpp",
        "context_length": 512,
        "local": True,
        "nodes": [models[0].owned_by],
    }
    assert models[0].owned_by.startswith("fpn")


def test_chat_completion(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Say hello"}], max_tokens=5, seed=7
    )
    assert reply.object == "chat.completion" and reply.model == MODEL
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].finish_reason in ("stop", "length")
    assert reply.usage is not None
    assert 1 <= reply.usage.completion_tokens <= 5
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_chat_stream_matches_the_whole_answer_for_a_seed(client: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": "Name a colour"}]
    whole = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=6, seed=11)
    stream = client.chat.completions.create(
        model=MODEL,
        messages=messages,
        max_tokens=6,
        seed=11,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == whole.choices[0].finish_reason and set(finishes[:-1]) == {None}
    assert chunks[-1].choices == [] and chunks[-1].usage == whole.usage
    assert len({c.id for c in chunks}) == 1


def test_completions_stream_and_not(client: openai.OpenAI) -> None:
    whole = client.completions.create(model=MODEL, prompt="1, 2, 3,", max_tokens=4, seed=5)
    assert whole.object == "text_completion" and whole.usage.completion_tokens == 4
    streamed = client.completions.create(
        model=MODEL, prompt="1, 2, 3,", max_tokens=4, seed=5, stream=True
    )
    assert "".join(c.choices[0].text for c in streamed) == whole.choices[0].text


def test_stop_sequences(client: openai.OpenAI) -> None:
    reply = client.completions.create(
        model=MODEL, prompt="1, 2, 3, 4,", max_tokens=30, temperature=0, stop=[" 7"]
    )
    assert reply.choices[0].text == " 5, 6,"
    assert reply.choices[0].finish_reason == "stop"


def test_the_nodes_own_embedding_model_gives_minilm_vectors(client: openai.OpenAI) -> None:
    """Issue 15: every node serves all-MiniLM-L6-v2 itself (memory's model), unannounced."""
    [listed] = [m for m in client.models.list().data if m.id == "all-minilm-l6-v2"]
    assert listed.model_extra["fpai"]["embeddings_only"] is True
    result = client.embeddings.create(
        model="all-minilm-l6-v2",
        input=["The cat sat on the mat", "A cat was sitting on a rug", "Stock prices fell"],
        encoding_format="float",
    )
    vectors = [d.embedding for d in result.data]
    assert [len(v) for v in vectors] == [384, 384, 384]
    assert all(abs(sum(x * x for x in v) - 1) < 1e-3 for v in vectors)

    def cosine(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True))

    assert cosine(vectors[0], vectors[1]) > 0.6 > 0.2 > cosine(vectors[0], vectors[2])
    assert result.model == "all-minilm-l6-v2" and 10 <= result.usage.prompt_tokens <= 40
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model="all-minilm-l6-v2", input=[])


def test_embeddings_in_base64_and_float(client: openai.OpenAI, node: NodeProcess) -> None:
    result = client.embeddings.create(model=MODEL, input=["hello world", "goodbye"])  # base64
    assert [d.index for d in result.data] == [0, 1]
    vector = result.data[0].embedding
    assert len(vector) == 640 and sum(x * x for x in vector) == pytest.approx(1.0, abs=1e-4)
    status, body, _ = post(
        node, "/v1/embeddings", json.dumps({"model": MODEL, "input": "hello world"}).encode()
    )
    assert status == 200 and body["data"][0]["embedding"] == pytest.approx(vector, abs=1e-6)
    raw = post(
        node,
        "/v1/embeddings",
        json.dumps({"model": MODEL, "input": "hello world", "encoding_format": "base64"}).encode(),
    )[1]["data"][0]["embedding"]
    decoded = struct.unpack(f"<{len(vector)}f", base64.b64decode(raw))
    assert decoded == pytest.approx(vector, abs=1e-6)


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "invalid_json"),
        (b"[1, 2]", 400, "invalid_json"),
        (b"[" * 100_000 + b"]" * 100_000, 400, "invalid_json"),  # deeper than the parser goes
        (
            json.dumps({"model": "nope", "messages": [{"role": "user", "content": "x"}]}),
            404,
            "model_not_found",
        ),
        (json.dumps({"model": MODEL, "messages": []}), 400, "invalid_value"),
        (json.dumps({"model": MODEL, "messages": "hi"}), 400, "invalid_value"),
        (
            json.dumps(
                {"model": MODEL, "messages": [{"role": "user", "content": "x"}], "max_tokens": -1}
            ),
            400,
            "invalid_value",
        ),
        (
            json.dumps(
                {
                    "model": MODEL,
                    "messages": [{"role": "user", "content": "x"}],
                    "temperature": "hot",
                }
            ),
            400,
            "invalid_value",
        ),
        (
            json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "word " * 700}]}),
            400,
            "context_length_exceeded",
        ),
        (
            json.dumps(
                {
                    "model": MODEL,
                    "messages": [{"role": "user", "content": "x"}],
                    "stream": True,
                    "max_tokens": 600,
                }
            ),
            400,
            "context_length_exceeded",
        ),
    ],
)
def test_bad_requests_get_openai_errors(
    node: NodeProcess, body: str | bytes, status: int, code: str
) -> None:
    data = body.encode() if isinstance(body, str) else body
    got, answer, _ = post(node, "/v1/chat/completions", data)
    assert (got, answer["error"]["code"]) == (status, code)
    assert answer["error"]["message"] and answer["error"]["type"] == "invalid_request_error"


def test_an_oversized_body_is_413(node: NodeProcess) -> None:
    status, answer, _ = post(node, "/v1/chat/completions", b'{"x": "' + b"a" * (5 << 20) + b'"}')
    assert status == 413 and "error" in answer


def test_openai_client_raises_typed_errors(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.BadRequestError, match="max_tokens"):
        client.completions.create(model=MODEL, prompt="x", max_tokens=0)


def test_a_client_that_leaves_mid_stream_frees_the_model(node: NodeProcess) -> None:
    """The effect, not a counter: the next request is served at once. The abandoned story is
    seeded and runs on for hundreds of tokens unless cancelled; the wait is measured against
    the pace of that same stream, so a loaded machine slows both sides alike."""
    body = {"model": MODEL, "prompt": "A very long story:", "max_tokens": 400, "seed": 5}
    with node.streaming("/v1/completions", body, events=2) as stream:  # generation is running
        started = time.monotonic()
        while stream.received.count(b"data: ") < 12:
            assert stream.read(), stream.received[-300:]
        per_token_s = (time.monotonic() - started) / 10
    started = time.monotonic()
    one = json.dumps({"model": MODEL, "prompt": "Hi", "max_tokens": 1}).encode()
    try:
        status, answer, _ = post(node, "/v1/completions", one)
    except TimeoutError:
        pytest.fail(f"no answer in 60 s at {per_token_s:.3f} s/token: the model is still busy")
    waited_s = time.monotonic() - started
    assert (status, answer["usage"]["completion_tokens"]) == (200, 1), answer
    # Served at once: a prompt and one token take a few tokens' time; had the abandoned story
    # gone on, this request would have waited for its remaining ~390 tokens.
    assert waited_s < 100 * per_token_s, f"waited {waited_s:.2f} s at {per_token_s:.3f} s/token"
    (model,) = node.get_json("/fpai/v1/status")["models"]
    assert (model["running"], model["waiting"]) == (0, 0)


def test_cli_models_and_chat(node: NodeProcess, gguf_model: Path) -> None:
    home = str(node.home.root)
    listed = run_cli("models", "--home", home)
    assert listed.returncode == 0 and MODEL in listed.stdout and "llamacpp" in listed.stdout
    as_json = json.loads(run_cli("models", "--home", home, "--json").stdout)
    assert as_json[0]["id"] == MODEL
    # The answer is sampled, so its words are unknown here: it is printed whole (text, then a
    # newline) and is at most the tokens asked for. Exact printing: the next test.
    vocab = Llama(model_path=str(gguf_model), vocab_only=True, verbose=False)
    for args, most in ((("--max-tokens", "4"), 4), (("--max-tokens", "3", "--no-stream"), 3)):
        chat = run_cli("chat", "Hello", "--home", home, *args)
        assert (chat.returncode, chat.stderr) == (0, ""), chat.stderr
        assert chat.stdout.endswith("\n") and not chat.stdout.startswith(("{", "data:"))
        text = chat.stdout.removesuffix("\n")
        assert len(vocab.tokenize(text.encode(), add_bos=False, special=False)) <= most, text
    unknown = run_cli("chat", "Hello", "--home", home, "--model", "nope")
    assert unknown.returncode == 1 and "HTTP 404" in unknown.stderr
    assert len(unknown.stderr.strip().splitlines()) == 1


class ScriptedChat(http.server.BaseHTTPRequestHandler):
    """Answers /v1/models and /v1/chat/completions with known words, streamed or whole, and
    keeps the request bodies it got."""

    bodies: ClassVar[list[dict[str, Any]]] = []
    WORDS: ClassVar[list[str]] = ["Hel", "lo", ", wörld", "!"]

    def do_GET(self) -> None:
        self._send(json.dumps({"data": [{"id": "m", "fpai": {"local": True}}]}).encode())

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.bodies.append(body)
        if not body["stream"]:
            message = {"role": "assistant", "content": "".join(self.WORDS)}
            self._send(json.dumps({"choices": [{"index": 0, "message": message}]}).encode())
            return
        events: list[dict[str, Any]] = [
            {"choices": [{"index": 0, "delta": {"content": w}}]} for w in self.WORDS
        ]
        events.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        events.append({"choices": [], "usage": {"completion_tokens": 4}})
        data = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events)
        self._send(data + b"data: [DONE]\n\n", "text/event-stream")

    def _send(self, data: bytes, content_type: str = "application/json") -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_cli_chat_prints_exactly_the_answer() -> None:
    """`fpai-node chat` against a server whose answer is known: the deltas joined, streamed or
    not, then one newline; and the request it sent."""
    ScriptedChat.bodies = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ScriptedChat)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        api = f"http://127.0.0.1:{server.server_address[1]}"
        streamed = run_cli("chat", "Hi", "--api", api, "--max-tokens", "4", "--system", "Be brief.")
        whole = run_cli("chat", "Hi", "--api", api, "--no-stream")
    finally:
        server.shutdown()
        server.server_close()
    assert (streamed.returncode, streamed.stdout, streamed.stderr) == (0, "Hello, wörld!\n", "")
    assert (whole.returncode, whole.stdout, whole.stderr) == (0, "Hello, wörld!\n", "")
    system = {"role": "system", "content": "Be brief."}
    assert ScriptedChat.bodies == [
        {
            "model": "m",
            "messages": [system, {"role": "user", "content": "Hi"}],
            "stream": True,
            "max_tokens": 4,
        },
        {"model": "m", "messages": [{"role": "user", "content": "Hi"}], "stream": False},
    ]


def test_every_log_line_is_json(node: NodeProcess) -> None:
    """llama.cpp's own stderr chatter must not break the JSON log stream. The test makes it
    load both contexts (generation and embeddings) and generate itself, so that it checks the
    same whether it runs alone or after the rest of the module."""
    one = json.dumps({"model": MODEL, "prompt": "Hi", "max_tokens": 2}).encode()
    assert post(node, "/v1/completions", one)[0] == 200
    embed = json.dumps({"model": MODEL, "input": ["log lines"]}).encode()
    assert post(node, "/v1/embeddings", embed)[0] == 200
    events = [json.loads(line) for line in node.log().splitlines()]
    assert events and all(isinstance(e, dict) for e in events)
    started = [e for e in events if e["event"] == "node started"]
    assert [e["api"] for e in started] == [node.url]
    loaded = [e for e in events if e["event"] == "model loaded"]
    assert [(e["model"], e["n_ctx"]) for e in loaded] == [(MODEL, 512)]


def test_memory_extraction_asks_the_served_model_and_never_drops_the_memory(
    node: NodeProcess,
) -> None:
    """Issue 15: infer=true sends the conversation to the federation's chat model through the
    router; whatever the small base model answers, the memory is stored and the answer says
    which way."""
    import os

    os.environ["MEM0_TELEMETRY"] = "False"
    from mem0 import MemoryClient

    client = MemoryClient(host=node.url, api_key="unused-key-0123")
    said = "Hi, I am Dana. I live in Oslo and I love skiing."
    added = client.add([{"role": "user", "content": said}], user_id="dana")
    assert added["results"], added
    if added["inferred"]:
        assert all(r["event"] == "ADD" and r["memory"] for r in added["results"])
    else:
        assert "extraction failed" in added["note"]
        assert [r["memory"] for r in added["results"]] == [said]
    found = client.search("where does Dana live?", filters={"user_id": "dana"})
    assert found["results"]

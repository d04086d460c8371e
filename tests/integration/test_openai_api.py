"""A real node process serving the bundled model, driven by the official `openai` client."""

import base64
import json
import struct
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from fpai_node.testing.nodeproc import NodeProcess, run_cli

MODEL = "gemma-3-270m"
KEY = "test-key-0123456789abcdef"
pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def node(gguf_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    home = tmp_path_factory.mktemp("api") / "home"
    args = ("--api", "127.0.0.1:0", "--model", f"{gguf_model}={MODEL}")
    with NodeProcess(home, *args, env={"FPAI_CONTEXT_LENGTH": "512"}) as running:
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
    body = {"model": MODEL, "prompt": "A very long story:", "max_tokens": 400}
    with node.streaming("/v1/completions", body, events=3):  # tokens flow: generation is running
        (model,) = node.get_json("/fpai/v1/status")["models"]
        assert model["running"] == 1
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        (model,) = node.get_json("/fpai/v1/status")["models"]
        if model["running"] == 0:
            break
        time.sleep(0.05)
    assert model["running"] == 0, "the abandoned generation still holds the model"


def test_cli_models_and_chat(node: NodeProcess) -> None:
    home = str(node.home.root)
    listed = run_cli("models", "--home", home)
    assert listed.returncode == 0 and MODEL in listed.stdout and "llamacpp" in listed.stdout
    as_json = json.loads(run_cli("models", "--home", home, "--json").stdout)
    assert as_json[0]["id"] == MODEL
    streamed = run_cli("chat", "Hello", "--home", home, "--max-tokens", "4")
    assert streamed.returncode == 0, streamed.stderr
    assert streamed.stdout.endswith("\n") and streamed.stderr == ""
    whole = run_cli("chat", "Hello", "--home", home, "--max-tokens", "3", "--no-stream")
    assert whole.returncode == 0, whole.stderr
    unknown = run_cli("chat", "Hello", "--home", home, "--model", "nope")
    assert unknown.returncode == 1 and "HTTP 404" in unknown.stderr
    assert len(unknown.stderr.strip().splitlines()) == 1


def test_every_log_line_is_json(node: NodeProcess) -> None:
    """Runs last in this module: by now llama.cpp has loaded both contexts and generated, and
    none of its own stderr chatter may break the JSON log stream."""
    lines = node.log().splitlines()
    assert lines
    for line in lines:
        assert isinstance(json.loads(line), dict), line


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

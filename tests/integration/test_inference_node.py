"""Node-level inference behaviour that needs its own node: keys, the queue, model files."""

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import openai
import pytest

from fpai_node.testing.nodeproc import NodeProcess, OpenStream, run_cli, wait_for

MODEL = "gemma-3-270m"
KEY = "test-key-0123456789abcdef"
pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


def request(url: str, headers: dict[str, str] | None = None) -> tuple[int, Any, Any]:
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, headers=headers or {}), timeout=30
        ) as r:
            return r.status, json.loads(r.read()), r.headers
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read()), exc.headers


def generating(node: NodeProcess, max_tokens: int = 400) -> AbstractContextManager[OpenStream]:
    """Hold the model busy with a streaming request until the block ends."""
    body = {"model": MODEL, "prompt": "A long story:", "max_tokens": max_tokens}
    return node.streaming("/v1/completions", body)


def test_api_keys_guard_v1_but_not_health(gguf_model: Path, tmp_path: Path) -> None:
    args = ("--api", "127.0.0.1:0", "--model", f"{gguf_model}={MODEL}", "--api-key", KEY)
    with NodeProcess(tmp_path / "home", *args) as node:
        assert request(node.url + "/healthz")[0] == 200
        status, body, headers = request(node.url + "/v1/models")
        assert status == 401 and body["error"]["code"] == "invalid_api_key"
        assert headers["WWW-Authenticate"] == "Bearer"
        assert request(node.url + "/v1/models", {"Authorization": "Bearer wrong-key"})[0] == 401
        assert request(node.url + "/v1/models", {"Authorization": f"Basic {KEY}"})[0] == 401
        assert request(node.url + "/v1/models", {"Authorization": f"Bearer {KEY}"})[0] == 200
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=node.url + "/v1", api_key="nope", max_retries=0).models.list()
        client = openai.OpenAI(base_url=node.url + "/v1", api_key=KEY, max_retries=0)
        assert [m.id for m in client.models.list().data] == [MODEL, "all-minilm-l6-v2"]
        listed = run_cli("models", "--home", str(node.home.root), "--api-key", KEY)
        assert listed.returncode == 0 and MODEL in listed.stdout
        refused = run_cli("models", "--home", str(node.home.root))
        assert refused.returncode == 1 and "HTTP 401" in refused.stderr


# One sequence in the batch: the model is busy with one request, and the queue is what is tested.
ONE_SLOT = {"FPAI_BATCH_SEQUENCES": "1"}


def test_past_the_queue_a_request_gets_429_with_retry_after(
    gguf_model: Path, tmp_path: Path
) -> None:
    args = ("--api", "127.0.0.1:0", "--model", f"{gguf_model}={MODEL}")
    with NodeProcess(tmp_path / "home", *args, env={"FPAI_QUEUE_DEPTH": "0", **ONE_SLOT}) as node:
        client = openai.OpenAI(base_url=node.url + "/v1", api_key="x", max_retries=0, timeout=60)
        with generating(node):
            with pytest.raises(openai.RateLimitError) as refused:
                client.completions.create(model=MODEL, prompt="Hi", max_tokens=1)
            assert int(refused.value.response.headers["Retry-After"]) >= 1
            assert refused.value.body["code"] == "overloaded"  # type: ignore[index]
        # The holder left; once its generation is cancelled the next request is served. The
        # node learns of the closed stream on its own time: wait until the model runs nothing.
        wait_for(lambda: load(node) == (0, 0), timeout_s=30, every_s=0.02)
        served = client.completions.create(model=MODEL, prompt="Hi", max_tokens=1)
        assert served.usage is not None and served.usage.completion_tokens == 1


def test_requests_within_the_queue_wait_their_turn(gguf_model: Path, tmp_path: Path) -> None:
    """A request that finds the model busy waits in the queue (not running beside the holder),
    and is answered only after the holder's answer has ended."""
    args = ("--api", "127.0.0.1:0", "--model", f"{gguf_model}={MODEL}")
    with NodeProcess(tmp_path / "home", *args, env={"FPAI_QUEUE_DEPTH": "4", **ONE_SLOT}) as node:
        client = openai.OpenAI(base_url=node.url + "/v1", api_key="x", max_retries=0, timeout=60)
        second: dict[str, Any] = {}

        def ask() -> None:
            second["reply"] = client.completions.create(model=MODEL, prompt="Hi", max_tokens=2)
            second["at"] = time.monotonic()

        body = {"model": MODEL, "prompt": "A long story:", "max_tokens": 60, "seed": 5}
        with node.streaming("/v1/completions", body) as first:  # holds the one slot
            asker = threading.Thread(target=ask)
            asker.start()
            queue = wait_for(lambda: arrived(node), timeout_s=30, every_s=0.02)
            assert queue == (1, 1), "the second request ran beside the first, not after it"
            first.read_to_end()
            first_ended = time.monotonic()
        asker.join(60)
        assert b'"finish_reason":"length"' in first.received and b"data: [DONE]" in first.received
        reply = second["reply"]
        assert reply.usage is not None and reply.usage.completion_tokens == 2
        assert second["at"] > first_ended, "the queued request was answered before the first"


def load(node: NodeProcess) -> tuple[int, int]:
    """The node's one model: (running, waiting)."""
    (model,) = node.get_json("/fpai/v1/status")["models"]
    return model["running"], model["waiting"]


def arrived(node: NodeProcess) -> tuple[int, int] | None:
    """(running, waiting) once both requests have reached the model, else None."""
    counts = load(node)
    return counts if sum(counts) == 2 else None


def test_a_fresh_node_serves_the_bundled_model(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with NodeProcess(home, "--api", "127.0.0.1:0", env={"FPAI_CONTEXT_LENGTH": "512"}) as node:
        assert [m["id"] for m in node.get_json("/v1/models")["data"]] == [MODEL, "all-minilm-l6-v2"]
        assert (home / "models" / "gemma-3-270m-q4_k_m.gguf").stat().st_size > 200_000_000
        assert (home / "models" / "gemma-3-270m-q4_k_m.gguf.verified").exists()
        assert node.stop() == 0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no file at"),
        (b"not a model at all", "is not a GGUF file"),
        (b"GGUF" + b"\x00" * 64, "cannot load model"),
    ],
)
def test_a_bad_model_file_is_a_one_line_error(
    tmp_path: Path, content: bytes | None, message: str
) -> None:
    path = tmp_path / "model.gguf"
    if content is not None:
        path.write_bytes(content)
    result = run_cli(
        "start",
        "--home",
        str(tmp_path / "home"),
        "--api",
        "127.0.0.1:0",
        "--model",
        f"{path}=broken",
        "--log-format",
        "json",
    )
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("fpai-node: ")]
    assert len(errors) == 1 and message in errors[0] and "broken" in errors[0]
    assert "Traceback" not in result.stderr


def test_backends_that_cannot_start_are_one_line_errors(tmp_path: Path) -> None:
    with socket.socket() as s:  # a loopback port with nothing listening
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    for flags, message in (
        (("--model", "google/gemma-3-1b-it"), "vLLM"),
        (("--upstream", f"http://127.0.0.1:{closed}"), f"127.0.0.1:{closed}"),
    ):
        home = tmp_path / flags[0].strip("-")
        result = run_cli(
            "start", "--home", str(home), "--api", "127.0.0.1:0", *flags, "--log-format", "json"
        )
        errors = [line for line in result.stderr.splitlines() if line.startswith("fpai-node: ")]
        assert result.returncode == 1, result.stderr
        assert len(errors) == 1 and "cannot start inference" in errors[0]
        assert message in errors[0] and "Traceback" not in result.stderr

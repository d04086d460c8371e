"""UpstreamBackend against a real OpenAI-compatible server: llama-cpp-python's, on the bundled
Gemma 3 270M, started once for this module."""

import asyncio
import math
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from llama_cpp import Llama

from fpai_node.inference.base import (
    BackendUnavailable,
    ChatMessage,
    ChatRequest,
    CompletionRequest,
    EmbeddingsUnsupported,
    Finish,
    GenerationEvent,
    ModelCard,
    ModelNotFound,
    Sampling,
    TextChunk,
    UpstreamError,
)
from fpai_node.inference.upstream import UpstreamBackend
from fpai_node.inference.vllm import free_loopback_port
from fpai_node.testing.llama_server import MODEL_ID, running_llama_server
from fpai_node.testing.nodeproc import until

pytestmark = pytest.mark.slow

DISCONNECTED = "Disconnected from client"  # what llama_cpp.server prints when a client leaves


class Server:
    def __init__(self, url: str, log_path: Path) -> None:
        self.url = url
        self.log_path = log_path

    def disconnects(self) -> int:
        return self.log_path.read_text(errors="replace").count(DISCONNECTED)


@pytest.fixture(scope="module")
def server(gguf_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log_path = tmp_path_factory.mktemp("upstream") / "llama_server.log"
    with running_llama_server(gguf_model, log_path) as url:
        yield Server(url, log_path)


@pytest.fixture
async def backend(server: Server) -> AsyncIterator[UpstreamBackend]:
    backend = UpstreamBackend(server.url + "/v1/")
    await backend.start()
    yield backend
    await backend.close()


async def collect(stream: AsyncIterator[GenerationEvent]) -> list[GenerationEvent]:
    return [event async for event in stream]


def assert_streamed(events: list[GenerationEvent], max_tokens: int) -> Finish:
    *chunks, finish = events
    assert len(chunks) >= 2
    assert all(isinstance(c, TextChunk) and c.text for c in chunks)
    assert isinstance(finish, Finish)
    assert finish.reason == "length"
    assert 0 < finish.usage.completion_tokens <= max_tokens
    assert finish.usage.prompt_tokens > 0
    return finish


def test_models_lists_the_served_model(backend: UpstreamBackend) -> None:
    # llama-cpp-python's /v1/models says nothing about the context length.
    assert backend.models() == [ModelCard(MODEL_ID, "upstream", context_length=None, capacity=4)]


async def test_chat_streams_text_then_one_finish(backend: UpstreamBackend) -> None:
    request = ChatRequest(
        MODEL_ID, (ChatMessage("user", "Name three colours."),), Sampling(max_tokens=6)
    )
    assert_streamed(await collect(backend.chat(request)), max_tokens=6)


async def test_completion_streams_text_then_one_finish(backend: UpstreamBackend) -> None:
    sampling = Sampling(max_tokens=5, temperature=0.0, top_p=0.9, seed=1, stop=("\n\n\n",))
    events = await collect(backend.complete(CompletionRequest(MODEL_ID, "Once upon a", sampling)))
    assert_streamed(events, max_tokens=5)


async def test_embeddings_have_the_model_dimension(
    backend: UpstreamBackend, gguf_model: Path
) -> None:
    metadata = Llama(str(gguf_model), vocab_only=True, verbose=False).metadata
    width = int(metadata[f"{metadata['general.architecture']}.embedding_length"])
    result = await backend.embed(MODEL_ID, ["a red apple", "the stock market"])
    assert [len(v) for v in result.vectors] == [width, width]
    assert [math.hypot(*v) for v in result.vectors] == pytest.approx([1.0, 1.0])
    assert result.vectors[0] != result.vectors[1]
    assert result.prompt_tokens > 0


async def test_embeddings_from_an_upstream_without_them_are_the_requests_fault(
    gguf_model: Path, tmp_path: Path
) -> None:
    """Issue 13 finding 7: such a request answered 503, as if the model were down."""
    with running_llama_server(gguf_model, tmp_path / "server.log", embedding=False) as url:
        backend = UpstreamBackend(url + "/v1/")
        await backend.start()
        try:
            with pytest.raises(EmbeddingsUnsupported, match="serves no embeddings") as raised:
                await backend.embed(MODEL_ID, ["a red apple"])
            assert (raised.value.status, raised.value.code) == (400, "unsupported_value")
        finally:
            await backend.close()


async def test_an_unknown_model_is_model_not_found(backend: UpstreamBackend) -> None:
    request = ChatRequest("no-such-model", (ChatMessage("user", "hi"),), Sampling(max_tokens=2))
    with pytest.raises(ModelNotFound, match="no-such-model"):
        await collect(backend.chat(request))
    with pytest.raises(ModelNotFound):
        await backend.embed("no-such-model", ["x"])


async def test_a_prompt_beyond_the_context_is_an_upstream_error(backend: UpstreamBackend) -> None:
    # llama-cpp-python's server answers a streamed request 200, then fails inside the stream and
    # ends it empty or cut short: it does not tell a context overflow apart (its non-streamed 400
    # would).
    request = CompletionRequest(MODEL_ID, "hello world " * 600, Sampling(max_tokens=4))
    with pytest.raises(UpstreamError, match=r"without finishing|broke off"):
        await collect(backend.complete(request))
    # ...and closes that connection late; the next request must not be caught by it.
    events = await collect(backend.complete(CompletionRequest(MODEL_ID, "Hi", Sampling(4))))
    assert isinstance(events[-1], Finish)


async def test_a_server_that_is_down_is_backend_unavailable() -> None:
    url = f"http://127.0.0.1:{free_loopback_port()}"
    with pytest.raises(BackendUnavailable, match=url) as caught:
        await UpstreamBackend(url).start()
    assert "\n" not in str(caught.value)


async def test_closing_a_stream_early_stops_the_generation(
    backend: UpstreamBackend, server: Server
) -> None:
    # max_tokens well above the rest of this file: 400 tokens would take the server ~10 s.
    long = CompletionRequest(MODEL_ID, "Once upon a time", Sampling(400, temperature=0.0))
    before = server.disconnects()
    stream = backend.complete(long)
    assert isinstance(await anext(stream), TextChunk)
    started = time.monotonic()
    await stream.aclose()
    assert time.monotonic() - started < 1.0
    await until(lambda: server.disconnects() > before, timeout_s=10)

    async def consume() -> None:
        async for _ in backend.complete(long):
            consumed.set()

    consumed = asyncio.Event()
    task = asyncio.create_task(consume())
    await asyncio.wait_for(consumed.wait(), timeout=10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await until(lambda: server.disconnects() > before + 1, timeout_s=10)

    async with asyncio.timeout(30):  # generous: the machine may be busy with other tests
        events = await collect(backend.complete(CompletionRequest(MODEL_ID, "Hi", Sampling(4))))
    assert isinstance(events[-1], Finish)

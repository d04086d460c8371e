"""The llama.cpp backend on the real bundled model: streaming, exact usage, cancellation."""

import asyncio
import time
from pathlib import Path

import pytest
from llama_cpp import Llama

from fpai_node.inference.base import (
    BackendUnavailable,
    ChatMessage,
    ChatRequest,
    CompletionRequest,
    ContextLengthExceeded,
    Finish,
    ModelNotFound,
    Sampling,
    TextChunk,
)
from fpai_node.inference.llamacpp import LlamaCppBackend, LocalModel
from fpai_node.testing.generation import collect

MODEL = "gemma-3-270m"
pytestmark = [pytest.mark.timeout(120), pytest.mark.asyncio(loop_scope="module")]


def complete(prompt: str, **sampling: object) -> CompletionRequest:
    return CompletionRequest(MODEL, prompt, Sampling(**sampling))  # type: ignore[arg-type]


async def test_model_card(backend: LlamaCppBackend) -> None:
    (card,) = backend.models()
    assert (card.id, card.backend, card.context_length, card.capacity) == (
        MODEL,
        "llamacpp",
        512,
        1,
    )


async def test_completion_counts_exactly_max_tokens(backend: LlamaCppBackend) -> None:
    text, finish = await collect(backend.complete(complete("The sky is", max_tokens=6, seed=3)))
    assert finish.reason == "length"
    assert finish.usage.completion_tokens == 6
    assert finish.usage.prompt_tokens == 4  # <bos> The sky is
    assert text


async def test_streamed_text_is_one_chunk_per_token(backend: LlamaCppBackend) -> None:
    events = [e async for e in backend.complete(complete("One, two,", max_tokens=5, seed=1))]
    chunks = [e for e in events if isinstance(e, TextChunk)]
    assert isinstance(events[-1], Finish)
    assert 1 <= len(chunks) <= events[-1].usage.completion_tokens == 5


async def test_same_seed_same_text(backend: LlamaCppBackend) -> None:
    first = await collect(backend.complete(complete("Once upon a time", max_tokens=8, seed=42)))
    again = await collect(backend.complete(complete("Once upon a time", max_tokens=8, seed=42)))
    assert first == again


async def test_stop_sequence_ends_generation_and_is_not_returned(backend: LlamaCppBackend) -> None:
    text, finish = await collect(
        backend.complete(complete("1, 2, 3, 4,", max_tokens=30, temperature=0.0, stop=(" 7",)))
    )
    assert finish.reason == "stop"
    assert text == " 5, 6,"
    assert finish.usage.completion_tokens < 30


async def test_chat_uses_the_gemma_turn_format(backend: LlamaCppBackend, gguf_model: Path) -> None:
    request = ChatRequest(
        MODEL,
        (ChatMessage("system", "Answer briefly."), ChatMessage("user", "Hi")),
        Sampling(max_tokens=4, seed=1),
    )
    _, finish = await collect(backend.chat(request))
    expected = "<start_of_turn>user\nAnswer briefly.\n\nHi<end_of_turn>\n<start_of_turn>model\n"
    vocab = Llama(model_path=str(gguf_model), vocab_only=True, verbose=False)
    assert finish.usage.prompt_tokens == len(vocab.tokenize(expected.encode(), special=True))
    assert finish.usage.completion_tokens <= 4


async def test_closing_a_stream_stops_generation_and_frees_the_model(
    backend: LlamaCppBackend,
) -> None:
    stream = backend.complete(complete("Write a long story about a dragon.", max_tokens=400))
    assert isinstance(await anext(stream), TextChunk)
    await stream.aclose()
    started = time.monotonic()
    _, finish = await collect(backend.complete(complete("Hello", max_tokens=2)))
    # The next request waited at most for one token of the abandoned one, not 400 tokens.
    assert time.monotonic() - started < 5
    assert finish.usage.completion_tokens == 2


async def test_a_cancelled_consumer_frees_the_model(backend: LlamaCppBackend) -> None:
    async def consume() -> None:
        await collect(backend.complete(complete("Tell me everything.", max_tokens=400)))

    task = asyncio.create_task(consume())
    await asyncio.sleep(0)  # let it start
    await asyncio.wait_for(asyncio.sleep(0.3), 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    _, finish = await asyncio.wait_for(
        collect(backend.complete(complete("Hi", max_tokens=1))), timeout=5
    )
    assert finish.usage.completion_tokens == 1


async def test_a_prompt_longer_than_the_context_is_refused(backend: LlamaCppBackend) -> None:
    with pytest.raises(ContextLengthExceeded, match="context of 512"):
        await collect(backend.complete(complete("word " * 600, max_tokens=1)))
    with pytest.raises(ContextLengthExceeded, match="plus max_tokens"):
        await collect(backend.complete(complete("word " * 100, max_tokens=500)))


async def test_unknown_model(backend: LlamaCppBackend) -> None:
    with pytest.raises(ModelNotFound):
        backend.complete(CompletionRequest("nope", "x"))


async def test_embeddings_are_normalised_and_distinguish_texts(backend: LlamaCppBackend) -> None:
    result = await backend.embed(MODEL, ["the cat sat", "the cat sat", "stock markets fell"])
    a, b, c = result.vectors
    assert len(a) == 640  # Gemma 3 270M's hidden size
    assert sum(x * x for x in a) == pytest.approx(1.0)
    same = sum(x * y for x, y in zip(a, b, strict=True))
    other = sum(x * y for x, y in zip(a, c, strict=True))
    assert same == pytest.approx(1.0) and other < same
    assert result.prompt_tokens > 6


async def test_closing_the_backend_ends_running_generations_with_an_error(
    gguf_model: Path,
) -> None:
    """Review finding: a consumer waited forever when the backend closed under it."""
    llama = LlamaCppBackend([LocalModel(MODEL, gguf_model)], context_length=512, threads=2)
    await llama.start()
    stream = llama.complete(complete("Tell me a long story.", max_tokens=400))
    assert isinstance(await anext(stream), TextChunk)
    await llama.close()
    with pytest.raises(BackendUnavailable, match="shutting down"):
        await asyncio.wait_for(collect(stream), timeout=5)

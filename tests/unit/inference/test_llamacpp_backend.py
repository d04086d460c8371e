"""The llama.cpp backend on the real bundled model: streaming, exact usage, cancellation."""

import asyncio
from pathlib import Path
from typing import Any

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
from fpai_node.inference.llama_batch import BatchEngine
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
        8,
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


# Cancellation, measured in tokens the model computed after the consumer left. The story is
# seeded, so every run cancels the same generation at the same point; left alone it runs on for
# hundreds of tokens (a generation that ignored the cancel computed 399 more here: issue 23),
# so a broken cancel cannot pass by the story ending early on its own.
STORY = "Write a long story about a dragon who guards a library, with many chapters."
STORY_SAMPLING: dict[str, object] = {"max_tokens": 400, "seed": 11, "temperature": 0.8}


class TokenCounter:
    """Counts the tokens the batch engine samples, per generation, on its thread: what the
    model computed, whether or not anyone read it."""

    def __init__(self, engine: BatchEngine) -> None:
        self.per_generation: list[int] = []
        # The engine's record of each generation, in order, held: keyed by id() alone, a freed
        # record's address went to the next generation's, whose token then counted as the
        # cancelled one's (a CI failure: [3] where [2, 1] was true).
        self._seen: list[Any] = []
        self._advance = engine._advance

    def advance(self, running: Any, token: int) -> None:
        index = next((i for i, seen in enumerate(self._seen) if seen is running), None)
        if index is None:
            index = len(self._seen)
            self._seen.append(running)
            self.per_generation.append(0)
        self.per_generation[index] += 1
        self._advance(running, token)


@pytest.fixture
def counter(backend: LlamaCppBackend, monkeypatch: pytest.MonkeyPatch) -> TokenCounter:
    engine = backend._slots[MODEL].engine
    counting = TokenCounter(engine)
    monkeypatch.setattr(engine, "_advance", counting.advance)
    return counting


async def tokens_after_cancel(
    backend: LlamaCppBackend, counter: TokenCounter, at_cancel: int
) -> int:
    """Wait until the engine has freed the cancelled generation's sequence (bounded), serve a
    one-token request, and return how many tokens the cancelled one computed after the cancel."""
    engine = backend._slots[MODEL].engine
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while engine.running and loop.time() < deadline:
        await asyncio.sleep(0.01)
    if engine.running:
        after = counter.per_generation[0] - at_cancel
        pytest.fail(f"still decoding 30 s after the cancel: {after} tokens more")
    _, finish = await asyncio.wait_for(
        collect(backend.complete(complete("Hi", max_tokens=1, seed=1))), timeout=30
    )
    assert finish.usage.completion_tokens == 1
    return counter.per_generation[0] - at_cancel


async def test_closing_a_stream_stops_generation_and_frees_the_model(
    backend: LlamaCppBackend, counter: TokenCounter
) -> None:
    stream = backend.complete(complete(STORY, **STORY_SAMPLING))
    assert isinstance(await anext(stream), TextChunk)
    await stream.aclose()
    at_cancel = counter.per_generation[0]
    # at most the one token that was in flight, not the rest of the 400
    assert await tokens_after_cancel(backend, counter, at_cancel) <= 1, counter.per_generation


async def test_a_cancelled_consumer_frees_the_model(
    backend: LlamaCppBackend, counter: TokenCounter
) -> None:
    first_text = asyncio.Event()

    async def consume() -> None:
        async for event in backend.complete(complete(STORY, **STORY_SAMPLING)):
            if isinstance(event, TextChunk):
                first_text.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first_text.wait(), 30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    at_cancel = counter.per_generation[0]
    assert await tokens_after_cancel(backend, counter, at_cancel) <= 1, counter.per_generation


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

"""Continuous batching through the real llama.cpp backend: requests share each decoding step.

Every check here counts tokens and orders events rather than timing them: a step's length
depends on the machine, the order of what happens within and between steps does not.
"""

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import llama_cpp
import pytest
import pytest_asyncio

from fpai_node.inference.base import (
    CompletionRequest,
    Finish,
    GenerationEvent,
    InferenceError,
    Sampling,
    TextChunk,
)
from fpai_node.inference.llamacpp import LlamaCppBackend, LocalModel
from fpai_node.testing.generation import EventOrder, collect

MODEL = "gemma-3-270m"
PROMPTS = (
    "The history of the bicycle begins",
    "Here is a recipe for bread:",
    "The three laws of motion are",
    "Once upon a time, in a small village,",
)
CONTEXT = 2048  # room for a prompt of many chunks


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def backend(gguf_model: Path) -> AsyncIterator[LlamaCppBackend]:
    llama = LlamaCppBackend([LocalModel(MODEL, gguf_model)], context_length=CONTEXT, threads=2)
    await llama.start()
    yield llama
    await llama.close()


pytestmark = [pytest.mark.timeout(180), pytest.mark.asyncio(loop_scope="module")]


@dataclass
class Stream:
    """What one consumer saw, each event stamped with the global order it arrived in."""

    chunks: list[tuple[int, str]] = field(default_factory=list)
    finish: tuple[int, Finish] | None = None

    @property
    def text(self) -> str:
        return "".join(text for _, text in self.chunks)


async def consume(
    events: AsyncGenerator[GenerationEvent, None], clock: EventOrder, stream: Stream
) -> None:
    async for event in events:
        if isinstance(event, TextChunk):
            stream.chunks.append((clock.next(), event.text))
        elif isinstance(event, Finish):
            stream.finish = (clock.next(), event)


def request(prompt: str, **sampling: object) -> CompletionRequest:
    return CompletionRequest(MODEL, prompt, Sampling(**sampling))  # type: ignore[arg-type]


async def run_together(backend: LlamaCppBackend, requests: list[CompletionRequest]) -> list[Stream]:
    clock, streams = EventOrder(), [Stream() for _ in requests]
    await asyncio.wait_for(
        asyncio.gather(
            *(
                consume(backend.complete(r), clock, s)
                for r, s in zip(requests, streams, strict=True)
            )
        ),
        timeout=120,
    )
    return streams


async def test_concurrent_streams_all_start_before_any_ends(backend: LlamaCppBackend) -> None:
    """Four requests decode side by side: each has its first token before the first of them
    finishes (one at a time, the fourth would see its first token after three had ended)."""
    streams = await run_together(
        backend, [request(p, max_tokens=24, temperature=0) for p in PROMPTS]
    )
    first_finish = min(s.finish[0] for s in streams if s.finish)
    assert all(s.chunks and s.chunks[0][0] < first_finish for s in streams)
    for stream in streams:
        assert stream.finish is not None
        usage = stream.finish[1].usage
        assert usage.completion_tokens == 24 == len(stream.chunks)
        assert stream.finish[1].reason == "length"


async def test_each_stream_is_its_own_answer(backend: LlamaCppBackend) -> None:
    """No crosstalk between sequences: decoded together, each greedy answer begins as the same
    request alone begins (batching moves logits slightly, so only the first tokens are compared:
    measured, answers part after 3 tokens at the earliest), and is whole text."""
    alone = [
        (await run_together(backend, [request(p, max_tokens=3, temperature=0)]))[0].text
        for p in PROMPTS
    ]
    together = await run_together(
        backend, [request(p, max_tokens=16, temperature=0) for p in PROMPTS]
    )
    assert len(set(alone)) == len(PROMPTS)  # the prompts' beginnings tell them apart
    for first, stream in zip(alone, together, strict=True):
        assert stream.text.startswith(first)
        assert "\ufffd" not in stream.text


async def test_every_request_keeps_its_own_sampling(backend: LlamaCppBackend) -> None:
    """One batch, four different requests: a token budget, a stop sequence and greedy decoding
    each honoured as if it ran alone, beside a seeded draw at temperature 1 that runs its whole
    budget."""
    greedy_alone = (
        await run_together(backend, [request(PROMPTS[0], max_tokens=3, temperature=0)])
    )[0].text
    budget, stopped, seeded, greedy = await run_together(
        backend,
        [
            request(PROMPTS[1], max_tokens=5, temperature=0.8, seed=7),
            request(PROMPTS[2], max_tokens=64, temperature=0, stop=[" "]),
            request(PROMPTS[3], max_tokens=20, temperature=1.0, seed=11),
            request(PROMPTS[0], max_tokens=20, temperature=0),
        ],
    )
    assert budget.finish is not None and budget.finish[1].usage.completion_tokens == 5
    assert budget.finish[1].reason == "length"
    assert stopped.finish is not None and stopped.finish[1].reason == "stop"
    assert " " not in stopped.text.strip(" ") and not stopped.text.endswith(" ")
    assert stopped.finish[1].usage.completion_tokens < 64
    assert seeded.finish is not None and seeded.finish[1].usage.completion_tokens == 20
    assert greedy.text.startswith(greedy_alone)


async def test_a_long_prompt_joins_without_stalling_running_streams(
    backend: LlamaCppBackend,
) -> None:
    """A newcomer's prompt is read a chunk a step: while a prompt of several chunks is read,
    the running stream keeps receiving a token every step."""
    clock = EventOrder()
    runner, newcomer = Stream(), Stream()
    running = asyncio.create_task(
        consume(backend.complete(request(PROMPTS[0], max_tokens=80)), clock, runner)
    )
    while not runner.chunks:
        await asyncio.sleep(0.01)
    long_prompt = " ".join(["the quick brown fox jumps over the lazy dog"] * 160)
    joined_at = clock.next()
    await asyncio.wait_for(
        consume(backend.complete(request(long_prompt, max_tokens=1)), clock, newcomer), 60
    )
    await asyncio.wait_for(running, 60)
    answered_at = newcomer.chunks[0][0] if newcomer.chunks else newcomer.finish[0]  # type: ignore[index]
    # Read in one step, the prompt would leave the runner a token or two meanwhile (those that
    # were on their way); read 128 tokens a step, its ~1,600 tokens take 13 steps.
    during = [t for t, _ in runner.chunks if joined_at < t < answered_at]
    assert len(during) >= 8, during


async def test_a_cancelled_stream_frees_its_sequence_at_once(backend: LlamaCppBackend) -> None:
    """Every sequence busy, a ninth request waits; one consumer leaves, and the ninth starts
    within a few steps: counted in the tokens the other streams receive meanwhile, not seconds.
    Were the sequence held to the end of its 400 tokens, they would receive hundreds."""
    clock = EventOrder()
    busy = [Stream() for _ in range(8)]
    generations = [
        backend.complete(request(PROMPTS[i % 4], max_tokens=400, temperature=0.8, seed=i))
        for i in range(8)
    ]
    tasks = [
        asyncio.create_task(consume(g, clock, s)) for g, s in zip(generations, busy, strict=True)
    ]
    while not all(s.chunks for s in busy):
        await asyncio.sleep(0.01)
    waiter = Stream()
    ninth = asyncio.create_task(
        consume(backend.complete(request(PROMPTS[1], max_tokens=4)), clock, waiter)
    )
    await asyncio.sleep(0)  # the ninth's task runs up to its first wait: it has been submitted
    assert backend._slots[MODEL].engine.running == 8  # no free sequence: the ninth waits
    tasks[0].cancel()
    left_at = clock.next()
    await asyncio.wait_for(ninth, 60)
    started_at = waiter.chunks[0][0]
    assert started_at > left_at  # it started only once the cancelled one left
    meanwhile = sum(1 for s in busy[1:] for t, _ in s.chunks if left_at < t < started_at)
    assert meanwhile <= 7 * 4, meanwhile
    for task in tasks[1:]:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_a_failed_decode_fails_its_batch_and_the_engine_serves_on(
    backend: LlamaCppBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """llama_decode refusing a batch (no cache room, say) fails the requests in it with a 500,
    and the next request is served: one bad step never takes the model down."""
    real = llama_cpp.llama_decode
    calls = 0

    def refuse_once(ctx: Any, batch: Any) -> int:
        nonlocal calls
        calls += 1
        return 1 if calls == 1 else int(real(ctx, batch))

    monkeypatch.setattr(llama_cpp, "llama_decode", refuse_once)
    with pytest.raises(InferenceError, match="decoding failed") as failed:
        await asyncio.wait_for(collect(backend.complete(request(PROMPTS[0], max_tokens=4))), 60)
    assert failed.value.status == 500
    _, finish = await asyncio.wait_for(
        collect(backend.complete(request(PROMPTS[1], max_tokens=4))), 60
    )
    assert finish.usage.completion_tokens == 4
    assert backend._slots[MODEL].engine.running == 0


async def test_a_token_longer_than_32_bytes_reaches_the_stream(backend: LlamaCppBackend) -> None:
    """Gemma's vocabulary has hundreds of whole words of more than 32 bytes (Hindi, Bengali,
    Tamil): streamed, each must arrive whole. Read through a 32-byte buffer (llama-cpp-python's
    `detokenize`), such a token came out empty and the text lost its words: ',,,' here."""
    word = " मुख्यमंत्री"  # one token of 37 bytes
    text, finish = await asyncio.wait_for(
        collect(backend.complete(request(",".join([word] * 5) + ",", max_tokens=6, temperature=0))),
        60,
    )
    assert finish.usage.completion_tokens == 6
    assert word in text, text


async def test_text_held_back_for_a_stop_sequence_is_kept_when_the_model_ends(
    backend: LlamaCppBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scanner holds back a tail that could begin a stop sequence; when the model then ends
    its answer (an end-of-generation token) the stop never came, so the tail is answer text.
    Simulated: the fourth token sampled counts as end-of-generation, as the model's would."""
    real = llama_cpp.llama_vocab_is_eog
    calls = 0

    def ends_at_the_fourth(vocab: Any, token: int) -> bool:
        nonlocal calls
        calls += 1
        return calls == 4 or bool(real(vocab, token))

    monkeypatch.setattr(llama_cpp, "llama_vocab_is_eog", ends_at_the_fourth)
    plain, finish = await asyncio.wait_for(
        collect(backend.complete(request(PROMPTS[2], max_tokens=16, temperature=0))), 60
    )
    assert finish.reason == "stop" and finish.usage.completion_tokens == 3 and plain
    calls = 0
    held, finish = await asyncio.wait_for(
        collect(
            backend.complete(
                request(PROMPTS[2], max_tokens=16, temperature=0, stop=[plain[-1] + "\u2603"])
            )
        ),
        60,
    )
    assert finish.reason == "stop" and finish.usage.completion_tokens == 3
    assert held == plain

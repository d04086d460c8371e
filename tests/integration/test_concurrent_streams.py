"""Many users at once through a real node: concurrent streams decode in one batch (openai client).

Order, not wall time: every check counts the events the streams receive, so a slow machine
changes how long the test takes, not what it finds.
"""

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import openai
import pytest

from fpai_node.testing.generation import EventOrder
from fpai_node.testing.nodeproc import NodeProcess

MODEL = "gemma-3-270m"
SEQUENCES = 4
pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]
QUESTIONS = (
    "Tell me about bicycles.",
    "How is bread baked?",
    "What are the laws of motion?",
    "Tell me a story about a village.",
)


@pytest.fixture(scope="module")
def node(gguf_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    home = tmp_path_factory.mktemp("batch") / "home"
    env = {"FPAI_CONTEXT_LENGTH": "512", "FPAI_BATCH_SEQUENCES": str(SEQUENCES)}
    with NodeProcess(
        home, "--api", "127.0.0.1:0", "--model", f"{gguf_model}={MODEL}", env=env
    ) as n:
        yield n


@dataclass
class Seen:
    """One stream's content deltas, each stamped with the order it arrived in across streams."""

    deltas: list[tuple[int, str]] = field(default_factory=list)
    finished_at: int | None = None
    finish_reason: str | None = None
    completion_tokens: int | None = None


async def stream_chat(
    client: openai.AsyncOpenAI, question: str, max_tokens: int, order: EventOrder, seen: Seen
) -> None:
    stream = await client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": question}],
        max_tokens=max_tokens,
        temperature=0.8,
        seed=3,
        stream=True,
        stream_options={"include_usage": True},
    )
    async with stream:
        async for chunk in stream:
            if chunk.usage is not None:
                seen.completion_tokens = chunk.usage.completion_tokens
            if not chunk.choices:
                continue
            choice = chunk.choices[0]
            if choice.delta.content:
                seen.deltas.append((order.next(), choice.delta.content))
            if choice.finish_reason is not None:
                seen.finished_at, seen.finish_reason = order.next(), choice.finish_reason


async def gauge(node: NodeProcess, name: str) -> float | None:
    """Off the event loop: the streams being measured run on it."""
    return await asyncio.to_thread(node.metric, name, model=MODEL)


async def test_concurrent_streams_progress_together_and_load_follows(node: NodeProcess) -> None:
    """Four streaming chats at once: each has its first words before any of them ends, each is
    whole (its usage counts what it streamed), and the node reports 4 running of 4 slots."""
    order, seen = EventOrder(), [Seen() for _ in QUESTIONS]
    async with openai.AsyncOpenAI(
        base_url=node.url + "/v1", api_key="unused", max_retries=0, timeout=120
    ) as client:
        chats = [
            asyncio.create_task(stream_chat(client, q, 48, order, s))
            for q, s in zip(QUESTIONS, seen, strict=True)
        ]
        while not all(s.deltas for s in seen) and not any(c.done() for c in chats):
            await asyncio.sleep(0.02)
        slots = await gauge(node, "fpai_model_slots")
        running = await gauge(node, "fpai_model_requests_running")
        await asyncio.wait_for(asyncio.gather(*chats), 180)
    first_end = min(s.finished_at or 0 for s in seen)
    assert all(s.deltas and s.deltas[0][0] < first_end for s in seen)
    assert (slots, running) == (SEQUENCES, len(QUESTIONS))
    for s in seen:
        assert s.finish_reason in ("stop", "length")
        assert s.completion_tokens is not None and 0 < s.completion_tokens <= 48
        assert "\ufffd" not in "".join(text for _, text in s.deltas)


async def test_a_client_that_leaves_frees_its_sequence_for_the_next(node: NodeProcess) -> None:
    """Every slot streaming a long answer, a fifth request waits in the queue; one client
    disconnects, and the fifth starts within a few steps of it, counted in the tokens the other
    streams receive meanwhile (had the sequence run on to its 400 tokens: hundreds)."""
    order = EventOrder()
    busy = [Seen() for _ in range(SEQUENCES)]
    async with openai.AsyncOpenAI(
        base_url=node.url + "/v1", api_key="unused", max_retries=0, timeout=120
    ) as client:
        chats = [
            asyncio.create_task(stream_chat(client, QUESTIONS[i], 400, order, s))
            for i, s in enumerate(busy)
        ]
        while not all(s.deltas for s in busy):
            assert not any(c.done() for c in chats), "a long answer ended before all started"
            await asyncio.sleep(0.02)
        waiter = Seen()
        fifth = asyncio.create_task(stream_chat(client, "Say hello.", 4, order, waiter))
        while await gauge(node, "fpai_model_requests_waiting") != 1:
            await asyncio.sleep(0.05)
        chats[0].cancel()  # closes the HTTP response: the node sees the client leave
        left_at = order.next()
        await asyncio.wait_for(fifth, 60)
        for chat in chats[1:]:
            chat.cancel()
        await asyncio.gather(*chats, return_exceptions=True)
    started_at = waiter.deltas[0][0] if waiter.deltas else waiter.finished_at
    assert started_at is not None
    meanwhile = sum(1 for s in busy[1:] for t, _ in s.deltas if left_at < t < started_at)
    assert meanwhile <= (SEQUENCES - 1) * 6, meanwhile

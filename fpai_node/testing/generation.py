"""Generation events collected into what a client gets, for tests and benchmarks of backends."""

from collections.abc import AsyncIterator

from fpai_node.inference.base import Finish, GenerationEvent, TextChunk


async def collect(events: AsyncIterator[GenerationEvent]) -> tuple[str, Finish]:
    """The text of every chunk, and the Finish that ends the stream."""
    chunks: list[str] = []
    async for event in events:
        if isinstance(event, TextChunk):
            chunks.append(event.text)
        else:
            return "".join(chunks), event
    raise AssertionError("the stream ended without a Finish")


class EventOrder:
    """A counter shared by concurrent streams: each event takes the next number as it arrives,
    so a test can say 'before' and 'after' across streams without reading a clock."""

    def __init__(self) -> None:
        self.now = 0

    def next(self) -> int:
        self.now += 1
        return self.now

"""A fake Backend for tests of the layers above backends (API, router, metrics): every
generation plays the same events, then fails with `error` when one is given. The real backends
are tested through real models and servers."""

from collections.abc import AsyncGenerator, Sequence

from fpai_node.inference.base import (
    ChatRequest,
    CompletionRequest,
    Embeddings,
    GenerationEvent,
    ModelCard,
)


class ScriptedBackend:
    def __init__(
        self,
        events: Sequence[GenerationEvent] = (),
        error: Exception | None = None,
        *,
        model: str = "m",
        context_length: int | None = None,
        embedding_tokens: int = 3,
    ) -> None:
        self.events = tuple(events)
        self.error = error
        self.card = ModelCard(model, "upstream", context_length=context_length)
        self.embedding_tokens = embedding_tokens

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def models(self) -> Sequence[ModelCard]:
        return [self.card]

    async def _play(self) -> AsyncGenerator[GenerationEvent, None]:
        for event in self.events:
            yield event
        if self.error is not None:
            raise self.error

    def chat(self, request: ChatRequest) -> AsyncGenerator[GenerationEvent, None]:
        return self._play()

    def complete(self, request: CompletionRequest) -> AsyncGenerator[GenerationEvent, None]:
        return self._play()

    async def embed(self, model: str, inputs: Sequence[str]) -> Embeddings:
        if self.error is not None:
            raise self.error
        return Embeddings([[1.0, 0.0] for _ in inputs], prompt_tokens=self.embedding_tokens)

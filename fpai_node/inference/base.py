"""The Backend protocol and the plain values that cross it. No I/O here.

A backend streams every generation as `TextChunk`s followed by exactly one `Finish`; the API
layer builds both the streaming and the non-streaming OpenAI responses from that one shape.
Closing the iterator early (`aclose()`, or a cancelled task) MUST stop the generation: that is
how a client that disconnects frees the model for the next request.
"""

from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

BackendKind = Literal["llamacpp", "vllm", "upstream"]
FinishReason = Literal["stop", "length"]


@dataclass(frozen=True, slots=True)
class ModelCard:
    """What a backend serves under one model id."""

    id: str
    backend: BackendKind
    context_length: int | None = None  # tokens; None when the backend does not say
    capacity: int = 1  # generations it runs at once; more wait in the admission queue
    embeddings: bool = True  # whether /v1/embeddings works for this model
    # SHA-256 of the weights file; None for backends with no single file (vllm, upstream).
    sha256: bytes | None = None


@dataclass(frozen=True, slots=True)
class Sampling:
    max_tokens: int | None = None  # None: up to the context length
    temperature: float | None = None  # None: the backend's default
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True, slots=True)
class ChatRequest:
    model: str
    messages: tuple[ChatMessage, ...]
    sampling: Sampling = field(default_factory=Sampling)


@dataclass(frozen=True, slots=True)
class CompletionRequest:
    model: str
    prompt: str
    sampling: Sampling = field(default_factory=Sampling)


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class TextChunk:
    text: str


@dataclass(frozen=True, slots=True)
class Finish:
    reason: FinishReason
    usage: Usage


GenerationEvent = TextChunk | Finish


@dataclass(frozen=True, slots=True)
class Embeddings:
    vectors: list[list[float]]
    prompt_tokens: int


@dataclass(frozen=True, slots=True)
class Score:
    """A claimed answer scored under the model in one prefill pass (spot checks).

    `prompt_tokens` counts the formatted prompt as a generation does (with BOS and special
    tokens); `completion_tokens` counts the answer text re-tokenized (no BOS, no special tokens);
    `ranks[i]` is the rank of completion token i given the prompt and the tokens before it:
    1 + the number of vocabulary entries with a strictly greater logit (1 = the most likely
    token; ties rank better). Ranks, unlike regenerated text, do not depend on batching.
    """

    prompt_tokens: int
    completion_tokens: int
    ranks: tuple[int, ...]


class InferenceError(Exception):
    """An error with its OpenAI-style HTTP status, `type` and `code`."""

    status = 500
    error_type = "server_error"
    code = "internal_error"


class ModelNotFound(InferenceError):
    status, error_type, code = 404, "invalid_request_error", "model_not_found"


class InvalidRequest(InferenceError):
    status, error_type, code = 400, "invalid_request_error", "invalid_request"


class ContextLengthExceeded(InvalidRequest):
    code = "context_length_exceeded"


class EmbeddingsUnsupported(InvalidRequest):
    """The model serves no embeddings (an upstream without them, say): the request's fault."""

    code = "unsupported_value"


class Overloaded(InferenceError):
    status, error_type, code = 429, "rate_limit_error", "overloaded"

    def __init__(self, message: str, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class BackendUnavailable(InferenceError):
    status, error_type, code = 503, "server_error", "backend_unavailable"


class UpstreamError(InferenceError):
    """The upstream server answered with an error or broke the protocol."""

    status, error_type, code = 502, "server_error", "upstream_error"


class Backend(Protocol):
    """One source of models. `start` may take long (loading weights, waiting for a child
    process); `models` is valid after it. `close` releases everything and is idempotent."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def models(self) -> Sequence[ModelCard]: ...

    def chat(self, request: ChatRequest) -> AsyncGenerator[GenerationEvent, None]: ...

    def complete(self, request: CompletionRequest) -> AsyncGenerator[GenerationEvent, None]: ...

    async def embed(self, model: str, inputs: Sequence[str]) -> Embeddings: ...


@runtime_checkable
class Scorer(Protocol):
    """A backend that can score a claimed answer (spot checks). Separate from `Backend`: only
    backends that can read every position's logits implement it (llama.cpp, not vllm or
    upstream). Raises `ModelNotFound`, and `ContextLengthExceeded` when the prompt and the answer
    do not fit the model's context."""

    async def score_chat(
        self, model: str, messages: Sequence[ChatMessage], completion: str
    ) -> Score: ...

    async def score_completion(self, model: str, prompt: str, completion: str) -> Score: ...

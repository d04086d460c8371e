"""A client request, validated once, in the form both the entry node and a serving peer run.

The entry node keeps the client's JSON bytes to forward them unchanged; the serving node parses
the same bytes with the same rules, so a forwarded request is refused or answered exactly as a
direct one would be.
"""

import json
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass

from fpai_node.inference.base import Backend, Embeddings, GenerationEvent, Sampling
from fpai_node.inference.openai_requests import (
    ApiError,
    StreamOptions,
    parse_chat,
    parse_completion,
    parse_embeddings,
)
from fpai_node.inference.service import ServedModel
from fpai_node.router.messages import Api

LocalEvent = GenerationEvent | Embeddings
Runner = Callable[[Backend], AsyncGenerator[LocalEvent, None]]


@dataclass(frozen=True, slots=True)
class Job:
    api: Api
    model: str
    body: bytes  # the client's JSON, forwarded as it came
    prompt_chars: int
    stream: StreamOptions
    encoding: str  # embeddings only: "float" or "base64"
    run: Runner
    max_tokens: int | None = None  # chat and completion: the client's limit
    stop_bytes: int = 0  # chat and completion: UTF-8 bytes of the stop sequences (RECEIPT-2)
    inputs: int = 0  # embeddings: how many vectors the answer must hold


def parse_job(api: Api, body: bytes) -> Job:
    """Validate a request body for `api`; ApiError (a 400) names what is wrong."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ApiError("the request body is not valid JSON", code="invalid_json") from None
    if api == "chat":
        chat, options = parse_chat(data)
        chars = sum(len(m.content) for m in chat.messages)
        return Job(
            api,
            chat.model,
            body,
            chars,
            options,
            "",
            lambda b: b.chat(chat),
            max_tokens=chat.sampling.max_tokens,
            stop_bytes=_stop_bytes(chat.sampling),
        )
    if api == "completion":
        completion, options = parse_completion(data)
        chars = len(completion.prompt)
        return Job(
            api,
            completion.model,
            body,
            chars,
            options,
            "",
            lambda b: b.complete(completion),
            max_tokens=completion.sampling.max_tokens,
            stop_bytes=_stop_bytes(completion.sampling),
        )
    parsed = parse_embeddings(data)

    async def embed(backend: Backend) -> AsyncGenerator[LocalEvent, None]:
        yield await backend.embed(parsed.model, parsed.inputs)

    chars = sum(len(i) for i in parsed.inputs)
    return Job(
        api,
        parsed.model,
        body,
        chars,
        StreamOptions(False, False),
        parsed.encoding,
        embed,
        inputs=len(parsed.inputs),
    )


def _stop_bytes(sampling: Sampling) -> int:
    return sum(len(stop.encode("utf-8")) for stop in sampling.stop)


async def run_locally(served: ServedModel, job: Job) -> AsyncGenerator[LocalEvent, None]:
    """The job on this node's backend, holding an admission slot from the first event to the
    last: Overloaded comes out of the first `anext`, so a router can try the next candidate."""
    if job.api == "embeddings" and not served.card.embeddings:
        raise ApiError(
            f"model {job.model} does not serve embeddings", code="unsupported_value", param="model"
        )
    async with served.admission.slot():
        events = job.run(served.backend)
        try:
            async for event in events:
                yield event
        finally:
            await events.aclose()

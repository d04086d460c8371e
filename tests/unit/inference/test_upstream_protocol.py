"""What UpstreamBackend sends and how it reads what comes back: the SSE decoder, the request body
and headers, and the error bodies of servers we cannot run here (vLLM, llama-server, TGI), played
by a small aiohttp server. That the backend works with a real server is test_upstream.py."""

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from itertools import pairwise
from typing import Any

import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from fpai_node.errors import ConfigError
from fpai_node.inference.base import (
    BackendUnavailable,
    ChatMessage,
    ChatRequest,
    CompletionRequest,
    ContextLengthExceeded,
    Finish,
    GenerationEvent,
    InferenceError,
    InvalidRequest,
    ModelCard,
    ModelNotFound,
    Overloaded,
    Sampling,
    TextChunk,
    UpstreamError,
    Usage,
)
from fpai_node.inference.upstream import (
    SseDecoder,
    SseEvent,
    UpstreamBackend,
    normalise_base_url,
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# ---------------------------------------------------------------------------------------------
# Server-sent events

STREAM = (
    ": keep-alive comment\r\n"
    "event: message\r\n"
    'data: {"a":\r\n'
    "data: 1}\r\n"
    "\r\n"
    "data:no-space\n"
    "\n"
    "data: café ☕\r"
    "\r"
    "id: 7\n"
    "data: [DONE]\n"
    "\n"
).encode()
EVENTS = [
    SseEvent("message", '{"a":\n1}'),
    SseEvent("message", "no-space"),
    SseEvent("message", "café ☕"),
    SseEvent("message", "[DONE]"),
]


def decode(pieces: list[bytes]) -> list[SseEvent]:
    decoder = SseDecoder()
    events = [event for piece in pieces for event in decoder.feed(piece)]
    return events + decoder.end()


def test_sse_decoder_reads_comments_multiline_data_and_every_line_ending() -> None:
    assert decode([STREAM]) == EVENTS
    assert json.loads(EVENTS[0].data) == {"a": 1}


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=12))
def test_sse_decoder_does_not_care_where_the_bytes_are_split(cuts: list[int]) -> None:
    bounds = [0, *sorted(cuts), len(STREAM)]
    assert decode([STREAM[a:b] for a, b in pairwise(bounds)]) == EVENTS


def test_sse_decoder_keeps_a_last_event_without_its_blank_line() -> None:
    assert decode([b"data: x\n\ndata: tail"]) == [
        SseEvent("message", "x"),
        SseEvent("message", "tail"),
    ]


@pytest.mark.parametrize(
    ("given_url", "base"),
    [
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
        ("http://127.0.0.1:8080/v1", "http://127.0.0.1:8080"),
        ("https://gpu.example:443/api/v1/", "https://gpu.example/api"),
    ],
)
def test_base_url_is_normalised(given_url: str, base: str) -> None:
    assert normalise_base_url(given_url) == base


@pytest.mark.parametrize("bad", ["127.0.0.1:8080", "ftp://host/", "http://"])
def test_a_bad_base_url_is_a_config_error(bad: str) -> None:
    with pytest.raises(ConfigError, match="not an http"):
        UpstreamBackend(bad)


# ---------------------------------------------------------------------------------------------
# A scripted server


@dataclass
class Scripted:
    url: str
    seen: list[tuple[str, str | None, Any]] = field(default_factory=list)
    routes: dict[str, Handler] = field(default_factory=dict)
    runner: web.AppRunner | None = None


def models_reply(*entries: dict[str, Any]) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.json_response({"object": "list", "data": list(entries)})

    return handler


def sse_reply(body: bytes) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(body)
        await response.write_eof()
        return response

    return handler


def error_reply(status: int, body: str, headers: dict[str, str] | None = None) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, text=body, headers=headers)

    return handler


@pytest.fixture
async def scripted() -> AsyncIterator[Scripted]:
    state = Scripted(url="")
    state.routes["/v1/models"] = models_reply({"id": "m", "max_model_len": 4096})

    async def dispatch(request: web.Request) -> web.StreamResponse:
        body = await request.json() if request.can_read_body else None
        state.seen.append((request.path, request.headers.get("Authorization"), body))
        handler = state.routes.get(request.path)
        if handler is None:
            raise web.HTTPNotFound()
        return await handler(request)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", dispatch)
    runner = state.runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    state.url = f"http://127.0.0.1:{port}/v1"
    yield state
    await runner.cleanup()


async def collect(stream: AsyncIterator[GenerationEvent]) -> list[GenerationEvent]:
    return [event async for event in stream]


def chunk(content: str | None = None, finish: str | None = None) -> str:
    delta = {"content": content} if content is not None else {}
    payload = {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return f"data: {json.dumps(payload)}\r\n\r\n"


CHAT = ChatRequest("m", (ChatMessage("system", "Be brief."), ChatMessage("user", "Hi")))


async def test_sends_api_key_and_only_the_sampling_fields_given(scripted: Scripted) -> None:
    usage = {"choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 2}}
    scripted.routes["/v1/chat/completions"] = sse_reply(
        (
            ": ping\r\n\r\n"
            + chunk()
            + chunk("Hel")
            + chunk("lo")
            + chunk("", "stop")
            + f"data: {json.dumps(usage)}\r\n\r\n"
            + "data: [DONE]\r\n\r\n"
        ).encode()
    )
    backend = UpstreamBackend(scripted.url, api_key="sekrit")
    await backend.start()
    try:
        assert backend.models() == [ModelCard("m", "upstream", context_length=4096, capacity=4)]
        sampling = Sampling(max_tokens=3, temperature=0.0, stop=("\n",), seed=7)
        request = ChatRequest(CHAT.model, CHAT.messages, sampling)
        assert await collect(backend.chat(request)) == [
            TextChunk("Hel"),
            TextChunk("lo"),
            Finish("stop", Usage(prompt_tokens=11, completion_tokens=2)),
        ]
    finally:
        await backend.close()
    assert [auth for _, auth, _ in scripted.seen] == ["Bearer sekrit", "Bearer sekrit"]
    assert scripted.seen[1][2] == {
        "model": "m",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
        ],
        "max_tokens": 3,
        "temperature": 0.0,
        "stop": ["\n"],
        "seed": 7,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


async def test_no_api_key_no_authorization_header(scripted: Scripted) -> None:
    backend = UpstreamBackend(scripted.url)
    await backend.start()
    await backend.close()
    assert scripted.seen == [("/v1/models", None, None)]


async def test_a_completion_without_max_tokens_asks_for_the_whole_context(
    scripted: Scripted,
) -> None:
    text = {"choices": [{"index": 0, "text": "ok", "finish_reason": "stop"}]}
    scripted.routes["/v1/completions"] = sse_reply(f"data: {json.dumps(text)}\n\n".encode())
    backend = UpstreamBackend(scripted.url)
    await backend.start()
    try:
        events = await collect(backend.complete(CompletionRequest("m", "four score")))
    finally:
        await backend.close()
    # No usage from this server: chunks are counted, the prompt estimated at 4 characters a token.
    assert events == [TextChunk("ok"), Finish("stop", Usage(prompt_tokens=3, completion_tokens=1))]
    assert scripted.seen[1][2] == {
        "model": "m",
        "prompt": "four score",
        "max_tokens": None,  # absent would mean 16 to an OpenAI-style completions endpoint
        "stream": True,
        "stream_options": {"include_usage": True},
    }


@pytest.mark.parametrize(
    ("entry", "context_length"),
    [
        ({"id": "m", "meta": {"n_ctx_train": 32768, "n_embd": 640}}, 32768),
        ({"id": "m", "context_length": 8192}, 8192),
        ({"id": "m", "owned_by": "me"}, None),
    ],
)
async def test_context_length_from_what_the_server_says(
    scripted: Scripted, entry: dict[str, Any], context_length: int | None
) -> None:
    scripted.routes["/v1/models"] = models_reply(entry, {"id": "other"})
    backend = UpstreamBackend(scripted.url, model_ids=["m"], kind="vllm", capacity=2)
    await backend.start()
    await backend.close()
    assert backend.models() == [ModelCard("m", "vllm", context_length, capacity=2)]


async def test_an_allowed_model_the_server_lacks_is_a_start_error(scripted: Scripted) -> None:
    backend = UpstreamBackend(scripted.url, model_ids=["m", "absent"])
    with pytest.raises(BackendUnavailable, match=r"does not serve absent \(it serves: m\)"):
        await backend.start()


async def test_garbage_at_start_is_backend_unavailable(scripted: Scripted) -> None:
    scripted.routes["/v1/models"] = error_reply(200, "<html>hello</html>")
    base = scripted.url.removesuffix("/v1")
    with pytest.raises(BackendUnavailable, match=f"{base}.*malformed") as caught:
        await UpstreamBackend(scripted.url).start()
    assert "\n" not in str(caught.value)


VLLM_CONTEXT = {
    "object": "error",
    "message": "This model's maximum context length is 4096 tokens. However, you requested "
    "5000 tokens (4990 in the messages, 10 in the completion).",
    "type": "BadRequestError",
    "code": 400,
}
LLAMA_SERVER_CONTEXT = {
    "error": {
        "code": 400,
        "message": "the request exceeds the available context size, try increasing it",
        "type": "exceed_context_size_error",
    }
}
TGI_CONTEXT = {
    "error": "Input validation error: `inputs` tokens + `max_new_tokens` must be <= 4096. "
    "Given: 5000 `inputs` tokens and 10 `max_new_tokens`",
    "error_type": "validation",
}
VLLM_NO_MODEL = {
    "object": "error",
    "message": "The model `m` does not exist.",
    "type": "NotFoundError",
    "code": 404,
}
BAD_TEMPERATURE = {"error": {"message": "temperature must be >= 0", "type": "invalid_request"}}


@pytest.mark.parametrize(
    ("status", "body", "expected", "message"),
    [
        (400, VLLM_CONTEXT, ContextLengthExceeded, "maximum context length is 4096"),
        (400, LLAMA_SERVER_CONTEXT, ContextLengthExceeded, "available context size"),
        (422, TGI_CONTEXT, ContextLengthExceeded, "must be <= 4096"),
        (400, BAD_TEMPERATURE, InvalidRequest, "temperature must be >= 0"),
        (404, VLLM_NO_MODEL, ModelNotFound, "does not exist"),
        (500, "kaboom", UpstreamError, "answered 500: kaboom"),
        (401, {"detail": "Invalid API key"}, UpstreamError, "answered 401: Invalid API key"),
        (503, {"error": {"message": "Loading model"}}, BackendUnavailable, "Loading model"),
    ],
)
async def test_upstream_errors_map_to_inference_errors(
    scripted: Scripted,
    status: int,
    body: Any,
    expected: type[InferenceError],
    message: str,
) -> None:
    text = body if isinstance(body, str) else json.dumps(body)
    scripted.routes["/v1/completions"] = error_reply(status, text)
    backend = UpstreamBackend(scripted.url)
    await backend.start()
    try:
        with pytest.raises(expected, match=message) as caught:
            await collect(backend.complete(CompletionRequest("m", "x")))
    finally:
        await backend.close()
    assert type(caught.value) is expected


@pytest.mark.parametrize(
    ("retry_after", "low", "high"),
    [
        ("7", 7, 7),
        (None, 1, 1),
        ("in 30 s", 28, 31),
    ],
)
async def test_429_is_overloaded_with_retry_after(
    scripted: Scripted, retry_after: str | None, low: int, high: int
) -> None:
    if retry_after == "in 30 s":  # an HTTP-date, computed now rather than at collection
        retry_after = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    headers = {"Retry-After": retry_after} if retry_after else None
    scripted.routes["/v1/completions"] = error_reply(429, '{"error": "busy"}', headers)
    backend = UpstreamBackend(scripted.url)
    await backend.start()
    try:
        with pytest.raises(Overloaded, match="busy") as caught:
            await collect(backend.complete(CompletionRequest("m", "x")))
    finally:
        await backend.close()
    assert low <= caught.value.retry_after_s <= high


async def test_an_error_event_mid_stream_ends_the_generation(scripted: Scripted) -> None:
    failure = {"error": {"message": "engine died", "type": "InternalServerError", "code": 500}}
    scripted.routes["/v1/chat/completions"] = sse_reply(
        (chunk("a") + f"data: {json.dumps(failure)}\n\n").encode()
    )
    backend = UpstreamBackend(scripted.url)
    await backend.start()
    events: list[GenerationEvent] = []
    try:
        with pytest.raises(UpstreamError, match="engine died"):
            async for event in backend.chat(CHAT):
                events.append(event)
    finally:
        await backend.close()
    assert events == [TextChunk("a")]


async def test_malformed_stream_data_is_an_upstream_error(scripted: Scripted) -> None:
    scripted.routes["/v1/chat/completions"] = sse_reply(b"data: {not json\n\n")
    backend = UpstreamBackend(scripted.url)
    await backend.start()
    try:
        with pytest.raises(UpstreamError, match="malformed"):
            await collect(backend.chat(CHAT))
    finally:
        await backend.close()


async def test_a_server_that_went_away_is_backend_unavailable(scripted: Scripted) -> None:
    backend = UpstreamBackend(scripted.url)
    await backend.start()
    assert scripted.runner is not None
    await scripted.runner.cleanup()
    try:
        with pytest.raises(BackendUnavailable, match="unreachable"):
            await collect(backend.chat(CHAT))
        with pytest.raises(BackendUnavailable, match="unreachable"):
            await backend.embed("m", ["x"])
    finally:
        await backend.close()


async def test_a_closed_backend_refuses_work_and_closes_twice(scripted: Scripted) -> None:
    backend = UpstreamBackend(scripted.url)
    with pytest.raises(BackendUnavailable, match="not started"):
        await collect(backend.chat(CHAT))
    await backend.start()
    await backend.close()
    await backend.close()
    with pytest.raises(BackendUnavailable, match="not started"):
        await backend.embed("m", ["x"])

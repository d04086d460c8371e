"""aiohttp routes of the OpenAI-compatible API (/v1/...).

A generation's first event is awaited before any response header is sent, so an unknown model,
a full queue or a too-long prompt is a proper 4xx even for `stream: true`. A failure after the
first token ends the stream with an `error` event, which OpenAI clients raise as an exception.
The server runs with handler cancellation: a client that disconnects cancels its handler, which
closes the generation and frees the model's slot.
"""

import asyncio
import base64
import json
import time
import uuid
from collections.abc import AsyncGenerator, Callable
from typing import Any, cast

import numpy as np
import structlog
from aiohttp import web

from fpai_node.api.metrics import METRICS
from fpai_node.inference.base import (
    Embeddings,
    Finish,
    GenerationEvent,
    InferenceError,
    Overloaded,
    TextChunk,
)
from fpai_node.inference.openai_requests import ApiError, parse_embeddings
from fpai_node.memory.embeddings import MAX_TOKENS, Embedder
from fpai_node.memory.embeddings import MODEL_ID as EMBEDDING_MODEL_ID
from fpai_node.router.jobs import Job, parse_job
from fpai_node.router.messages import Api
from fpai_node.router.router import Opened, Router

ROUTER = web.AppKey("router", Router)
EMBEDDER = web.AppKey("embedder", Embedder)
STARTED_AT = web.AppKey("started_at", int)
SERVED_BY_HEADER = "X-FPAI-Served-By"
OVERHEAD_HEADER = "X-FPAI-Route-Overhead-Ms"
REQUEST_ID = web.RequestKey("request_id", str)  # set by the API middleware for every request
log = structlog.get_logger("fpai.api.openai")


def openai_routes(
    router: Router, embedder: Embedder | None = None
) -> Callable[[web.Application], None]:
    """The OpenAI routes, each request going where `router` sends it, except embeddings by
    the node's own embedding model (`all-minilm-l6-v2`, the one memory uses), answered here:
    every node has it, so it is neither announced nor forwarded."""

    def add(app: web.Application) -> None:
        app[ROUTER] = router
        if embedder is not None:
            app[EMBEDDER] = embedder
        app[STARTED_AT] = int(time.time())
        app.router.add_get("/v1/models", list_models)
        app.router.add_post("/v1/chat/completions", chat_completions)
        app.router.add_post("/v1/completions", completions)
        app.router.add_post("/v1/embeddings", embeddings)

    return add


async def list_models(request: web.Request) -> web.Response:
    """The federation's models; `fpai.local` marks those this node serves itself."""
    created = request.app[STARTED_AT]
    data = [
        {
            "id": entry["id"],
            "object": "model",
            "created": created,
            "owned_by": entry["nodes"][0],
            "fpai": {
                "backend": entry["backend"],
                "context_length": entry["context_length"],
                "local": entry["local"],
                "nodes": entry["nodes"],
            },
        }
        for entry in request.app[ROUTER].models()
    ]
    if EMBEDDER in request.app:
        data.append(
            {
                "id": EMBEDDING_MODEL_ID,
                "object": "model",
                "created": created,
                "owned_by": request.app[ROUTER].node_id,
                "fpai": {
                    "backend": "onnxruntime",
                    "embeddings_only": True,
                    "context_length": MAX_TOKENS,
                    "local": True,
                    "nodes": [request.app[ROUTER].node_id],
                },
            }
        )
    return web.json_response({"object": "list", "data": data})


async def chat_completions(request: web.Request) -> web.StreamResponse:
    return await _generate(request, "chat")


async def completions(request: web.Request) -> web.StreamResponse:
    return await _generate(request, "completion")


async def embeddings(request: web.Request) -> web.StreamResponse:
    body = await request.read()
    if EMBEDDER in request.app and EMBEDDING_MODEL_ID.encode() in body:
        job = parse_job("embeddings", body)
        if job.model == EMBEDDING_MODEL_ID:
            return await _embed_here(request, request.app[EMBEDDER], body)
    return await _generate(request, "embeddings")


async def _embed_here(request: web.Request, embedder: Embedder, body: bytes) -> web.Response:
    """The node's own embedding model, off the event loop. Token counts are the model's own."""
    parsed = parse_embeddings(json.loads(body))
    vectors, tokens = await asyncio.to_thread(embedder.embed_counted, list(parsed.inputs))
    data = [
        {"object": "embedding", "index": i, "embedding": _encode_vector(v, parsed.encoding)}
        for i, v in enumerate(vectors.tolist())
    ]
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    headers = {SERVED_BY_HEADER: request.app[ROUTER].node_id, "X-Request-Id": request_id(request)}
    return web.json_response(
        {"object": "list", "data": data, "model": EMBEDDING_MODEL_ID, "usage": usage},
        headers=headers,
    )


async def _generate(request: web.Request, api: Api) -> web.StreamResponse:
    """Route the request (ROUTE-1): served here or by a peer, the client sees the same answer,
    with headers naming the node that served it and what the routing cost."""
    job = parse_job(api, await request.read())
    started = time.perf_counter()
    opened = await request.app[ROUTER].open(job, request_id(request))
    metrics = request.app.get(METRICS)
    headers = {
        SERVED_BY_HEADER: opened.served_by,
        OVERHEAD_HEADER: f"{opened.overhead_ms:.3f}",
        "X-Request-Id": request_id(request),
    }
    if isinstance(opened.first, Embeddings):
        await opened.events.aclose()
        if metrics is not None:
            metrics.count_tokens(job.model, opened.first.prompt_tokens, 0)
        return web.json_response(_embeddings_body(job, opened.first), headers=headers)
    if metrics is not None:
        metrics.observe_first_token(job.model, time.perf_counter() - started)
    return await _respond(request, opened, job, headers)


def request_id(request: web.Request) -> str:
    """The id the API middleware gave this request (the caller's X-Request-Id when sane)."""
    return str(request.get(REQUEST_ID, ""))


def _embeddings_body(job: Job, result: Embeddings) -> dict[str, Any]:
    data = [
        {"object": "embedding", "index": i, "embedding": _encode_vector(v, job.encoding)}
        for i, v in enumerate(result.vectors)
    ]
    usage = {"prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens}
    return {"object": "list", "data": data, "model": job.model, "usage": usage}


async def _respond(
    request: web.Request, opened: Opened, job: Job, headers: dict[str, str]
) -> web.StreamResponse:
    shape = _Shape(job.model, job.api == "chat")
    events = cast(AsyncGenerator[GenerationEvent, None], opened.events)
    first = cast(GenerationEvent, opened.first)
    try:
        if not job.stream.stream:
            body = await shape.whole(first, events)
            _count_tokens(request, job, shape.finish)
            return web.json_response(body, headers=headers)
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", **headers}
        )
        await response.prepare(request)
        try:
            await shape.stream(response, first, events, job.stream.include_usage)
            _count_tokens(request, job, shape.finish)
        except InferenceError as exc:  # after the first byte: the status is already sent
            await _send(response, {"error": _error_body(exc)["error"]})
            log.warning("generation failed mid-stream", error=str(exc))
        except (ConnectionError, asyncio.CancelledError):
            raise  # the client left: nobody to tell
        except Exception:  # a bug or a backend crash: the client still gets a well-formed end
            log.exception("generation crashed mid-stream")
            failure = InferenceError("the generation failed; see the node's log")
            await _send(response, {"error": _error_body(failure)["error"]})
        await response.write_eof()
        return response
    finally:
        await events.aclose()


class _Shape:
    """OpenAI's chat.completion / text_completion objects and their streaming chunks."""

    def __init__(self, model: str, chat_api: bool) -> None:
        self.model = model
        self.chat_api = chat_api
        self.id = ("chatcmpl-" if chat_api else "cmpl-") + uuid.uuid4().hex
        self.created = int(time.time())
        self.object = "chat.completion" if chat_api else "text_completion"
        self.finish: Finish | None = None  # the answer's last event, once it came

    def _envelope(self, obj: str, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": obj,
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }

    async def whole(
        self, first: GenerationEvent, events: AsyncGenerator[GenerationEvent, None]
    ) -> dict[str, Any]:
        parts: list[str] = []
        event = first
        while not isinstance(event, Finish):
            parts.append(event.text)
            event = await anext(events)
        self.finish = event
        text = "".join(parts)
        choice: dict[str, Any] = {"index": 0, "logprobs": None, "finish_reason": event.reason}
        if self.chat_api:
            choice["message"] = {"role": "assistant", "content": text}
        else:
            choice["text"] = text
        return {**self._envelope(self.object, [choice]), "usage": _usage(event)}

    async def stream(
        self,
        response: web.StreamResponse,
        first: GenerationEvent,
        events: AsyncGenerator[GenerationEvent, None],
        include_usage: bool,
    ) -> None:
        chunk_object = "chat.completion.chunk" if self.chat_api else "text_completion"
        if self.chat_api:
            await _send(
                response,
                self._envelope(chunk_object, [self._delta({"role": "assistant", "content": ""})]),
            )
        event = first
        while isinstance(event, TextChunk):
            body = {"content": event.text} if self.chat_api else event.text
            await _send(response, self._envelope(chunk_object, [self._delta(body)]))
            event = await anext(events)
        self.finish = event
        await _send(
            response,
            self._envelope(chunk_object, [self._delta({} if self.chat_api else "", event.reason)]),
        )
        if include_usage:
            await _send(response, {**self._envelope(chunk_object, []), "usage": _usage(event)})
        await response.write(b"data: [DONE]\n\n")

    def _delta(self, body: dict[str, str] | str, finish: str | None = None) -> dict[str, Any]:
        key = "delta" if self.chat_api else "text"
        return {"index": 0, key: body, "logprobs": None, "finish_reason": finish}


def _count_tokens(request: web.Request, job: Job, finish: Finish | None) -> None:
    """Count the tokens of an answer the client got whole (its usage, served here or not)."""
    metrics = request.app.get(METRICS)
    if metrics is not None and finish is not None:
        metrics.count_tokens(job.model, finish.usage.prompt_tokens, finish.usage.completion_tokens)


async def _send(response: web.StreamResponse, payload: dict[str, Any]) -> None:
    await response.write(b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n")


def _usage(finish: Finish) -> dict[str, int]:
    return {
        "prompt_tokens": finish.usage.prompt_tokens,
        "completion_tokens": finish.usage.completion_tokens,
        "total_tokens": finish.usage.total_tokens,
    }


def _encode_vector(vector: list[float], encoding: str) -> list[float] | str:
    if encoding == "base64":  # little-endian float32, as OpenAI sends it
        return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")
    return vector


def _error_body(exc: InferenceError) -> dict[str, Any]:
    return {"error": {"message": str(exc), "type": exc.error_type, "param": None, "code": exc.code}}


def error_response(exc: ApiError | InferenceError) -> web.Response:
    """The HTTP answer for a typed error raised anywhere under /v1."""
    if isinstance(exc, ApiError):
        return web.json_response(exc.body(), status=exc.status)
    headers = {"Retry-After": str(exc.retry_after_s)} if isinstance(exc, Overloaded) else None
    return web.json_response(_error_body(exc), status=exc.status, headers=headers)

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
from collections.abc import AsyncGenerator
from typing import Any

import numpy as np
import structlog
from aiohttp import web

from fpai_node.api.openai.protocol import (
    ApiError,
    StreamOptions,
    parse_chat,
    parse_completion,
    parse_embeddings,
)
from fpai_node.inference.base import Finish, GenerationEvent, InferenceError, Overloaded, TextChunk
from fpai_node.inference.service import InferenceService

INFERENCE = web.AppKey("inference", InferenceService)
SERVED_BY = web.AppKey("served_by", str)
STARTED_AT = web.AppKey("started_at", int)
log = structlog.get_logger("fpai.api.openai")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/models", list_models)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/completions", completions)
    app.router.add_post("/v1/embeddings", embeddings)


async def list_models(request: web.Request) -> web.Response:
    created = request.app[STARTED_AT]
    data = [
        {
            "id": served.card.id,
            "object": "model",
            "created": created,
            "owned_by": request.app[SERVED_BY],
            "fpai": {
                "backend": served.card.backend,
                "context_length": served.card.context_length,
                "local": True,
            },
        }
        for served in request.app[INFERENCE].models()
    ]
    return web.json_response({"object": "list", "data": data})


async def chat_completions(request: web.Request) -> web.StreamResponse:
    chat, options = parse_chat(await _json(request))
    served = request.app[INFERENCE].get(chat.model)
    async with served.admission.slot():
        events = served.backend.chat(chat)
        return await _respond(request, events, chat.model, options, chat_api=True)


async def completions(request: web.Request) -> web.StreamResponse:
    completion, options = parse_completion(await _json(request))
    served = request.app[INFERENCE].get(completion.model)
    async with served.admission.slot():
        events = served.backend.complete(completion)
        return await _respond(request, events, completion.model, options, chat_api=False)


async def embeddings(request: web.Request) -> web.Response:
    parsed = parse_embeddings(await _json(request))
    served = request.app[INFERENCE].get(parsed.model)
    if not served.card.embeddings:
        raise ApiError(
            f"model {parsed.model} does not serve embeddings",
            code="unsupported_value",
            param="model",
        )
    async with served.admission.slot():
        result = await served.backend.embed(parsed.model, parsed.inputs)
    data = [
        {"object": "embedding", "index": i, "embedding": _encode_vector(v, parsed.encoding)}
        for i, v in enumerate(result.vectors)
    ]
    usage = {"prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens}
    return web.json_response(
        {"object": "list", "data": data, "model": parsed.model, "usage": usage}
    )


async def _respond(
    request: web.Request,
    events: AsyncGenerator[GenerationEvent, None],
    model: str,
    options: StreamOptions,
    *,
    chat_api: bool,
) -> web.StreamResponse:
    shape = _Shape(model, chat_api)
    try:
        first = await anext(events)
        if not options.stream:
            return web.json_response(await shape.whole(first, events))
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        try:
            await shape.stream(response, first, events, options.include_usage)
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


async def _json(request: web.Request) -> object:
    try:
        return await request.json(loads=json.loads)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ApiError("the request body is not valid JSON", code="invalid_json") from None


def _error_body(exc: InferenceError) -> dict[str, Any]:
    return {"error": {"message": str(exc), "type": exc.error_type, "param": None, "code": exc.code}}


def error_response(exc: ApiError | InferenceError) -> web.Response:
    """The HTTP answer for a typed error raised anywhere under /v1."""
    if isinstance(exc, ApiError):
        return web.json_response(exc.body(), status=exc.status)
    headers = {"Retry-After": str(exc.retry_after_s)} if isinstance(exc, Overloaded) else None
    return web.json_response(_error_body(exc), status=exc.status, headers=headers)

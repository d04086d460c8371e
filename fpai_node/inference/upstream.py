"""A Backend for any OpenAI-compatible server reached by URL: Ollama, llama.cpp's servers, TGI,
vLLM elsewhere (or the one `vllm.py` supervises).

Every generation is requested with `stream=true` and read as server-sent events, so closing the
iterator early closes the HTTP response, and the upstream sees the client leave and stops.
"""

import codecs
import contextlib
import json
import math
import re
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
import structlog
import yarl

from fpai_node.errors import ConfigError
from fpai_node.inference.base import (
    BackendKind,
    BackendUnavailable,
    ChatRequest,
    CompletionRequest,
    ContextLengthExceeded,
    Embeddings,
    EmbeddingsUnsupported,
    Finish,
    FinishReason,
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

log = structlog.get_logger("fpai.inference.upstream")

# Servers word a context overflow differently: vLLM "maximum context length is N tokens",
# llama.cpp "exceed context window" / "exceeds the available context size", TGI
# "`inputs` tokens + `max_new_tokens` must be <= N".
EMBEDDINGS_PATH = "/v1/embeddings"
_CONTEXT_CODES = frozenset({"context_length_exceeded", "exceed_context_size_error"})
_CONTEXT_WORDS = re.compile(
    r"context (length|window|size)|max_model_len|max_new_tokens`? must be <=", re.IGNORECASE
)
_FINISH_REASONS: dict[str, FinishReason] = {"length": "length", "max_tokens": "length"}
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True, slots=True)
class SseEvent:
    event: str
    data: str


class SseDecoder:
    """Incremental server-sent-events parser (WHATWG rules): CR, LF or CRLF line ends, comment
    lines, multi-line `data:` joined with newlines, bytes split anywhere (even inside UTF-8)."""

    def __init__(self) -> None:
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""
        self._event = ""
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[SseEvent]:
        text = self._pending + self._utf8.decode(chunk)
        # A trailing CR may be the first half of a CRLF: wait for the next chunk to decide.
        held = "\r" if text.endswith("\r") else ""
        *lines, self._pending = _LINE_BREAK.split(text.removesuffix(held))
        self._pending += held
        return [event for line in lines if (event := self._line(line)) is not None]

    def end(self) -> list[SseEvent]:
        """Flush at end of stream; lenient: a last event without its blank line still counts."""
        text = self._pending + self._utf8.decode(b"", final=True)
        self._pending = ""
        lines = [*_LINE_BREAK.split(text), ""]
        return [event for line in lines if (event := self._line(line)) is not None]

    def _line(self, line: str) -> SseEvent | None:
        if not line:
            if not self._data:
                self._event = ""
                return None
            event = SseEvent(self._event or "message", "\n".join(self._data))
            self._event, self._data = "", []
            return event
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        return None


def normalise_base_url(url: str) -> str:
    """`http://host:8080`, `.../` and `.../v1` all name the same server; returns it without /v1."""
    parsed = yarl.URL(url.strip())
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ConfigError(f"upstream URL {url!r} is not an http(s) URL with a host")
    path = parsed.path.rstrip("/").removesuffix("/v1").rstrip("/")
    return str(parsed.with_path(path).with_query(None).with_fragment(None)).rstrip("/")


class UpstreamBackend:
    """Serves the models of one OpenAI-compatible server.

    Usage fallback: we ask for `stream_options.include_usage`; a server that ignores it (llama-cpp-
    python's server does) leaves us counting. `completion_tokens` is then the number of stream
    chunks that carried text: servers stream one token per chunk, except that a token ending in a
    partial UTF-8 character may be merged into the next chunk, so the count is a slight lower
    bound and never exceeds max_tokens. `prompt_tokens` is then ceil(characters / 4) of the prompt
    text (OpenAI's rule of thumb for English; chat-template tokens are not seen): we have no
    tokenizer for an arbitrary upstream, and an estimate is more useful to accounting than 0.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        connect_timeout_s: float = 10.0,  # loopback or LAN: a server that takes longer is down
        read_timeout_s: float = 300.0,  # per read, not total: covers a long prompt's prefill
        capacity: int = 4,  # a typical single-GPU/CPU server; the admission queue holds the rest
        model_ids: Sequence[str] | None = None,
        kind: BackendKind = "upstream",
    ) -> None:
        self.base_url = normalise_base_url(base_url)
        self._api_key = api_key
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout_s, sock_read=read_timeout_s
        )
        self._capacity = capacity
        self._allowed = tuple(model_ids) if model_ids is not None else None
        self._kind: BackendKind = kind
        self._session: aiohttp.ClientSession | None = None
        self._cards: dict[str, ModelCard] = {}
        self._warned_no_usage = False

    async def start(self) -> None:
        if self._session is not None:
            return
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else None
        # One connection per request, no keep-alive: uvicorn-based servers (llama-cpp-python's,
        # vLLM's) close a connection late after a stream fails or idles, and a pooled connection
        # reused at that moment breaks the next request. A new loopback connection costs ~0.1 ms
        # next to a generation; a remote HTTPS upstream pays one handshake per request.
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(force_close=True), timeout=self._timeout, headers=headers
        )
        try:
            self._cards = await self._fetch_models()
        except BaseException:
            await self.close()
            raise
        log.info(
            "upstream ready",
            url=self.base_url,
            kind=self._kind,
            models=[c.id for c in self._cards.values()],
        )

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def models(self) -> Sequence[ModelCard]:
        return list(self._cards.values())

    def chat(self, request: ChatRequest) -> AsyncGenerator[GenerationEvent, None]:
        body = {
            "model": request.model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
        }
        prompt = "\n".join(m.content for m in request.messages)
        return self._generate("/v1/chat/completions", body, request.sampling, prompt, _delta_text)

    def complete(self, request: CompletionRequest) -> AsyncGenerator[GenerationEvent, None]:
        # Sent even when None (as null): OpenAI-style /v1/completions default to 16 tokens when
        # max_tokens is absent, and our None means "up to the context length".
        body = {"model": request.model, "prompt": request.prompt, "max_tokens": None}
        return self._generate("/v1/completions", body, request.sampling, request.prompt, _text)

    async def embed(self, model: str, inputs: Sequence[str]) -> Embeddings:
        session = self._ready(model)
        payload = await self._request_json(
            session, "POST", EMBEDDINGS_PATH, {"model": model, "input": list(inputs)}
        )
        try:
            rows = sorted(payload["data"], key=lambda row: int(row.get("index", 0)))
            vectors = [_as_vector(row["embedding"]) for row in rows]
            usage = _usage(payload.get("usage"))
        except (AttributeError, KeyError, TypeError, ValueError) as e:
            raise self._garbage("/v1/embeddings", e) from e
        if len(vectors) != len(inputs):
            raise UpstreamError(
                f"upstream {self.base_url} returned {len(vectors)} embeddings for "
                f"{len(inputs)} inputs"
            )
        prompt_tokens = usage.prompt_tokens if usage else sum(_estimate(t) for t in inputs)
        return Embeddings(vectors=vectors, prompt_tokens=prompt_tokens)

    async def _fetch_models(self) -> dict[str, ModelCard]:
        assert self._session is not None
        try:
            payload = await self._request_json(self._session, "GET", "/v1/models", None)
            entries = [e for e in payload["data"] if isinstance(e, dict)]
            served = {str(e["id"]): _context_length(e) for e in entries}
        except InferenceError as e:
            raise BackendUnavailable(
                f"no usable OpenAI-compatible server at {self.base_url}: {e}"
            ) from e
        except (KeyError, TypeError) as e:
            raise BackendUnavailable(
                f"{self.base_url}/v1/models did not answer with a model list ({e!r})"
            ) from e
        wanted = self._allowed if self._allowed is not None else tuple(served)
        missing = [m for m in wanted if m not in served]
        if missing:
            raise BackendUnavailable(
                f"upstream {self.base_url} does not serve {', '.join(missing)} "
                f"(it serves: {', '.join(served) or 'nothing'})"
            )
        return {
            m: ModelCard(m, self._kind, context_length=served[m], capacity=self._capacity)
            for m in wanted
        }

    def _ready(self, model: str) -> aiohttp.ClientSession:
        if self._session is None:
            raise BackendUnavailable(f"upstream backend {self.base_url} is not started")
        # Checked here, not left to the server: llama-cpp-python's server answers any unknown
        # model name with its default model.
        if model not in self._cards:
            raise ModelNotFound(f"model {model!r} is not served by upstream {self.base_url}")
        return self._session

    async def _generate(
        self,
        path: str,
        body: dict[str, Any],
        sampling: Sampling,
        prompt: str,
        text_of: Callable[[dict[str, Any]], str],
    ) -> AsyncGenerator[GenerationEvent, None]:
        session = self._ready(str(body["model"]))
        body = {
            **body,
            **_sampling_fields(sampling),
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        response = await self._send(session, "POST", path, body)
        try:
            reason: FinishReason | None = None
            usage: Usage | None = None
            chunks = 0
            async with contextlib.aclosing(self._sse_data(response)) as events:
                async for data in events:
                    if data == "[DONE]":
                        break
                    chunk = self._decode_chunk(path, data)
                    usage = _usage(chunk.get("usage")) or usage
                    for choice in chunk.get("choices") or ():
                        if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                            continue
                        if text := text_of(choice):
                            chunks += 1
                            yield TextChunk(text)
                        if isinstance(finish := choice.get("finish_reason"), str):
                            reason = _FINISH_REASONS.get(finish, "stop")
            if reason is None:
                # llama-cpp-python's server ends a 200 stream with nothing in it when the prompt
                # overflows its context: all we can say is that no answer came.
                raise UpstreamError(
                    f"upstream {self.base_url} ended the {path} stream without finishing "
                    f"({chunks} chunks; see the upstream's log)"
                )
            if usage is None:
                self._note_no_usage()
                usage = Usage(prompt_tokens=_estimate(prompt), completion_tokens=chunks)
            yield Finish(reason, usage)
        except (aiohttp.ClientError, TimeoutError) as e:
            raise self._transport_error(path, e) from e
        finally:
            # Closing drops the connection even mid-body: the upstream sees the client go.
            response.close()

    async def _sse_data(self, response: aiohttp.ClientResponse) -> AsyncGenerator[str, None]:
        decoder = SseDecoder()
        async for chunk in response.content.iter_any():
            for event in decoder.feed(chunk):
                yield self._check_event(event)
        for event in decoder.end():
            yield self._check_event(event)

    def _check_event(self, event: SseEvent) -> str:
        if event.event == "error":
            message, code, kind = _error_fields(event.data)
            raise _classify(500, message, code, kind, self.base_url)
        return event.data

    def _decode_chunk(self, path: str, data: str) -> dict[str, Any]:
        try:
            chunk = json.loads(data)
        except ValueError as e:
            raise self._garbage(path, e) from e
        if not isinstance(chunk, dict):
            raise self._garbage(path, TypeError(f"event is {type(chunk).__name__}"))
        if chunk.get("error"):  # vLLM and others report a failure mid-stream this way
            message, code, kind = _error_fields(data)
            status = code if isinstance(code, int) and 400 <= code < 600 else 500
            raise _classify(status, message, code, kind, self.base_url)
        return chunk

    async def _request_json(
        self, session: aiohttp.ClientSession, method: str, path: str, body: Any
    ) -> Any:
        response = await self._send(session, method, path, body)
        try:
            return await response.json(content_type=None)
        except ValueError as e:
            raise self._garbage(path, e) from e
        except (aiohttp.ClientError, TimeoutError) as e:
            raise self._transport_error(path, e) from e
        finally:
            response.release()

    async def _send(
        self, session: aiohttp.ClientSession, method: str, path: str, body: Any
    ) -> aiohttp.ClientResponse:
        """One request; a non-2xx answer becomes the matching InferenceError."""
        try:
            response = await session.request(method, self.base_url + path, json=body)
            if response.status < 300:
                return response
            try:
                text = await response.text(errors="replace")
            finally:
                response.release()
        except (aiohttp.ClientError, TimeoutError) as e:
            raise self._transport_error(path, e) from e
        message, code, kind = _error_fields(text)
        where = self.base_url + path
        if path == EMBEDDINGS_PATH and _no_embeddings(response.status, message):
            raise EmbeddingsUnsupported(
                f"this model serves no embeddings (upstream {where} answered "
                f"{response.status}: {message[:200]})"
            )
        error = _classify(response.status, message or response.reason or "", code, kind, where)
        if isinstance(error, Overloaded):
            error.retry_after_s = _retry_after(response.headers.get("Retry-After"))
        raise error

    def _transport_error(self, path: str, error: BaseException) -> InferenceError:
        what = f"{self.base_url}{path}"
        if isinstance(error, aiohttp.ConnectionTimeoutError):
            return BackendUnavailable(f"upstream {what}: connect timed out")
        if isinstance(error, TimeoutError):
            return UpstreamError(f"upstream {what}: no data for {self._timeout.sock_read} s")
        if isinstance(error, aiohttp.ClientPayloadError):  # it answered, then broke off
            return UpstreamError(f"upstream {what} broke off its answer: {error}")
        if isinstance(error, aiohttp.ClientConnectionError):
            return BackendUnavailable(f"upstream {what} unreachable: {error}")
        return UpstreamError(f"upstream {what}: {error}")

    def _garbage(self, path: str, error: Exception) -> UpstreamError:
        return UpstreamError(f"upstream {self.base_url}{path} answered malformed data: {error}")

    def _note_no_usage(self) -> None:
        if not self._warned_no_usage:
            self._warned_no_usage = True
            log.info("upstream streams no usage; counting chunks instead", url=self.base_url)


def _sampling_fields(sampling: Sampling) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "max_tokens": sampling.max_tokens,
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
        "stop": list(sampling.stop) or None,
        "seed": sampling.seed,
    }
    return {k: v for k, v in fields.items() if v is not None}


def _delta_text(choice: dict[str, Any]) -> str:
    delta = choice.get("delta")
    content = delta.get("content") if isinstance(delta, dict) else None
    return content if isinstance(content, str) else ""


def _text(choice: dict[str, Any]) -> str:
    text = choice.get("text")
    return text if isinstance(text, str) else ""


def _usage(value: Any) -> Usage | None:
    """Usage as servers send it; embeddings' usage has no completion_tokens."""
    if not isinstance(value, dict):
        return None
    prompt, completion = value.get("prompt_tokens"), value.get("completion_tokens", 0)
    if isinstance(prompt, int) and isinstance(completion, int):
        return Usage(prompt_tokens=prompt, completion_tokens=completion)
    return None


def _estimate(text: str) -> int:
    return math.ceil(len(text) / 4)


def _as_vector(value: Any) -> list[float]:
    """One input's embedding, L2-normalised as OpenAI returns them and as the llama.cpp backend
    does, so vectors from any backend compare alike. A server without pooling (llama-cpp-python's,
    for models whose GGUF sets none) sends one vector per token: we mean-pool them first."""
    if value and isinstance(value[0], list):
        width = len(value[0])
        if any(len(row) != width for row in value):
            raise ValueError("per-token embeddings of different widths")
        vector = [math.fsum(float(row[i]) for row in value) / len(value) for i in range(width)]
    else:
        vector = [float(x) for x in value]
    norm = math.hypot(*vector)
    return [x / norm for x in vector] if norm > 0 else vector


def _context_length(entry: dict[str, Any]) -> int | None:
    """vLLM sends `max_model_len`, OpenRouter-style servers `context_length`, llama.cpp's
    llama-server `meta.n_ctx` / `meta.n_ctx_train`; Ollama and llama-cpp-python send none."""
    meta = entry.get("meta")
    if not isinstance(meta, dict):
        meta = {}
    for value in (
        entry.get("max_model_len"),
        entry.get("context_length"),
        meta.get("n_ctx"),
        meta.get("n_ctx_train"),
    ):
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def _error_fields(text: str) -> tuple[str, Any, Any]:
    """(message, code, type) from the error bodies servers send: OpenAI's `{"error": {...}}`,
    vLLM's flat `{"object": "error", "message"...}`, Ollama/TGI's `{"error": "..."}`, FastAPI's
    `{"detail": ...}`; else the raw text."""
    try:
        payload = json.loads(text)
    except ValueError:
        return text.strip()[:500], None, None
    if not isinstance(payload, dict):
        return text.strip()[:500], None, None
    error = payload.get("error", payload)
    if isinstance(error, str):
        return error, None, payload.get("error_type")
    if not isinstance(error, dict):
        return text.strip()[:500], None, None
    message = error.get("message") or error.get("detail") or text.strip()[:500]
    return str(message), error.get("code"), error.get("type")


def _no_embeddings(status: int, message: str) -> bool:
    """An upstream without the route (404, 405, 501; a 404 naming the model is another
    matter), or one whose model was not loaded for embeddings (llama.cpp's server answers 500,
    naming `embedding=True`)."""
    lowered = message.lower()
    missing_route = status in (404, 405, 501) and "model" not in lowered
    return missing_route or (status >= 500 and "embedding" in lowered)


def _classify(status: int, message: str, code: Any, kind: Any, where: str) -> InferenceError:
    labels = {str(code).lower(), str(kind).lower()}
    if status == 429:
        return Overloaded(message)
    if "model_not_found" in labels or (status == 404 and "model" in message.lower()):
        return ModelNotFound(message)
    if status in (400, 413, 422):
        if labels & _CONTEXT_CODES or _CONTEXT_WORDS.search(message):
            return ContextLengthExceeded(message)
        return InvalidRequest(message)
    if status == 503:  # loading, restarting or draining: the server is there but not serving
        return BackendUnavailable(f"upstream {where} unavailable: {message}")
    return UpstreamError(f"upstream {where} answered {status}: {message}")


def _retry_after(value: str | None) -> int:
    """Retry-After in seconds (delta-seconds or HTTP-date); 1 when absent or unreadable."""
    if not value:
        return 1
    if value.strip().isdigit():
        return max(1, int(value))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return 1
    return max(1, math.ceil((when - datetime.now(UTC)).total_seconds()))

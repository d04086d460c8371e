"""Validating OpenAI request bodies into backend requests. Pure: no aiohttp, no I/O.

Every rule violation is an `ApiError` naming the parameter, answered as a 4xx in OpenAI's error
shape. Unknown fields are ignored, as OpenAI does, so newer clients keep working.
"""

from dataclasses import dataclass
from typing import Any, Literal, cast

from fpai_node.inference.base import ChatMessage, ChatRequest, CompletionRequest, Sampling

MAX_STOP_SEQUENCES = 4
MAX_EMBEDDING_INPUTS = 2048
_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


class ApiError(Exception):
    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        error_type: str = "invalid_request_error",
        code: str = "invalid_value",
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.code = code
        self.param = param

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": str(self),
                "type": self.error_type,
                "param": self.param,
                "code": self.code,
            }
        }


@dataclass(frozen=True, slots=True)
class StreamOptions:
    stream: bool
    include_usage: bool


@dataclass(frozen=True, slots=True)
class EmbeddingRequest:
    model: str
    inputs: tuple[str, ...]
    encoding: Literal["float", "base64"]


def parse_chat(body: object) -> tuple[ChatRequest, StreamOptions]:
    data = _object(body)
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError("'messages' must be a non-empty array", param="messages")
    parsed = tuple(_message(m, i) for i, m in enumerate(messages))
    return ChatRequest(_model(data), parsed, _sampling(data)), _stream_options(data)


def parse_completion(body: object) -> tuple[CompletionRequest, StreamOptions]:
    data = _object(body)
    prompt = data.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise ApiError(
            "'prompt' must be a string (batches of prompts are not supported)", param="prompt"
        )
    return CompletionRequest(_model(data), prompt, _sampling(data)), _stream_options(data)


def parse_embeddings(body: object) -> EmbeddingRequest:
    data = _object(body)
    raw = data.get("input")
    inputs = [raw] if isinstance(raw, str) else raw
    if (
        not isinstance(inputs, list)
        or not inputs
        or not all(isinstance(i, str) and i for i in inputs)
    ):
        raise ApiError(
            "'input' must be a non-empty string or array of non-empty strings", param="input"
        )
    if len(inputs) > MAX_EMBEDDING_INPUTS:
        raise ApiError(f"at most {MAX_EMBEDDING_INPUTS} inputs per request", param="input")
    match data.get("encoding_format") or "float":
        case "float" | "base64" as encoding:
            return EmbeddingRequest(_model(data), tuple(inputs), encoding)
        case _:
            raise ApiError("'encoding_format' must be 'float' or 'base64'", param="encoding_format")


def _object(body: object) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ApiError("the request body must be a JSON object", code="invalid_json")
    return body


def _model(data: dict[str, Any]) -> str:
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise ApiError("'model' is required and must be a string", param="model")
    return model


def _message(raw: object, index: int) -> ChatMessage:
    param = f"messages[{index}]"
    if not isinstance(raw, dict):
        raise ApiError(f"{param} must be an object", param=param)
    raw_role = raw.get("role")
    role = _ROLES.get(raw_role) if isinstance(raw_role, str) else None
    if role is None:
        raise ApiError(
            f"{param}.role must be one of system, developer, user, assistant",
            param=f"{param}.role",
        )
    content = raw.get("content")
    if isinstance(content, list):  # [{"type": "text", "text": ...}, ...]
        if not all(
            isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
            for p in content
        ):
            raise ApiError(
                f"{param}.content parts must all be text parts",
                param=f"{param}.content",
                code="unsupported_value",
            )
        content = "".join(p["text"] for p in content)
    if not isinstance(content, str):
        raise ApiError(f"{param}.content must be a string", param=f"{param}.content")
    return ChatMessage(cast(Literal["system", "user", "assistant"], role), content)


def _sampling(data: dict[str, Any]) -> Sampling:
    max_tokens = _positive_int(data, "max_completion_tokens", default=None)
    if max_tokens is None:
        max_tokens = _positive_int(data, "max_tokens", default=None)
    if _positive_int(data, "n", default=1) != 1:
        raise ApiError("only n=1 is supported", param="n", code="unsupported_value")
    return Sampling(
        max_tokens=max_tokens,
        temperature=_number(data, "temperature", 0.0, 2.0),
        top_p=_number(data, "top_p", 0.0, 1.0),
        stop=_stop(data.get("stop")),
        seed=_int(data, "seed"),
    )


def _stream_options(data: dict[str, Any]) -> StreamOptions:
    stream = data.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise ApiError("'stream' must be a boolean", param="stream")
    options = data.get("stream_options") or {}
    if not isinstance(options, dict) or not isinstance(options.get("include_usage", False), bool):
        raise ApiError(
            "'stream_options' must be an object like {\"include_usage\": true}",
            param="stream_options",
        )
    return StreamOptions(stream, bool(options.get("include_usage", False)))


def _int(data: dict[str, Any], name: str) -> int | None:
    value = data.get(name)
    if value is None:
        return None
    if type(value) is not int:
        raise ApiError(f"'{name}' must be an integer", param=name)
    return value


def _positive_int(data: dict[str, Any], name: str, default: int | None) -> int | None:
    value = _int(data, name)
    if value is None:
        return default
    if value < 1:
        raise ApiError(f"'{name}' must be at least 1, got {value}", param=name)
    return value


def _number(data: dict[str, Any], name: str, low: float, high: float) -> float | None:
    value = data.get(name)
    if value is None:
        return None
    if type(value) not in (int, float) or not low <= value <= high:
        raise ApiError(f"'{name}' must be a number from {low:g} to {high:g}", param=name)
    return float(value)


def _stop(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    stops = [value] if isinstance(value, str) else value
    if (
        not isinstance(stops, list)
        or len(stops) > MAX_STOP_SEQUENCES
        or not all(isinstance(s, str) for s in stops)
    ):
        raise ApiError(
            f"'stop' must be a string or up to {MAX_STOP_SEQUENCES} strings", param="stop"
        )
    return tuple(s for s in stops if s)

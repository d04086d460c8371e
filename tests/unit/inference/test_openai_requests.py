"""OpenAI request validation: each rule's exact ApiError, and what valid bodies become."""

from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from fpai_node.inference.base import ChatMessage, ChatRequest, CompletionRequest, Sampling
from fpai_node.inference.openai_requests import (
    MAX_EMBEDDING_INPUTS,
    MAX_STOP_SEQUENCES,
    ApiError,
    EmbeddingRequest,
    StreamOptions,
    parse_chat,
    parse_completion,
    parse_embeddings,
)

USER_HI = {"role": "user", "content": "hi"}


def chat(**fields: Any) -> dict[str, Any]:
    """A valid chat body with `fields` overriding (a value of ... removes the field)."""
    body: dict[str, Any] = {"model": "m", "messages": [USER_HI]}
    body.update(fields)
    return {k: v for k, v in body.items() if v is not ...}


def completion(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "m", "prompt": "once upon"}
    body.update(fields)
    return {k: v for k, v in body.items() if v is not ...}


def embeddings(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "e", "input": "text"}
    body.update(fields)
    return {k: v for k, v in body.items() if v is not ...}


def error_of(parse: Any, body: object) -> ApiError:
    with pytest.raises(ApiError) as info:
        parse(body)
    return info.value


def where(err: ApiError) -> tuple[str | None, int, str, str]:
    return err.param, err.status, err.code, err.error_type


# --- the body itself ---------------------------------------------------------------------------


@pytest.mark.parametrize("parse", [parse_chat, parse_completion, parse_embeddings])
@pytest.mark.parametrize("body", [None, [], [USER_HI], "text", 1, 1.5, True, b"{}"])
def test_non_object_body_is_invalid_json(parse: Any, body: object) -> None:
    err = error_of(parse, body)
    assert where(err) == (None, 400, "invalid_json", "invalid_request_error")


def test_error_body_has_openai_shape() -> None:
    err = error_of(parse_chat, chat(n=2))
    assert err.body() == {
        "error": {
            "message": "only n=1 is supported",
            "type": "invalid_request_error",
            "param": "n",
            "code": "unsupported_value",
        }
    }


# --- messages ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("messages", "param", "code"),
    [
        (..., "messages", "invalid_value"),
        (None, "messages", "invalid_value"),
        ([], "messages", "invalid_value"),
        ({}, "messages", "invalid_value"),
        (USER_HI, "messages", "invalid_value"),
        ("hi", "messages", "invalid_value"),
        (["hi"], "messages[0]", "invalid_value"),
        ([None], "messages[0]", "invalid_value"),
        ([USER_HI, ["user", "hi"]], "messages[1]", "invalid_value"),
        ([{"content": "hi"}], "messages[0].role", "invalid_value"),
        ([{"role": "tool", "content": "hi"}], "messages[0].role", "invalid_value"),
        ([{"role": "function", "content": "hi"}], "messages[0].role", "invalid_value"),
        ([{"role": "User", "content": "hi"}], "messages[0].role", "invalid_value"),
        ([{"role": None, "content": "hi"}], "messages[0].role", "invalid_value"),
        ([{"role": 1, "content": "hi"}], "messages[0].role", "invalid_value"),
        ([USER_HI, {"role": "bot", "content": "x"}], "messages[1].role", "invalid_value"),
        # An unhashable role (a list or an object) is as wrong as an unknown one.
        ([{"role": ["user"], "content": "hi"}], "messages[0].role", "invalid_value"),
        ([{"role": {"name": "user"}, "content": "hi"}], "messages[0].role", "invalid_value"),
        ([{"role": "user"}], "messages[0].content", "invalid_value"),
        ([{"role": "user", "content": None}], "messages[0].content", "invalid_value"),
        ([{"role": "user", "content": 5}], "messages[0].content", "invalid_value"),
        ([{"role": "user", "content": True}], "messages[0].content", "invalid_value"),
        ([{"role": "user", "content": {"text": "hi"}}], "messages[0].content", "invalid_value"),
        ([USER_HI, {"role": "assistant", "content": 1.5}], "messages[1].content", "invalid_value"),
        (
            [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}],
            "messages[0].content",
            "unsupported_value",
        ),
        (
            [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "look"},
                        {"type": "input_audio", "input_audio": {}},
                    ],
                }
            ],
            "messages[0].content",
            "unsupported_value",
        ),
        ([{"role": "user", "content": ["hi"]}], "messages[0].content", "unsupported_value"),
        (
            [{"role": "user", "content": [{"type": "text"}]}],
            "messages[0].content",
            "unsupported_value",
        ),
        (
            [{"role": "user", "content": [{"type": "text", "text": 5}]}],
            "messages[0].content",
            "unsupported_value",
        ),
        (
            [{"role": "user", "content": [{"text": "hi"}]}],
            "messages[0].content",
            "unsupported_value",
        ),
    ],
)
def test_bad_messages(messages: object, param: str, code: str) -> None:
    err = error_of(parse_chat, chat(messages=messages))
    assert where(err) == (param, 400, code, "invalid_request_error")


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [
        ({"role": "user", "content": "hi"}, ChatMessage("user", "hi")),
        ({"role": "system", "content": "be brief"}, ChatMessage("system", "be brief")),
        ({"role": "developer", "content": "be brief"}, ChatMessage("system", "be brief")),
        ({"role": "assistant", "content": "hello"}, ChatMessage("assistant", "hello")),
        ({"role": "user", "content": ""}, ChatMessage("user", "")),
        (
            {
                "role": "user",
                "content": [{"type": "text", "text": "one, "}, {"type": "text", "text": "two"}],
            },
            ChatMessage("user", "one, two"),
        ),
        ({"role": "user", "content": []}, ChatMessage("user", "")),
        (
            {"role": "user", "content": "hi", "name": "alice", "tool_calls": None},
            ChatMessage("user", "hi"),
        ),
    ],
)
def test_good_message(raw: dict[str, Any], parsed: ChatMessage) -> None:
    request, _ = parse_chat(chat(messages=[raw]))
    assert request.messages == (parsed,)


def test_messages_keep_their_order() -> None:
    request, _ = parse_chat(
        chat(
            messages=[
                {"role": "developer", "content": "d"},
                {"role": "user", "content": "u1"},
                {"role": "assistant", "content": "a1"},
                {"role": "user", "content": [{"type": "text", "text": "u2"}]},
            ]
        )
    )
    assert request.messages == (
        ChatMessage("system", "d"),
        ChatMessage("user", "u1"),
        ChatMessage("assistant", "a1"),
        ChatMessage("user", "u2"),
    )


def test_minimal_chat_parses_to_defaults() -> None:
    request, stream = parse_chat({"model": "gemma", "messages": [USER_HI]})
    assert request == ChatRequest("gemma", (ChatMessage("user", "hi"),), Sampling())
    assert stream == StreamOptions(stream=False, include_usage=False)


# --- model -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("parse", "make"),
    [(parse_chat, chat), (parse_completion, completion), (parse_embeddings, embeddings)],
)
@pytest.mark.parametrize("model", [..., None, "", 5, True, ["m"], {"id": "m"}])
def test_bad_model(parse: Any, make: Any, model: object) -> None:
    err = error_of(parse, make(model=model))
    assert where(err) == ("model", 400, "invalid_value", "invalid_request_error")


# --- sampling: shared by chat and completions ----------------------------------------------------

SAMPLING_PARSERS = [(parse_chat, chat), (parse_completion, completion)]


@pytest.mark.parametrize(("parse", "make"), SAMPLING_PARSERS)
@pytest.mark.parametrize(
    ("fields", "param", "code"),
    [
        ({"max_tokens": 0}, "max_tokens", "invalid_value"),
        ({"max_tokens": -1}, "max_tokens", "invalid_value"),
        ({"max_tokens": 1.5}, "max_tokens", "invalid_value"),
        ({"max_tokens": 5.0}, "max_tokens", "invalid_value"),
        ({"max_tokens": True}, "max_tokens", "invalid_value"),
        ({"max_tokens": "5"}, "max_tokens", "invalid_value"),
        ({"max_tokens": [5]}, "max_tokens", "invalid_value"),
        ({"max_completion_tokens": 0}, "max_completion_tokens", "invalid_value"),
        ({"max_completion_tokens": -1}, "max_completion_tokens", "invalid_value"),
        ({"max_completion_tokens": 1.5}, "max_completion_tokens", "invalid_value"),
        ({"max_completion_tokens": True}, "max_completion_tokens", "invalid_value"),
        ({"max_completion_tokens": "5"}, "max_completion_tokens", "invalid_value"),
        ({"max_completion_tokens": 0, "max_tokens": 5}, "max_completion_tokens", "invalid_value"),
        ({"max_completion_tokens": None, "max_tokens": 0}, "max_tokens", "invalid_value"),
        ({"temperature": -0.01}, "temperature", "invalid_value"),
        ({"temperature": 2.01}, "temperature", "invalid_value"),
        ({"temperature": 3}, "temperature", "invalid_value"),
        ({"temperature": True}, "temperature", "invalid_value"),
        ({"temperature": False}, "temperature", "invalid_value"),
        ({"temperature": "0.5"}, "temperature", "invalid_value"),
        ({"temperature": [0.5]}, "temperature", "invalid_value"),
        ({"temperature": float("nan")}, "temperature", "invalid_value"),
        ({"temperature": float("inf")}, "temperature", "invalid_value"),
        ({"top_p": -0.1}, "top_p", "invalid_value"),
        ({"top_p": 1.01}, "top_p", "invalid_value"),
        ({"top_p": 2}, "top_p", "invalid_value"),
        ({"top_p": True}, "top_p", "invalid_value"),
        ({"top_p": "1"}, "top_p", "invalid_value"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop", "invalid_value"),
        ({"stop": ["", "", "", "", ""]}, "stop", "invalid_value"),
        ({"stop": 5}, "stop", "invalid_value"),
        ({"stop": True}, "stop", "invalid_value"),
        ({"stop": ["a", 1]}, "stop", "invalid_value"),
        ({"stop": ["a", None]}, "stop", "invalid_value"),
        ({"stop": {"a": "b"}}, "stop", "invalid_value"),
        ({"stop": [["a"]]}, "stop", "invalid_value"),
        ({"seed": 1.5}, "seed", "invalid_value"),
        ({"seed": 1.0}, "seed", "invalid_value"),
        ({"seed": True}, "seed", "invalid_value"),
        ({"seed": "42"}, "seed", "invalid_value"),
        ({"n": 2}, "n", "unsupported_value"),
        ({"n": 10}, "n", "unsupported_value"),
        ({"n": 0}, "n", "invalid_value"),
        ({"n": -1}, "n", "invalid_value"),
        ({"n": 1.0}, "n", "invalid_value"),
        ({"n": True}, "n", "invalid_value"),
        ({"n": "1"}, "n", "invalid_value"),
        ({"stream": "true"}, "stream", "invalid_value"),
        ({"stream": 1}, "stream", "invalid_value"),
        ({"stream": [True]}, "stream", "invalid_value"),
        ({"stream_options": "usage"}, "stream_options", "invalid_value"),
        ({"stream_options": [1]}, "stream_options", "invalid_value"),
        ({"stream_options": {"include_usage": "yes"}}, "stream_options", "invalid_value"),
        ({"stream_options": {"include_usage": 1}}, "stream_options", "invalid_value"),
        ({"stream_options": {"include_usage": None}}, "stream_options", "invalid_value"),
    ],
)
def test_bad_sampling(parse: Any, make: Any, fields: dict[str, Any], param: str, code: str) -> None:
    err = error_of(parse, make(**fields))
    assert where(err) == (param, 400, code, "invalid_request_error")


@pytest.mark.parametrize(("parse", "make"), SAMPLING_PARSERS)
@pytest.mark.parametrize(
    ("fields", "sampling"),
    [
        ({}, Sampling()),
        ({"max_tokens": 1}, Sampling(max_tokens=1)),
        ({"max_tokens": 4096}, Sampling(max_tokens=4096)),
        ({"max_tokens": None}, Sampling()),
        ({"max_completion_tokens": 7}, Sampling(max_tokens=7)),
        ({"max_completion_tokens": 7, "max_tokens": 3}, Sampling(max_tokens=7)),
        ({"max_completion_tokens": 3, "max_tokens": 7}, Sampling(max_tokens=3)),
        ({"max_completion_tokens": None, "max_tokens": 9}, Sampling(max_tokens=9)),
        ({"temperature": 0}, Sampling(temperature=0.0)),
        ({"temperature": 2}, Sampling(temperature=2.0)),
        ({"temperature": 0.7}, Sampling(temperature=0.7)),
        ({"temperature": None}, Sampling()),
        ({"top_p": 0}, Sampling(top_p=0.0)),
        ({"top_p": 1}, Sampling(top_p=1.0)),
        ({"top_p": 0.95}, Sampling(top_p=0.95)),
        ({"stop": "END"}, Sampling(stop=("END",))),
        ({"stop": ""}, Sampling(stop=())),
        ({"stop": None}, Sampling(stop=())),
        ({"stop": []}, Sampling(stop=())),
        ({"stop": ["a", "b"]}, Sampling(stop=("a", "b"))),
        ({"stop": ["a", "", "b", ""]}, Sampling(stop=("a", "b"))),
        ({"stop": ["1", "2", "3", "4"]}, Sampling(stop=("1", "2", "3", "4"))),
        ({"seed": 42}, Sampling(seed=42)),
        ({"seed": 0}, Sampling(seed=0)),
        ({"seed": -7}, Sampling(seed=-7)),
        ({"seed": None}, Sampling()),
        ({"n": 1}, Sampling()),
        ({"n": None}, Sampling()),
        (
            {"max_tokens": 16, "temperature": 0.2, "top_p": 0.5, "stop": ["\n"], "seed": 1},
            Sampling(max_tokens=16, temperature=0.2, top_p=0.5, stop=("\n",), seed=1),
        ),
    ],
)
def test_good_sampling(parse: Any, make: Any, fields: dict[str, Any], sampling: Sampling) -> None:
    request, _ = parse(make(**fields))
    assert request.sampling == sampling


@pytest.mark.parametrize(("parse", "make"), SAMPLING_PARSERS)
def test_temperature_and_top_p_become_floats(parse: Any, make: Any) -> None:
    request, _ = parse(make(temperature=1, top_p=1))
    assert type(request.sampling.temperature) is float
    assert type(request.sampling.top_p) is float


def test_max_stop_sequences_is_four() -> None:
    assert MAX_STOP_SEQUENCES == 4


@pytest.mark.parametrize(("parse", "make"), SAMPLING_PARSERS)
@pytest.mark.parametrize(
    ("fields", "options"),
    [
        ({}, StreamOptions(False, False)),
        ({"stream": None}, StreamOptions(False, False)),
        ({"stream": False}, StreamOptions(False, False)),
        ({"stream": True}, StreamOptions(True, False)),
        ({"stream": True, "stream_options": None}, StreamOptions(True, False)),
        ({"stream": True, "stream_options": {}}, StreamOptions(True, False)),
        (
            {"stream": True, "stream_options": {"include_usage": True}},
            StreamOptions(True, True),
        ),
        (
            {"stream": True, "stream_options": {"include_usage": False}},
            StreamOptions(True, False),
        ),
        (
            {"stream": True, "stream_options": {"include_usage": True, "future": 1}},
            StreamOptions(True, True),
        ),
    ],
)
def test_stream_options(
    parse: Any, make: Any, fields: dict[str, Any], options: StreamOptions
) -> None:
    _, stream = parse(make(**fields))
    assert stream == options


@pytest.mark.parametrize(("parse", "make"), SAMPLING_PARSERS)
def test_unknown_fields_are_ignored(parse: Any, make: Any) -> None:
    plain, _ = parse(make())
    extra, _ = parse(
        make(
            user="alice",
            logprobs=True,
            tools=[{"type": "function"}],
            frequency_penalty=9,
            response_format={"type": "json_object"},
            **{"x-future": [1, {"a": None}]},
        )
    )
    assert extra == plain


# --- completions -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prompt", "parsed"),
    [
        ("once upon", "once upon"),
        ("", ""),
        (["a single prompt"], "a single prompt"),
        ([""], ""),
    ],
)
def test_good_prompt(prompt: object, parsed: str) -> None:
    request, stream = parse_completion(completion(prompt=prompt))
    assert request == CompletionRequest("m", parsed, Sampling())
    assert stream == StreamOptions(False, False)


@pytest.mark.parametrize(
    "prompt",
    [..., None, [], ["a", "b"], [1], [[1, 2, 3]], [1, 2, 3], 5, True, {"text": "a"}, [None]],
)
def test_bad_prompt(prompt: object) -> None:
    err = error_of(parse_completion, completion(prompt=prompt))
    assert where(err) == ("prompt", 400, "invalid_value", "invalid_request_error")


# --- embeddings --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "parsed"),
    [
        ({"input": "hello"}, EmbeddingRequest("e", ("hello",), "float")),
        ({"input": ["a", "b"]}, EmbeddingRequest("e", ("a", "b"), "float")),
        ({"input": ["a"], "encoding_format": "float"}, EmbeddingRequest("e", ("a",), "float")),
        ({"input": ["a"], "encoding_format": "base64"}, EmbeddingRequest("e", ("a",), "base64")),
        (
            {"input": ["x"] * MAX_EMBEDDING_INPUTS},
            EmbeddingRequest("e", ("x",) * MAX_EMBEDDING_INPUTS, "float"),
        ),
        ({"input": "a", "dimensions": 3, "user": "u"}, EmbeddingRequest("e", ("a",), "float")),
    ],
)
def test_good_embeddings(fields: dict[str, Any], parsed: EmbeddingRequest) -> None:
    assert parse_embeddings(embeddings(**fields)) == parsed


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"input": ...}, "input"),
        ({"input": None}, "input"),
        ({"input": ""}, "input"),
        ({"input": []}, "input"),
        ({"input": [""]}, "input"),
        ({"input": ["a", ""]}, "input"),
        ({"input": ["a", 1]}, "input"),
        ({"input": [None]}, "input"),
        ({"input": [[1, 2]]}, "input"),
        ({"input": [1, 2, 3]}, "input"),
        ({"input": 5}, "input"),
        ({"input": {"text": "a"}}, "input"),
        ({"input": ["x"] * (MAX_EMBEDDING_INPUTS + 1)}, "input"),
        ({"encoding_format": "int8"}, "encoding_format"),
        ({"encoding_format": "FLOAT"}, "encoding_format"),
        ({"encoding_format": 1}, "encoding_format"),
        ({"encoding_format": ["float"]}, "encoding_format"),
    ],
)
def test_bad_embeddings(fields: dict[str, Any], param: str) -> None:
    err = error_of(parse_embeddings, embeddings(**fields))
    assert where(err) == (param, 400, "invalid_value", "invalid_request_error")


def test_too_many_inputs_message_names_the_limit() -> None:
    err = error_of(parse_embeddings, embeddings(input=["x"] * (MAX_EMBEDDING_INPUTS + 1)))
    assert str(err) == f"at most {MAX_EMBEDDING_INPUTS} inputs per request"


# --- no input makes a parser fail with anything but ApiError -------------------------------------

FIELDS = [
    "model",
    "messages",
    "role",
    "content",
    "type",
    "text",
    "prompt",
    "input",
    "encoding_format",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "stop",
    "seed",
    "n",
    "stream",
    "stream_options",
    "include_usage",
]
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=8)
    | st.sampled_from(["user", "system", "developer", "assistant", "text", "float", "base64"]),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=4), children, max_size=6)
    ),
    max_leaves=10,
)

# Bodies shaped like requests, so that every field, message and content part is reached with
# arbitrary values rather than only by luck.
content_parts = st.lists(
    st.fixed_dictionaries({}, optional={"type": json_values, "text": json_values}) | json_values,
    max_size=3,
)
shaped_messages = st.lists(
    st.fixed_dictionaries(
        {}, optional={"role": json_values, "content": json_values | content_parts}
    )
    | json_values,
    max_size=3,
)
shaped_bodies = st.fixed_dictionaries(
    {},
    optional={name: json_values for name in FIELDS if name not in ("messages", "stream_options")}
    | {
        "messages": shaped_messages,
        "stream_options": st.fixed_dictionaries({}, optional={"include_usage": json_values})
        | json_values,
    },
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example({"model": "m", "messages": [{"role": ["user"], "content": "x"}]})
@example({"model": "m", "messages": [{"role": {}, "content": "x"}]})
@given(body=json_values | shaped_bodies)
def test_parsers_raise_only_api_errors(body: object) -> None:
    for parse in (parse_chat, parse_completion, parse_embeddings):
        try:
            parse(body)
        except ApiError as err:
            assert err.status == 400
            assert err.code in {"invalid_json", "invalid_value", "unsupported_value"}

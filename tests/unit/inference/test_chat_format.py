"""Prompt formatting, stop-sequence scanning and the token budget of the llama.cpp backend."""

import itertools
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fpai_node.inference.answer import StopScanner as _StopScanner
from fpai_node.inference.answer import overlap as _overlap
from fpai_node.inference.answer import token_budget
from fpai_node.inference.base import ChatMessage, ContextLengthExceeded
from fpai_node.inference.chat_format import (
    FormattedPrompt,
    chatml_prompt,
    formatter_for,
    gemma_prompt,
)


def system(text: str) -> ChatMessage:
    return ChatMessage("system", text)


def user(text: str) -> ChatMessage:
    return ChatMessage("user", text)


def assistant(text: str) -> ChatMessage:
    return ChatMessage("assistant", text)


# --- Gemma -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("messages", "prompt"),
    [
        (
            [user("Hi")],
            "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n",
        ),
        (
            [system("Be brief."), user("Hi")],
            "<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\n",
        ),
        (
            [system("One."), system("Two."), user("Hi")],
            "<start_of_turn>user\nOne.\n\nTwo.\n\nHi<end_of_turn>\n<start_of_turn>model\n",
        ),
        (
            [user("Hi"), assistant("Hello!"), user("How are you?")],
            "<start_of_turn>user\nHi<end_of_turn>\n"
            "<start_of_turn>model\nHello!<end_of_turn>\n"
            "<start_of_turn>user\nHow are you?<end_of_turn>\n"
            "<start_of_turn>model\n",
        ),
        (
            [system("S"), user("Hi"), assistant("Hello!"), user("Bye")],
            "<start_of_turn>user\nS\n\nHi<end_of_turn>\n"
            "<start_of_turn>model\nHello!<end_of_turn>\n"
            "<start_of_turn>user\nBye<end_of_turn>\n"
            "<start_of_turn>model\n",
        ),
        (
            [system("You are a poet.")],
            "<start_of_turn>user\nYou are a poet.<end_of_turn>\n<start_of_turn>model\n",
        ),
        (
            [user("")],
            "<start_of_turn>user\n<end_of_turn>\n<start_of_turn>model\n",
        ),
    ],
)
def test_gemma_prompt(messages: list[ChatMessage], prompt: str) -> None:
    assert gemma_prompt(messages) == FormattedPrompt(prompt, ("<end_of_turn>",))


def test_gemma_system_text_is_not_dropped_when_the_model_speaks_first() -> None:
    formatted = gemma_prompt([system("Answer in French."), assistant("Bonjour !"), user("Hi")])
    assert "Answer in French." in formatted.prompt
    assert formatted.prompt.endswith("<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n")


# --- ChatML ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("messages", "prompt"),
    [
        (
            [user("Hi")],
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
        ),
        (
            [system("Be brief."), user("Hi"), assistant("Hello!"), user("Bye")],
            "<|im_start|>system\nBe brief.<|im_end|>\n"
            "<|im_start|>user\nHi<|im_end|>\n"
            "<|im_start|>assistant\nHello!<|im_end|>\n"
            "<|im_start|>user\nBye<|im_end|>\n"
            "<|im_start|>assistant\n",
        ),
        (
            [system("S")],
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>assistant\n",
        ),
    ],
)
def test_chatml_prompt(messages: list[ChatMessage], prompt: str) -> None:
    assert chatml_prompt(messages) == FormattedPrompt(prompt, ("<|im_end|>",))


# --- choosing a formatter (fallbacks only need the metadata) --------------------------------------


@pytest.mark.parametrize(
    ("metadata", "formatter", "name"),
    [
        ({"general.architecture": "gemma3"}, gemma_prompt, "gemma"),
        ({"general.architecture": "gemma"}, gemma_prompt, "gemma"),
        ({"general.architecture": "gemma3", "tokenizer.chat_template": ""}, gemma_prompt, "gemma"),
        ({"general.architecture": "llama"}, chatml_prompt, "chatml"),
        ({}, chatml_prompt, "chatml"),
    ],
)
def test_formatter_fallbacks(metadata: dict[str, str], formatter: Any, name: str) -> None:
    assert formatter_for(SimpleNamespace(metadata=metadata)) == (formatter, name)  # type: ignore[arg-type]


def test_formatter_uses_the_gguf_template() -> None:
    template = (
        "{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}[assistant]{{ eos_token }}"
    )
    llm = SimpleNamespace(
        metadata={"tokenizer.chat_template": template, "general.architecture": "gemma3"},
        token_eos=lambda: -1,
        token_bos=lambda: -1,
    )
    formatter, name = formatter_for(llm)  # type: ignore[arg-type]
    assert name == "gguf-template"
    formatted = formatter([system("S"), user("Hi")])
    assert formatted.prompt == "[system]S[user]Hi[assistant]"
    assert all(isinstance(s, str) for s in formatted.stop)


# --- StopScanner -------------------------------------------------------------------------------


def test_stop_split_across_feeds_is_never_emitted() -> None:
    scanner = _StopScanner(["<end>"])
    assert scanner.feed(b"Hello <e") == ("Hello ", False)
    assert scanner.feed(b"n") == ("", False)
    assert scanner.feed(b"d> and more") == ("", True)
    assert scanner.flush(stopped=True) == ""


def test_text_before_a_stop_in_one_feed_is_emitted() -> None:
    scanner = _StopScanner(["<end>"])
    assert scanner.feed(b"abc<end>def") == ("abc", True)
    assert scanner.flush(stopped=True) == ""


def test_held_prefix_is_released_when_the_text_diverges() -> None:
    scanner = _StopScanner(["<end>"])
    assert scanner.feed(b"a <en") == ("a ", False)
    assert scanner.feed(b"try>") == ("<entry>", False)
    assert scanner.feed(b" <") == (" ", False)
    assert scanner.feed(b"<") == ("<", False)  # the older '<' can no longer start '<end>'
    assert scanner.flush(stopped=False) == "<"


def test_text_without_a_possible_stop_passes_straight_through() -> None:
    scanner = _StopScanner(["<end>"])
    assert scanner.feed(b"plain words") == ("plain words", False)
    assert scanner.flush(stopped=False) == ""


def test_multibyte_character_split_across_feeds() -> None:
    scanner = _StopScanner(["<end>"])
    assert scanner.feed(b"caf\xc3") == ("caf", False)
    assert scanner.feed(b"\xa9 \xe2\x82") == ("\u00e9 ", False)
    assert scanner.feed(b"\xac!") == ("\u20ac!", False)
    assert scanner.feed(b"\xf0\x9f") == ("", False)
    assert scanner.feed(b"\x98\x80") == ("\U0001f600", False)
    assert scanner.flush(stopped=False) == ""


def test_multibyte_stop_sequence_split_inside_a_character() -> None:
    stop = "\u00bb\u00bb"  # »»
    scanner = _StopScanner([stop])
    data = ("x" + stop + "y").encode()
    assert scanner.feed(data[:2]) == ("x", False)  # 'x' and half of the first '»'
    assert scanner.feed(data[2:4]) == ("", False)  # '»' and half of the second: held
    assert scanner.feed(data[4:]) == ("", True)
    assert scanner.flush(stopped=True) == ""


def test_flush_without_stop_returns_the_held_text() -> None:
    scanner = _StopScanner(["<end>"])
    assert scanner.feed(b"answer <en") == ("answer ", False)
    assert scanner.flush(stopped=False) == "<en"
    assert scanner.flush(stopped=False) == ""


def test_flush_after_stop_returns_nothing_even_when_text_was_held() -> None:
    scanner = _StopScanner(["<end>"])
    assert scanner.feed(b"answer <en") == ("answer ", False)
    assert scanner.flush(stopped=True) == ""


def test_flush_of_an_incomplete_character_replaces_it() -> None:
    scanner = _StopScanner(["<end>"])
    assert scanner.feed(b"ok\xe2\x82") == ("ok", False)
    assert scanner.flush(stopped=False) == "\ufffd"


def test_earliest_of_several_stops_wins() -> None:
    scanner = _StopScanner(["STOP", "END"])
    assert scanner.feed(b"one END two STOP three") == ("one ", True)
    scanner = _StopScanner(["STOP", "END"])
    assert scanner.feed(b"one ST") == ("one ", False)
    assert scanner.feed(b"OP two END") == ("", True)


def test_several_stops_hold_back_the_longest_possible_start() -> None:
    scanner = _StopScanner(["\n\n", "</s>"])
    assert scanner.feed(b"a\n") == ("a", False)
    assert scanner.feed(b"b</") == ("\nb", False)
    assert scanner.feed(b"s") == ("", False)
    assert scanner.feed(b">") == ("", True)


def test_empty_stops_are_ignored() -> None:
    scanner = _StopScanner(["", ""])
    assert scanner.feed(b"anything") == ("anything", False)
    scanner = _StopScanner([])
    assert scanner.feed(b"<end>") == ("<end>", False)
    assert scanner.flush(stopped=False) == ""


@pytest.mark.parametrize(
    ("text", "stop", "size"),
    [
        ("abc<e", "<end>", 2),
        ("abc<", "<end>", 1),
        ("abc<end", "<end>", 4),
        ("abc", "<end>", 0),
        ("<end>", "<end>", 0),  # a whole stop is a match, not an overlap
        ("", "<end>", 0),
        ("aaa", "aab", 2),
        ("x<", "<", 0),
        ("ab", "abab", 2),
        ("aba", "abab", 3),
    ],
)
def test_overlap(text: str, stop: str, size: int) -> None:
    assert _overlap(text, stop) == size


def _scan(data: bytes, stop: str, cuts: list[int]) -> str:
    scanner = _StopScanner([stop])
    out: list[str] = []
    stopped = False
    bounds = [0, *sorted(cuts), len(data)]
    for start, end in itertools.pairwise(bounds):
        ready, stopped = scanner.feed(data[start:end])
        out.append(ready)
        if stopped:
            break
    out.append(scanner.flush(stopped=stopped))
    return "".join(out)


# Generated text is what a model's bytes decode to: no lone surrogates (category Cs).
ALPHABET = st.sampled_from("ab<>/\n \u00e9\u20ac\U0001f600") | st.characters(
    exclude_categories=["Cs"]
)


@settings(max_examples=300, deadline=None)
@given(
    head=st.text(ALPHABET, max_size=20),
    stop=st.text(ALPHABET, min_size=1, max_size=5),
    with_stop=st.booleans(),
    tail=st.text(ALPHABET, max_size=20),
    data=st.data(),
)
def test_emitted_text_is_the_text_before_the_first_stop(
    head: str, stop: str, with_stop: bool, tail: str, data: st.DataObject
) -> None:
    text = head + stop + tail if with_stop else head + tail
    encoded = text.encode()
    cuts = data.draw(st.lists(st.integers(0, len(encoded)), max_size=len(encoded) + 1))
    first = text.find(stop)
    expected = text if first < 0 else text[:first]
    assert _scan(encoded, stop, cuts) == expected


# --- token_budget ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prompt_tokens", "max_tokens", "budget"),
    [
        (40, None, 60),
        (0, None, 100),
        (99, None, 1),
        (40, 10, 10),
        (40, 60, 60),  # exactly fills the context
        (99, 1, 1),
        (1, 99, 99),
    ],
)
def test_budget_within_the_context(prompt_tokens: int, max_tokens: int | None, budget: int) -> None:
    assert token_budget(prompt_tokens, max_tokens, 100, "tiny") == budget


@pytest.mark.parametrize(
    ("prompt_tokens", "max_tokens"),
    [(100, None), (100, 1), (150, None), (40, 61), (99, 2), (1, 100), (0, 101)],
)
def test_budget_beyond_the_context(prompt_tokens: int, max_tokens: int | None) -> None:
    with pytest.raises(ContextLengthExceeded) as info:
        token_budget(prompt_tokens, max_tokens, 100, "tiny-model")
    message = str(info.value)
    assert "tiny-model" in message
    assert str(prompt_tokens) in message and "100" in message
    assert (info.value.status, info.value.code) == (400, "context_length_exceeded")

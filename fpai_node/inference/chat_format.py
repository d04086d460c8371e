"""Turning chat messages into a prompt: the GGUF's own template, or a correct Gemma fallback.

llama-cpp-python falls back to the llama-2 format when a GGUF carries no chat template; Gemma
models (the bundled one among them) then get prompts they were never trained on. Gemma's
official template has no system role: it prepends the system text to the first user turn.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from llama_cpp import Llama
from llama_cpp.llama_chat_format import Jinja2ChatFormatter

from fpai_node.inference.base import ChatMessage


@dataclass(frozen=True, slots=True)
class FormattedPrompt:
    prompt: str
    stop: tuple[str, ...]


ChatFormatter = Callable[[Sequence[ChatMessage]], FormattedPrompt]


def gemma_prompt(messages: Sequence[ChatMessage]) -> FormattedPrompt:
    """Gemma's official template: no system role; system text opens the first turn, whoever
    speaks it."""
    system = "\n\n".join(m.content for m in messages if m.role == "system")
    turns = [m for m in messages if m.role != "system"]
    parts: list[str] = []
    for index, message in enumerate(turns):
        prefix = f"{system}\n\n" if system and index == 0 else ""
        role = "model" if message.role == "assistant" else "user"
        parts.append(f"<start_of_turn>{role}\n{prefix}{message.content}<end_of_turn>\n")
    if system and not turns:
        parts.append(f"<start_of_turn>user\n{system}<end_of_turn>\n")
    parts.append("<start_of_turn>model\n")
    return FormattedPrompt("".join(parts), ("<end_of_turn>",))


def chatml_prompt(messages: Sequence[ChatMessage]) -> FormattedPrompt:
    """The generic fallback for models with neither a template nor a known family."""
    body = "".join(f"<|im_start|>{m.role}\n{m.content}<|im_end|>\n" for m in messages)
    return FormattedPrompt(body + "<|im_start|>assistant\n", ("<|im_end|>",))


def formatter_for(llm: Llama) -> tuple[ChatFormatter, str]:
    """The formatter for a loaded model and a name for logs: the template in its metadata if
    any, else a fallback chosen by architecture."""
    template = llm.metadata.get("tokenizer.chat_template")
    if template:
        jinja = Jinja2ChatFormatter(
            template=template,
            eos_token=_token_text(llm, llm.token_eos()),
            bos_token=_token_text(llm, llm.token_bos()),
        )

        def from_template(messages: Sequence[ChatMessage]) -> FormattedPrompt:
            plain = [{"role": m.role, "content": m.content} for m in messages]
            response = jinja(messages=cast(Any, plain))
            stop = response.stop
            stops = (stop,) if isinstance(stop, str) else tuple(stop or ())
            return FormattedPrompt(response.prompt, stops)

        return from_template, "gguf-template"
    if llm.metadata.get("general.architecture", "").startswith("gemma"):
        return gemma_prompt, "gemma"
    return chatml_prompt, "chatml"


def _token_text(llm: Llama, token: int) -> str:
    return "" if token < 0 else llm.detokenize([token], special=True).decode("utf-8", "replace")

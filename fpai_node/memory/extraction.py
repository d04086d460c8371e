"""`infer=true`: ask a chat model for the facts worth remembering in a conversation. Pure: the
prompt and the parsing; the caller sends the prompt through the router.

Mem0 users lose memories when the model's JSON does not parse and the pipeline drops them; here a
failure is never silent: the caller stores the raw text instead and says so.
"""

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from fpai_node.memory.operations import MAX_MEMORY_BYTES

MAX_FACTS = 32  # facts kept from one extraction; a conversation turn rarely holds more than a few
EXTRACTION_MAX_TOKENS = 512  # room for MAX_FACTS short sentences as JSON
_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)

SYSTEM_PROMPT = (
    "You extract facts worth remembering about the user from a conversation: preferences, "
    "personal details, plans, decisions. Answer only with JSON of the form "
    '{"facts": ["fact one", "fact two"]}, each fact one short sentence in the language of the '
    'conversation. If nothing is worth remembering, answer {"facts": []}.'
)


@dataclass(frozen=True, slots=True)
class Message:
    role: str
    content: str


def extraction_messages(conversation: Sequence[Message]) -> list[dict[str, str]]:
    """The chat request's messages: the instructions, then the conversation as one text."""
    transcript = "\n".join(f"{m.role}: {m.content}" for m in conversation)
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": f"Conversation:\n{transcript}\n\nJSON:"},
    ]


class ExtractionFailed(ValueError):
    """The model's answer held no usable list of facts."""


def parse_facts(answer: str) -> list[str]:
    """The facts in a model's answer: JSON `{"facts": [...]}` (or a bare list), possibly in a
    code fence or surrounded by text. Raises ExtractionFailed when there is no such JSON."""
    candidates = [*_FENCE.findall(answer), answer]
    for text in candidates:
        for start, end in (("{", "}"), ("[", "]")):
            first, last = text.find(start), text.rfind(end)
            if first == -1 or last <= first:
                continue
            try:
                value = json.loads(text[first : last + 1])
            except (ValueError, RecursionError):
                continue
            facts = value.get("facts") if isinstance(value, dict) else value
            if isinstance(facts, list):
                kept = [
                    f.strip()
                    for f in facts
                    if isinstance(f, str) and f.strip() and len(f.encode()) <= MAX_MEMORY_BYTES
                ]
                return list(dict.fromkeys(kept))[:MAX_FACTS]
    raise ExtractionFailed("the model's answer holds no JSON list of facts")

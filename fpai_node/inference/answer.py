"""The pure parts of an answer: the token budget a request gets and the stop-sequence scanner."""

import codecs
from collections.abc import Sequence

from fpai_node.inference.base import ContextLengthExceeded


def token_budget(prompt_tokens: int, max_tokens: int | None, context: int, model_id: str) -> int:
    """OpenAI semantics: a prompt plus max_tokens beyond the context is a 400, not a silent cut."""
    room = context - prompt_tokens
    if room <= 0:
        raise ContextLengthExceeded(
            f"the prompt has {prompt_tokens} tokens; model {model_id} has a context of {context}"
        )
    if max_tokens is None:
        return room
    if max_tokens > room:
        raise ContextLengthExceeded(
            f"the prompt ({prompt_tokens} tokens) plus max_tokens ({max_tokens}) exceeds the "
            f"context of model {model_id} ({context} tokens)"
        )
    return max_tokens


class StopScanner:
    """Decodes token bytes incrementally (a UTF-8 character may span tokens) and holds back any
    tail that could be the start of a stop sequence, so a stop sequence is never emitted."""

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = [s for s in stops if s]
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._pending = ""

    def feed(self, piece: bytes) -> tuple[str, bool]:
        self._pending += self._decoder.decode(piece)
        # The stop that completes first wins, as it would token by token: chunking never matters.
        hits = [(i + len(s), i) for s in self._stops if (i := self._pending.find(s)) >= 0]
        if hits:
            ready, self._pending = self._pending[: min(hits)[1]], ""
            return ready, True
        keep = max((overlap(self._pending, s) for s in self._stops), default=0)
        cut = len(self._pending) - keep
        ready, self._pending = self._pending[:cut], self._pending[cut:]
        return ready, False

    def flush(self, *, stopped: bool) -> str:
        """What is still held back once generation ended; nothing after a stop sequence."""
        rest = "" if stopped else self._pending + self._decoder.decode(b"", final=True)
        self._pending = ""
        return rest


def overlap(text: str, stop: str) -> int:
    """Length of the longest suffix of `text` that is a proper prefix of `stop`."""
    for size in range(min(len(text), len(stop) - 1), 0, -1):
        if text.endswith(stop[:size]):
            return size
    return 0

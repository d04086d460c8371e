"""How fast each peer answers, as this node measured it, and the deadline a forwarded request's
first event gets from it (specs/0006-routing.md FWD-8). Pure: times come in as arguments.

A peer that takes a request and never answers would otherwise hold it for the whole read
timeout; an honest peer is slow for a reason this node can see: a long prompt, a queue."""

from dataclasses import dataclass

# FWD-8: twice the 5 s connect timeout, so a peer that cannot be reached fails as unreachable
# (a 10 s cooldown), not as a black hole (a demotion); a busy loop or a collection fits too
FIRST_EVENT_MIN_S = 10.0
FIRST_EVENT_MARGIN = 4.0  # FWD-8: four times the expected wait before giving up on a peer
# FWD-8: until measured, a peer is taken for a large model on a CPU: 20 prompt tokens a second,
# and 30 s for each request ahead in its queue
UNMEASURED_MS_PER_PROMPT_TOKEN = 50.0
UNMEASURED_REQUEST_MS = 30_000.0
MIN_PROMPT_TOKENS = 16  # a first event costs a few tokens' time, however short the prompt
WEIGHT = 0.2  # of the newest measurement in a moving average


@dataclass(slots=True)
class Pace:
    """Moving averages of one peer's first-event time per prompt token (queueing included, so
    an overestimate) and of its whole requests' time."""

    ms_per_prompt_token: float | None = None
    request_ms: float | None = None

    def first_event(self, ms: float, prompt_tokens: int) -> None:
        per_token = ms / max(prompt_tokens, MIN_PROMPT_TOKENS)
        self.ms_per_prompt_token = _average(self.ms_per_prompt_token, per_token)

    def finished(self, ms: float) -> None:
        self.request_ms = _average(self.request_ms, ms)


def first_event_deadline_s(
    pace: Pace | None, prompt_tokens: int, queue: int, ceiling_s: float
) -> float:
    """FWD-8: the margin times the expected wait (the prompt at the peer's measured pace,
    plus a measured request for each one ahead of it), at least FIRST_EVENT_MIN_S and at most
    `ceiling_s`."""
    per_token = UNMEASURED_MS_PER_PROMPT_TOKEN
    request = UNMEASURED_REQUEST_MS
    if pace is not None:
        per_token = pace.ms_per_prompt_token or per_token
        request = pace.request_ms or request
    expected_ms = per_token * max(prompt_tokens, MIN_PROMPT_TOKENS) + request * max(queue, 0)
    return min(ceiling_s, max(FIRST_EVENT_MIN_S, FIRST_EVENT_MARGIN * expected_ms / 1000))


def _average(previous: float | None, value: float) -> float:
    return value if previous is None else previous + WEIGHT * (value - previous)

"""How fast each peer answers, as this node measured it, and the deadlines a forwarded request's
first event and each later one get from it (specs/0006-routing.md FWD-8, FWD-9). Pure: times
come in as arguments.

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
# FWD-9: after the first event, ten times the peer's usual gap between events, and at least
# 5 s: about the time gossip takes to declare a cut-off peer dead, and far above a live
# server's pauses (a collection, a batch taking in a prompt); until measured, a large model on
# a CPU: one token a second
EVENT_GAP_MARGIN = 10.0
EVENT_GAP_MIN_S = 5.0
UNMEASURED_EVENT_GAP_MS = 1_000.0
# FWD-9: a batching server takes a newly admitted prompt in the same step as its running
# streams' next tokens, up to 2,048 prompt tokens a step (llama.cpp's default batch), so a
# stream may wait that long at the peer's measured prompt pace
BATCH_PROMPT_TOKENS = 2_048
WEIGHT = 0.2  # of the newest measurement in a moving average


@dataclass(slots=True)
class Pace:
    """Moving averages of one peer's first-event time per prompt token (queueing included, so
    an overestimate) and of its whole requests' time."""

    ms_per_prompt_token: float | None = None
    request_ms: float | None = None
    event_gap_ms: float | None = None  # between two events of one answer

    def first_event(self, ms: float, prompt_tokens: int) -> None:
        per_token = ms / max(prompt_tokens, MIN_PROMPT_TOKENS)
        self.ms_per_prompt_token = _average(self.ms_per_prompt_token, per_token)

    def finished(self, ms: float) -> None:
        self.request_ms = _average(self.request_ms, ms)

    def event_gap(self, ms: float) -> None:
        self.event_gap_ms = _average(self.event_gap_ms, ms)


def event_gap_deadline_s(pace: Pace | None, ceiling_s: float) -> float:
    """FWD-9: how long a forwarded answer may go without an event once it has started: the
    margin times the peer's usual gap, or one batch of another request's prompt at its
    measured prompt pace, whichever is longer; at least EVENT_GAP_MIN_S, at most `ceiling_s`."""
    gap_ms = UNMEASURED_EVENT_GAP_MS
    prompt_batch_ms = 0.0
    if pace is not None:
        gap_ms = pace.event_gap_ms if pace.event_gap_ms is not None else gap_ms
        if pace.ms_per_prompt_token is not None:
            prompt_batch_ms = pace.ms_per_prompt_token * BATCH_PROMPT_TOKENS
    expected_s = max(EVENT_GAP_MARGIN * gap_ms, prompt_batch_ms) / 1000
    return min(ceiling_s, max(EVENT_GAP_MIN_S, expected_s))


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

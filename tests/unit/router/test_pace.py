"""FWD-8: the first-event deadline from a peer's measured pace, its queue and the prompt;
FWD-9: the deadline between later events from its measured gaps."""

import pytest

from fpai_node.router.pace import (
    BATCH_PROMPT_TOKENS,
    EVENT_GAP_MIN_S,
    FIRST_EVENT_MARGIN,
    FIRST_EVENT_MIN_S,
    UNMEASURED_MS_PER_PROMPT_TOKEN,
    UNMEASURED_REQUEST_MS,
    Pace,
    event_gap_deadline_s,
    first_event_deadline_s,
)

CEILING = 120.0


def test_an_unmeasured_peer_is_taken_for_a_slow_one() -> None:
    short = first_event_deadline_s(None, 10, 0, CEILING)
    assert short == max(FIRST_EVENT_MIN_S, FIRST_EVENT_MARGIN * 16 * 0.05)
    long_prompt = first_event_deadline_s(None, 400, 0, CEILING)
    assert long_prompt == pytest.approx(
        FIRST_EVENT_MARGIN * 400 * UNMEASURED_MS_PER_PROMPT_TOKEN / 1000
    )
    queued = first_event_deadline_s(None, 10, 1, CEILING)
    assert queued == CEILING  # 4 x (0.8 s + 30 s) is above the read timeout
    assert UNMEASURED_REQUEST_MS == 30_000.0


def test_a_fast_peer_gets_the_floor_and_a_long_prompt_its_measured_pace() -> None:
    pace = Pace()
    for _ in range(20):
        pace.first_event(48.0, 24)  # 2 ms a prompt token
        pace.finished(1_500.0)
    assert pace.ms_per_prompt_token == pytest.approx(2.0)
    assert first_event_deadline_s(pace, 24, 0, CEILING) == FIRST_EVENT_MIN_S
    assert first_event_deadline_s(pace, 4_000, 0, CEILING) == pytest.approx(32.0)
    assert first_event_deadline_s(pace, 24, 3, CEILING) == pytest.approx(
        FIRST_EVENT_MARGIN * (2.0 * 24 + 3 * 1_500.0) / 1000
    )


def test_the_average_moves_a_fifth_of_the_way_to_each_measurement() -> None:
    pace = Pace()
    pace.first_event(160.0, 10)  # counted as 16 tokens: 10 ms each
    pace.first_event(320.0, 16)  # 20 ms each
    assert pace.ms_per_prompt_token == pytest.approx(12.0)


def test_the_gap_deadline_is_ten_times_the_peers_usual_gap_within_bounds() -> None:
    """FWD-9: unmeasured, a token a second (10 s); then ten times the moving average of the
    gaps, never under EVENT_GAP_MIN_S nor over the ceiling."""
    assert event_gap_deadline_s(None, CEILING) == pytest.approx(10.0)
    pace = Pace()
    assert event_gap_deadline_s(pace, CEILING) == pytest.approx(10.0)
    pace.event_gap(20.0)  # a fast stream: the floor
    assert event_gap_deadline_s(pace, CEILING) == EVENT_GAP_MIN_S
    for _ in range(50):
        pace.event_gap(2_000.0)  # a big model on a CPU
    assert event_gap_deadline_s(pace, CEILING) == pytest.approx(20.0, rel=0.01)
    pace.event_gap(60_000.0)
    assert event_gap_deadline_s(pace, CEILING) == CEILING


def test_the_gap_deadline_leaves_room_for_a_batch_of_another_requests_prompt() -> None:
    """FWD-9, review finding: a batching server (continuous batching) evaluates a newly
    admitted prompt in the same step as the running streams' next tokens; on a CPU a
    2,048-token batch outlasts the 5 s floor. The measured prompt pace sets a second bound."""
    pace = Pace(event_gap_ms=100.0)  # a CPU server: ten times that is the 5 s floor
    assert event_gap_deadline_s(pace, CEILING) == EVENT_GAP_MIN_S
    pace.first_event(ms=160.0, prompt_tokens=16)  # 10 ms a prompt token
    assert event_gap_deadline_s(pace, CEILING) == pytest.approx(BATCH_PROMPT_TOKENS * 0.010)

"""Replay guard (specs/0002-wire.md REPLAY-1..REPLAY-5) and sequence numbers (SEQ-1)."""

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fpai_node.wire.errors import Replayed, StaleSequence
from fpai_node.wire.messages import SequenceCounter
from fpai_node.wire.replay import DEFAULT_MAX_SENDERS, DEFAULT_WINDOW, ReplayGuard

NOW = 1_767_225_600_000
LIFETIME = 60_000
A, B, C, D = "sender-a", "sender-b", "sender-c", "sender-d"


def accept(guard: ReplayGuard, sender: str, seq: int, ts: int = NOW, now: int = NOW) -> None:
    guard.accept(sender, seq, ts, ts + LIFETIME, now)


def test_defaults_match_the_spec() -> None:
    assert DEFAULT_WINDOW == 64
    assert DEFAULT_MAX_SENDERS == 16_384


@pytest.mark.parametrize(("window", "max_senders"), [(0, 1), (1, 0), (-1, 5)])
def test_window_and_max_senders_must_be_positive(window: int, max_senders: int) -> None:
    with pytest.raises(ValueError):
        ReplayGuard(window=window, max_senders=max_senders)


# --- window (REPLAY-1, REPLAY-2) --------------------------------------------------------------


def test_in_window_reordering_is_accepted_exactly_once() -> None:
    guard = ReplayGuard()
    for seq in (10, 7, 9, 8, 12, 11, 3):
        accept(guard, A, seq)
    for seq in (10, 7, 9, 8, 12, 11, 3):
        with pytest.raises(Replayed) as info:
            accept(guard, A, seq)
        assert info.value.reason == "replay"
    accept(guard, A, 4)  # never seen, still in the window
    assert len(guard) == 1


def test_duplicate_of_the_highest_is_a_replay() -> None:
    guard = ReplayGuard()
    accept(guard, A, 5)
    with pytest.raises(Replayed):
        accept(guard, A, 5)
    with pytest.raises(Replayed):
        accept(guard, A, 5, ts=NOW + 1, now=NOW + 1)


def test_below_the_window_is_stale() -> None:
    guard = ReplayGuard()
    accept(guard, A, 100)
    accept(guard, A, 100 - DEFAULT_WINDOW + 1)  # offset 63: the oldest slot of the window
    for seq in (100 - DEFAULT_WINDOW, 10, 0):
        with pytest.raises(StaleSequence) as info:
            accept(guard, A, seq)
        assert info.value.reason == "stale_sequence"


def test_a_jump_of_exactly_window_clears_every_slot() -> None:
    guard = ReplayGuard(window=8)
    accept(guard, A, 1)
    accept(guard, A, 9)  # shift 8 == window
    with pytest.raises(StaleSequence):
        accept(guard, A, 1)  # offset 8: below the window
    for seq in range(2, 9):  # offsets 7..1: in the window, never seen
        accept(guard, A, seq)
    for seq in range(2, 10):
        with pytest.raises(Replayed):
            accept(guard, A, seq)


def test_a_jump_of_window_minus_one_keeps_the_oldest_slot() -> None:
    guard = ReplayGuard(window=8)
    accept(guard, A, 1)
    accept(guard, A, 8)  # shift 7: seq 1 sits at offset 7, the last slot
    with pytest.raises(Replayed):
        accept(guard, A, 1)
    with pytest.raises(StaleSequence):
        accept(guard, A, 0)
    accept(guard, A, 2)


def test_the_window_slides_one_step_at_a_time() -> None:
    window = 8
    guard = ReplayGuard(window=window)
    for seq in range(0, 40, 2):  # only even numbers
        accept(guard, A, seq)
    highest = 38
    for seq in range(highest - window + 1, highest):
        if seq % 2:
            accept(guard, A, seq)
        else:
            with pytest.raises(Replayed):
                accept(guard, A, seq)
    with pytest.raises(StaleSequence):
        accept(guard, A, highest - window)
    accept(guard, A, highest + 1)
    with pytest.raises(StaleSequence):
        accept(guard, A, highest - window + 1)  # slid out with the new highest


def test_large_jumps_and_uint64_sequence_numbers() -> None:
    guard = ReplayGuard()
    accept(guard, A, 0)
    accept(guard, A, 2**64 - 1)
    accept(guard, A, 2**64 - 64)
    with pytest.raises(StaleSequence):
        accept(guard, A, 2**64 - 65)
    with pytest.raises(Replayed):
        accept(guard, A, 2**64 - 1)


def test_window_of_one_accepts_only_increasing_numbers() -> None:
    guard = ReplayGuard(window=1)
    accept(guard, A, 5)
    with pytest.raises(Replayed):
        accept(guard, A, 5)
    with pytest.raises(StaleSequence):
        accept(guard, A, 4)
    accept(guard, A, 7)
    with pytest.raises(StaleSequence):
        accept(guard, A, 6)


def test_senders_have_independent_windows() -> None:
    guard = ReplayGuard()
    accept(guard, A, 1000)
    accept(guard, B, 1)
    accept(guard, B, 2)
    with pytest.raises(Replayed):
        accept(guard, B, 1)
    accept(guard, A, 999)
    assert len(guard) == 2


def test_a_refused_message_does_not_change_the_window() -> None:
    guard = ReplayGuard(window=4)
    accept(guard, A, 10)
    with pytest.raises(StaleSequence):
        accept(guard, A, 6)
    with pytest.raises(Replayed):
        accept(guard, A, 10)
    accept(guard, A, 7)  # offset 3 from the unchanged highest 10


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 300), max_size=120), st.integers(1, 70))
def test_window_matches_a_reference_model(seqs: list[int], window: int) -> None:
    """Accepted iff not seen before and above highest - window; otherwise the right error."""
    guard = ReplayGuard(window=window)
    seen: set[int] = set()
    highest: int | None = None
    for seq in seqs:
        if highest is not None and seq <= highest - window:
            with pytest.raises(StaleSequence):
                accept(guard, A, seq)
        elif seq in seen:
            with pytest.raises(Replayed):
                accept(guard, A, seq)
        else:
            accept(guard, A, seq)
            seen.add(seq)
            highest = seq if highest is None else max(highest, seq)


# --- bounded memory (REPLAY-3, REPLAY-4, REPLAY-5) --------------------------------------------


def test_memory_is_bounded_at_max_senders() -> None:
    guard = ReplayGuard(max_senders=16)
    for i in range(200):
        accept(guard, f"s{i}", 1, ts=NOW + i, now=NOW + i)
        assert len(guard) == min(i + 1, 16)


def test_fully_expired_senders_are_pruned_without_raising_the_floor() -> None:
    guard = ReplayGuard(max_senders=2)
    guard.accept(A, 1, NOW, NOW + 1_000, NOW)
    guard.accept(B, 1, NOW + 10, NOW + 1_010, NOW + 10)
    later = NOW + 1_010  # every frame of A and B has expired (exp <= now)
    guard.accept(C, 1, later, later + 1_000, later)
    assert len(guard) == 1
    assert guard.floor_ms is None
    # A is forgotten: its old numbers (refused by VERIFY-9 in the envelope) no longer count here
    guard.accept(A, 1, later + 1, later + 1_001, later + 1)
    assert len(guard) == 2
    assert guard.floor_ms is None


def test_a_sender_is_pruned_only_when_its_latest_expiry_has_passed() -> None:
    guard = ReplayGuard(max_senders=1)
    guard.accept(A, 1, NOW, NOW + 100, NOW)
    guard.accept(A, 2, NOW, NOW + 5_000, NOW)  # extends A's expiry
    guard.accept(B, 1, NOW + 200, NOW + 1_200, NOW + 200)  # A still live at NOW+200: evicted
    assert guard.floor_ms == NOW
    assert len(guard) == 1


def test_eviction_of_a_live_sender_raises_the_floor_to_its_newest_timestamp() -> None:
    guard = ReplayGuard(max_senders=2)
    accept(guard, A, 1, ts=NOW)
    accept(guard, A, 2, ts=NOW + 50)
    accept(guard, B, 1, ts=NOW + 100)
    accept(guard, C, 1, ts=NOW + 20, now=NOW + 200)  # table full of live senders: A is LRU
    assert len(guard) == 2
    assert guard.floor_ms == NOW + 50
    # replays of A's accepted frames (ts <= floor) are refused although A is forgotten
    for seq, ts in ((1, NOW), (2, NOW + 50)):
        with pytest.raises(StaleSequence) as info:
            accept(guard, A, seq, ts=ts, now=NOW + 300)
        assert info.value.reason == "stale_sequence"
    # a fresh frame from a new sender stamped after the floor is accepted
    accept(guard, D, 1, ts=NOW + 51, now=NOW + 300)
    assert guard.floor_ms == NOW + 100  # D's arrival evicted B (ts NOW+100)
    # and so is a new frame from A, which comes back as a new sender
    accept(guard, A, 3, ts=NOW + 301, now=NOW + 301)


def test_known_senders_are_not_subject_to_the_floor() -> None:
    guard = ReplayGuard(max_senders=2)
    accept(guard, A, 1, ts=NOW)
    accept(guard, B, 1, ts=NOW + 100)
    accept(guard, C, 1, ts=NOW + 200, now=NOW + 200)  # evicts A, floor NOW
    assert guard.floor_ms == NOW
    accept(guard, C, 2, ts=NOW - 10, now=NOW + 200)  # C is known: only its window counts


def test_eviction_is_least_recently_used_not_least_recently_added() -> None:
    guard = ReplayGuard(max_senders=2)
    accept(guard, A, 1, ts=NOW)
    accept(guard, B, 1, ts=NOW + 1)
    accept(guard, A, 2, ts=NOW + 2)  # A becomes the most recently heard
    accept(guard, C, 1, ts=NOW + 3, now=NOW + 3)  # evicts B
    assert guard.floor_ms == NOW + 1
    with pytest.raises(Replayed):
        accept(guard, A, 2, ts=NOW + 2, now=NOW + 3)  # A's window survived
    with pytest.raises(StaleSequence):
        accept(guard, B, 1, ts=NOW + 1, now=NOW + 3)  # B's was dropped, the floor refuses it


def test_a_refused_message_does_not_refresh_recency() -> None:
    guard = ReplayGuard(max_senders=2)
    accept(guard, A, 5, ts=NOW)
    accept(guard, B, 1, ts=NOW + 1)
    with pytest.raises(Replayed):
        accept(guard, A, 5, ts=NOW, now=NOW + 2)
    accept(guard, C, 1, ts=NOW + 3, now=NOW + 3)  # A is still the least recently used
    assert guard.floor_ms == NOW
    with pytest.raises(Replayed):
        accept(guard, B, 1, ts=NOW + 1, now=NOW + 3)


def test_the_floor_never_decreases() -> None:
    guard = ReplayGuard(max_senders=1)
    accept(guard, A, 1, ts=NOW + 1_000)
    accept(guard, B, 1, ts=NOW + 2_000, now=NOW + 2_000)  # evicts A: floor NOW+1000
    assert guard.floor_ms == NOW + 1_000
    accept(guard, B, 2, ts=NOW + 1_500, now=NOW + 2_000)
    accept(guard, C, 1, ts=NOW + 2_500, now=NOW + 2_500)  # evicts B: floor its newest ts
    assert guard.floor_ms == NOW + 2_000


def test_an_evicted_sender_that_comes_back_cannot_replay_its_old_frames() -> None:
    """REPLAY-1 across eviction: the floor must keep covering a sender's forgotten frames even
    after a newer frame has made the guard remember that sender again."""
    guard = ReplayGuard(max_senders=1)
    accept(guard, A, 5, ts=NOW + 10)  # live until NOW + 10 + LIFETIME
    accept(guard, B, 1, ts=NOW + 20, now=NOW + 20)  # evicts A: floor NOW + 10
    assert guard.floor_ms == NOW + 10
    accept(guard, A, 6, ts=NOW + 30, now=NOW + 30)  # A is back (ts above the floor)
    # (A, 5) was accepted before and has not expired: it must not be accepted a second time
    with pytest.raises((Replayed, StaleSequence)):
        accept(guard, A, 5, ts=NOW + 10, now=NOW + 40)


def test_an_unknown_sender_at_time_zero_is_accepted_before_any_eviction() -> None:
    # REPLAY-4: the floor exists only once a live sender has been evicted.
    guard = ReplayGuard()
    guard.accept(A, 0, 0, 1, 0)
    assert len(guard) == 1


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 3), st.integers(0, 12), st.integers(0, 50)),
        min_size=1,
        max_size=80,
    ),
    st.integers(1, 4),
)
def test_no_pair_is_ever_accepted_twice(
    events: list[tuple[int, int, int]], max_senders: int
) -> None:
    """REPLAY-1 under eviction: frames all live (lifetime longer than the run), any order."""
    guard = ReplayGuard(window=8, max_senders=max_senders)
    accepted: dict[tuple[str, int], int] = {}
    now = NOW
    for sender_index, seq, ts_offset in events:
        now += 1
        sender = f"s{sender_index}"
        # the same (sender, seq) always carries the same ts, as the same signed frame would
        ts = NOW + accepted.get((sender, seq), ts_offset)
        try:
            guard.accept(sender, seq, ts, NOW + 10**6, now)
        except (Replayed, StaleSequence):
            continue
        assert (sender, seq) not in accepted
        accepted[(sender, seq)] = ts - NOW
        assert len(guard) <= max_senders


# --- SequenceCounter (SEQ-1) ------------------------------------------------------------------


def test_sequence_counter_starts_at_now_us_and_strictly_increases() -> None:
    now_us = NOW * 1_000 + 123
    counter = SequenceCounter(now_us)
    values = [counter.next() for _ in range(1_000)]
    assert values[0] == now_us
    assert values == list(range(now_us, now_us + 1_000))
    assert all(a < b for a, b in itertools.pairwise(values))


def test_a_restarted_counter_continues_above_the_previous_run() -> None:
    first = SequenceCounter(NOW * 1_000)
    last = max(first.next() for _ in range(500))
    restarted = SequenceCounter((NOW + 1) * 1_000)  # one millisecond later
    assert restarted.next() > last

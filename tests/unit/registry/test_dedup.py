"""The idempotency window (a trie of milliseconds) behaves exactly like a flat set of (id, at)
pairs."""

from hypothesis import given, settings
from hypothesis import strategies as st

from fpai_node.registry.dedup import DedupWindow

RETENTION_MS = 5_000  # a short window, so that ids are forgotten within a test


# Ids made of two halves from two patterns: a millisecond's ids side by side hold the other ids
# across their boundary (0...1... after 0...0... and before 1...1...), so a lookup that found a
# match anywhere but where an id starts would be caught here; two `at` values come often, so
# that one millisecond holds several ids.
HALVES = [bytes([i]) * 8 for i in range(2)]
IDS = st.tuples(st.sampled_from(HALVES), st.sampled_from(HALVES)).map(b"".join)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(IDS, st.integers(0, 40_000) | st.sampled_from([9_000, 9_001])), max_size=60)
)
def test_the_window_matches_a_flat_table(commands: list[tuple[bytes, int]]) -> None:
    """Commands arrive with clocks that jump back and forth, as proposers' clocks do."""
    window, flat = DedupWindow(), set()
    for key, at in commands:
        assert window.holds(key, at) == ((key, at) in flat)
        horizon = at - RETENTION_MS
        flat = {(k, t) for k, t in flat if t >= horizon} | {(key, at)}
        window = window.remember(key, at, horizon)
        assert set(window.pairs()) == flat and len(window) == len(flat)
        assert window.sorted_pairs() == sorted(flat)  # REG-11: by id, then at
        assert window.oldest == min((t for _, t in flat), default=None)
    assert DedupWindow.of(flat) == window

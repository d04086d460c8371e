"""The history checker must accept what a register can do and reject what it cannot."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fpai_node.testing.linearizability import (
    Operation,
    check,
    check_by_search,
    check_by_zones,
)


def w(value: object, start: float, end: float = math.inf) -> Operation:
    return Operation("write", value, start, end)


def r(value: object, start: float, end: float) -> Operation:
    return Operation("read", value, start, end)


def test_sequential_reads_see_the_last_write() -> None:
    assert check([w(1, 0, 1), r(1, 2, 3), w(2, 4, 5), r(2, 6, 7)]).linearizable


def test_a_stale_read_after_a_completed_write_is_a_violation() -> None:
    verdict = check([w(1, 0, 1), w(2, 2, 3), r(1, 4, 5)])
    assert not verdict.linearizable
    assert verdict.explored > 0


def test_a_read_concurrent_with_a_write_may_see_either_value() -> None:
    assert check([w(1, 0, 1), w(2, 2, 6), r(1, 3, 4)]).linearizable
    assert check([w(1, 0, 1), w(2, 2, 6), r(2, 3, 4)]).linearizable


def test_reads_cannot_go_back_in_time() -> None:
    """Once a read saw the new value, a later read may not see the old one."""
    history = [w(1, 0, 1), w(2, 2, 10), r(2, 3, 4), r(1, 5, 6)]
    assert not check(history).linearizable


def test_an_unknown_write_may_apply_late_or_never() -> None:
    assert check([w(1, 0, 1), w(2, 2), r(1, 5, 6)]).linearizable  # never applied
    assert check([w(1, 0, 1), w(2, 2), r(2, 5, 6)]).linearizable  # applied late
    assert check([w(1, 0, 1), w(2, 2), r(2, 5, 6), r(1, 7, 8)]).linearizable is False


def test_a_value_nobody_wrote_is_a_violation_explained() -> None:
    verdict = check([w(1, 0, 1), r(7, 2, 3)])
    assert not verdict.linearizable
    assert "never written" in verdict.detail


def test_the_initial_value_is_readable_before_any_write() -> None:
    assert check([r(None, 0, 1), w(1, 2, 3), r(1, 4, 5)]).linearizable
    assert not check([w(1, 0, 1), r(None, 2, 3)]).linearizable


def test_reads_without_an_answer_are_refused() -> None:
    with pytest.raises(ValueError, match="leave it out"):
        check([Operation("read", 1, 0.0)])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 3)), min_size=1, max_size=12))
def test_any_sequential_register_history_is_linearizable(steps: list[tuple[bool, int]]) -> None:
    """A history produced by a real register, one operation at a time, always passes."""
    value: object = None
    history = []
    for t, (is_write, v) in enumerate(steps):
        if is_write:
            value = v
            history.append(w(v, 2 * t, 2 * t + 1))
        else:
            history.append(r(value, 2 * t, 2 * t + 1))
    assert check(history).linearizable


@st.composite
def concurrent_histories(draw: st.DrawFn) -> list[Operation]:
    """Small histories of up to 7 overlapping operations with distinct written values: some
    linearizable, many not (reads return arbitrary written values or the initial one)."""
    count = draw(st.integers(1, 7))
    history = []
    for i in range(count):
        start = draw(st.integers(0, 20))
        end = start + draw(st.integers(1, 10))
        if draw(st.booleans()):
            unknown = draw(st.integers(0, 4)) == 0
            history.append(w(i, float(start), math.inf if unknown else float(end)))
        else:
            value = draw(st.one_of(st.none(), st.integers(0, count - 1)))
            history.append(r(value, float(start), float(end)))
    written = {op.value for op in history if op.kind == "write"}
    return [op for op in history if op.kind == "write" or op.value in written | {None}]


@settings(max_examples=400, deadline=None)
@given(concurrent_histories())
def test_zones_and_search_agree(history: list[Operation]) -> None:
    assert check_by_zones(history).linearizable == check_by_search(history).linearizable


def test_both_methods_judge_the_examples_alike() -> None:
    examples = [
        [w(1, 0, 1), w(2, 2, 3), r(1, 4, 5)],
        [w(1, 0, 1), w(2, 2, 6), r(1, 3, 4)],
        [w(1, 0, 1), w(2, 2, 10), r(2, 3, 4), r(1, 5, 6)],
        [w(1, 0, 1), w(2, 2), r(2, 5, 6), r(1, 7, 8)],
        [r(None, 0, 1), w(1, 2, 3), r(1, 4, 5)],
        [w(1, 0, 1), r(None, 2, 3)],
    ]
    for history in examples:
        assert check_by_zones(history).linearizable == check_by_search(history).linearizable


def test_a_large_history_is_checked_quickly() -> None:
    """Hundreds of operations from three clients, as the kill/restart test records."""
    history = []
    t = 0.0
    for i in range(600):
        history.append(w(i, t, t + 1.5))
        history.append(r(i, t + 1.6, t + 2.0))
        history.append(w(f"lost-{i}", t + 0.2))  # unknown outcome, never seen
        t += 2.5
    verdict = check(history)
    assert verdict.linearizable and verdict.explored == len(history)

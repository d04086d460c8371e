"""The supervisor's record of repairs under each autonomy mode (fpai_node/supervisor/actions.py)."""

import pytest

from fpai_node.supervisor.actions import (
    MAX_ATTEMPTS,
    QUIET_S,
    Action,
    ActionBook,
    ActionError,
    backoff_s,
)

KEY, KIND, SUBJECT, SUMMARY = "move_services:n1", "move_services", "n1", "move n1's services"


def ask(book: ActionBook, now: float, key: str = KEY) -> bool:
    return book.ask(key, KIND, SUBJECT, SUMMARY, now)


def never(action: Action) -> str | None:
    return None


def test_off_records_nothing_and_allows_nothing() -> None:
    book = ActionBook("off")
    assert not ask(book, 0.0) and not ask(book, 1.0)
    assert book.actions() == [] and book.version == 0


def test_autonomous_goes_ahead_at_once_and_records_it() -> None:
    book = ActionBook("autonomous")
    assert ask(book, 10.0) and ask(book, 10.5)
    [action] = book.actions()
    assert (action.state, action.attempts, action.kind, action.subject) == (
        "running",
        1,
        KIND,
        SUBJECT,
    )
    book.settle(10.5 + QUIET_S, lambda a: "n1's services are down")
    [done] = book.actions()
    assert (done.state, done.outcome) == ("done", "n1's services are down")


def test_supervised_waits_for_approval_then_goes_ahead_once() -> None:
    book = ActionBook("supervised")
    assert not ask(book, 0.0) and not ask(book, 1.0)
    [pending] = book.actions()
    assert pending.state == "pending" and pending.attempts == 0
    approved = book.approve(pending.id, 2.0)
    assert approved.state == "approved"
    assert ask(book, 2.5)
    assert book.get(pending.id).state == "running" and book.get(pending.id).attempts == 1
    assert len(book.actions()) == 1  # asked again: the same action, not a second one
    with pytest.raises(ActionError, match="running, not pending"):
        book.approve(pending.id, 3.0)


def test_a_rejected_repair_stays_refused_while_due_and_is_asked_anew_after() -> None:
    book = ActionBook("supervised")
    ask(book, 0.0)
    rejected = book.reject(book.actions()[0].id, 1.0)
    for t in (2.0, 5.0, 5.0 + QUIET_S - 1):
        assert not ask(book, t)
    assert [a.state for a in book.actions()] == ["rejected"]
    book.settle(5.0 + 2 * QUIET_S, never)  # not asked for QUIET_S: the key is free
    assert not ask(book, 100.0)
    assert [a.state for a in book.actions()] == ["pending", "rejected"]
    assert book.actions()[1].id == rejected.id


def test_a_pending_repair_nobody_asks_for_is_withdrawn() -> None:
    book = ActionBook("supervised")
    ask(book, 0.0)
    book.settle(QUIET_S - 0.1, never)
    assert book.actions()[0].state == "pending"
    book.settle(QUIET_S, never)
    assert (book.actions()[0].state, book.actions()[0].outcome) == ("withdrawn", "no longer needed")
    with pytest.raises(ActionError, match="withdrawn, not pending"):
        book.approve(book.actions()[0].id, QUIET_S + 1)


def test_a_failing_repair_backs_off_and_gives_up_without_looping() -> None:
    book = ActionBook("autonomous")
    now = 0.0
    assert ask(book, now)
    for attempt in range(1, MAX_ATTEMPTS):
        book.failed(KEY, "no quorum", now)
        action = book.actions()[0]
        assert action.retry_at == now + backoff_s(attempt)
        assert f"attempt {attempt} failed: no quorum" in (action.outcome or "")
        assert not ask(book, now + backoff_s(attempt) - 0.1)  # inside the backoff: no
        now += backoff_s(attempt)
        assert ask(book, now)
        assert book.actions()[0].attempts == attempt + 1
    book.failed(KEY, "no quorum", now)
    [failed] = book.actions()
    assert failed.state == "failed" and f"gave up after {MAX_ATTEMPTS}" in (failed.outcome or "")
    for t in range(1, 1000, 7):  # asked on and on: never a new action, never let through
        assert not ask(book, now + t * 0.1)
    assert len(book.actions()) == 1
    assert [backoff_s(n) for n in range(1, 6)] == [5.0, 10.0, 20.0, 40.0, 80.0]
    retried = book.approve(failed.id, now + 101)  # the operator may try again by hand
    assert retried.state == "approved" and ask(book, now + 102)


def test_a_restart_keeps_the_record_and_closes_what_was_open() -> None:
    book = ActionBook("supervised")
    ask(book, 0.0)
    ask(book, 0.0, key="replace_voter:n2")
    book.reject(book.actions()[0].id, 1.0)
    again = ActionBook("autonomous", reversed(book.actions()))
    states = [(a.key, a.state, a.outcome) for a in again.actions()]
    assert states == [
        ("replace_voter:n2", "rejected", "rejected"),
        (KEY, "withdrawn", "the node restarted"),
    ]
    assert ask(again, 5.0)
    assert again.actions()[0].id == "3"  # ids are never reused


def test_an_unknown_mode_or_action_is_refused() -> None:
    with pytest.raises(ValueError, match="autonomy must be one of"):
        ActionBook("sometimes")
    with pytest.raises(ActionError) as raised:
        ActionBook("supervised").approve("9", 0.0)
    assert raised.value.code == "unknown_action"


def test_a_repair_that_reports_is_not_ended_for_being_quiet() -> None:
    """A server restart takes minutes and asks once: only its own report ends it."""
    book = ActionBook("autonomous")
    assert book.ask(KEY, KIND, SUBJECT, SUMMARY, 0.0, reports=True)
    book.settle(10 * QUIET_S, never)
    assert book.actions()[0].state == "running"
    book.succeeded(KEY, "restarted", 10 * QUIET_S)
    assert (book.actions()[0].state, book.actions()[0].outcome) == ("done", "restarted")

"""Linearizable reads on the leader without a log entry: Raft's read index (specs/0005 RAFT-18).

The Raft thesis (section 6.4): a leader that has committed an entry of its own term takes its
commit index as the read's index, then makes sure it was still the leader after the read
arrived (a majority of the voters answered an `append_entries` it sent since), then answers
once it has applied up to that index. A leader deposed meanwhile by a newer one cannot get that
majority, so it never answers from a state a later write has overtaken.

pysyncobj's messages carry no round number, so "answered an `append_entries` sent after the
read arrived" is counted per connection: the transport counts the `append_entries` it sends on
each connection and the successful `next_index` answers it receives on it. A follower answers
each `append_entries` at most once, so once a connection has brought more successful answers
than there were `append_entries` on it when the read arrived, at least one of them answers one
sent after; on a connection opened after the read arrived, any success does. A follower answers
only `append_entries` of its own current term, so a success is a follower that still took this
leader's term. A round whose configuration changes before it is confirmed is given up (the
caller reads through the log instead): a voter added since has no mark to count from.

`ReadIndex` is kept by the Raft tick thread; `ask` may be called from any thread.
"""

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

ReadDone = Callable[[int | None], None]  # the index read at, or None: not (or no more) leader
# A round not confirmed by then is given up (the caller reads through the log): an
# append_entries that gets no success answer (a snapshot chunk, a refused probe) leaves its
# connection a success short for good, so with enough of those a round might never confirm.
ROUND_TIMEOUT_S = 1.0


@dataclass(frozen=True, slots=True)
class Mark:
    """A connection to a voter and how many `append_entries` had been sent on it."""

    connection: object | None  # None: not connected, so it cannot confirm this round
    sent: int


class Answers(Protocol):
    """The transport's per-connection counts (raft.py's TlsTransport)."""

    def marks(self, voters: frozenset[str]) -> Mapping[str, Mark]: ...

    def answered_since(self, voter: str, mark: Mark) -> bool: ...


@dataclass(frozen=True, slots=True)
class Leadership:
    """What the read index needs to know of a leader, read on its tick thread."""

    term: int
    commit_index: int
    applied_index: int
    committed_in_term: bool  # the entry at the commit index is of this term
    others: frozenset[str]  # the other voters of the configuration


@dataclass(slots=True)
class _Round:
    term: int
    marks: Mapping[str, Mark]  # one per other voter of the configuration it began in
    waiting: list[ReadDone]
    started: float
    index: int | None = None  # set once leadership is confirmed
    confirmed: bool = False


class ReadIndex:
    """Reads waiting for a confirmed read index, grouped in rounds (one heartbeat each)."""

    def __init__(self) -> None:
        self._asked: deque[ReadDone] = deque()
        self._rounds: list[_Round] = []

    def ask(self, done: ReadDone) -> None:
        """Any thread: call `done` on the tick thread with the index once it is safe to read
        the local state (applied up to it), or with None if this node is not the leader."""
        self._asked.append(done)

    @property
    def busy(self) -> bool:
        return bool(self._asked or self._rounds)

    def tick(self, leader: Leadership | None, answers: Answers, now: float) -> bool:
        """Advance every read (`now`: a monotonic clock); True when a new round began and its
        heartbeat must go now."""
        if leader is None:
            self._fail_all()
            return False
        for round_ in [r for r in self._rounds if not _same_leadership(r, leader)]:
            self._rounds.remove(round_)
            _answer(round_.waiting, None)
        began = False
        if self._asked:
            waiting = []
            while self._asked:
                waiting.append(self._asked.popleft())
            marks = answers.marks(leader.others)
            self._rounds.append(_Round(leader.term, marks, waiting, now))
            began = True
        for round_ in list(self._rounds):
            if not round_.confirmed:
                round_.confirmed = _majority(round_, answers)
            if round_.confirmed and round_.index is None and leader.committed_in_term:
                round_.index = leader.commit_index
            if round_.index is not None and leader.applied_index >= round_.index:
                self._rounds.remove(round_)
                _answer(round_.waiting, round_.index)
            elif not round_.confirmed and now - round_.started > ROUND_TIMEOUT_S:
                self._rounds.remove(round_)
                _answer(round_.waiting, None)
        return began

    def _fail_all(self) -> None:
        rounds, self._rounds = self._rounds, []
        for round_ in rounds:
            _answer(round_.waiting, None)
        while self._asked:
            self._asked.popleft()(None)


def _majority(round_: _Round, answers: Answers) -> bool:
    """This leader and the voters that answered since the round began are a majority of the
    round's configuration (a round whose configuration changed was given up)."""
    confirmed = 1 + sum(
        1 for voter, mark in round_.marks.items() if answers.answered_since(voter, mark)
    )
    return confirmed > (len(round_.marks) + 1) / 2


def _same_leadership(round_: _Round, leader: Leadership) -> bool:
    """The round's term and configuration are the leader's now."""
    return round_.term == leader.term and round_.marks.keys() == leader.others


def _answer(waiting: list[ReadDone], index: int | None) -> None:
    for done in waiting:
        done(index)

"""RAFT-18: the read index's bookkeeping, with the transport's counts played by hand."""

from collections.abc import Mapping

from fpai_node.registry.read_index import Leadership, Mark, ReadIndex

VOTERS = frozenset({"b", "c"})


class Counts:
    """Per-voter connections with append_entries sent and successful answers received."""

    def __init__(self) -> None:
        self.connection = {v: object() for v in VOTERS}
        self.sent = dict.fromkeys(VOTERS, 0)
        self.answered = dict.fromkeys(VOTERS, 0)

    def heartbeat(self) -> None:
        for voter in VOTERS:
            self.sent[voter] += 1

    def marks(self, voters: frozenset[str]) -> Mapping[str, Mark]:
        return {v: Mark(self.connection[v], self.sent[v]) for v in voters}

    def answered_since(self, voter: str, mark: Mark) -> bool:
        sent_before = mark.sent if self.connection[voter] is mark.connection else 0
        return self.answered[voter] > sent_before


def leading(commit: int = 7, applied: int = 7, term: int = 3, in_term: bool = True) -> Leadership:
    return Leadership(term, commit, applied, in_term, VOTERS)


def test_a_read_is_answered_once_a_majority_answered_a_heartbeat_sent_after_it() -> None:
    reads, counts, answers = ReadIndex(), Counts(), []
    counts.heartbeat()  # in flight before the read: its answers must not count
    reads.ask(answers.append)
    assert reads.tick(leading(), counts, 0.0) is True  # a new round: its heartbeat goes now
    counts.heartbeat()
    counts.answered["b"] += 1  # the answer to the heartbeat sent before the read
    reads.tick(leading(), counts, 0.0)
    assert answers == []
    counts.answered["b"] += 1  # now b answered the round's heartbeat: b and the leader
    reads.tick(leading(commit=8, applied=7), counts, 0.0)
    assert answers == []  # confirmed at commit 8, applied only to 7
    reads.tick(leading(commit=9, applied=8), counts, 0.0)
    assert answers == [8] and not reads.busy


def test_a_connection_opened_after_the_read_confirms_with_its_first_success() -> None:
    """A voter that reconnects (a learner restarting as a voter) confirms on its new
    connection: everything sent there was sent after the read arrived."""
    reads, counts, answers = ReadIndex(), Counts(), []
    counts.heartbeat()
    counts.heartbeat()
    reads.ask(answers.append)
    reads.tick(leading(), counts, 0.0)
    counts.connection["b"] = object()  # b reconnected: its counts start again
    counts.sent["b"] = counts.answered["b"] = 0
    reads.tick(leading(), counts, 0.0)
    assert answers == []
    counts.answered["b"] = 1
    reads.tick(leading(), counts, 0.0)
    assert answers == [7]


def test_a_round_is_given_up_when_the_configuration_changes() -> None:
    """A voter added after the read arrived has no mark: its answers could predate the read."""
    reads, counts, answers = ReadIndex(), Counts(), []
    reads.ask(answers.append)
    reads.tick(leading(), counts, 0.0)
    grown = Leadership(3, 7, 7, True, VOTERS | {"d"})
    reads.tick(grown, counts, 0.0)
    assert answers == [None] and not reads.busy


def test_no_index_before_the_leader_committed_an_entry_of_its_term() -> None:
    reads, counts, answers = ReadIndex(), Counts(), []
    reads.ask(answers.append)
    reads.tick(leading(in_term=False), counts, 0.0)
    counts.answered["c"] += 1
    reads.tick(leading(in_term=False), counts, 0.0)
    assert answers == []
    reads.tick(leading(commit=9, applied=9), counts, 0.0)
    assert answers == [9]


def test_reads_fail_when_leadership_is_lost_or_the_term_changes() -> None:
    reads, counts, answers = ReadIndex(), Counts(), []
    reads.ask(answers.append)
    reads.tick(leading(term=3), counts, 0.0)
    reads.ask(answers.append)
    reads.tick(leading(term=4), counts, 0.0)  # the first round was of term 3
    assert answers == [None]
    reads.ask(answers.append)
    reads.tick(None, counts, 0.0)  # not the leader any more: everyone waiting is told
    assert answers == [None, None, None] and not reads.busy


def test_reads_asked_in_one_tick_share_a_round() -> None:
    reads, counts, answers = ReadIndex(), Counts(), []
    for _ in range(5):
        reads.ask(answers.append)
    assert reads.tick(leading(), counts, 0.0) is True
    assert reads.tick(leading(), counts, 0.0) is False  # nobody new: no second heartbeat
    counts.answered["c"] += 1
    reads.tick(leading(), counts, 0.0)
    assert answers == [7] * 5


def test_a_lone_voter_confirms_itself() -> None:
    reads, answers = ReadIndex(), []
    reads.ask(answers.append)
    reads.tick(Leadership(1, 4, 4, True, frozenset()), Counts(), 0.0)
    assert answers == [4]


def test_a_round_not_confirmed_in_time_is_given_up() -> None:
    """A connection whose append_entries went unanswered (snapshot chunks) is a success short:
    rather than wait on it for ever, the read goes through the log."""
    reads, counts, answers = ReadIndex(), Counts(), []
    reads.ask(answers.append)
    reads.tick(leading(), counts, 0.0)
    reads.tick(leading(), counts, 0.5)
    assert answers == []
    reads.tick(leading(), counts, 1.5)
    assert answers == [None] and not reads.busy

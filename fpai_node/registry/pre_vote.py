"""Pre-vote (Raft thesis section 9.6; specs/0005-registry.md RAFT-19), which pysyncobj lacks.

A voter cut off from the leader but not from everyone campaigns, raising its term each election
timeout; when it comes back, its term deposes a healthy leader (issue 21's campaign: terms
climbed to 75). With pre-vote, a voter whose election timer fires first asks the other voters
whether they would vote for it at the next term, without anyone changing a term; only a
majority of yeses lets it start the real election. A voter says yes only if it has not heard
from a leader for an election timeout and the asker's log is at least as up to date as its own,
so an isolated voter's term stays where it was, and its return elects no one.

Pure: times come in as arguments; the engine sends and receives the messages. A round belongs
to the term it was started at: a grant counts, and a won round lets an election start, only while
the voter is still at that term and has heard from no leader since.
"""

from dataclasses import dataclass, field

LogPosition = tuple[int, int]  # (last log term, last log index): Raft's "up to date" order


@dataclass(slots=True)
class _Round:
    term: int  # the term the election would be at
    granted: set[str] = field(default_factory=set)  # member ids that said yes, self included


class PreVote:
    """One voter's pre-vote state: its own round, and when it last heard from a leader."""

    def __init__(self, election_min_s: float) -> None:
        self._election_min_s = election_min_s
        self._leader_heard_at: float | None = None  # never: a starting voter grants
        self._round: _Round | None = None
        self.won = False  # a majority said yes: the next election may start

    def leader_heard(self, now: float) -> None:
        """An `append_entries` from a leader at this voter's term or above: a round under way
        is over (there is a leader to follow)."""
        self._leader_heard_at = now
        self.election_started()

    def start(self, me: str, own_term: int, voters: int) -> bool:
        """A new round for an election at `own_term + 1`; True if this voter's own yes is
        already a majority (a lone voter)."""
        self._round = _Round(own_term + 1, {me})
        self.won = _majority(1, voters)
        return self.won

    def granted(self, member: str, term: int, own_term: int, voters: int) -> bool:
        """`member` said yes for `term`; True when that makes a majority of `voters` now. A
        yes counts only for the round of the voter's current term (a late one, from before
        the voter's term moved, counts for nothing)."""
        current = self._round
        if current is None or self.won or term != current.term or term != own_term + 1:
            return False
        current.granted.add(member)
        self.won = _majority(len(current.granted), voters)
        return self.won

    def may_campaign(self, own_term: int) -> bool:
        """A round won at this voter's current term: the election may start."""
        return self.won and self._round is not None and self._round.term == own_term + 1

    def election_started(self) -> None:
        self._round = None
        self.won = False

    def would_grant(
        self, now: float, leading: bool, own_term: int, own_log: LogPosition,
        term: int, log: LogPosition,
    ) -> bool:  # fmt: skip
        """Would this voter vote for an asker at `term` with `log`? Not while it leads or
        heard from a leader within the minimum election timeout (the leader is alive: the
        asker is the one cut off); not at or below its own term (the asker is behind: the
        engine tells it the term instead); not for a log behind its own (it could not win)."""
        if leading or term <= own_term or log < own_log:
            return False
        heard = self._leader_heard_at
        return heard is None or now - heard >= self._election_min_s


def _majority(yes: int, voters: int) -> bool:
    return 2 * yes > voters

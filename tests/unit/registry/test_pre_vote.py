"""RAFT-19: the pre-vote decisions, apart from the engine."""

from fpai_node.registry.pre_vote import PreVote

ELECTION_MIN_S = 1.0


def test_a_voter_grants_only_without_a_leader_and_to_a_log_as_up_to_date() -> None:
    votes = PreVote(ELECTION_MIN_S)
    ask = {"own_term": 5, "own_log": (5, 40), "term": 6}
    assert not votes.would_grant(10.0, False, own_term=5, own_log=(5, 40), term=5, log=(5, 40))
    assert votes.would_grant(10.0, False, log=(5, 40), **ask)  # never heard of a leader
    votes.leader_heard(10.0)
    assert not votes.would_grant(10.5, False, log=(5, 40), **ask)  # the leader is alive
    assert votes.would_grant(11.0, False, log=(5, 40), **ask)  # silent for a timeout
    assert votes.would_grant(11.0, False, log=(6, 1), **ask)  # a later term wins over length
    assert not votes.would_grant(11.0, False, log=(5, 39), **ask)  # behind this voter's log
    assert not votes.would_grant(11.0, False, log=(4, 99), **ask)
    assert not votes.would_grant(11.0, True, log=(5, 40), **ask)  # a leader never does
    assert not votes.would_grant(
        11.0, False, own_term=7, own_log=(5, 40), term=6, log=(5, 40)
    )  # below this voter's term: the engine tells the asker the term instead


def test_a_round_is_won_by_a_majority_of_voters_for_its_own_term() -> None:
    votes = PreVote(ELECTION_MIN_S)
    assert not votes.start("me", own_term=5, voters=5)
    assert not votes.granted("b", term=5, own_term=5, voters=5)  # an answer to an older round
    assert not votes.granted("b", term=6, own_term=5, voters=5)
    assert not votes.granted("b", term=6, own_term=5, voters=5)  # the same voter counts once
    assert votes.granted("c", term=6, own_term=5, voters=5)  # me, b and c: 3 of 5
    assert votes.may_campaign(own_term=5)
    assert not votes.may_campaign(own_term=6)  # the term moved on (a vote for another)
    votes.election_started()
    assert not votes.may_campaign(own_term=5)
    assert not votes.granted("d", term=6, own_term=5, voters=5)  # that round is over


def test_a_round_ends_when_a_leader_is_heard_or_the_term_moves() -> None:
    """Review finding: a won round, or a late yes, started an election with no pre-vote after
    the voter had followed a leader or voted for another candidate."""
    votes = PreVote(ELECTION_MIN_S)
    votes.start("me", own_term=5, voters=3)
    assert votes.granted("b", term=6, own_term=5, voters=3)
    votes.leader_heard(20.0)
    assert not votes.may_campaign(own_term=5)
    votes.start("me", own_term=5, voters=3)
    assert not votes.granted("b", term=6, own_term=6, voters=3)  # it voted at 6 meanwhile
    assert not votes.may_campaign(own_term=6)


def test_a_lone_voter_wins_its_own_round() -> None:
    votes = PreVote(ELECTION_MIN_S)
    assert votes.start("me", own_term=0, voters=1)
    assert votes.may_campaign(own_term=0)
    assert not PreVote(ELECTION_MIN_S).start("me", own_term=0, voters=2)  # 1 of 2: no majority

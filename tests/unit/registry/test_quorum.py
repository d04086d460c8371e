"""commit_bound: the highest index a majority holds on disk, the leader's own log counted only
up to its durable index (RAFT-13)."""

from hypothesis import given
from hypothesis import strategies as st

from fpai_node.registry.quorum import commit_bound


def test_the_followers_alone_commit_what_both_hold() -> None:
    assert commit_bound(durable=2, matches=[7, 7], voters=3) == 7
    assert commit_bound(durable=2, matches=[7, 4], voters=3) == 4


def test_the_leaders_copy_counts_up_to_its_durable_index() -> None:
    assert commit_bound(durable=5, matches=[3, 7], voters=3) == 5
    assert commit_bound(durable=5, matches=[3, 0], voters=3) == 3
    assert commit_bound(durable=0, matches=[0, 0], voters=3) == 0


def test_five_voters_need_three_copies() -> None:
    assert commit_bound(durable=9, matches=[1, 2, 3, 4], voters=5) == 3
    assert commit_bound(durable=1, matches=[8, 8, 2, 0], voters=5) == 2


@given(
    durable=st.integers(0, 20),
    matches=st.lists(st.integers(0, 20), min_size=1, max_size=6),
)
def test_it_is_the_highest_index_a_majority_holds(durable: int, matches: list[int]) -> None:
    voters = len(matches) + 1

    def majority_holds(index: int) -> bool:
        holders = (durable >= index) + sum(m >= index for m in matches)
        return 2 * holders > voters

    bound = commit_bound(durable, matches, voters)
    assert bound == max((i for i in range(21) if majority_holds(i)), default=0)

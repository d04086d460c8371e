"""What a leader may count as committed when its own log is not yet all on disk (RAFT-13).

The Raft thesis (section 10.2.1) lets a leader write its log in parallel with replication, as
long as it counts its own copy of an entry towards a majority only once that copy is durable.
Pure: the caller passes the indexes."""

from collections.abc import Iterable


def commit_bound(durable: int, matches: Iterable[int], voters: int) -> int:
    """The highest log index a majority of `voters` holds on disk: the leader's own log counts
    up to `durable`, each other voter's up to its match index (`matches`, one per other voter).
    0 if no index is held so."""
    others = list(matches)
    for index in sorted({durable, *others}, reverse=True):
        holders = (index <= durable) + sum(match >= index for match in others)
        if 2 * holders > voters:
            return index
    return 0

"""RAFT-7 through real engines over TLS: a leader's new commit index rides with its next
`append_entries` (a batch or a heartbeat), except to a follower waiting on a command it forwarded,
which is told at once."""

import time
from pathlib import Path

from fpai_node.identity import NodeKey
from fpai_node.registry.raft import RaftTiming
from fpai_node.testing.raft_engines import command, commit, engine_cluster
from fpai_node.testing.registry_cluster import wait_for

KEYS = [NodeKey.from_seed(bytes([i + 71]) * 32) for i in range(3)]
# A slow heartbeat, so that "with the next heartbeat" and "at once" are far apart: a commit on
# loopback takes milliseconds, the heartbeat 1.5 s (pysyncobj wants elections over 3 of them).
TIMING = RaftTiming(heartbeat_s=1.5, election_min_s=5.0, election_max_s=6.0)
AT_ONCE_S = 0.75  # half the heartbeat: a forwarded command told at once is applied well within


def test_followers_learn_a_commit_with_the_next_heartbeat_and_forwarders_at_once(
    tmp_path: Path,
) -> None:
    with engine_cluster(tmp_path, KEYS, TIMING) as cluster:
        leader = cluster.leader()
        followers = [e for e in cluster.engines.values() if e is not leader]
        keys = {engine: key for key in KEYS if (engine := cluster.engines.get(key.node_id))}

        commit(leader, command(KEYS[0], "param.set", key="lazy", value="v"))
        # An absence can only be seen by waiting: half a heartbeat after the commit (a notice
        # sent at once lands in milliseconds), the followers still have not heard of it.
        time.sleep(TIMING.heartbeat_s / 2)
        assert [f.state.parameters.get("lazy") for f in followers] == [None, None]
        wait_for(
            lambda: all(f.state.parameters.get("lazy") == "v" for f in followers),
            timeout_s=3 * TIMING.heartbeat_s,
        )

        forwarder = followers[0]
        eager = command(keys[forwarder], "param.set", key="eager", value="w")
        result = commit(forwarder, eager, AT_ONCE_S)
        assert result.status == "ok"
        assert forwarder.state.parameters["eager"] == "w"

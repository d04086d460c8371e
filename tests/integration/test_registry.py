"""The registry through real node processes on loopback, each test with three voters of its
own to kill, stop or replace: kill -9 of the leader, restart and catch-up, joins, leaves,
dead-voter replacement, durability across a full-cluster kill. Tests that leave their voters
running share them: test_registry_shared.py."""

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fpai_node.testing.nodeproc import run_cli
from fpai_node.testing.registry_cluster import (
    RegistryNode,
    expect_http_error,
    leader_of,
    registry_cluster,
    voters_and_learners,
    votes_with,
    wait_for,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]
# a dead voter is replaced after 3 s, by the leader's supervisor on its own (RAFT-17)
FAST_REPLACEMENT = {"FPAI_REGISTRY_DEAD_AFTER_S": "3", "FPAI_AUTONOMY": "autonomous"}


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[list[RegistryNode]]:
    """Three voters of a test's own, to kill, stop or replace."""
    with registry_cluster(tmp_path, env=FAST_REPLACEMENT) as nodes:
        yield nodes


def test_leader_kill_9_elects_a_new_leader_and_a_restarted_node_catches_up(
    cluster: list[RegistryNode],
) -> None:
    old = leader_of(cluster)
    old.put("before", 1)
    old.kill()
    killed_at = time.monotonic()
    survivors = [n for n in cluster if n is not old]
    new = leader_of(survivors)
    assert new is not old
    wait_for(lambda: survivors[0].put("after", 2)["status"] == "ok", timeout_s=15)
    assert time.monotonic() - killed_at < 15  # "within a few seconds"; the benchmark measures
    for i in range(5):
        survivors[i % 2].put(f"while-down-{i}", i)
    old.start()
    try:
        wait_for(
            lambda: (
                {
                    k: v
                    for k, v in old.registry(stale=True)["parameters"].items()
                    if k.startswith(("while-down", "after", "before"))
                }
                == {"before": 1, "after": 2, **{f"while-down-{i}": i for i in range(5)}}
            ),
            timeout_s=20,
        )
    except AssertionError as exc:
        # Failed once in about 40 fresh-clone runs and once in about 40 runs of the same steps
        # alone, always caught up within 2 s otherwise: keep what the next failure shows.
        raise AssertionError(
            f"{exc}; the restarted node: {old.status()['registry']}; the leader: "
            f"{new.status()['registry']}; the restarted node's log:\n{old.log()[-6000:]}"
        ) from None
    assert old.status()["registry"]["role"] == "voter"


def test_a_fourth_node_joins_as_learner_and_replaces_a_voter_that_leaves(
    cluster: list[RegistryNode], tmp_path: Path, gguf_model: Path
) -> None:
    fourth = RegistryNode(
        tmp_path / "fourth", "--model", f"{gguf_model}=m-fourth", env=FAST_REPLACEMENT
    ).start("--join", cluster[1].peer)
    try:
        learner_id = fourth.node_id
        wait_for(lambda: fourth.status()["registry"]["role"] == "learner")
        wait_for(lambda: cluster[0].registry()["models"] == {"m-fourth": [learner_id]})
        voters, learners = voters_and_learners(cluster[0])
        assert learners == {learner_id} and len(voters) == 3
        own = f"member.{learner_id}.note"  # a learner writes only its own entries (REG-16)
        fourth.put(own, "yes")  # and its write is forwarded to the leader
        assert cluster[2].get(own) == "yes"
        assert expect_http_error(lambda: fourth.put("from-the-learner", "yes")).code == 400

        leaver = next(n for n in cluster if n is not leader_of(cluster))
        leaver_id = leaver.node_id
        assert leaver.stop() == 0
        others = [n for n in cluster if n is not leaver]
        wait_for(
            lambda: (
                voters_and_learners(others[0])
                == ({n.node_id for n in others} | {learner_id}, set())
            ),
            timeout_s=20,
        )
        assert leaver_id not in {m["node_id"] for m in others[1].registry()["members"]}
        wait_for(lambda: fourth.status()["registry"]["role"] == "voter", timeout_s=20)
        fourth.put("from-the-promoted-voter", 1)
        assert fourth.stop() == 0  # leaving takes its models out of the registry with it
        wait_for(lambda: others[0].registry()["models"] == {}, timeout_s=20)
    finally:
        fourth.kill()


def a_learner_and_a_dead_follower(
    cluster: list[RegistryNode], tmp_path: Path
) -> tuple[RegistryNode, RegistryNode, RegistryNode, str]:
    """A fourth node joins as a learner (quick replacement timing), then a follower is killed:
    (the fourth, the leader, the killed follower, its node id)."""
    fourth = RegistryNode(tmp_path / "fourth", env=FAST_REPLACEMENT).start(
        "--join", cluster[0].peer
    )
    try:
        wait_for(lambda: fourth.status()["registry"]["role"] == "learner")
        leader = leader_of(cluster)
        victim = next(n for n in cluster if n is not leader)
        victim_id = victim.node_id
        victim.kill()
    except BaseException:
        fourth.kill()
        raise
    return fourth, leader, victim, victim_id


def test_a_dead_voter_is_replaced_by_a_live_learner(
    cluster: list[RegistryNode], tmp_path: Path
) -> None:
    fourth, leader, victim, victim_id = a_learner_and_a_dead_follower(cluster, tmp_path)
    try:
        seen: list[int] = []

        def replaced() -> bool:
            voters, learners = voters_and_learners(leader)
            seen.append(len(voters))
            return victim_id in learners and fourth.node_id in voters

        wait_for(replaced, timeout_s=30)
        assert min(seen) >= 3  # the replacement voted before the dead voter stopped counting
        wait_for(lambda: fourth.status()["registry"]["role"] == "voter", timeout_s=20)
        leader.put("after-replacement", 1)
        victim.start()  # it comes back, learns it is a learner now, and catches up
        wait_for(lambda: victim.status()["registry"]["role"] == "learner", timeout_s=30)
        wait_for(lambda: victim.get("after-replacement", stale=True) == 1, timeout_s=20)
    finally:
        fourth.kill()


def test_all_nodes_killed_and_restarted_keep_every_acknowledged_write(
    cluster: list[RegistryNode],
) -> None:
    acknowledged = {}
    for i in range(30):
        node = cluster[i % 3]
        if node.put(f"durable-{i}", i)["status"] == "ok":
            acknowledged[f"durable-{i}"] = i
    assert len(acknowledged) == 30
    for node in cluster:
        node.kill()
    for node in cluster:
        node.start()
    leader_of(cluster)
    for node in cluster:
        parameters = wait_for(lambda node=node: node.registry()["parameters"], timeout_s=30)
        assert {k: v for k, v in parameters.items() if k.startswith("durable-")} == acknowledged


def test_registry_writes_and_reads_through_the_leader_need_the_api_key(tmp_path: Path) -> None:
    """Reads through the leader commit a `sync` each (REG-14): issue 13 finding 4 drove the log
    with an unauthenticated curl loop. Stale reads of the node's replica stay open."""
    key = "k" * 24
    node = RegistryNode(tmp_path / "keyed", "--api-key", key).start()
    try:
        wait_for(lambda: node.status()["registry"]["phase"] == "running")
        error = expect_http_error(lambda: node.put("x", 1))
        assert error.code == 401
        assert node.registry(stale=True)["parameters"].get("x") is None
        index = node.registry(stale=True)["index"]
        for read in (lambda: node.registry(), lambda: node.get("x")):
            assert expect_http_error(read).code == 401
        assert node.registry(stale=True)["index"] == index  # nothing written for them
        home = str(node.home)
        refused = run_cli("registry", "set", "x", "1", "--home", home)
        assert refused.returncode == 1 and "API key" in refused.stderr
        accepted = run_cli("registry", "set", "x", "1", "--home", home, "--api-key", key)
        assert accepted.returncode == 0, accepted.stderr
        assert node.get("x", api_key=key) == 1
        assert node.registry(key=key)["parameters"]["x"] == 1
        shown = run_cli("registry", "get", "x", "--home", home, "--api-key", key)
        assert shown.returncode == 0 and shown.stdout.strip() == "1", shown.stderr
    finally:
        node.kill()


# ---- the Raft port admits nothing but mutual TLS with a known member ------------------------


@pytest.mark.parametrize("with_the_leader", [False, True])
def test_two_voters_leaving_together_leave_a_working_registry(
    cluster: list[RegistryNode], with_the_leader: bool
) -> None:
    """Each waits until the leader has taken it out of Raft's voters, and a leaving leader
    hands over to the voter that stays: the survivor never counts two voters that are gone."""
    leader = leader_of(cluster)
    followers = [n for n in cluster if n is not leader]
    leavers = [leader, followers[0]] if with_the_leader else followers
    survivor = next(n for n in cluster if n not in leavers)
    for node in leavers:
        assert node.process is not None and node.process.process is not None
        node.process.process.send_signal(signal.SIGTERM)
    for node in leavers:
        assert node.stop() == 0
    wait_for(
        lambda: survivor.status()["registry"]["configuration"] == [survivor.node_id],
        timeout_s=20,
    )
    assert survivor.put("alone", 1)["status"] == "ok"
    assert [m["node_id"] for m in survivor.registry()["members"]] == [survivor.node_id]


def test_a_voter_that_left_and_restarts_votes_again_and_can_leave_again(
    cluster: list[RegistryNode],
) -> None:
    """Its home still says voter, but Raft's configuration no longer lists it: it follows as
    a learner, catches up, is added back, and the registry can lose a voter again later."""
    leader = leader_of(cluster)
    returning, other = [n for n in cluster if n is not leader]
    assert returning.stop() == 0
    wait_for(lambda: len(leader.status()["registry"]["configuration"]) == 2, timeout_s=20)
    leader.put("while-away", 1)
    returning.start()
    ids = {n.node_id for n in cluster}
    for node in cluster:
        wait_for(lambda node=node: votes_with(node, ids), timeout_s=40)
    assert returning.get("while-away", stale=True) == 1
    assert other.stop() == 0  # and a graceful leave still leaves a working registry
    wait_for(lambda: len(leader.status()["registry"]["configuration"]) == 2, timeout_s=20)
    assert returning.put("after-second-leave", 1)["status"] == "ok"


def test_a_five_voter_registry_forms_from_concurrent_joins_with_one_leader_a_term(
    tmp_path: Path,
) -> None:
    """Joiners follow as learners until their own log makes them voters: newcomers never form
    a majority of their own (one leader per term, every node ends with the same registry)."""
    first = RegistryNode(tmp_path / "first", "--registry-voters", "5")
    others = [RegistryNode(tmp_path / f"n{i}") for i in range(4)]
    nodes = [first, *others]
    try:
        first.launch()
        for node in others:  # at once: joins reach the first node while it creates the registry
            node.launch("--join", first.peer)
        for node in nodes:
            node.wait_started()
        leaders: dict[int, set[str]] = {}

        def formed() -> bool:
            statuses = [n.status()["registry"] for n in nodes]
            for status in statuses:
                if status["leader"]:
                    leaders.setdefault(status["term"], set()).add(status["leader"])
            ids = {n.node_id for n in nodes}
            return all(set(s["configuration"]) == ids and s["role"] == "voter" for s in statuses)

        wait_for(formed, timeout_s=60, every_s=0.05)
        assert all(len(named) == 1 for named in leaders.values()), leaders
        first.put("formed", 1)
        values = {n.get("formed") for n in nodes}
        assert values == {1}
    finally:
        for node in nodes:
            node.kill()


def test_a_rolling_restart_ends_with_three_voters_and_one_leader(
    cluster: list[RegistryNode],
) -> None:
    """Each node leaves and comes back in turn, the next leaving before the previous is a voter
    again, the leader last. Nodes resumed from homes that say voter, and stale peers that still
    count them, must not leave anyone deaf to the leader (RAFT-14)."""
    leader = leader_of(cluster)
    first, second = [n for n in cluster if n is not leader]
    first.stop()
    first.start()
    wait_for(lambda: first.node_id not in leader.status()["registry"]["configuration"])
    second.stop()
    second.start()
    wait_for(lambda: first.node_id in leader.status()["registry"]["configuration"], timeout_s=30)
    leader.stop()
    leader.start()
    ids = {n.node_id for n in cluster}
    for node in cluster:
        wait_for(lambda node=node: votes_with(node, ids), timeout_s=60)
    leader_of(cluster)
    assert second.put("after-rolling-restart", 1)["status"] == "ok"
    assert {n.get("after-rolling-restart") for n in cluster} == {1}


def test_a_voter_back_during_its_replacement_leaves_the_target_of_voters(
    cluster: list[RegistryNode], tmp_path: Path
) -> None:
    """A voter killed and restarted just as its replacement is promoted: the registry briefly
    has four voters, then demotes one, back to three that Raft agrees on (RAFT-11)."""
    fourth, leader, victim, victim_id = a_learner_and_a_dead_follower(cluster, tmp_path)
    try:
        wait_for(
            lambda: fourth.node_id in voters_and_learners(leader)[0], timeout_s=30, every_s=0.02
        )
        victim.start()
        nodes = [*cluster, fourth]

        def settled() -> bool:
            voters = voters_and_learners(leader)[0]
            configurations = {tuple(n.status()["registry"]["configuration"]) for n in nodes}
            return (
                len(voters) == 3
                and len(configurations) == 1
                and len(next(iter(configurations))) == 3
            )

        wait_for(settled, timeout_s=45)
        learners = voters_and_learners(leader)[1]
        assert len(learners) == 1 and {victim_id, fourth.node_id} & learners
        # voter or learner again, it writes its own entries through the leader (REG-16)
        assert victim.put(f"member.{victim_id}.back", 1)["status"] == "ok"
    finally:
        fourth.kill()

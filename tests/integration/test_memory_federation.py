"""Memory across real node processes: a record added on one node is found on another through
Mem0's client; the node holding a shard's first replica is killed -9 and reads and writes go on
(MEM-9, MEM-14); restarted, it catches up by anti-entropy (MEM-15); a fourth node joins and the
shards move with every record still found (MEM-8); a replica that dies for good is marked down
and its shards move (RAFT-16); a handoff saved on a node is loaded on another after the first
was killed."""

import os
from pathlib import Path
from typing import Any

import pytest

from fpai_node.identity import NodeKey
from fpai_node.memory.operations import shard_of_scope
from fpai_node.memory.placement import replicas
from fpai_node.testing.nodeproc import run_cli
from fpai_node.testing.registry_cluster import RegistryNode, registry_cluster, wait_for

os.environ["MEM0_TELEMETRY"] = "False"
from mem0 import MemoryClient

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]
# RAFT-16: a member silent this long is marked down and its shards move (the default is 60 s),
# by the leader's supervisor on its own (RAFT-17: autonomy autonomous)
FAST_DEATH = {"FPAI_REGISTRY_DEAD_AFTER_S": "3", "FPAI_AUTONOMY": "autonomous"}


def memory(node: RegistryNode) -> dict[str, Any]:
    return node.status()["memory"]  # type: ignore[no-any-return]


def shard_records(node: RegistryNode, shard: int) -> int:
    return int(memory(node)["shards"].get(str(shard), {}).get("records", 0))


def homes_and_a_moving_user(root: Path) -> tuple[list[str], str]:
    """Node homes made in advance, so their ids are known, and a user whose shard the fourth
    node will take over when it joins."""
    ids = []
    for i in range(4):
        assert run_cli("init", "--home", str(root / f"node{i}")).returncode == 0
        ids.append(NodeKey.load(root / f"node{i}" / "keys" / "node.key").node_id)
    for n in range(100):
        user = f"alice-{n}"
        if ids[3] in replicas(shard_of_scope("user_id", user), ids, 3):
            return ids, user
    raise AssertionError("no user's shard moves")


def all_memories(node: RegistryNode, user: str) -> set[str]:
    page = MemoryClient(host=node.url, api_key="k" * 16).get_all(filters={"user_id": user})
    return {r["memory"] for r in page["results"]}


def test_memory_survives_a_killed_replica_catches_up_and_moves_to_a_new_node(
    tmp_path: Path,
) -> None:
    all_ids, user = homes_and_a_moving_user(tmp_path)
    shard = shard_of_scope("user_id", user)
    with registry_cluster(tmp_path, size=3, env=FAST_DEATH) as nodes:
        ids = set(all_ids[:3])
        assert {n.node_id for n in nodes} == ids
        for node in nodes:
            wait_for(lambda node=node: set(memory(node)["holders"]) == ids, timeout_s=30)
        first, second, third = (MemoryClient(host=n.url, api_key="k" * 16) for n in nodes)
        added = first.add("Alice keeps bees", user_id=user, infer=False)["results"][0]
        assert third.get(added["id"])["memory"] == "Alice keeps bees"
        found = second.search("insects", filters={"user_id": user}, top_k=1)["results"]
        assert [r["memory"] for r in found] == ["Alice keeps bees"]
        by_id = {n.node_id: n for n in nodes}
        victim = by_id[replicas(shard, sorted(ids), 3)[0]]
        saved = run_cli(
            "handoff", "save", "--agent", "planner", "--done", "wrote the plan",
            "--next", "review the budget", "--api", victim.url,
        )  # fmt: skip
        assert saved.returncode == 0, saved.stderr

        # kill -9 the first replica of alice's shard (where the handoff was saved): reads and
        # writes go on with 2 of 3, and the handoff loads on another node
        victim.kill()
        survivor = next(n for n in nodes if n is not victim)
        client = MemoryClient(host=survivor.url, api_key="k" * 16)
        written = client.add("Alice moved to Lyon", user_id=user, infer=False)["results"][0]
        assert written["event"] == "ADD"
        assert all_memories(survivor, user) == {"Alice keeps bees", "Alice moved to Lyon"}
        others = [n for n in nodes if n is not victim]
        loaded = run_cli("handoff", "load", "--agent", "planner", "--json", "--api", others[-1].url)
        assert loaded.returncode == 0 and "review the budget" in loaded.stdout, loaded.stderr

        # restarted, it gets the write it missed (it was dead) by anti-entropy
        victim.start()
        wait_for(lambda: shard_records(victim, shard) == shard_records(survivor, shard) == 2)
        repaired = [memory(n)["repair"] for n in nodes]
        assert sum(r["pushed"] + r["pulled"] for r in repaired) >= 1

        # a fourth node joins: shards move to it, and every record is still found everywhere
        newcomer = RegistryNode(tmp_path / "node3", env=FAST_DEATH)
        nodes.append(newcomer)
        newcomer.start("--join", nodes[0].peer)
        holders = ids | {newcomer.node_id}
        assert newcomer.node_id == all_ids[3]
        wait_for(lambda: set(memory(nodes[0])["holders"]) == holders, timeout_s=30)
        wait_for(lambda: shard_records(newcomer, shard) == 2, timeout_s=30)
        [replaced] = [n for n in nodes[:3] if n.node_id not in replicas(shard, sorted(holders), 3)]
        # the replaced replica drops its copy once every new replica holds all of it
        wait_for(lambda: str(shard) not in memory(replaced)["shards"], timeout_s=30)
        for node in nodes:
            assert all_memories(node, user) == {"Alice keeps bees", "Alice moved to Lyon"}

        # a replica dies for good: once the registry marks it down (RAFT-16), the shard moves to
        # the node it had left, which streams it from a live replica
        placed = replicas(shard, sorted(holders), 3)
        named = {n.node_id: n for n in nodes}
        dead = next(node_id for node_id in placed if node_id != newcomer.node_id)
        named[dead].kill()
        living = holders - {dead}
        for node_id in living:
            wait_for(lambda n=named[node_id]: set(memory(n)["holders"]) == living, timeout_s=30)
        assert sorted(replicas(shard, sorted(living), 3)) == sorted(living)
        wait_for(lambda: shard_records(replaced, shard) == 2, timeout_s=30)
        for node_id in living:
            assert all_memories(named[node_id], user) == {"Alice keeps bees", "Alice moved to Lyon"}

        # two of the shard's three replicas down at once: the write is refused, naming the shard
        down, [up] = sorted(living)[:2], sorted(living)[2:]
        for node_id in down:
            named[node_id].kill()
        with pytest.raises(Exception, match=f"memory shard {shard} reached 1 of its 3 replicas"):
            MemoryClient(host=named[up].url, api_key="k" * 16).add(
                "lost?", user_id=user, infer=False
            )

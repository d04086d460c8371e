"""The supervisor on real node processes (docs/operator-guide.md, "Autonomy"): a node holding
memory shards is killed -9; in autonomous mode the leader's supervisor marks it down and its
shards are re-replicated on the living, recorded as a done action; in supervised mode the same
repair waits as a pending action, nothing moves, and it happens once an operator approves it
with `fpai-node actions approve`. The sovereignty audit follows the facts."""

import datetime as dt
import json
import os
import socket
from typing import Any

import pytest
from cryptography import x509

from fpai_node.identity import NodeKey
from fpai_node.identity.certs import issue_node_certificate, save_certificate
from fpai_node.identity.tls import client_context
from fpai_node.testing.nodeproc import NodeProcess, run_cli
from fpai_node.testing.registry_cluster import (
    RegistryNode,
    leader_of,
    registry_cluster,
    voters_and_learners,
    wait_for,
)
from fpai_node.testing.trust import Trust

os.environ["MEM0_TELEMETRY"] = "False"
from mem0 import MemoryClient

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]
DEAD_AFTER = {"FPAI_REGISTRY_DEAD_AFTER_S": "3"}  # RAFT-16's dead time (60 s by default)


def actions(node: RegistryNode) -> list[dict[str, Any]]:
    return node.request("GET", "/fpai/v1/actions")["actions"]  # type: ignore[no-any-return]


def sovereignty(node: RegistryNode) -> dict[str, Any]:
    return node.request("GET", "/fpai/v1/sovereignty")  # type: ignore[no-any-return]


def weaknesses(node: RegistryNode) -> set[str]:
    return {w["kind"] for w in sovereignty(node)["single_points_of_failure"]}


def holders(node: RegistryNode) -> set[str]:
    return set(node.status()["memory"]["holders"])


def memory_check(node: RegistryNode) -> dict[str, Any]:
    checks = node.status()["supervisor"]["checks"]
    return next(c for c in checks if c["name"] == "memory")  # type: ignore[no-any-return]


USERS = [f"user-{n}" for n in range(8)]  # eight scopes: shards on every holder


def two_replicas_and_a_victim(nodes: list[RegistryNode]) -> tuple[RegistryNode, RegistryNode]:
    """memory.replicas 2 over three holders, so a dead holder's shards have somewhere to go,
    and a memory per user; returns the leader and a node that is not the leader and holds
    shards with records."""
    leader = leader_of(nodes)
    leader.put("memory.replicas", 2)
    ids = {n.node_id for n in nodes}
    for node in nodes:
        wait_for(lambda node=node: holders(node) == ids and memory_check(node)["ok"])
    client = MemoryClient(host=leader.url, api_key="k" * 16)
    for user in USERS:
        client.add(f"{user} keeps bees", user_id=user, infer=False)
    victim = next(n for n in nodes if n is not leader and n.status()["memory"]["shards"])
    return leader, victim


def every_memory_found(node: RegistryNode) -> None:
    """No record lost: each user's memory is read back through Mem0's client."""
    client = MemoryClient(host=node.url, api_key="k" * 16)
    for user in USERS:
        found = client.get_all(filters={"user_id": user})["results"]
        assert [r["memory"] for r in found] == [f"{user} keeps bees"]


def test_autonomous_a_killed_nodes_shards_are_re_replicated_and_recorded(tmp_path: Any) -> None:
    env = {**DEAD_AFTER, "FPAI_AUTONOMY": "autonomous"}
    with registry_cluster(tmp_path, size=3, env=env) as nodes:
        leader, victim = two_replicas_and_a_victim(nodes)
        dead = victim.node_id
        assert weaknesses(leader) >= {"voters_one_machine"}  # a testnet on one machine
        assert "single_replica" not in weaknesses(leader)
        victim.kill()
        living = {n.node_id for n in nodes if n is not victim}

        def repaired() -> dict[str, Any] | None:
            moved = [a for a in actions(leader) if a["subject"] == dead]
            return moved[0] if moved and moved[0]["state"] == "done" else None

        done = wait_for(repaired, timeout_s=60)
        assert done["kind"] == "move_services" and done["attempts"] == 1
        assert done["outcome"].startswith(f"every service of {dead} is down")
        for node in nodes:
            if node is not victim:
                wait_for(lambda node=node: holders(node) == living and memory_check(node)["ok"])
        every_memory_found(leader)
        audit = sovereignty(leader)
        assert "single_replica" not in {w["kind"] for w in audit["single_points_of_failure"]}
        assert "few_voters" in {w["kind"] for w in audit["single_points_of_failure"]}
        federated = next(c for c in audit["components"] if c["name"] == "federated")
        assert federated["evidence"][0].startswith("2 live registry voters on 1 machine")
        metrics = leader.process.metric(  # type: ignore[union-attr]
            "fpai_supervisor_actions", kind="move_services", state="done"
        )
        assert metrics == 1.0
        logged = [e for e in leader.process.log_events() if e.get("event") == "supervisor action"]  # type: ignore[union-attr]
        assert [e["state"] for e in logged if e["subject"] == dead][-1] == "done"


def test_supervised_the_repair_waits_for_approval_then_happens(tmp_path: Any) -> None:
    with registry_cluster(tmp_path, size=3, env=DEAD_AFTER) as nodes:  # supervised: the default
        leader, victim = two_replicas_and_a_victim(nodes)
        dead = victim.node_id
        victim.kill()

        def pending() -> dict[str, Any] | None:
            waiting = [a for a in actions(leader) if a["subject"] == dead]
            return waiting[0] if waiting and waiting[0]["state"] == "pending" else None

        action = wait_for(pending, timeout_s=60)
        assert action["kind"] == "move_services" and action["attempts"] == 0
        assert dead in action["summary"]
        # nothing moves while it waits: the dead node still holds its shards, which have one
        # live replica each, and the audit and the memory check say so
        assert dead in holders(leader)
        wait_for(lambda: "single_replica" in weaknesses(leader))
        assert not memory_check(leader)["ok"]
        listed = run_cli("actions", "list", "--api", leader.url)
        assert listed.returncode == 0, listed.stderr
        assert f"{action['id']:>4}  pending" in listed.stdout
        assert "autonomy supervised; 1 action(s), 1 pending" in listed.stdout

        approved = run_cli("actions", "approve", action["id"], "--api", leader.url)
        assert approved.returncode == 0, approved.stderr
        assert approved.stdout.startswith(f"approved {action['id']}: mark the services of {dead}")
        again = run_cli("actions", "approve", action["id"], "--api", leader.url)
        assert again.returncode == 1
        assert "not pending" in again.stderr

        living = {n.node_id for n in nodes if n is not victim}
        wait_for(lambda: holders(leader) == living and memory_check(leader)["ok"], timeout_s=60)
        shown = wait_for(
            lambda: (
                next(a for a in actions(leader) if a["id"] == action["id"])["state"] == "done"
                and next(a for a in actions(leader) if a["id"] == action["id"])
            )
        )
        assert shown["attempts"] == 1
        assert "single_replica" not in weaknesses(leader)
        every_memory_found(leader)


def test_autonomy_off_and_the_cli_audit(tmp_path: Any) -> None:
    """Off: the audit names the operator's absence and scores it; `--json` is the API's."""
    node = RegistryNode(tmp_path / "solo", "--autonomy", "off")
    try:
        node.start()
        # settled: the registry holds the node as its one voter (a leader comes first)
        wait_for(lambda: "1 live registry voter" in str(sovereignty(node)["components"]))
        shown = run_cli("sovereignty", "--json", "--api", node.url)
        assert shown.returncode == 0, shown.stderr
        audit = json.loads(shown.stdout)
        assert audit["autonomy"] == "off" and audit["max"] == 95
        kinds = {w["kind"] for w in audit["single_points_of_failure"]}
        assert {"operator_absence", "few_voters"} <= kinds
        autonomous = next(c for c in audit["components"] if c["name"] == "autonomous")
        assert autonomous["evidence"][0].startswith("autonomy off")
        assert audit["score"] == sum(c["points"] for c in audit["components"])
        text = run_cli("sovereignty", "--api", node.url)
        assert text.returncode == 0, text.stderr
        assert f"sovereignty {audit['score']} / 95 (autonomy off)" in text.stdout
        assert "(operator_absence)" in text.stdout
        bad = run_cli("start", "--home", str(tmp_path / "x"), "--autonomy", "sometimes")
        assert bad.returncode == 1
        assert "--autonomy: expected one of off, supervised, autonomous" in bad.stderr
    finally:
        node.kill()


def test_supervised_a_dead_voter_is_replaced_once_approved_and_a_rejected_move_stays_put(
    tmp_path: Any,
) -> None:
    """RAFT-17 on real nodes: three voters and a learner; a voter is killed -9. Its replacement
    and the move of its services wait as two pending actions; approving the replacement
    promotes the learner and demotes the dead voter, while the move, rejected, never happens."""
    with registry_cluster(tmp_path, size=3, env=DEAD_AFTER) as nodes:
        learner = RegistryNode(tmp_path / "node3", env=DEAD_AFTER)
        nodes.append(learner)
        learner.start("--join", nodes[0].peer)
        wait_for(lambda: learner.node_id in voters_and_learners(nodes[0])[1])
        leader = leader_of(nodes[:3])
        victim = next(n for n in nodes[:3] if n is not leader)
        dead = victim.node_id
        victim.kill()

        def both_pending() -> dict[str, dict[str, Any]] | None:
            mine = {a["kind"]: a for a in actions(leader) if a["subject"] == dead}
            states = {kind: a["state"] for kind, a in mine.items()}
            wanted = {"replace_voter": "pending", "move_services": "pending"}
            return mine if states == wanted else None

        waiting = wait_for(both_pending, timeout_s=60)
        assert dead in voters_and_learners(leader)[0]  # nothing happened yet
        replace, move = waiting["replace_voter"], waiting["move_services"]
        assert run_cli("actions", "approve", replace["id"], "--api", leader.url).returncode == 0
        assert run_cli("actions", "reject", move["id"], "--api", leader.url).returncode == 0

        def replaced() -> bool:
            voters, learners = voters_and_learners(leader)
            return learner.node_id in voters and dead in learners

        wait_for(replaced, timeout_s=60)
        done = wait_for(
            lambda: next(
                (a for a in actions(leader) if a["id"] == replace["id"] and a["state"] == "done"),
                None,
            )
        )
        assert done["outcome"] == f"{dead} no longer votes; 3 voters"
        assert done["attempts"] == 1  # promotion and demotion: one approval, one repair
        services = leader.registry(stale=True)["services"]
        dead_services = {name: s for name, s in services.items() if name.startswith(dead)}
        assert dead_services and all(s["health"] == "ok" for s in dead_services.values())
        shown = next(a for a in actions(leader) if a["id"] == move["id"])
        assert shown["state"] == "rejected"


def presented_certificate(peer: str, trust: Trust) -> x509.Certificate:
    """The certificate the node shows on its peer port to a member of its federation."""
    host, _, port = peer.rpartition(":")
    context = client_context(trust.member(NodeKey.generate()))
    with (
        socket.create_connection((host, int(port)), timeout=5) as raw,
        context.wrap_socket(raw) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def test_a_federation_certificate_is_renewed_while_the_node_runs(tmp_path: Any) -> None:
    """The CA issued a certificate with 10 days left; the operator installs a new one in the
    home and approves the supervisor's action: the running node presents it on its next
    handshake, without a restart."""
    trust = Trust.create("federation")
    assert trust.ca is not None
    home = trust.home(tmp_path / "fed")
    key = NodeKey.load(home / "keys" / "node.key")
    now = dt.datetime.now(dt.UTC)
    short = issue_node_certificate(trust.ca, key.public_key, now, dt.timedelta(days=10))
    save_certificate(home / "certs" / "node.crt", short, overwrite=True)
    node = NodeProcess(home, "--api", "127.0.0.1:0", "--peer", "127.0.0.1:0",
                       "--raft", "127.0.0.1:0", "--no-model")  # fmt: skip
    with node:

        def certificate_check() -> dict[str, Any]:
            checks = node.get_json("/fpai/v1/status")["supervisor"]["checks"]
            return next(c for c in checks if c["name"] == "certificate")  # type: ignore[no-any-return]

        check = wait_for(certificate_check)
        assert not check["ok"] and "expires in 10 days" in check["detail"]
        assert presented_certificate(node.peer, trust).serial_number == short.serial_number
        longer = issue_node_certificate(trust.ca, key.public_key, now)
        save_certificate(home / "certs" / "node.crt", longer, overwrite=True)

        def pending() -> dict[str, Any] | None:
            waiting = node.get_json("/fpai/v1/actions")["actions"]
            return next((a for a in waiting if a["kind"] == "renew_certificate"), None)

        action = wait_for(pending, timeout_s=15)
        assert action["state"] == "pending"
        approved = run_cli("actions", "approve", action["id"], "--api", node.url)
        assert approved.returncode == 0, approved.stderr
        wait_for(lambda: pending()["state"] == "done", timeout_s=15)  # type: ignore[index]
        shown = presented_certificate(node.peer, trust)
        assert shown.serial_number == longer.serial_number
        assert wait_for(certificate_check)["ok"]

"""The sovereignty score and single points of failure from facts
(fpai_node/supervisor/sovereignty.py): each fact that changes moves the score and names why."""

import dataclasses

from fpai_node.supervisor.sovereignty import Facts, Server, audit, is_hosted_api

A, B, C = "fpn1aaa", "fpn1bbb", "fpn1ccc"


def healthy(**changes: object) -> Facts:
    """Three nodes on three machines, a model served twice, every shard with two replicas,
    two treasury operators, autonomy autonomous."""
    facts = Facts(
        node_id=A,
        autonomy="autonomous",
        live_members=[A, B, C],
        dead_members=[],
        models={"gemma": [Server(A, "llamacpp"), Server(B, "llamacpp")]},
        voters=[A, B, C],
        voter_hosts={A: "10.0.0.1", B: "10.0.0.2", C: "10.0.0.3"},
        leader=A,
        replicas=2,
        shard_live_replicas=[2] * 64,
        bootstrap=["10.0.0.1:7100", "10.0.0.2:7100"],
        chain="ready",
        treasury_operators=["0xa", "0xb"],
        license="Apache-2.0",
        version="0.1.0",
        protocol_version=1,
    )
    return dataclasses.replace(facts, **changes)  # type: ignore[arg-type]


def parts(facts: Facts) -> dict[str, int]:
    return {c.name: c.points for c in audit(facts).components}


def kinds(facts: Facts) -> list[str]:
    return [w.kind for w in audit(facts).single_points_of_failure]


def test_a_healthy_federation_scores_every_point_and_has_no_single_point_of_failure() -> None:
    report = audit(healthy())
    assert (report.score, report.max) == (95, 95)
    assert report.single_points_of_failure == ()
    federated = next(c for c in report.components if c.name == "federated")
    assert federated.evidence[0] == "3 live registry voters on 3 machines; 3 live members"


def test_an_upstream_to_a_hosted_api_costs_self_hosted_points_and_says_where() -> None:
    hosted = Server(A, "upstream", "api.openai.com")
    facts = healthy(models={"gemma": [Server(A, "llamacpp")], "gpt": [hosted, hosted]})
    report = audit(facts)
    self_hosted = report.components[0]
    assert self_hosted.points == 12  # one of two models runs on member hardware
    assert "gpt is forwarded to the hosted API at api.openai.com" in self_hosted.evidence
    local = Server(A, "upstream", "192.168.1.20")  # an Ollama on the operator's network
    assert parts(healthy(models={"gemma": [local, Server(B, "vllm")]}))["self_hosted"] == 25
    assert kinds(facts) == ["single_server"]


def test_the_hosted_api_rule() -> None:
    hosted = ["api.openai.com", "8.8.8.8", "openrouter.ai"]
    assert [is_hosted_api(h) for h in hosted] == [True, True, True]
    local = ["localhost", "127.0.0.1", "10.1.2.3", "192.168.0.9", "::1", "ollama.local", "fe80::1"]
    assert not any(is_hosted_api(h) for h in local)


def test_a_stopped_voter_costs_federated_points_and_is_named() -> None:
    facts = healthy(voters=[A, B], dead_members=[C], live_members=[A, B])
    assert parts(facts)["federated"] == 20 - 3 - 2  # 2 of 3 voters, 2 of 3 machines
    assert kinds(facts) == ["few_voters"]
    one_machine = healthy(voter_hosts={A: "127.0.0.1", B: "127.0.0.1", C: "127.0.0.1"})
    assert parts(one_machine)["federated"] == 20 - 4
    [weakness] = audit(one_machine).single_points_of_failure
    assert weakness.detail == "all 3 voters run on one machine (127.0.0.1)"


def test_autonomy_off_costs_autonomy_points_and_names_the_operator() -> None:
    assert parts(healthy(autonomy="supervised"))["autonomous"] == 25 - 7
    off = healthy(autonomy="off")
    assert parts(off)["autonomous"] == 10
    assert kinds(off) == ["operator_absence"]
    failing = healthy(checks_failing=("disk",))
    assert parts(failing)["autonomous"] == 20
    assert "failing checks: disk" in audit(failing).components[2].evidence


def test_a_model_with_one_server_and_a_shard_with_one_replica_are_single_points() -> None:
    facts = healthy(
        models={"gemma": [Server(A, "llamacpp")]}, shard_live_replicas=[2] * 60 + [1] * 4
    )
    assert kinds(facts) == ["single_server", "single_replica"]
    details = [w.detail for w in audit(facts).single_points_of_failure]
    assert details == [
        f"model gemma is served by {A} only",
        "4 memory shard(s) with fewer than 2 live replicas",
    ]
    assert parts(facts)["federated"] == 20 - 3 - 1  # 0 of 1 models twice, 60 of 64 shards


def test_bootstrap_through_one_dns_name_or_one_address_is_a_single_point() -> None:
    assert kinds(healthy(bootstrap=["seed.fpai.example:7100"])) == ["bootstrap"]
    same_name = healthy(bootstrap=["seed.fpai.example:7100", "seed.fpai.example:7101"])
    assert kinds(same_name) == ["bootstrap"]
    assert kinds(healthy(bootstrap=["a.example:7100", "b.example:7100"])) == []
    assert kinds(healthy(bootstrap=[])) == []  # the first node of a federation joins nobody


def test_a_treasury_one_key_moves_and_no_chain() -> None:
    one_key = healthy(treasury_operators=["0xa"])
    assert parts(one_key)["crypto_native"] == 8 and kinds(one_key) == ["treasury_one_key"]
    no_chain = healthy(chain="none", treasury_operators=[])
    assert parts(no_chain)["crypto_native"] == 0 and kinds(no_chain) == []
    assert parts(healthy(chain="connecting"))["crypto_native"] == 7


def test_no_open_license_no_open_source_points() -> None:
    assert parts(healthy(license=""))["open_source"] == 0
    assert parts(healthy(license="Apache-2.0"))["open_source"] == 10

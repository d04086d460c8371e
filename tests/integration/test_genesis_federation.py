"""A genesis file through real node processes: the node that creates the registry writes the
genesis' voter target and parameters into it once; nodes that join read them from the registry;
a restart never writes them again; bad genesis files and contradicting settings stop the start
with one line."""

from pathlib import Path
from typing import Any

import pytest

from fpai_node.testing.nodeproc import run_cli
from fpai_node.testing.registry_cluster import RegistryNode, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


def write_genesis(path: Path, bootstrap: list[str]) -> Path:
    peers = ", ".join(f'"{p}"' for p in bootstrap)
    path.write_text(
        'federation_id = "genesis-test"\n'
        "protocol_version = 1\n"
        f"bootstrap = [{peers}]\n"
        "registry_voters = 5\n"
        "\n"
        "[parameters]\n"
        'motd = "hello from genesis"\n'
        "inference.max_tokens = 256\n"
        "open_admission = true\n"
    )
    return path


def events(node: RegistryNode, name: str) -> list[dict[str, Any]]:
    """The node's log events of this name since it last started."""
    assert node.process is not None
    return [e for e in node.process.log_events() if e.get("event") == name]


GENESIS_PARAMETERS = {
    "inference.max_tokens": 256,
    "motd": "hello from genesis",
    "open_admission": True,
    "registry.voters": 5,
}


def federation_parameters(node: RegistryNode) -> dict[str, Any]:
    """The registry's parameters without the members' own entries (REG-16: each node keeps its
    operator binding under `member.<id>.`, TREASURY-3), which no genesis sets."""
    parameters = node.registry()["parameters"]
    return {k: v for k, v in parameters.items() if not k.startswith("member.")}


def test_the_genesis_seeds_the_registry_once_and_joiners_read_it(tmp_path: Path) -> None:
    first = RegistryNode(tmp_path / "first")
    second = RegistryNode(tmp_path / "second")
    # One file for every node, the first node's own address included, as a federation would
    # publish it: the first node skips itself, finds no one else, and creates the registry.
    genesis = write_genesis(tmp_path / "genesis.toml", [first.peer])
    try:
        first.start("--genesis", str(genesis))
        wait_for(lambda: first.status()["registry"]["phase"] == "running")
        assert federation_parameters(first) == GENESIS_PARAMETERS
        assert first.status()["registry"]["voters_target"] == 5
        assert [e["voters"] for e in events(first, "registry bootstrapped")] == [5]

        second.start("--genesis", str(genesis))
        wait_for(lambda: second.status()["registry"]["phase"] == "running", timeout_s=30)
        assert federation_parameters(second) == GENESIS_PARAMETERS
        assert second.status()["registry"]["voters_target"] == 5
        # It joined as a learner; the leader gives it a free seat once it is connected (RAFT-11).
        # It also confirms the join `first` relayed for it (REG-13), freeing `first`'s quota.
        voters = {first.node_id: ("voter", None), second.node_id: ("voter", None)}
        wait_for(
            lambda: (
                {m["node_id"]: (m["role"], m["relayed_by"]) for m in first.registry()["members"]}
                == voters
            )
        )

        # An operator changes a genesis parameter; restarting the first node with the same
        # genesis must not put the old value back (it resumes; it does not create again).
        assert first.put("motd", "changed later")["status"] == "ok"
        second.stop()
        first.stop()
        first.start("--genesis", str(genesis), "--registry-voters", "5")  # agreeing: fine
        wait_for(lambda: first.status()["registry"]["leader"], timeout_s=30)
        assert federation_parameters(first) == {**GENESIS_PARAMETERS, "motd": "changed later"}
        assert events(first, "registry resumed") and not events(first, "registry bootstrapped")
    finally:
        first.kill()
        second.kill()


def test_a_voter_setting_that_contradicts_the_genesis_stops_the_start(tmp_path: Path) -> None:
    genesis = write_genesis(tmp_path / "genesis.toml", [])
    home = tmp_path / "home"
    args = ("start", "--home", str(home), "--api", "127.0.0.1:0", "--no-model")
    result = run_cli(*args, "--genesis", str(genesis), "--registry-voters", "3")
    errors = [line for line in result.stderr.splitlines() if line.startswith("fpai-node: ")]
    assert result.returncode == 1 and len(errors) == 1, result.stderr
    assert f"genesis file {genesis}: registry_voters is 5" in errors[0]
    assert "Traceback" not in result.stderr


def test_a_bad_genesis_value_stops_the_start_with_one_line(tmp_path: Path) -> None:
    genesis = tmp_path / "genesis.toml"
    genesis.write_text(
        'federation_id = "x"\nprotocol_version = 1\n[parameters]\nsplit.treasury = 0.6\n'
    )
    home = tmp_path / "home"
    result = run_cli(
        "start",
        "--home",
        str(home),
        "--api",
        "127.0.0.1:0",
        "--no-model",
        "--genesis",
        str(genesis),
    )
    errors = [line for line in result.stderr.splitlines() if line.startswith("fpai-node: ")]
    assert result.returncode == 1 and len(errors) == 1, result.stderr
    assert errors[0].startswith(f"fpai-node: genesis file {genesis}: parameters.split.treasury: ")
    assert "floating-point" in errors[0] and "Traceback" not in result.stderr


def node_id_of(node: RegistryNode) -> str:
    """A node's id before it ever started: `init` its home, as an operator would."""
    assert run_cli("init", "--home", str(node.home)).returncode == 0
    return str(run_cli("id", "--home", str(node.home)).stdout.strip())


def test_only_electors_take_voter_seats_and_the_voters_elect_more(tmp_path: Path) -> None:
    """Issue 13: in an open federation the first nodes to join took the voter seats. With
    registry_electors in the genesis, a node not listed joins as a learner, whatever seats are
    free, until the voters elect it (REG-13)."""
    first, second = RegistryNode(tmp_path / "first"), RegistryNode(tmp_path / "second")
    first_id, second_id = node_id_of(first), node_id_of(second)
    genesis = tmp_path / "genesis.toml"
    genesis.write_text(
        'federation_id = "electors-test"\nprotocol_version = 1\n'
        f'bootstrap = ["{first.peer}"]\nregistry_electors = ["{first_id}"]\n'
    )
    try:
        first.start("--genesis", str(genesis))
        wait_for(lambda: first.status()["registry"]["phase"] == "running")
        second.start("--genesis", str(genesis))
        wait_for(lambda: second.status()["registry"]["phase"] == "running", timeout_s=30)
        members = {m["node_id"]: m["role"] for m in first.registry()["members"]}
        assert members == {first_id: "voter", second_id: "learner"}  # 2 of 3 seats free
        refused = run_cli("registry", "elect", second_id, "--home", str(second.home))
        assert refused.returncode == 1 and "not_allowed" in refused.stderr  # a learner's node
        elected = run_cli("registry", "elect", second_id, "--home", str(first.home))
        assert elected.returncode == 0, elected.stderr
        wait_for(lambda: second.status()["registry"]["role"] == "voter", timeout_s=30)
        electors = first.registry()["parameters"]["registry.electors"]
        assert electors == [first_id, second_id]
    finally:
        first.kill()
        second.kill()

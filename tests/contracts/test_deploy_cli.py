"""`fpai-node chain deploy` against anvil over JSON-RPC, as an operator runs it on a real chain."""

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
from eth_account import Account

from fpai_node.chain import artifacts
from fpai_node.chain.artifacts import ChainError
from fpai_node.chain.contracts import FederationContracts
from fpai_node.chain.deployment import Deployment
from fpai_node.chain.wiring import check_wiring
from fpai_node.testing.chain import Federation, funded_key


def fpai(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fpai_node", *args, "--home", str(home)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "FPAI_HOME": str(home)},
    )


def key_file(path: Path, key: object, mode: int = 0o600) -> Path:
    path.write_text(key.key.to_0x_hex())  # type: ignore[attr-defined]
    path.chmod(mode)
    return path


@pytest.mark.slow
def test_deploy_writes_a_deployment_the_node_can_check(
    fed: Federation, anvil_url: str, tmp_path: Path
) -> None:
    deployer = funded_key(fed.w3)
    operators = [Account.create().address for _ in range(2)]
    key = key_file(tmp_path / "deployer.key", deployer)
    args = ["chain", "deploy", "--rpc", anvil_url, "--key-file", str(key), "--quorum", "60"]
    args += [a for op in operators for a in ("--operator", op)]
    result = fpai(*args, home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "deploying SacredLoop ..." in result.stderr
    assert "checking the wiring ..." in result.stderr

    deployment = Deployment.load(tmp_path / "chain" / "deployment.json")
    assert deployment.chain_id == 31337 and deployment.deployer == deployer.address
    assert deployment.parameters.quorum_percent == 60
    contracts = FederationContracts(fed.w3, deployment)
    check_wiring(fed.w3, deployment)
    assert contracts.votes.functions.operatorCount().call() == 2
    assert contracts.loop.functions.treasuryBps().call() == 6000
    assert contracts.governor.functions.quorumNumerator().call() == 60
    for line in result.stdout.splitlines()[1:]:
        name, address = line.split()
        assert deployment.contracts[name] == address

    again = fpai(*args, home=tmp_path)
    assert again.returncode == 1
    assert again.stderr.strip().endswith("already holds a deployment (--force replaces it)")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("extra", "mode", "message"),
    [
        (["--operator", "0x123"], 0o600, "--operator '0x123' is not an Ethereum address"),
        (["--operator", "0x" + "11" * 20, "--quorum", "0"], 0o600, "quorum must be 1 to 100"),
        (["--operator", "0x" + "11" * 20], 0o644, "is open to other users (chmod 600"),
        (["--operator", "0x" + "11" * 20, "--dev-account"], 0o600, "exactly one of --key-file"),
    ],
)
def test_a_bad_deploy_is_one_line_and_deploys_nothing(
    fed: Federation, anvil_url: str, tmp_path: Path, extra: list[str], mode: int, message: str
) -> None:
    key = key_file(tmp_path / "deployer.key", funded_key(fed.w3), mode)
    block = fed.w3.eth.block_number
    result = fpai(
        "chain", "deploy", "--rpc", anvil_url, "--key-file", str(key), *extra, home=tmp_path
    )
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert fed.w3.eth.block_number == block
    assert not (tmp_path / "chain" / "deployment.json").exists()


@pytest.mark.slow
@pytest.mark.parametrize("deployer", ["--dev-account", "--key-file"])
def test_an_unreachable_rpc_is_one_line(tmp_path: Path, deployer: str) -> None:
    account = [deployer]
    if deployer == "--key-file":
        account.append(str(key_file(tmp_path / "deployer.key", Account.create())))
    result = fpai(
        "chain", "deploy", "--rpc", "http://127.0.0.1:9", *account,
        "--operator", "0x" + "11" * 20, home=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.startswith("fpai-node: chain RPC failed:"), result.stderr
    assert result.stderr.count("\n") == 1


def test_a_deployment_whose_contract_answers_to_someone_else_is_refused(fed: Federation) -> None:
    """CHAIN-2: the wiring a node checks before it trusts a deployment file (CHAIN-9)."""
    own_treasury = fed.relayer.deploy(artifacts.load("Treasury"), fed.relayer.address)
    contracts = dict(fed.contracts.deployment.contracts, Treasury=own_treasury.address)
    tampered = dataclasses.replace(fed.contracts.deployment, contracts=contracts)
    with pytest.raises(ChainError, match=rf"Treasury is owned by {fed.relayer.address}"):
        check_wiring(fed.w3, tampered)
    with pytest.raises(ChainError, match="the deployment is for chain 1"):
        FederationContracts(fed.w3, dataclasses.replace(tampered, chain_id=1))

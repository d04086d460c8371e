"""Driving a deployed federation on a development chain: funded keys, moving time, snapshots, and
a proposal taken through its whole life. Shared by the contract tests and
benchmarks/contracts.py."""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import HTTPProvider, Web3
from web3.contract import Contract
from web3.logs import DISCARD
from web3.types import TxReceipt

from fpai_node.chain import governance
from fpai_node.chain.contracts import FederationContracts
from fpai_node.chain.deploy import deploy
from fpai_node.chain.governance import Proposal, Support
from fpai_node.chain.parameters import GovernanceParameters
from fpai_node.chain.transactor import Transactor
from fpai_node.testing.nodeproc import run_cli

ONE_ETH = 10**18
# Fast enough for tests, long enough to test the waits: votes open a second after a proposal,
# close an hour later, and what passed waits ten minutes in the timelock.
TEST_PARAMETERS = GovernanceParameters(
    voting_delay_s=1, voting_period_s=3600, timelock_delay_s=600, claim_window_s=7 * 24 * 3600
)


def set_balance(w3: Web3, address: str, wei: int) -> None:
    w3.provider.make_request("anvil_setBalance", [address, hex(wei)])  # type: ignore[arg-type]


def funded_key(w3: Web3, wei: int = 1_000 * ONE_ETH) -> LocalAccount:
    """A fresh key holding `wei`."""
    key: LocalAccount = Account.create()
    set_balance(w3, key.address, wei)
    return key


def advance(w3: Web3, seconds: int) -> None:
    """Moves the chain's clock `seconds` forward and mines a block at the new time."""
    w3.provider.make_request("evm_increaseTime", [seconds])  # type: ignore[arg-type]
    w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]


def snapshot(w3: Web3) -> str:
    return str(w3.provider.make_request("evm_snapshot", [])["result"])  # type: ignore[arg-type]


def revert(w3: Web3, snapshot_id: str) -> None:
    result = w3.provider.make_request("evm_revert", [snapshot_id])  # type: ignore[arg-type]
    assert result.get("result") is True, result


def emitted(contract: Contract, event: str, receipt: TxReceipt) -> list[dict[str, Any]]:
    """The arguments of each `event` that `contract` itself logged in `receipt` (web3 decodes
    any log whose signature matches, whoever emitted it)."""
    logs = contract.events[event]().process_receipt(receipt, errors=DISCARD)
    return [dict(log["args"]) for log in logs if log["address"] == contract.address]


def as_account(w3: Web3, address: str) -> Transactor:
    """Sends as `address` without its key (anvil impersonation): how a test acts as the timelock
    when the subject is a contract's arithmetic, not the vote that would lead there."""
    checksummed = Web3.to_checksum_address(address)
    w3.provider.make_request("anvil_impersonateAccount", [checksummed])  # type: ignore[arg-type]
    set_balance(w3, checksummed, 1_000 * ONE_ETH)
    return Transactor(w3, checksummed)


@dataclass
class Federation:
    """A deployment on a dev chain with its operators' keys and a relayer that pays the gas."""

    w3: Web3
    contracts: FederationContracts
    operators: list[LocalAccount]
    relayer: Transactor
    parameters: GovernanceParameters


def deploy_federation(
    w3: Web3, operators: int = 3, parameters: GovernanceParameters = TEST_PARAMETERS
) -> Federation:
    deployer = Transactor(w3, funded_key(w3))
    keys = [funded_key(w3) for _ in range(operators)]
    deployment = deploy(deployer, [k.address for k in keys], parameters)
    advance(w3, 1)  # the operators' votes are checkpointed at deployment; proposals come after
    return Federation(
        w3, FederationContracts(w3, deployment), keys, Transactor(w3, funded_key(w3)), parameters
    )


def pass_proposal(
    federation: Federation,
    proposal: Proposal,
    voters: Sequence[LocalAccount],
    support: Support = Support.FOR,
) -> dict[str, TxReceipt]:
    """Proposes (as the first operator), has `voters` sign ballots the relayer casts, waits the
    voting period, queues, waits the timelock and executes. Returns each step's receipt."""
    w3, governor = federation.w3, federation.contracts.governor
    proposer = Transactor(w3, federation.operators[0])
    receipts: dict[str, TxReceipt] = {}
    receipts["propose"] = governance.propose(proposer, governor, proposal)
    advance(w3, federation.parameters.voting_delay_s + 1)
    for i, voter in enumerate(voters):
        ballot = governance.sign_ballot(
            voter,
            chain_id=w3.eth.chain_id,
            governor=governor.address,
            proposal=proposal.id,
            support=support,
            nonce=governance.nonce(governor, voter.address),
        )
        receipts[f"vote{i}"] = governance.relay(federation.relayer, governor, ballot)
    advance(w3, federation.parameters.voting_period_s + 1)
    receipts["queue"] = governance.queue(federation.relayer, governor, proposal)
    advance(w3, federation.parameters.timelock_delay_s + 1)
    receipts["execute"] = governance.execute(federation.relayer, governor, proposal)
    return receipts


def operated_homes(homes: Sequence[Path]) -> list[str]:
    """`fpai-node init` each home; their operators' addresses, in order."""
    operators = []
    for home in homes:
        assert run_cli("init", "--home", str(home)).returncode == 0
        operators.append(run_cli("id", "--home", str(home), "--operator").stdout.strip())
    return operators


def deploy_for_nodes(
    rpc: str, operators: Sequence[str], out: Path, *, voting_period_s: int, timelock_s: int
) -> dict[str, str]:
    """Fund `operators` (each pays its own gas), deploy the federation for them with `fpai-node
    chain deploy` as an operator would, and return the environment that points nodes at it
    (a 1-s grace, so tests do not wait on turns)."""
    w3 = Web3(HTTPProvider(rpc))
    for address in operators:
        set_balance(w3, address, 100 * ONE_ETH)
    deployed = run_cli(
        "chain", "deploy", "--rpc", rpc, "--dev-account",
        *(arg for address in operators for arg in ("--operator", address)),
        "--voting-delay", "1", "--voting-period", str(voting_period_s),
        "--timelock-delay", str(timelock_s), "--out", str(out),
    )  # fmt: skip
    assert deployed.returncode == 0, deployed.stderr
    return {
        "FPAI_CHAIN_RPC": rpc,
        "FPAI_CHAIN_DEPLOYMENT": str(out),
        "FPAI_TREASURY_GRACE_S": "1",
    }

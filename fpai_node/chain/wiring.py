"""Checking, on the chain, that governance alone controls a deployment (CHAIN-2).

A deployment file is a claim by whoever deployed: that these addresses are the federation's
contracts and that nothing but a passed proposal can act through them. Before a node trusts it,
it checks each part of the claim against the chain: the code at every address is the
artifact's (immutables aside), every contract is owned by the timelock, the contracts point at
each other, and the timelock's roles are exactly the governor's (proposer, canceller), anyone's
(executor) and its own (admin). Roles cannot be listed on chain, so they are replayed from the
timelock's RoleGranted and RoleRevoked logs, from its construction to the moment the timelock
became its only admin: from then on only a proposal can change a role.
"""

from collections.abc import Iterable
from typing import Any

from eth_typing import ChecksumAddress
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from web3 import Web3
from web3.contract import Contract

from fpai_node.chain import artifacts
from fpai_node.chain.artifacts import ChainError
from fpai_node.chain.contracts import FederationContracts
from fpai_node.chain.deployment import Deployment

ANYONE = to_checksum_address("0x" + "00" * 20)  # the timelock's executor meaning "anyone"
# TimelockController's roles: keccak256 of the name, the admin role zero (OpenZeppelin's
# AccessControl); constants, so never asked of the chain.
ROLES = {
    "DEFAULT_ADMIN_ROLE": bytes(32),
    **{name: keccak(text=name) for name in ("PROPOSER_ROLE", "CANCELLER_ROLE", "EXECUTOR_ROLE")},
}
OWNED = ("OperatorVotes", "Treasury", "GrowthFund", "SacredLoop", "RewardsDistributor")
# Many public RPC endpoints cap eth_getLogs at a few thousand blocks per call.
LOG_CHUNK_BLOCKS = 2_000
# A deployment takes about 15 transactions; its set-up lying further than this from the file's
# block means the file is not this timelock's, or the deployer never let go.
MAX_SETUP_BLOCKS = 50_000


def check_wiring(w3: Web3, deployment: Deployment) -> FederationContracts:
    """The deployment's contracts, once every check passes; else ChainError naming the first
    that failed."""
    contracts = FederationContracts(w3, deployment)  # checks the chain id
    _check_code(w3, deployment)
    timelock = contracts.timelock.address
    for name in OWNED:
        owner = contracts[name].functions.owner().call()
        if owner != timelock:
            raise ChainError(f"{name} is owned by {owner}, not the timelock {timelock}")
    address = deployment.address
    links = [
        ("SacredLoop", "treasury", "Treasury"),
        ("SacredLoop", "growth", "GrowthFund"),
        ("RewardsDistributor", "returnTo", "Treasury"),
        ("RewardsDistributor", "rewardToken", "Stablecoin"),
        ("FederationGovernor", "token", "OperatorVotes"),
        ("FederationGovernor", "timelock", "FederationTimelock"),
    ]
    for name, getter, target in links:
        found = contracts[name].functions[getter]().call()
        if found != address(target):
            raise ChainError(f"{name}.{getter}() is {found}, not the {target} {address(target)}")
    _check_roles(w3, contracts)
    return contracts


def _check_code(w3: Web3, deployment: Deployment) -> None:
    ours = [name for name in deployment.contracts if name != "Stablecoin"]
    if "TestVault" in deployment.contracts:  # a testnet: the stablecoin is ours too
        ours.append("Stablecoin")
    for name in ours:
        artifact = artifacts.load("TestStablecoin" if name == "Stablecoin" else name)
        expected = bytes.fromhex(artifact.deployed_bytecode[2:])
        found = bytes(w3.eth.get_code(deployment.address(name)))
        if len(found) != len(expected) or _masked(found, artifact.immutables) != _masked(
            expected, artifact.immutables
        ):
            raise ChainError(
                f"the code of {name} at {deployment.address(name)} is not "
                f"contracts/artifacts/{artifact.name}.json"
            )


def _masked(code: bytes, immutables: Iterable[tuple[int, int]]) -> bytes:
    masked = bytearray(code)
    for start, length in immutables:
        masked[start : start + length] = bytes(length)
    return bytes(masked)


def _check_roles(w3: Web3, contracts: FederationContracts) -> None:
    timelock = contracts.timelock
    governor = contracts.governor.address
    holders = _holders_after_setup(w3, timelock, contracts.deployment.block)
    want = {
        "DEFAULT_ADMIN_ROLE": {timelock.address},
        "PROPOSER_ROLE": {governor},
        "CANCELLER_ROLE": {governor},
        "EXECUTOR_ROLE": {ANYONE},
    }
    for name, accounts in want.items():
        if holders.get(name, set()) != accounts:
            found = ", ".join(sorted(holders.get(name, set()))) or "nobody"
            raise ChainError(f"the timelock's {name} is held by {found}, not only {accounts}")
    for name, accounts in want.items():  # and still, now
        if not all(timelock.functions.hasRole(ROLES[name], a).call() for a in accounts):
            raise ChainError(f"the timelock's {name} no longer belongs to {accounts}")


def _holders_after_setup(
    w3: Web3, timelock: Contract, from_block: int
) -> dict[str, set[ChecksumAddress]]:
    """Role holders replayed from the timelock's construction to the end of the first
    transaction after which the timelock is its own only admin."""
    names = {role: name for name, role in ROLES.items()}
    holders: dict[str, set[ChecksumAddress]] = {}
    constructed = False
    latest = w3.eth.block_number
    start = from_block
    while start <= min(latest, from_block + MAX_SETUP_BLOCKS):
        end = min(start + LOG_CHUNK_BLOCKS - 1, latest)
        logs: list[Any] = [
            *timelock.events.RoleGranted().get_logs(from_block=start, to_block=end),
            *timelock.events.RoleRevoked().get_logs(from_block=start, to_block=end),
        ]
        logs.sort(key=lambda log: (log["blockNumber"], log["logIndex"]))
        for i, log in enumerate(logs):
            name = names.get(bytes(log["args"]["role"]))
            if name is None:
                continue
            accounts = holders.setdefault(name, set())
            account = to_checksum_address(log["args"]["account"])
            if log["event"] == "RoleGranted":
                accounts.add(account)
                if name == "DEFAULT_ADMIN_ROLE" and account == timelock.address:
                    constructed = True  # the constructor's first grant
            else:
                accounts.discard(account)
            last_of_transaction = i + 1 == len(logs) or (
                logs[i + 1]["transactionHash"] != log["transactionHash"]
            )
            if (
                constructed
                and last_of_transaction
                and holders.get("DEFAULT_ADMIN_ROLE") == {timelock.address}
            ):
                return holders
        start = end + 1
    if not constructed:
        raise ChainError(
            f"the timelock was not constructed within {MAX_SETUP_BLOCKS} blocks of block "
            f"{from_block}: the deployment file's block is wrong"
        )
    admins = ", ".join(sorted(holders.get("DEFAULT_ADMIN_ROLE", set())))
    raise ChainError(f"the timelock is still administered by {admins}")

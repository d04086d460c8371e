"""Deploying the contract set in order, wired so that only governance can act (docs/contracts.md).

1. the stablecoin (TestStablecoin, and a TestVault over it, on testnets; else an existing token);
2. FederationTimelock: anyone executes, the deployer is admin only until step 5;
3. OperatorVotes owned by the timelock, with the first operators admitted;
4. FederationGovernor over those votes and that timelock;
5. the governor becomes the timelock's only proposer and canceller; the deployer renounces admin;
6. Treasury and GrowthFund, then SacredLoop paying them, then RewardsDistributor returning to the
   treasury: all owned by the timelock.
Then the whole set is checked as a node checks it (wiring.py): a deployment that is not wired
as above is refused.
"""

from collections.abc import Callable, Sequence
from pathlib import Path

from eth_typing import ChecksumAddress
from eth_utils.address import is_address, to_checksum_address
from web3 import Web3

from fpai_node.chain import artifacts
from fpai_node.chain.artifacts import ChainError
from fpai_node.chain.deployment import Deployment
from fpai_node.chain.keys import load_key
from fpai_node.chain.parameters import GovernanceParameters
from fpai_node.chain.transactor import Transactor, rpc_errors
from fpai_node.chain.wiring import ANYONE, ROLES, check_wiring

RPC_TIMEOUT_S = 30  # one JSON-RPC call; a public endpoint answers in well under a second


def deploy(
    sender: Transactor,
    operators: Sequence[ChecksumAddress],
    parameters: GovernanceParameters,
    stablecoin: ChecksumAddress | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> Deployment:
    """Deploys the set from `sender`. Without `stablecoin`, deploys the testnet token and vault."""
    parameters.check()
    if not operators:
        raise ChainError("at least one operator is needed: without one nobody can ever propose")
    if len(set(operators)) != len(operators):
        raise ChainError("an operator is listed twice")
    w3 = sender.w3
    block = w3.eth.block_number
    contracts: dict[str, ChecksumAddress] = {}

    def step(name: str, artifact: str, *args: object) -> ChecksumAddress:
        progress(f"deploying {name}")
        contracts[name] = sender.deploy(artifacts.load(artifact), *args).address
        return contracts[name]

    if stablecoin is None:
        stablecoin = step("Stablecoin", "TestStablecoin")
        step("TestVault", "TestVault", stablecoin)
    else:
        if not w3.eth.get_code(stablecoin):
            raise ChainError(f"no contract at stablecoin address {stablecoin}")
        contracts["Stablecoin"] = stablecoin
    timelock_address = step(
        "FederationTimelock",
        "FederationTimelock",
        parameters.timelock_delay_s,
        [],
        [ANYONE],
        sender.address,
    )
    votes = step("OperatorVotes", "OperatorVotes", timelock_address, list(operators))
    governor = step(
        "FederationGovernor",
        "FederationGovernor",
        votes,
        timelock_address,
        parameters.voting_delay_s,
        parameters.voting_period_s,
        parameters.quorum_percent,
    )
    progress("handing the timelock to the governor")
    timelock = w3.eth.contract(
        address=timelock_address, abi=artifacts.load("FederationTimelock").abi
    )
    for role in ("PROPOSER_ROLE", "CANCELLER_ROLE"):
        sender.send(timelock.functions.grantRole(ROLES[role], governor))
    sender.send(timelock.functions.renounceRole(ROLES["DEFAULT_ADMIN_ROLE"], sender.address))
    treasury = step("Treasury", "Treasury", timelock_address)
    growth = step("GrowthFund", "GrowthFund", timelock_address)
    step(
        "SacredLoop",
        "SacredLoop",
        timelock_address,
        treasury,
        growth,
        parameters.treasury_bps,
        [stablecoin],
    )
    step(
        "RewardsDistributor",
        "RewardsDistributor",
        timelock_address,
        stablecoin,
        treasury,
        parameters.claim_window_s,
    )
    deployment = Deployment(
        chain_id=w3.eth.chain_id,
        block=block,
        deployer=sender.address,
        contracts=contracts,
        parameters=parameters,
    )
    progress("checking the wiring")
    check_wiring(w3, deployment)
    return deployment


def deploy_to(
    rpc: str,
    *,
    key_file: Path | None,
    dev_account: bool,
    operators: Sequence[str],
    parameters: GovernanceParameters,
    stablecoin: str | None,
    progress: Callable[[str], None],
) -> Deployment:
    """`fpai-node chain deploy`: every input checked before the chain is asked anything, then
    deploy() from the key in `key_file` or, on a dev chain, from its first unlocked account."""
    parameters.check()
    chosen = [_address("--operator", a) for a in operators]
    token = None if stablecoin is None else _address("--stablecoin", stablecoin)
    if (key_file is None) == (not dev_account):
        raise ChainError("give exactly one of --key-file FILE and --dev-account")
    key = None if key_file is None else load_key(key_file)
    w3 = Web3(Web3.HTTPProvider(rpc, request_kwargs={"timeout": RPC_TIMEOUT_S}))
    with rpc_errors():
        if key is None:
            unlocked = w3.eth.accounts
            if not unlocked:
                raise ChainError("the RPC unlocks no account: --dev-account needs a dev chain")
        sender = Transactor(w3, key if key is not None else unlocked[0])
        return deploy(sender, chosen, parameters, stablecoin=token, progress=progress)


def _address(option: str, value: str) -> ChecksumAddress:
    if not is_address(value):
        raise ChainError(f"{option} {value!r} is not an Ethereum address")
    return to_checksum_address(value)

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

from eth_typing import ChecksumAddress
from web3.contract import Contract

from fpai_node.chain import artifacts
from fpai_node.chain.artifacts import ChainError
from fpai_node.chain.deployment import Deployment, GovernanceParameters
from fpai_node.chain.transactor import Transactor
from fpai_node.chain.wiring import ANYONE, check_wiring


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
        sender.send(timelock.functions.grantRole(_role(timelock, role), governor))
    sender.send(
        timelock.functions.renounceRole(_role(timelock, "DEFAULT_ADMIN_ROLE"), sender.address)
    )
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


def _role(timelock: Contract, name: str) -> bytes:
    return bytes(timelock.functions[name]().call())

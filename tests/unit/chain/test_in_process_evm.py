"""The contract set on py-evm, in process (web3's EthereumTesterProvider): a second EVM
implementation besides anvil, and no node process. Deployment, wiring and the split hold on both."""

import pytest
from web3 import EthereumTesterProvider, Web3

from fpai_node.chain.contracts import FederationContracts
from fpai_node.chain.deploy import deploy
from fpai_node.chain.parameters import GovernanceParameters
from fpai_node.chain.transactor import Transactor
from fpai_node.chain.wiring import check_wiring


@pytest.fixture(scope="module")
def federation() -> tuple[Transactor, FederationContracts]:
    w3 = Web3(EthereumTesterProvider())
    sender = Transactor(w3, w3.eth.accounts[0])
    deployment = deploy(sender, w3.eth.accounts[1:4], GovernanceParameters(treasury_bps=7_000))
    return sender, FederationContracts(w3, deployment)


def test_the_set_deploys_wired_to_governance_on_py_evm(
    federation: tuple[Transactor, FederationContracts],
) -> None:
    _, contracts = federation
    check_wiring(contracts.w3, contracts.deployment)
    assert contracts.votes.functions.operatorCount().call() == 3
    assert contracts.votes.functions.CLOCK_MODE().call() == "mode=timestamp"
    assert contracts.governor.functions.CLOCK_MODE().call() == "mode=timestamp"
    assert contracts.governor.functions.name().call() == "FPAI Federation"


def test_eth_revenue_splits_by_the_deployed_ratio_on_py_evm(
    federation: tuple[Transactor, FederationContracts],
) -> None:
    sender, c = federation
    w3 = c.w3
    before = w3.eth.get_balance(c.treasury.address), w3.eth.get_balance(c.growth.address)
    sender.transfer(c.loop.address, 1_000_001)
    assert w3.eth.get_balance(c.treasury.address) - before[0] == 700_001
    assert w3.eth.get_balance(c.growth.address) - before[1] == 300_000

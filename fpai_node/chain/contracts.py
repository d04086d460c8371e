"""A federation's deployed contracts as web3 handles, checked against the chain they are on."""

from web3 import Web3
from web3.contract import Contract

from fpai_node.chain import artifacts
from fpai_node.chain.artifacts import ChainError
from fpai_node.chain.deployment import Deployment

# Which artifact's ABI each deployment entry speaks: the stablecoin is any ERC-20 (the test
# token's ABI is a superset of what the node calls on it), the vault any ERC-4626.
ABI_OF = {"Stablecoin": "TestStablecoin"}


class FederationContracts:
    """Every contract of a deployment, by name, on the chain `w3` reaches."""

    def __init__(self, w3: Web3, deployment: Deployment) -> None:
        if w3.eth.chain_id != deployment.chain_id:
            raise ChainError(
                f"the RPC serves chain {w3.eth.chain_id}, the deployment is for chain "
                f"{deployment.chain_id}"
            )
        self.w3 = w3
        self.deployment = deployment
        self._contracts = {
            name: w3.eth.contract(address=address, abi=artifacts.load(ABI_OF.get(name, name)).abi)
            for name, address in deployment.contracts.items()
        }

    def __getitem__(self, name: str) -> Contract:
        try:
            return self._contracts[name]
        except KeyError:
            raise ChainError(f"the deployment has no {name}") from None

    @property
    def governor(self) -> Contract:
        return self["FederationGovernor"]

    @property
    def timelock(self) -> Contract:
        return self["FederationTimelock"]

    @property
    def votes(self) -> Contract:
        return self["OperatorVotes"]

    @property
    def treasury(self) -> Contract:
        return self["Treasury"]

    @property
    def growth(self) -> Contract:
        return self["GrowthFund"]

    @property
    def loop(self) -> Contract:
        return self["SacredLoop"]

    @property
    def rewards(self) -> Contract:
        return self["RewardsDistributor"]

    @property
    def stablecoin(self) -> Contract:
        return self["Stablecoin"]

    def vault(self, address: str) -> Contract:
        """Any ERC-4626 vault, by address (the one the treasury chose, or one to propose)."""
        return self.w3.eth.contract(
            address=Web3.to_checksum_address(address), abi=artifacts.load("TestVault").abi
        )

"""CHAIN-2: every function that moves money or changes a rule is governance-only: called by
anyone else, an operator included, it reverts. The lists are checked against the ABIs, so a new
function fails this test until it is classified here."""

from typing import Any

import pytest
from web3.contract import Contract

from fpai_node.chain import artifacts
from fpai_node.chain.artifacts import ChainError
from fpai_node.chain.transactor import Transactor
from fpai_node.testing.chain import Federation

OWNABLE = r"OwnableUnauthorizedAccount\({caller}\)"
GOVERNANCE_ONLY: dict[str, tuple[str, set[str]]] = {
    "SacredLoop": (
        OWNABLE,
        {
            "setSplit",
            "setDestinations",
            "setTokenAllowed",
            "transferOwnership",
            "renounceOwnership",
        },
    ),
    "Treasury": (
        OWNABLE,
        {"chooseVault", "deposit", "withdraw", "redeem", "pay"}
        | {"transferOwnership", "renounceOwnership"},
    ),
    "GrowthFund": (OWNABLE, {"pay", "transferOwnership", "renounceOwnership"}),
    "RewardsDistributor": (
        OWNABLE,
        {"publish", "setReturnTo", "setClaimWindow", "transferOwnership", "renounceOwnership"},
    ),
    "OperatorVotes": (OWNABLE, {"admit", "remove", "transferOwnership", "renounceOwnership"}),
    "FederationGovernor": (
        r"GovernorOnlyExecutor\({caller}\)",
        {
            "relay",
            "setProposalThreshold",
            "setVotingDelay",
            "setVotingPeriod",
            "updateQuorumNumerator",
            "updateTimelock",
        },
    ),
    "FederationTimelock": (
        r"AccessControlUnauthorizedAccount\({caller}, 0x[0-9a-f]{{64}}\)"
        r"|TimelockUnauthorizedCaller\({caller}\)",
        {"schedule", "scheduleBatch", "cancel", "grantRole", "revokeRole", "updateDelay"},
    ),
}
# Open to anyone, each for its reason (docs/contracts.md, "Who can do what").
OPEN = {
    "SacredLoop": {"payToken", "distribute"},  # paying revenue in and splitting what is held
    "Treasury": set(),
    "GrowthFund": set(),
    "RewardsDistributor": {"claim", "reclaim"},  # pays only the leaf's operator / the treasury
    "OperatorVotes": set(),  # delegate and delegateBySig are pure: they always revert
    "FederationGovernor": {
        "propose",  # needs one vote: operators only
        "cancel",  # the proposer only, while pending
        "castVote",
        "castVoteWithReason",
        "castVoteWithReasonAndParams",
        "castVoteBySig",
        "castVoteWithReasonAndParamsBySig",
        "queue",  # a proposal that passed only
        "execute",  # a queued proposal whose timelock ran out only
        "onERC721Received",
        "onERC1155Received",
        "onERC1155BatchReceived",
    },
    "FederationTimelock": {
        "execute",  # operations the governor scheduled, after the delay
        "executeBatch",
        "renounceRole",  # one's own role only
        "onERC721Received",
        "onERC1155Received",
        "onERC1155BatchReceived",
    },
}


def state_changing(name: str) -> set[str]:
    return {
        item["name"]
        for item in artifacts.load(name).abi
        if item["type"] == "function" and item["stateMutability"] in ("nonpayable", "payable")
    }


@pytest.mark.parametrize("name", sorted(GOVERNANCE_ONLY))
def test_every_state_changing_function_is_classified(name: str) -> None:
    governed, open_ = GOVERNANCE_ONLY[name][1], OPEN[name]
    assert governed.isdisjoint(open_)
    assert state_changing(name) == governed | open_


def placeholder(kind: str, caller: str) -> Any:
    """A well-formed argument of ABI type `kind`: the access check runs before any other."""
    if kind.endswith("[]"):
        return []
    if kind == "address":
        return caller
    if kind.startswith(("uint", "int")):
        return 1
    if kind == "bool":
        return True
    if kind == "string":
        return "x"
    if kind == "bytes":
        return b""
    if kind.startswith("bytes"):
        return b"\x01" * int(kind[5:])
    raise AssertionError(f"no placeholder for {kind}")


@pytest.mark.parametrize(
    ("name", "function"),
    sorted((name, f) for name, (_, functions) in GOVERNANCE_ONLY.items() for f in functions),
)
def test_a_governance_only_call_from_anyone_else_reverts(
    fed: Federation, name: str, function: str
) -> None:
    contract: Contract = fed.contracts[name]
    (abi,) = [i for i in contract.abi if i.get("name") == function and i["type"] == "function"]
    for sender in (Transactor(fed.w3, fed.operators[0]), fed.relayer):
        args = [placeholder(i["type"], sender.address) for i in abi["inputs"]]
        pattern = GOVERNANCE_ONLY[name][0].format(caller=sender.address)
        with pytest.raises(ChainError, match=pattern):
            sender.send(contract.functions[function](*args))

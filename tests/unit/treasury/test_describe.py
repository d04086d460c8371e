"""How a node shows a proposal's calls (TREASURY-9): any operator may propose any bytes, so
calldata that does not decode is shown raw, never raised (it broke every node's status)."""

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st
from web3 import Web3
from web3.contract import Contract

from fpai_node.chain import artifacts
from fpai_node.chain.governance import Action, Proposal
from fpai_node.treasury.ledger import Ledger

LOOP = Web3.to_checksum_address("0x" + "11" * 20)
STRANGER = Web3.to_checksum_address("0x" + "22" * 20)
SET_SPLIT = Web3.keccak(text="setSplit(uint16)")[:4]


@dataclass
class Deployment:
    contracts: dict[str, str]


class Contracts:
    """The deployment's web3 handles as describe reads them: offline, no chain needed."""

    deployment = Deployment({"SacredLoop": LOOP})

    def __getitem__(self, name: str) -> Contract:
        return Web3().eth.contract(address=LOOP, abi=artifacts.load(name).abi)


def describe(*actions: Action) -> list[str]:
    ledger = Ledger.__new__(Ledger)
    ledger.contracts = Contracts()  # type: ignore[assignment]
    return ledger.describe(Proposal(actions, "text"))


def test_calls_are_decoded_or_shown_raw() -> None:
    good = SET_SPLIT + (7000).to_bytes(32, "big")
    truncated = SET_SPLIT + b"\x00" * 3
    dirty = SET_SPLIT + b"\xff" * 32  # a uint16 with non-zero padding
    assert describe(
        Action(LOOP, good), Action(LOOP, truncated), Action(LOOP, dirty), Action(STRANGER, b"\x01")
    ) == [
        "SacredLoop.setSplit(7000)",
        f"SacredLoop: 0x{truncated.hex()}",
        f"SacredLoop: 0x{dirty.hex()}",
        f"{STRANGER}: 0x01",
    ]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=100))
def test_any_calldata_to_a_deployment_contract_is_shown(tail: bytes) -> None:
    [shown] = describe(Action(LOOP, SET_SPLIT + tail))
    assert shown.startswith("SacredLoop")

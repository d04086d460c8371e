"""Proposals, EIP-712 ballots and their life cycle on the FederationGovernor.

A proposal is a list of calls the timelock will make and a description that ends with
`#proposer=<the proposer's address>`; its id is OpenZeppelin's
    uint256(keccak256(abi.encode(address[] targets, uint256[] values, bytes[] calldatas,
                                 keccak256(bytes(description)))))
A ballot is the EIP-712 message Governor.castVoteBySig checks, signed by an operator key, so any
node can relay it: Ballot(uint256 proposalId,uint8 support,address voter,uint256 nonce), or
ExtendedBallot(...,string reason,bytes params) when it carries a reason; the domain is
{name: "FPAI Federation", version: "1", chainId, verifyingContract: the governor}. The voter's
nonce (governor.nonces(voter)) makes each signature usable once.
"""

import enum
from dataclasses import dataclass
from typing import Any

from eth_abi.abi import encode as abi_encode
from eth_account import Account
from eth_account.messages import SignableMessage, encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_keys.exceptions import BadSignature
from eth_typing import ChecksumAddress
from eth_utils.crypto import keccak
from web3.contract import Contract
from web3.types import TxReceipt

from fpai_node.chain.artifacts import ChainError
from fpai_node.chain.transactor import Transactor, guarded

PROPOSER_MARK = "#proposer="  # OpenZeppelin Governor's front-running protection suffix
GOVERNOR_NAME = "FPAI Federation"  # FederationGovernor's EIP-712 domain name
GOVERNOR_VERSION = "1"


class Support(enum.IntEnum):
    AGAINST = 0
    FOR = 1
    ABSTAIN = 2


class State(enum.IntEnum):
    """IGovernor.ProposalState, in its on-chain order."""

    PENDING = 0
    ACTIVE = 1
    CANCELED = 2
    DEFEATED = 3
    SUCCEEDED = 4
    QUEUED = 5
    EXPIRED = 6
    EXECUTED = 7


@dataclass(frozen=True)
class Action:
    """One call the timelock makes when the proposal executes."""

    target: ChecksumAddress
    calldata: bytes
    value: int = 0

    @classmethod
    def call(cls, contract: Contract, function: str, *args: Any, value: int = 0) -> "Action":
        return cls(contract.address, bytes.fromhex(contract.encode_abi(function, args)[2:]), value)


@dataclass(frozen=True)
class Proposal:
    actions: tuple[Action, ...]
    description: str

    @classmethod
    def by(cls, proposer: str, actions: tuple[Action, ...], text: str) -> "Proposal":
        """A proposal only `proposer` can submit: its description ends with OpenZeppelin's
        `#proposer=<address>`, so another operator who copies it from the mempool is refused
        (and cannot then cancel it)."""
        return cls(actions, f"{text}\n\n{PROPOSER_MARK}{proposer.lower()}")

    def proposer(self) -> str | None:
        """The address the description reserves the proposal for, if it ends with the mark."""
        _, mark, address = self.description.rpartition(PROPOSER_MARK)
        return address if mark and len(address) == 42 else None

    @property
    def id(self) -> int:
        types = ["address[]", "uint256[]", "bytes[]", "bytes32"]
        encoded = abi_encode(types, [*self.arguments(), self.description_hash])
        return int.from_bytes(keccak(encoded), "big")

    def arguments(self) -> tuple[list[str], list[int], list[bytes]]:
        return (
            [a.target for a in self.actions],
            [a.value for a in self.actions],
            [a.calldata for a in self.actions],
        )

    @property
    def description_hash(self) -> bytes:
        return keccak(text=self.description)


@dataclass(frozen=True)
class Ballot:
    proposal_id: int
    support: Support
    voter: ChecksumAddress
    nonce: int
    signature: bytes
    reason: str | None = None


def sign_ballot(
    key: LocalAccount,
    *,
    chain_id: int,
    governor: ChecksumAddress,
    proposal: int,
    support: Support,
    nonce: int,
    reason: str | None = None,
) -> Ballot:
    """The operator's signed vote, ready for any node to relay."""
    unsigned = Ballot(proposal, support, key.address, nonce, b"", reason)
    signed = Account.sign_message(_typed(unsigned, chain_id, governor), key.key)
    return Ballot(proposal, support, key.address, nonce, bytes(signed.signature), reason)


def ballot_signer(ballot: Ballot, *, chain_id: int, governor: ChecksumAddress) -> str | None:
    """The address whose key signed `ballot` (the governor casts it for that address), or None
    for a signature that names nobody."""
    try:
        return str(
            Account.recover_message(_typed(ballot, chain_id, governor), signature=ballot.signature)
        )
    except (ValueError, TypeError, BadSignature):  # r or s out of range, v not 27 or 28
        return None


def _typed(ballot: Ballot, chain_id: int, governor: ChecksumAddress) -> SignableMessage:
    """CHAIN-6: the EIP-712 message the governor checks."""
    domain = {
        "name": GOVERNOR_NAME,
        "version": GOVERNOR_VERSION,
        "chainId": chain_id,
        "verifyingContract": governor,
    }
    fields = [
        {"name": "proposalId", "type": "uint256"},
        {"name": "support", "type": "uint8"},
        {"name": "voter", "type": "address"},
        {"name": "nonce", "type": "uint256"},
    ]
    message: dict[str, Any] = {
        "proposalId": ballot.proposal_id,
        "support": int(ballot.support),
        "voter": ballot.voter,
        "nonce": ballot.nonce,
    }
    if ballot.reason is None:
        types = {"Ballot": fields}
    else:
        fields = [
            *fields,
            {"name": "reason", "type": "string"},
            {"name": "params", "type": "bytes"},
        ]
        types = {"ExtendedBallot": fields}
        message |= {"reason": ballot.reason, "params": b""}
    return encode_typed_data(domain, types, message)


def propose(sender: Transactor, governor: Contract, proposal: Proposal) -> TxReceipt:
    """Submits `proposal`, which must be reserved for the sender (Proposal.by, CHAIN-5)."""
    reserved = proposal.proposer()
    if reserved is None or reserved.lower() != sender.address.lower():
        raise ChainError(
            f"a proposal's description must end with {PROPOSER_MARK}{sender.address.lower()} "
            "(use Proposal.by), or another operator could take it over and cancel it"
        )
    targets, values, calldatas = proposal.arguments()
    return sender.send(governor.functions.propose(targets, values, calldatas, proposal.description))


def relay(sender: Transactor, governor: Contract, ballot: Ballot) -> TxReceipt:
    """Casts `ballot` on chain; the sender pays the gas, the vote is the signer's."""
    if ballot.reason is None:
        call = governor.functions.castVoteBySig(
            ballot.proposal_id, int(ballot.support), ballot.voter, ballot.signature
        )
    else:
        call = governor.functions.castVoteWithReasonAndParamsBySig(
            ballot.proposal_id,
            int(ballot.support),
            ballot.voter,
            ballot.reason,
            b"",
            ballot.signature,
        )
    return sender.send(call)


def queue(sender: Transactor, governor: Contract, proposal: Proposal) -> TxReceipt:
    targets, values, calldatas = proposal.arguments()
    return sender.send(
        governor.functions.queue(targets, values, calldatas, proposal.description_hash)
    )


def execute(sender: Transactor, governor: Contract, proposal: Proposal) -> TxReceipt:
    targets, values, calldatas = proposal.arguments()
    return sender.send(
        governor.functions.execute(targets, values, calldatas, proposal.description_hash),
        value=sum(a.value for a in proposal.actions),
    )


def state(governor: Contract, proposal: int) -> State:
    return State(guarded(lambda: governor.functions.state(proposal).call()))


def nonce(governor: Contract, voter: ChecksumAddress) -> int:
    return int(guarded(lambda: governor.functions.nonces(voter).call()))

"""The ballots a member's operator signed, as its node keeps them in the registry
(specs/0009-treasury.md, TREASURY-4), under the member's own prefix (REG-16). Checking one
needs EIP-712 (eth_account, through governance.py), so only a node with a chain imports this;
the binding (TREASURY-2), which every node reads, is binding.py's.

The registry does not check them: a voter may write any parameter, so every reader checks every
record here before using it, and a record that fails is ignored (and counted), never relayed.
"""

import re
from typing import TYPE_CHECKING

from eth_utils.address import to_checksum_address

from fpai_node.chain.governance import Ballot, Support, ballot_signer
from fpai_node.chain.operator_key import SIGNATURE_BYTES
from fpai_node.treasury.binding import ADDRESS_BYTES, OperatorBinding, fixed_bytes, record_fields
from fpai_node.treasury.errors import RecordRefused
from fpai_node.wire import codec

if TYPE_CHECKING:
    from eth_typing import ChecksumAddress

# TREASURY-4: a reason fits a registry command (64 KiB) many times over, and says why in a
# paragraph; the chain stores none of it, only its event carries it
MAX_REASON_BYTES = 1024
PROPOSAL_ID_BYTES = 32
_BALLOT_KEY = re.compile(r"member\.(fpn1[a-z2-7]{32})\.ballot\.([0-9a-f]{64})")


def ballot_parameter(node_id: str, proposal_id: int) -> str:
    return f"member.{node_id}.ballot.{proposal_id:064x}"


def parse_ballot_parameter(key: str) -> tuple[str, int] | None:
    """(node id, proposal id) of a ballot parameter's key, or None for any other key."""
    match = _BALLOT_KEY.fullmatch(key)
    return (match[1], int(match[2], 16)) if match else None


def ballot_to_value(ballot: Ballot) -> codec.Value:
    """TREASURY-4: the ballot as its operator's node keeps it in the registry."""
    return {
        "nonce": ballot.nonce,
        "proposal": ballot.proposal_id.to_bytes(PROPOSAL_ID_BYTES, "big"),
        "reason": ballot.reason,
        "signature": ballot.signature,
        "support": int(ballot.support),
        "voter": bytes.fromhex(ballot.voter[2:]),
    }


def ballot_from_value(
    node_id: str,
    proposal_id: int,
    value: codec.Value,
    binding: OperatorBinding | None,
    *,
    chain_id: int,
    governor: "ChecksumAddress",
) -> Ballot:
    """The ballot in the parameter `member.<node_id>.ballot.<proposal_id>` once every check of
    TREASURY-4 passed: well formed, for that proposal, by the operator the member's valid
    binding names, and signed by that operator for this chain's governor."""
    fields = record_fields(value, {"nonce", "proposal", "reason", "signature", "support", "voter"})
    nonce, support, reason = fields["nonce"], fields["support"], fields["reason"]
    if type(nonce) is not int or nonce < 0:
        raise RecordRefused("malformed")
    if type(support) is not int or support not in tuple(Support):
        raise RecordRefused("malformed")
    if reason is not None and (
        not isinstance(reason, str) or len(reason.encode()) > MAX_REASON_BYTES
    ):
        raise RecordRefused("malformed")
    proposal = int.from_bytes(fixed_bytes(fields["proposal"], PROPOSAL_ID_BYTES), "big")
    voter = to_checksum_address(fixed_bytes(fields["voter"], ADDRESS_BYTES))
    signature = fixed_bytes(fields["signature"], SIGNATURE_BYTES)
    if proposal != proposal_id:
        raise RecordRefused("wrong_proposal")
    if binding is None or binding.node_id != node_id:
        raise RecordRefused("no_binding")
    if binding.address != voter:
        raise RecordRefused("not_the_members_operator")
    ballot = Ballot(proposal, Support(support), voter, nonce, signature, reason)
    if ballot_signer(ballot, chain_id=chain_id, governor=governor) != voter:
        raise RecordRefused("bad_ballot_signature")
    return ballot

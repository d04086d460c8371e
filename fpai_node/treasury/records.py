"""What the treasury keeps in the registry (specs/0009-treasury.md): each member's operator
binding (TREASURY-2) and the ballots its operator signed (TREASURY-4), as registry parameters
under the member's own prefix (REG-16).

The registry does not check them: a voter may write any parameter, so every reader checks every
record here before using it, and a record that fails is ignored (and counted), never relayed.
"""

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_keys.exceptions import BadSignature
from eth_utils.address import to_checksum_address

from fpai_node.chain.governance import Ballot, Support, ballot_signer
from fpai_node.identity import NodeKey
from fpai_node.identity.nodeid import PUBLIC_KEY_LENGTH, is_node_id, node_id_from_public_key
from fpai_node.treasury.errors import RecordRefused
from fpai_node.wire import codec

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from eth_typing import ChecksumAddress

BINDING_DOMAIN = b"FPAI-OPERATOR-BINDING-V1\x00"  # TREASURY-2: what the node key signs
OPERATOR_STATEMENT = "FPAI operator binding: {node_id}"  # TREASURY-2: what the operator signs
# TREASURY-4: a reason fits a registry command (64 KiB) many times over, and says why in a
# paragraph; the chain stores none of it, only its event carries it
MAX_REASON_BYTES = 1024
ADDRESS_BYTES = 20
ETH_SIGNATURE_BYTES = 65  # r, s, v
ED25519_SIGNATURE_BYTES = 64
PROPOSAL_ID_BYTES = 32
_BALLOT_KEY = re.compile(r"member\.(fpn1[a-z2-7]{32})\.ballot\.([0-9a-f]{64})")


def binding_parameter(node_id: str) -> str:
    return f"member.{node_id}.operator"


def ballot_parameter(node_id: str, proposal_id: int) -> str:
    return f"member.{node_id}.ballot.{proposal_id:064x}"


def parse_ballot_parameter(key: str) -> tuple[str, int] | None:
    """(node id, proposal id) of a ballot parameter's key, or None for any other key."""
    match = _BALLOT_KEY.fullmatch(key)
    return (match[1], int(match[2], 16)) if match else None


@dataclass(frozen=True, slots=True)
class OperatorBinding:
    """TREASURY-2: `node_id`'s operator is `address`; the node key and the operator key each
    signed it, so neither a voter rewriting parameters nor a node naming someone else's address
    can make one."""

    node_id: str
    address: "ChecksumAddress"
    public_key: bytes
    node_signature: bytes
    operator_signature: bytes

    @classmethod
    def sign(cls, node: NodeKey, operator: "LocalAccount") -> "OperatorBinding":
        address = operator.address
        statement = encode_defunct(text=OPERATOR_STATEMENT.format(node_id=node.node_id))
        return cls(
            node.node_id,
            address,
            node.public_key,
            node.sign(_node_statement(node.node_id, address)),
            bytes(operator.sign_message(statement).signature),
        )

    def to_value(self) -> codec.Value:
        return {
            "address": bytes.fromhex(self.address[2:]),
            "key": self.public_key,
            "node_sig": self.node_signature,
            "operator_sig": self.operator_signature,
        }

    @classmethod
    def from_value(cls, node_id: str, value: codec.Value) -> "OperatorBinding":
        """The binding in `value`, the parameter `member.<node_id>.operator`, once every check
        of TREASURY-2 passed; RecordRefused otherwise."""
        fields = _fields(value, {"address", "key", "node_sig", "operator_sig"})
        address = _bytes(fields["address"], ADDRESS_BYTES)
        key = _bytes(fields["key"], PUBLIC_KEY_LENGTH)
        node_sig = _bytes(fields["node_sig"], ED25519_SIGNATURE_BYTES)
        operator_sig = _bytes(fields["operator_sig"], ETH_SIGNATURE_BYTES)
        if not is_node_id(node_id) or node_id_from_public_key(key) != node_id:
            raise RecordRefused("wrong_node_key")
        checksum = to_checksum_address(address)
        try:
            Ed25519PublicKey.from_public_bytes(key).verify(
                node_sig, _node_statement(node_id, checksum)
            )
        except (InvalidSignature, ValueError):
            raise RecordRefused("bad_node_signature") from None
        statement = encode_defunct(text=OPERATOR_STATEMENT.format(node_id=node_id))
        try:
            signer = Account.recover_message(statement, signature=operator_sig)
        except (ValueError, TypeError, BadSignature):
            raise RecordRefused("bad_operator_signature") from None
        if signer != checksum:
            raise RecordRefused("bad_operator_signature")
        return cls(node_id, checksum, key, node_sig, operator_sig)


def _node_statement(node_id: str, address: str) -> bytes:
    """TREASURY-2: the domain, then the canonical map of the 20 address bytes and the node id."""
    raw = bytes.fromhex(address[2:])
    return BINDING_DOMAIN + codec.encode({"address": raw, "node": node_id})


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
    fields = _fields(value, {"nonce", "proposal", "reason", "signature", "support", "voter"})
    nonce, support, reason = fields["nonce"], fields["support"], fields["reason"]
    if type(nonce) is not int or nonce < 0:
        raise RecordRefused("malformed")
    if type(support) is not int or support not in tuple(Support):
        raise RecordRefused("malformed")
    if reason is not None and (
        not isinstance(reason, str) or len(reason.encode()) > MAX_REASON_BYTES
    ):
        raise RecordRefused("malformed")
    proposal = int.from_bytes(_bytes(fields["proposal"], PROPOSAL_ID_BYTES), "big")
    voter = to_checksum_address(_bytes(fields["voter"], ADDRESS_BYTES))
    signature = _bytes(fields["signature"], ETH_SIGNATURE_BYTES)
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


def _fields(value: codec.Value, keys: set[str]) -> dict[str, codec.Value]:
    if not isinstance(value, dict) or value.keys() != keys:
        raise RecordRefused("malformed")
    return value


def _bytes(value: codec.Value, length: int) -> bytes:
    if not isinstance(value, bytes) or len(value) != length:
        raise RecordRefused("malformed")
    return value

"""A member's operator binding as the registry holds it (specs/0009-treasury.md, TREASURY-2).

Every node signs its own as it starts and checks every member's it reads, so this module stays
light: EIP-191 through fpai_node.chain.operator_key (eth_keys), not eth_account, whose import
alone costs a node half a second of CPU. Ballots, which need EIP-712, are records.py's.

The registry does not check bindings: a voter may write any parameter, so every reader checks
each one here before using it, and one that fails is ignored (and counted), never relayed.
"""

from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from fpai_node.chain import operator_key
from fpai_node.identity import NodeKey
from fpai_node.identity.nodeid import PUBLIC_KEY_LENGTH, is_node_id, node_id_from_public_key
from fpai_node.treasury.errors import RecordRefused
from fpai_node.wire import codec

BINDING_DOMAIN = b"FPAI-OPERATOR-BINDING-V1\x00"  # TREASURY-2: what the node key signs
OPERATOR_STATEMENT = "FPAI operator binding: {node_id}"  # TREASURY-2: what the operator signs
ADDRESS_BYTES = 20
ED25519_SIGNATURE_BYTES = 64


def binding_parameter(node_id: str) -> str:
    return f"member.{node_id}.operator"


@dataclass(frozen=True, slots=True)
class OperatorBinding:
    """TREASURY-2: `node_id`'s operator is `address` (checksummed); the node key and the
    operator key each signed it, so neither a voter rewriting parameters nor a node naming
    someone else's address can make one."""

    node_id: str
    address: str
    public_key: bytes
    node_signature: bytes
    operator_signature: bytes

    @classmethod
    def sign(cls, node: NodeKey, operator_secret: int) -> "OperatorBinding":
        address = operator_key.address_of(operator_secret)
        statement = OPERATOR_STATEMENT.format(node_id=node.node_id)
        return cls(
            node.node_id,
            address,
            node.public_key,
            node.sign(_node_statement(node.node_id, address)),
            operator_key.personal_sign(operator_secret, statement),
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
        fields = record_fields(value, {"address", "key", "node_sig", "operator_sig"})
        address = fixed_bytes(fields["address"], ADDRESS_BYTES)
        key = fixed_bytes(fields["key"], PUBLIC_KEY_LENGTH)
        node_sig = fixed_bytes(fields["node_sig"], ED25519_SIGNATURE_BYTES)
        operator_sig = fixed_bytes(fields["operator_sig"], operator_key.SIGNATURE_BYTES)
        if not is_node_id(node_id) or node_id_from_public_key(key) != node_id:
            raise RecordRefused("wrong_node_key")
        checksum = operator_key.checksum_address(address)
        try:
            Ed25519PublicKey.from_public_bytes(key).verify(
                node_sig, _node_statement(node_id, checksum)
            )
        except (InvalidSignature, ValueError):
            raise RecordRefused("bad_node_signature") from None
        statement = OPERATOR_STATEMENT.format(node_id=node_id)
        if operator_key.personal_signer(statement, operator_sig) != checksum:
            raise RecordRefused("bad_operator_signature")
        return cls(node_id, checksum, key, node_sig, operator_sig)


def _node_statement(node_id: str, address: str) -> bytes:
    """TREASURY-2: the domain, then the canonical map of the 20 address bytes and the node id."""
    raw = bytes.fromhex(address[2:])
    return BINDING_DOMAIN + codec.encode({"address": raw, "node": node_id})


def record_fields(value: codec.Value, keys: set[str]) -> dict[str, codec.Value]:
    """`value` as a map with exactly `keys`; RecordRefused("malformed") otherwise."""
    if not isinstance(value, dict) or value.keys() != keys:
        raise RecordRefused("malformed")
    return value


def fixed_bytes(value: codec.Value, length: int) -> bytes:
    """`value` as exactly `length` bytes; RecordRefused("malformed") otherwise."""
    if not isinstance(value, bytes) or len(value) != length:
        raise RecordRefused("malformed")
    return value

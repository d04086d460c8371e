"""Node identity: Ed25519 keys and the node ids derived from them (specs/0001-identity.md)."""

from fpai_node.identity.keys import NodeKey
from fpai_node.identity.nodeid import (
    NODE_ID_LENGTH,
    NODE_ID_PREFIX,
    is_node_id,
    node_id_from_public_key,
)

__all__ = [
    "NODE_ID_LENGTH",
    "NODE_ID_PREFIX",
    "NodeKey",
    "is_node_id",
    "node_id_from_public_key",
]

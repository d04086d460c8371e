"""Node identity: Ed25519 keys and the node ids derived from them (specs/0001-identity.md)."""

from fpai_node.identity.keys import NodeKey, load_or_create_key
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
    "load_or_create_key",
    "node_id_from_public_key",
]

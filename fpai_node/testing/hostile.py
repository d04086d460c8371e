"""What a hostile peer sends, built from the public specs: signed gossip frames with lies in
them, posted over mutual TLS with the attacker's own certificate (tests/adversarial/)."""

import time

from fpai_node.gossip.messages import HOP_LIFETIME_MS, GossipMessage
from fpai_node.identity import NodeKey
from fpai_node.identity.tls import TlsIdentity
from fpai_node.peer.server import FRAME_PATH
from fpai_node.testing.peer_client import peer_post, tls_identity
from fpai_node.wire import seal


def gossip_frame(key: NodeKey, message: GossipMessage) -> bytes:
    """`message` sealed by `key` as an honest sender would: a fresh sequence number, now."""
    return sealed(key, message.TYPE, message.encode())


def sealed(key: NodeKey, message_type: str, payload: bytes) -> bytes:
    """Any payload, validly signed by `key`: what our encoders refuse to write, a liar can."""
    return seal(
        key,
        message_type,
        payload,
        seq=time.time_ns() // 1_000,
        now_ms=time.time_ns() // 1_000_000,
        lifetime_ms=HOP_LIFETIME_MS,
    )


def send_gossip(sender: NodeKey | TlsIdentity, address: str, message: GossipMessage) -> int:
    """POST one gossip frame, signed by the sender's key, to a node's peer channel; the HTTP
    status it answered."""
    identity = tls_identity(sender)
    status, _ = peer_post(identity, address, FRAME_PATH, gossip_frame(identity.key, message))
    return status

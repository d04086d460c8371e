"""Gossip: membership, failure detection and signed capability announcements
(specs/0004-gossip.md). `state` is the pure state machine; the transport shell lives elsewhere."""

from fpai_node.gossip.messages import (
    ANNOUNCE_TYPES,
    HOP_TYPES,
    Announcement,
    Capabilities,
    GossipMessage,
    Hardware,
    Model,
    Status,
    decode_message,
)
from fpai_node.gossip.state import GossipConfig, GossipNode, GossipStats, MemberView, Outgoing

__all__ = [
    "ANNOUNCE_TYPES",
    "HOP_TYPES",
    "Announcement",
    "Capabilities",
    "GossipConfig",
    "GossipMessage",
    "GossipNode",
    "GossipStats",
    "Hardware",
    "MemberView",
    "Model",
    "Outgoing",
    "Status",
    "decode_message",
]

"""FPAI wire protocol v1 (specs/0002-wire.md): canonical codec, signed envelopes, replay guard."""

from fpai_node.wire.codec import Value, decode, encode
from fpai_node.wire.envelope import (
    DEFAULT_LIMITS,
    PROTOCOL_VERSION,
    Envelope,
    Limits,
    open_envelope,
    seal,
)
from fpai_node.wire.errors import WireError
from fpai_node.wire.messages import MESSAGE_TYPES, SequenceCounter
from fpai_node.wire.replay import ReplayGuard

__all__ = [
    "DEFAULT_LIMITS",
    "MESSAGE_TYPES",
    "PROTOCOL_VERSION",
    "Envelope",
    "Limits",
    "ReplayGuard",
    "SequenceCounter",
    "Value",
    "WireError",
    "decode",
    "encode",
    "open_envelope",
    "seal",
]

"""Typed decode errors (specs/0002-wire.md section 3): each carries a stable reason code."""

from typing import ClassVar


class WireError(Exception):
    """Base of every error a decoder raises; `reason` is the code used in vectors and metrics."""

    reason: ClassVar[str] = "wire_error"


class FrameTooLarge(WireError):
    reason = "oversized"


class MalformedFrame(WireError):
    reason = "malformed"


class UnknownVersion(WireError):
    reason = "unknown_version"


class UnknownType(WireError):
    reason = "unknown_type"


class SenderMismatch(WireError):
    reason = "sender_mismatch"


class BadLifetime(WireError):
    reason = "bad_lifetime"


class Expired(WireError):
    reason = "expired"


class FutureTimestamp(WireError):
    reason = "future_timestamp"


class BadSignature(WireError):
    reason = "bad_signature"


class Replayed(WireError):
    reason = "replay"


class StaleSequence(WireError):
    reason = "stale_sequence"


ALL_ERRORS: tuple[type[WireError], ...] = (
    FrameTooLarge,
    MalformedFrame,
    UnknownVersion,
    UnknownType,
    SenderMismatch,
    BadLifetime,
    Expired,
    FutureTimestamp,
    BadSignature,
    Replayed,
    StaleSequence,
)
REASONS: frozenset[str] = frozenset(e.reason for e in ALL_ERRORS)

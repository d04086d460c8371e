"""Signed envelopes (specs/0002-wire.md, ENV-1..ENV-6, VERIFY-1..VERIFY-12). Pure.

Time is an argument, never read from a clock.

A frame is the canonical encoding of `[signed, signature]`, where `signed` is the canonical
encoding of the header map (which holds the payload bytes) and `signature` is Ed25519 over
`SIGNATURE_DOMAIN || signed`. The signature covers the exact received bytes; nothing is
re-serialised before verification.
"""

from collections.abc import Container
from dataclasses import dataclass
from functools import lru_cache

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from fpai_node.identity.keys import NodeKey
from fpai_node.identity.nodeid import PUBLIC_KEY_LENGTH, is_node_id, node_id_from_public_key
from fpai_node.wire import codec
from fpai_node.wire.errors import (
    BadLifetime,
    BadSignature,
    Expired,
    FrameTooLarge,
    FutureTimestamp,
    MalformedFrame,
    SenderMismatch,
    UnknownType,
    UnknownVersion,
)
from fpai_node.wire.replay import ReplayGuard

PROTOCOL_VERSION = 1
SIGNATURE_DOMAIN = b"FPAI-ENVELOPE-V1\x00"
SIGNATURE_LENGTH = 64
MAX_FRAME_BYTES = 1 << 20  # ENV-5: 1 MiB; v1 messages are far smaller, bulk data is streamed
MAX_TYPE_LENGTH = 64
MAX_CLOCK_SKEW_MS = 30_000  # VERIFY-10: NTP-less machines drift; 30 s keeps replay windows short
MAX_LIFETIME_MS = 600_000  # VERIFY-8: 10 min bounds how long the replay guard must remember
DEFAULT_LIFETIME_MS = 60_000
_UINT64_MAX = (1 << 64) - 1
_HEADER_KEYS = frozenset({"body", "exp", "from", "key", "seq", "ts", "type", "v"})


@dataclass(frozen=True, slots=True)
class Envelope:
    version: int
    type: str
    sender: str
    public_key: bytes
    seq: int
    timestamp_ms: int
    expires_ms: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class Limits:
    max_frame_bytes: int = MAX_FRAME_BYTES
    max_clock_skew_ms: int = MAX_CLOCK_SKEW_MS
    max_lifetime_ms: int = MAX_LIFETIME_MS


DEFAULT_LIMITS = Limits()


def seal(
    key: NodeKey,
    msg_type: str,
    payload: bytes,
    *,
    seq: int,
    now_ms: int,
    lifetime_ms: int = DEFAULT_LIFETIME_MS,
) -> bytes:
    """Build and sign a frame. Raises ValueError for arguments no verifier would accept.

    The header is written in canonical key order with checked types, so it is packed directly
    instead of through `codec.encode`; `open_envelope`'s strict decoder (and the vectors) prove
    the result canonical."""
    if type(payload) is not bytes or type(msg_type) is not str:
        raise ValueError("payload must be bytes and the message type a str")
    if not 0 < len(msg_type.encode("utf-8")) <= MAX_TYPE_LENGTH:
        raise ValueError(f"message type must be 1..{MAX_TYPE_LENGTH} bytes")
    if not 0 < lifetime_ms <= MAX_LIFETIME_MS:
        raise ValueError(f"lifetime must be 1..{MAX_LIFETIME_MS} ms")
    if not (0 <= seq <= _UINT64_MAX and now_ms >= 0 and now_ms + lifetime_ms <= _UINT64_MAX):
        raise ValueError("seq and timestamps are unsigned 64-bit integers")
    signed = codec.pack_ordered(
        {
            "body": payload,
            "exp": now_ms + lifetime_ms,
            "from": key.node_id,
            "key": key.public_key,
            "seq": seq,
            "ts": now_ms,
            "type": msg_type,
            "v": PROTOCOL_VERSION,
        }
    )
    frame = codec.pack_ordered([signed, key.sign(SIGNATURE_DOMAIN + signed)])
    if len(frame) > MAX_FRAME_BYTES:
        raise ValueError(f"frame of {len(frame)} bytes exceeds {MAX_FRAME_BYTES}")
    return frame


def open_envelope(
    frame: bytes,
    *,
    now_ms: int,
    known_types: Container[str],
    replay_guard: ReplayGuard | None,
    limits: Limits = DEFAULT_LIMITS,
) -> Envelope:
    """Decode and verify a frame in the order of VERIFY-1..VERIFY-12; raise a WireError subclass
    for the first rule it breaks. With a replay guard, an accepted frame is recorded in it."""
    if len(frame) > limits.max_frame_bytes:
        raise FrameTooLarge(f"{len(frame)} bytes > {limits.max_frame_bytes}")
    outer = codec.decode(frame)
    match outer:
        case [bytes() as signed, bytes() as signature] if len(signature) == SIGNATURE_LENGTH:
            pass
        case _:
            raise MalformedFrame("a frame is [signed: bin, signature: bin 64]")
    header = codec.decode(signed)
    if not isinstance(header, dict):
        raise MalformedFrame("the signed part is not a map")
    version = header.get("v")
    if type(version) is not int:
        raise MalformedFrame("missing protocol version")
    if version != PROTOCOL_VERSION:
        raise UnknownVersion(f"protocol version {version}")
    envelope = _header_fields(header)
    if envelope.type not in known_types:
        raise UnknownType(envelope.type)
    lifetime = envelope.expires_ms - envelope.timestamp_ms
    if not 0 < lifetime <= limits.max_lifetime_ms:
        raise BadLifetime(f"lifetime {lifetime} ms outside 1..{limits.max_lifetime_ms}")
    if envelope.expires_ms <= now_ms:
        raise Expired(f"expired at {envelope.expires_ms}, now {now_ms}")
    if envelope.timestamp_ms > now_ms + limits.max_clock_skew_ms:
        raise FutureTimestamp(f"timestamp {envelope.timestamp_ms} ahead of now {now_ms}")
    try:
        _public_key(envelope.public_key).verify(signature, SIGNATURE_DOMAIN + signed)
    except (InvalidSignature, ValueError):
        raise BadSignature(f"signature does not verify for {envelope.sender}") from None
    if replay_guard is not None:
        replay_guard.accept(
            envelope.sender, envelope.seq, envelope.timestamp_ms, envelope.expires_ms, now_ms
        )
    return envelope


def kept_timestamp(frame: bytes) -> int:
    """The `ts` a frame's header states, unverified: what `open_kept` verifies it at, and what
    a reader of old records can skip them by without checking their signatures."""
    outer = codec.decode(frame)
    header = (
        codec.decode(outer[0])
        if isinstance(outer, list) and len(outer) == 2 and type(outer[0]) is bytes
        else None
    )
    stamp = header.get("ts") if isinstance(header, dict) else None
    if type(stamp) is not int:
        raise MalformedFrame("a frame is [signed, signature] and its header has a timestamp")
    return stamp


def open_kept(frame: bytes, *, known_types: Container[str]) -> Envelope:
    """A kept record (a receipt, a digest, a report) verified at its own timestamp (`now` =
    its `ts`, RECEIPT-4), so that it stays verifiable by anyone after it expires; the replay
    and expiry checks are for live messages."""
    return open_envelope(
        frame, now_ms=kept_timestamp(frame), known_types=known_types, replay_guard=None
    )


def _header_fields(header: dict[str, codec.Value]) -> Envelope:
    """VERIFY-5 and VERIFY-6. A `from` equal to the id derived from `key` is a valid node id by
    construction, so the syntax check (the slow part) runs only when the two differ."""
    if header.keys() != _HEADER_KEYS:
        raise MalformedFrame(f"header keys must be exactly {sorted(_HEADER_KEYS)}")
    msg_type, sender, key = header["type"], header["from"], header["key"]
    seq, ts, exp, body = header["seq"], header["ts"], header["exp"], header["body"]
    if type(msg_type) is not str or not 0 < len(msg_type.encode("utf-8")) <= MAX_TYPE_LENGTH:
        raise MalformedFrame("type must be a string of 1..64 bytes")
    if type(key) is not bytes or len(key) != PUBLIC_KEY_LENGTH:
        raise MalformedFrame("key must be a 32-byte Ed25519 public key")
    if type(seq) is not int or type(ts) is not int or type(exp) is not int:
        raise MalformedFrame("seq, ts and exp must be unsigned integers")
    if seq < 0 or ts < 0 or exp < 0:
        raise MalformedFrame("seq, ts and exp must be unsigned integers")
    if type(body) is not bytes:
        raise MalformedFrame("body must be a byte string")
    if sender != node_id_from_public_key(key):
        if not is_node_id(sender):
            raise MalformedFrame("from is not a node id")
        raise SenderMismatch(f"{sender} is not the id of the enclosed key")
    return Envelope(PROTOCOL_VERSION, msg_type, sender, key, seq, ts, exp, body)


@lru_cache(maxsize=4096)
def _public_key(raw: bytes) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(raw)

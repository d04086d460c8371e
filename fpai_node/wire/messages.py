"""Message types of protocol v1 and their payloads (specs/0002-wire.md, MSG-1..MSG-4). Pure.

Each type is registered by the spec that defines its payload; the envelope layer refuses any
type not in the table it is given. A payload is itself canonical MessagePack.
"""

from dataclasses import dataclass
from typing import Self

from fpai_node.wire import codec
from fpai_node.wire.errors import MalformedFrame

NONCE_LENGTH = 16


@dataclass(frozen=True, slots=True)
class Ping:
    """`peer.ping` (MSG-3): the envelope vectors' sample type and a diagnostics probe; nodes
    probe each other with `gossip.ping` (specs/0004)."""

    TYPE = "peer.ping"
    nonce: bytes

    def encode(self) -> bytes:
        return codec.encode({"nonce": self.nonce})

    @classmethod
    def decode(cls, payload: bytes) -> Self:
        return cls(_nonce_of(payload))


@dataclass(frozen=True, slots=True)
class Pong:
    """`peer.pong`: the answer to a `peer.ping`, echoing its nonce."""

    TYPE = "peer.pong"
    nonce: bytes

    def encode(self) -> bytes:
        return codec.encode({"nonce": self.nonce})

    @classmethod
    def decode(cls, payload: bytes) -> Self:
        return cls(_nonce_of(payload))


def _nonce_of(payload: bytes) -> bytes:
    value = codec.decode(payload)
    if not isinstance(value, dict) or value.keys() != {"nonce"}:
        raise MalformedFrame("payload must be a map with exactly the key 'nonce'")
    nonce = value["nonce"]
    if not isinstance(nonce, bytes) or len(nonce) != NONCE_LENGTH:
        raise MalformedFrame(f"nonce must be {NONCE_LENGTH} bytes")
    return nonce


MESSAGE_TYPES: frozenset[str] = frozenset({Ping.TYPE, Pong.TYPE})


class SequenceCounter:
    """SEQ-1: per-sender monotonic sequence numbers that survive a restart without storage.

    Starting at the current Unix time in microseconds means a restarted node's numbers are above
    any it used before, unless it sent more than a million messages a second for the whole run.
    """

    def __init__(self, now_us: int) -> None:
        self._next = now_us

    def next(self) -> int:
        value = self._next
        self._next += 1
        return value

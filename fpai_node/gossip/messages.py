"""Gossip message types and payloads (specs/0004-gossip.md, GOSSIP-1..GOSSIP-4). Pure.

Hop messages (`gossip.ping` ... `gossip.push`) travel in envelopes signed by the hop sender.
`gossip.announce` is different: its frame is sealed by the announcing node and carried verbatim
inside hop messages, so a forwarded announcement still verifies as its origin's.
Decoders raise MalformedFrame and nothing else (VERIFY-13). Hop messages are built from values
this node already validated, with keys written in canonical order, so they are packed directly
(`codec.pack_ordered`); the strict decoder proves them canonical on the other side.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import TypeAlias, TypeVar

from fpai_node.identity.nodeid import is_node_id
from fpai_node.wire import codec
from fpai_node.wire.errors import MalformedFrame

NONCE_LENGTH = 16
MAX_ADDRESS_BYTES = 255  # host:port or a URL; longer is an attack, not an address
MAX_TEXT_BYTES = 128  # model ids, backend and hardware names
MAX_MODELS = 64
MAX_ITEMS = 8192  # member lists and digests: far above any federation we plan for
MAX_FRAME_ITEM_BYTES = 16_384  # one announcement frame; real ones are ~0.5 KiB
_UINT64_MAX = (1 << 64) - 1
# GOSSIP-10: exact in an IEEE double (status JSON, dashboards), and far above any incarnation an
# honest node reaches: each one is a refuted suspicion
MAX_INCARNATION = (1 << 53) - 1
HOP_LIFETIME_MS = 10_000  # section 6: a hop message is acted on within a protocol period or never

PING = "gossip.ping"
ACK = "gossip.ack"
PING_REQ = "gossip.ping_req"
SYNC = "gossip.sync"
SYNC_REPLY = "gossip.sync_reply"
PUSH = "gossip.push"
ANNOUNCE = "gossip.announce"

HOP_TYPES: frozenset[str] = frozenset({PING, ACK, PING_REQ, SYNC, SYNC_REPLY, PUSH})
ANNOUNCE_TYPES: frozenset[str] = frozenset({ANNOUNCE})


class Status(StrEnum):
    ALIVE = "alive"
    SUSPECT = "suspect"
    DEAD = "dead"
    LEFT = "left"


_RUMOR_STATUSES = frozenset({Status.ALIVE, Status.SUSPECT, Status.DEAD})


@dataclass(frozen=True, slots=True)
class Rumor:
    """A membership claim about `node_id` at `incarnation` (never `left`: see GOSSIP-15)."""

    node_id: str
    address: str
    incarnation: int
    status: Status

    def to_value(self) -> codec.Value:
        return {
            "addr": self.address,
            "id": self.node_id,
            "inc": self.incarnation,
            "st": self.status.value,
        }

    @classmethod
    def from_value(cls, value: codec.Value) -> "Rumor":
        fields = _map(value, {"addr", "id", "inc", "st"})
        status = _text(fields["st"], MAX_TEXT_BYTES)
        if status not in _RUMOR_STATUSES:
            raise MalformedFrame(f"rumor status {status!r}")
        incarnation = _uint(fields["inc"])
        if incarnation > MAX_INCARNATION:
            raise MalformedFrame(f"rumor incarnation above {MAX_INCARNATION}")
        return cls(_node_id(fields["id"]), _address(fields["addr"]), incarnation, Status(status))


@dataclass(frozen=True, slots=True)
class AnnouncementItem:
    """An origin's sealed `gossip.announce` frame, labelled so stale ones skip verification."""

    origin: str
    version: int
    frame: bytes

    def to_value(self) -> codec.Value:
        return {"frame": self.frame, "origin": self.origin, "ver": self.version}

    @classmethod
    def from_value(cls, value: codec.Value) -> "AnnouncementItem":
        fields = _map(value, {"frame", "origin", "ver"})
        frame = fields["frame"]
        if type(frame) is not bytes or not 0 < len(frame) <= MAX_FRAME_ITEM_BYTES:
            raise MalformedFrame(f"frame must be 1..{MAX_FRAME_ITEM_BYTES} bytes")
        return cls(_node_id(fields["origin"]), _uint(fields["ver"]), frame)


@dataclass(frozen=True, slots=True)
class Piggyback:
    """Rumors and announcements carried by every hop message (GOSSIP-16)."""

    rumors: tuple[Rumor, ...] = ()
    announcements: tuple[AnnouncementItem, ...] = ()

    def to_values(self) -> tuple[codec.Value, codec.Value]:
        """(anns, rumors) in canonical form, for the fixed-shape encoders below."""
        return [a.to_value() for a in self.announcements], [r.to_value() for r in self.rumors]

    @classmethod
    def from_fields(cls, fields: dict[str, codec.Value]) -> "Piggyback":
        return cls(
            tuple(_items(fields["rumors"], Rumor.from_value)),
            tuple(_items(fields["anns"], AnnouncementItem.from_value)),
        )


_PIGGY_KEYS = frozenset({"anns", "rumors"})


@dataclass(frozen=True, slots=True)
class Ping:
    nonce: bytes
    piggyback: Piggyback = Piggyback()
    TYPE = PING

    def encode(self) -> bytes:
        anns, rumors = self.piggyback.to_values()
        return codec.pack_ordered({"anns": anns, "nonce": self.nonce, "rumors": rumors})

    @classmethod
    def decode(cls, payload: bytes) -> "Ping":
        fields = _map(codec.decode(payload), _PIGGY_KEYS | {"nonce"})
        return cls(_nonce(fields["nonce"]), Piggyback.from_fields(fields))


@dataclass(frozen=True, slots=True)
class Ack:
    nonce: bytes
    piggyback: Piggyback = Piggyback()
    TYPE = ACK

    def encode(self) -> bytes:
        anns, rumors = self.piggyback.to_values()
        return codec.pack_ordered({"anns": anns, "nonce": self.nonce, "rumors": rumors})

    @classmethod
    def decode(cls, payload: bytes) -> "Ack":
        fields = _map(codec.decode(payload), _PIGGY_KEYS | {"nonce"})
        return cls(_nonce(fields["nonce"]), Piggyback.from_fields(fields))


@dataclass(frozen=True, slots=True)
class PingReq:
    """Ask the receiver to ping `target` and relay the ack with `nonce` (GOSSIP-11)."""

    nonce: bytes
    target: str
    target_address: str
    piggyback: Piggyback = Piggyback()
    TYPE = PING_REQ

    def encode(self) -> bytes:
        anns, rumors = self.piggyback.to_values()
        return codec.pack_ordered(
            {
                "anns": anns,
                "nonce": self.nonce,
                "rumors": rumors,
                "target": self.target,
                "target_addr": self.target_address,
            }
        )

    @classmethod
    def decode(cls, payload: bytes) -> "PingReq":
        fields = _map(codec.decode(payload), _PIGGY_KEYS | {"nonce", "target", "target_addr"})
        return cls(
            _nonce(fields["nonce"]),
            _node_id(fields["target"]),
            _address(fields["target_addr"]),
            Piggyback.from_fields(fields),
        )


@dataclass(frozen=True, slots=True)
class Sync:
    """Push-pull request: the sender's member list and its announcement digest."""

    members: tuple[Rumor, ...]
    digest: tuple[tuple[str, int], ...]
    TYPE = SYNC

    def encode(self) -> bytes:
        return codec.pack_ordered(
            {
                "digest": [[origin, version] for origin, version in self.digest],
                "members": [m.to_value() for m in self.members],
            }
        )

    @classmethod
    def decode(cls, payload: bytes) -> "Sync":
        fields = _map(codec.decode(payload), {"digest", "members"})
        return cls(
            tuple(_items(fields["members"], Rumor.from_value)),
            tuple(_items(fields["digest"], _digest_entry)),
        )


@dataclass(frozen=True, slots=True)
class SyncReply:
    """Push-pull answer: members, announcements newer than the digest, origins it wants."""

    members: tuple[Rumor, ...]
    announcements: tuple[AnnouncementItem, ...]
    want: tuple[str, ...]
    TYPE = SYNC_REPLY

    def encode(self) -> bytes:
        return codec.pack_ordered(
            {
                "anns": [a.to_value() for a in self.announcements],
                "members": [m.to_value() for m in self.members],
                "want": list(self.want),
            }
        )

    @classmethod
    def decode(cls, payload: bytes) -> "SyncReply":
        fields = _map(codec.decode(payload), {"anns", "members", "want"})
        return cls(
            tuple(_items(fields["members"], Rumor.from_value)),
            tuple(_items(fields["anns"], AnnouncementItem.from_value)),
            tuple(_items(fields["want"], _node_id)),
        )


@dataclass(frozen=True, slots=True)
class Push:
    """Rumors and announcements sent on their own (answers to `want`, a leave)."""

    piggyback: Piggyback
    TYPE = PUSH

    def encode(self) -> bytes:
        anns, rumors = self.piggyback.to_values()
        return codec.pack_ordered({"anns": anns, "rumors": rumors})

    @classmethod
    def decode(cls, payload: bytes) -> "Push":
        return cls(Piggyback.from_fields(_map(codec.decode(payload), _PIGGY_KEYS)))


GossipMessage: TypeAlias = Ping | Ack | PingReq | Sync | SyncReply | Push

_DECODERS: dict[str, Callable[[bytes], GossipMessage]] = {
    PING: Ping.decode,
    ACK: Ack.decode,
    PING_REQ: PingReq.decode,
    SYNC: Sync.decode,
    SYNC_REPLY: SyncReply.decode,
    PUSH: Push.decode,
}


def decode_message(msg_type: str, payload: bytes) -> GossipMessage:
    """The hop message of type `msg_type`; MalformedFrame for an unknown type or bad payload."""
    decoder = _DECODERS.get(msg_type)
    if decoder is None:
        raise MalformedFrame(f"{msg_type!r} is not a gossip hop message")
    return decoder(payload)


@dataclass(frozen=True, slots=True)
class Model:
    model_id: str
    context_length: int
    backend: str

    def to_value(self) -> codec.Value:
        return {"backend": self.backend, "ctx": self.context_length, "id": self.model_id}

    @classmethod
    def from_value(cls, value: codec.Value) -> "Model":
        fields = _map(value, {"backend", "ctx", "id"})
        return cls(
            _text(fields["id"], MAX_TEXT_BYTES),
            _uint(fields["ctx"]),
            _text(fields["backend"], MAX_TEXT_BYTES),
        )


@dataclass(frozen=True, slots=True)
class Hardware:
    cpu: str
    gpu: str  # "" when the node has none
    memory_mb: int

    def to_value(self) -> codec.Value:
        return {"cpu": self.cpu, "gpu": self.gpu, "mem_mb": self.memory_mb}

    @classmethod
    def from_value(cls, value: codec.Value) -> "Hardware":
        fields = _map(value, {"cpu", "gpu", "mem_mb"})
        return cls(
            _text(fields["cpu"], MAX_TEXT_BYTES),
            _text(fields["gpu"], MAX_TEXT_BYTES),
            _uint(fields["mem_mb"]),
        )


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a node offers; the part of an announcement the node's operator controls."""

    peer_address: str
    api_address: str
    models: tuple[Model, ...]
    hardware: Hardware
    load_permille: int
    queue_depth: int


@dataclass(frozen=True, slots=True)
class Announcement:
    """The payload of `gossip.announce` (GOSSIP-4); the node id is the envelope's `from`."""

    version: int
    protocol_version: int
    left: bool
    capabilities: Capabilities
    incarnation: int = 0  # GOSSIP-10: its own, signed; no rumor about it goes above it

    def encode(self) -> bytes:
        caps = self.capabilities
        return codec.encode(
            {
                "api": caps.api_address,
                "hw": caps.hardware.to_value(),
                "inc": self.incarnation,
                "left": self.left,
                "load": caps.load_permille,
                "models": [m.to_value() for m in caps.models],
                "peer": caps.peer_address,
                "proto": self.protocol_version,
                "queue": caps.queue_depth,
                "ver": self.version,
            }
        )

    @classmethod
    def decode(cls, payload: bytes) -> "Announcement":
        keys = {"api", "hw", "inc", "left", "load", "models", "peer", "proto", "queue", "ver"}
        fields = _map(codec.decode(payload), keys)
        models = _items(fields["models"], Model.from_value)
        if len(models) > MAX_MODELS:
            raise MalformedFrame(f"more than {MAX_MODELS} models")
        left = fields["left"]
        if type(left) is not bool:
            raise MalformedFrame("left must be a boolean")
        load = _uint(fields["load"])
        if load > 1000:
            raise MalformedFrame("load is in permille: 0..1000")
        caps = Capabilities(
            _address(fields["peer"]),
            _address(fields["api"], optional=True),
            tuple(models),
            Hardware.from_value(fields["hw"]),
            load,
            _uint(fields["queue"]),
        )
        incarnation = _uint(fields["inc"])
        if incarnation > MAX_INCARNATION:
            raise MalformedFrame(f"announced incarnation above {MAX_INCARNATION}")
        return cls(_uint(fields["ver"]), _uint(fields["proto"]), left, caps, incarnation)


_T = TypeVar("_T")


def _map(value: codec.Value, keys: set[str] | frozenset[str]) -> dict[str, codec.Value]:
    if not isinstance(value, dict) or value.keys() != keys:
        raise MalformedFrame(f"payload must be a map with exactly the keys {sorted(keys)}")
    return value


def _items(value: codec.Value, parse: Callable[[codec.Value], _T]) -> list[_T]:
    if not isinstance(value, list) or len(value) > MAX_ITEMS:
        raise MalformedFrame(f"expected an array of at most {MAX_ITEMS} items")
    return [parse(item) for item in value]


def _uint(value: codec.Value) -> int:
    if type(value) is not int or not 0 <= value <= _UINT64_MAX:
        raise MalformedFrame("expected an unsigned integer")
    return value


def _text(value: codec.Value, max_bytes: int) -> str:
    if type(value) is not str or len(value.encode("utf-8")) > max_bytes:
        raise MalformedFrame(f"expected a string of at most {max_bytes} bytes")
    return value


_ADDRESS = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9.-]*):([0-9]{1,5})")


def _address(value: codec.Value, *, optional: bool = False) -> str:
    """GOSSIP-3: HOST:PORT only (or "" where the field is optional). Addresses from peers
    become URLs this node dials; a path, a query or a scheme would let a peer aim them."""
    text = _text(value, MAX_ADDRESS_BYTES)
    if optional and text == "":
        return text
    match = _ADDRESS.fullmatch(text)
    if match is None or not 0 < int(match.group(2)) <= 65535:
        raise MalformedFrame("an address must be HOST:PORT")
    return text


def _node_id(value: codec.Value) -> str:
    if type(value) is not str or not _is_node_id(value):
        raise MalformedFrame("expected a node id")
    return value


@lru_cache(maxsize=65_536)
def _is_node_id(value: str) -> bool:
    """Member lists repeat the same ids in every sync: check each id once."""
    return is_node_id(value)


def _nonce(value: codec.Value) -> bytes:
    if type(value) is not bytes or len(value) != NONCE_LENGTH:
        raise MalformedFrame(f"nonce must be {NONCE_LENGTH} bytes")
    return value


def _digest_entry(value: codec.Value) -> tuple[str, int]:
    if not isinstance(value, list) or len(value) != 2:
        raise MalformedFrame("a digest entry is [origin, version]")
    return _node_id(value[0]), _uint(value[1])

"""Raft messages on the wire (specs/0005-registry.md, RAFT-1..RAFT-9). Pure: no I/O.

pysyncobj hands its transport Python dicts whose log entries are a type byte and data: a
registry command's bytes (REG-1) for ours (`command_entry`), a pickle for pysyncobj's own
membership changes. This module maps each dict to a canonical MessagePack map with a fixed
schema and back, and maps each entry to `[index, term, kind, data]` where `data` is registry
command bytes or a Raft member id. The receiving side rebuilds the entry bytes itself from
validated fields, so no byte from the network is ever unpickled; anything outside the schema is
`MalformedFrame`.
"""

from collections.abc import Callable, Mapping
from typing import Any

from fpai_node.hostport import parse_host_port
from fpai_node.identity.nodeid import is_node_id
from fpai_node.registry import safe_pickle
from fpai_node.registry.state import MAX_COMMAND_BYTES
from fpai_node.wire import PROTOCOL_VERSION, codec
from fpai_node.wire.errors import MalformedFrame

MAX_FRAME_BYTES = 4 << 20  # RAFT-2: a batch of entries (1 MiB) or a snapshot chunk, with room
MAX_RAFT_ID = 300
_UINT64 = (1 << 64) - 1
# RAFT-15: exact in an IEEE double (status JSON), and out of reach: a term rises by at most
# MAX_TERM_STEP a raise, and a member raises it at most once per TERM_RAISE_INTERVAL_S
MAX_TERM = (1 << 53) - 1
# RAFT-15: an honest candidate raises the term by one per election timeout (1-2 s), so a voter
# cut off for half a year stays within 2^24; a liar's raise is refused beyond it.
MAX_TERM_STEP = 1 << 24
# RAFT-15: an honest member raises a term at most once per election timeout (at least 1 s); at
# one raise of MAX_TERM_STEP per half second a liar needs 8 years to reach MAX_TERM.
TERM_RAISE_INTERVAL_S = 0.5
_REGULAR, _NO_OP, _MEMBERSHIP = 0, 1, 2
COMMAND_KIND = bytes([_REGULAR])  # the first byte of a command entry
NO_OP_ENTRY = bytes([_NO_OP])
FAIL_REASONS = range(8)  # pysyncobj.FAIL_REASON values
LEARNER_WIRE_TYPES = frozenset({"apply_command", "next_index"})  # RAFT-8: all a learner sends


def raft_id(node_id: str, address: str) -> str:
    """RAFT-1: a Raft member is named `<node id>@<HOST:PORT of its Raft endpoint>`."""
    return f"{node_id}@{address}"


def parse_raft_id(value: object) -> tuple[str, str]:
    """(node id, HOST:PORT) of a Raft member id, or MalformedFrame."""
    if not isinstance(value, str) or len(value) > MAX_RAFT_ID:
        raise MalformedFrame("bad raft id")
    node, sep, address = value.partition("@")
    if not sep or not is_node_id(node):
        raise MalformedFrame("bad raft id")
    try:
        parse_host_port(address)
    except ValueError:
        raise MalformedFrame("bad raft id") from None
    return node, address


# ---- entries ---------------------------------------------------------------------------------


def command_entry(command: bytes) -> bytes:
    """The entry bytes of a registry command: its kind byte, then the command. pysyncobj's
    `@replicated` would pickle a method call instead; the engine applies these entries itself
    (`_Replica._SyncObj__doApplyCommand`), so no pickle is built or read for a command."""
    return COMMAND_KIND + command


def membership_entry(change: str, member: str) -> bytes:
    """pysyncobj's bytes for a cluster change: `add` or `rem` of a Raft member id."""
    assert change in ("add", "rem")
    return bytes([_MEMBERSHIP]) + safe_pickle.dumps([change, member])


def entry_to_wire(entry: bytes) -> list[codec.Value]:
    """RAFT-5: `[kind, data]` for entry bytes that this node produced itself."""
    kind = entry[:1]
    if kind == COMMAND_KIND:
        return ["command", entry[1:]]
    if entry == NO_OP_ENTRY:
        return ["noop", None]
    if kind == bytes([_MEMBERSHIP]):
        change = safe_pickle.loads(entry[1:])
        if isinstance(change, list) and len(change) == 2 and change[0] in ("add", "rem"):
            return ["add" if change[0] == "add" else "remove", change[1]]
    raise ValueError(f"not an entry this node can send: {entry[:16]!r}")


def entry_from_wire(value: object) -> bytes:
    """RAFT-5: validated `[kind, data]` to pysyncobj entry bytes."""
    if type(value) is not list or len(value) != 2:
        raise MalformedFrame("bad entry")
    kind, data = value
    if kind == "noop" and data is None:
        return NO_OP_ENTRY
    if kind == "command" and isinstance(data, bytes):
        if len(data) > MAX_COMMAND_BYTES:
            raise MalformedFrame("oversized command")
        return command_entry(data)
    if kind in ("add", "remove"):
        parse_raft_id(data)
        return membership_entry("add" if kind == "add" else "rem", data)
    raise MalformedFrame("bad entry")


def command_author(entry: bytes) -> str | None:
    """The `by` of the registry command inside pysyncobj entry bytes, if it is one and says."""
    try:
        kind, data = entry_to_wire(entry)
        value = codec.decode(data) if kind == "command" else None  # type: ignore[arg-type]
    except (ValueError, MalformedFrame, safe_pickle.RefusedPickle):
        return None
    by = value.get("by") if isinstance(value, dict) else None
    return by if isinstance(by, str) else None


# ---- messages --------------------------------------------------------------------------------


def hello(member: str, learner: bool) -> bytes:
    """RAFT-3: the first frame on a connection, from the side that dialled."""
    return codec.encode(
        {"id": member, "learner": learner, "type": "hello", "version": PROTOCOL_VERSION}
    )


def parse_hello(frame: bytes) -> tuple[str, bool]:
    value = _schema(frame, "hello", {"id": _str, "learner": _bool, "version": _uint})
    if value["version"] != PROTOCOL_VERSION:
        raise MalformedFrame("unknown_version")
    parse_raft_id(value["id"])
    return value["id"], value["learner"]


class FrameEncoder:
    """`encode_message` for one transport, which sends the followers of a leader's round that
    are caught up the same `append_entries`: that one is encoded once. Log matching makes the
    key enough: entries with the same index and term are the same entries, with the same
    entries before them."""

    def __init__(self) -> None:
        self._last: tuple[tuple[int, ...], bytes] | None = None

    def encode(self, message: Mapping[str, Any]) -> bytes:
        entries = message.get("entries") if message["type"] == "append_entries" else None
        if not entries:
            return encode_message(message)
        _, last_index, last_term = entries[-1]
        key = (
            message["term"],
            message["commit_index"],
            message["prevLogIdx"],
            message["prevLogTerm"],
            len(entries),
            last_index,
            last_term,
        )
        if self._last is None or self._last[0] != key:
            self._last = (key, encode_message(message))
        return self._last[1]


def encode_message(message: Mapping[str, Any]) -> bytes:
    """RAFT-6: a pysyncobj message dict as canonical MessagePack."""
    kind = message["type"]
    if kind == "append_entries" and "entries" in message:
        # Built canonical (keys sorted; ints, strings, bytes and nil from this node's own log):
        # the hot path of replication skips the generic encoder's walk.
        return codec.pack_ordered(
            {
                "commit_index": message["commit_index"],
                "entries": [
                    [idx, term, *entry_to_wire(entry)] for entry, idx, term in message["entries"]
                ],
                "prev_index": message["prevLogIdx"],
                "prev_term": message["prevLogTerm"],
                "term": message["term"],
                "type": "append_entries",
            }
        )
    if kind == "append_entries" and "serialized" in message:
        chunk = message["serialized"] or (None, False, False)  # pysyncobj sends None or False
        return codec.encode(
            {
                "chunk": chunk[0],
                "commit_index": message["commit_index"],
                "first": chunk[1],
                "last": chunk[2],
                "term": message["term"],
                "type": "install_snapshot",
            }
        )
    if kind == "apply_command":
        return codec.encode(
            {
                "entry": entry_to_wire(message["command"]),
                "request_id": message.get("request_id"),
                "type": "apply_command",
            }
        )
    if kind == "apply_command_response":
        return codec.encode(
            {
                "error": message.get("error"),
                "index": message.get("log_idx"),
                "request_id": message["request_id"],
                "term": message.get("log_term"),
                "type": "apply_result",
            }
        )
    if kind == "next_node_idx":
        return codec.pack_ordered(
            {
                "next_index": message["next_node_idx"],
                "reset": message["reset"],
                "success": message["success"],
                "type": "next_index",
            }
        )
    if kind in _PLAIN:
        return codec.encode({k: message[k] for k in ("type", *_PLAIN[kind])})
    raise ValueError(f"no wire form for pysyncobj message {kind!r}")


def decode_message(frame: bytes) -> dict[str, Any]:
    """RAFT-6: canonical MessagePack to the pysyncobj message dict, or MalformedFrame."""
    if len(frame) > MAX_FRAME_BYTES:
        raise MalformedFrame("oversized")
    value: Any = codec.decode(frame)
    kind = value.get("type") if isinstance(value, dict) else None
    if kind == "append_entries":
        v = _check(value, kind, _APPEND)
        entries = [entry_with_position(e) for e in v["entries"]]
        _check_sequence(entries, v["prev_index"], v["prev_term"], v["term"])
        return {
            "type": "append_entries",
            "term": v["term"],
            "commit_index": v["commit_index"],
            "prevLogIdx": v["prev_index"],
            "prevLogTerm": v["prev_term"],
            "entries": entries,
        }
    if kind == "install_snapshot":
        v = _check(value, kind, _SNAPSHOT)
        chunk = None if v["chunk"] is None else (v["chunk"], v["first"], v["last"])
        return {
            "type": "append_entries",
            "term": v["term"],
            "commit_index": v["commit_index"],
            "serialized": chunk,
        }
    if kind == "apply_command":
        v = _check(value, kind, {"entry": _any, "request_id": _opt_uint})
        message = {"type": "apply_command", "command": entry_from_wire(v["entry"])}
        if v["request_id"] is not None:
            message["request_id"] = v["request_id"]
        return message
    if kind == "apply_result":
        v = _check(value, kind, _RESULT)
        if v["error"] is not None:
            if v["error"] not in FAIL_REASONS:
                raise MalformedFrame("bad apply_result")
            return {
                "type": "apply_command_response",
                "request_id": v["request_id"],
                "error": v["error"],
            }
        if v["index"] is None or v["term"] is None:
            raise MalformedFrame("bad apply_result")
        return {
            "type": "apply_command_response",
            "request_id": v["request_id"],
            "log_idx": v["index"],
            "log_term": v["term"],
        }
    if kind == "next_index":
        v = _check(value, kind, {"next_index": _uint, "reset": _bool, "success": _bool})
        return {
            "type": "next_node_idx",
            "next_node_idx": v["next_index"],
            "reset": v["reset"],
            "success": v["success"],
        }
    if isinstance(kind, str) and kind in _PLAIN:
        fields = {k: _uint if k.endswith("_index") else _term for k in _PLAIN[kind]}
        return dict(_check(value, kind, fields))
    raise MalformedFrame("unknown_type")


Position = tuple[bytes, int, int]  # pysyncobj's (entry bytes, index, term)


def entry_with_position(value: object) -> Position:
    """`[index, term, kind, data]` to pysyncobj's (entry bytes, index, term)."""
    if type(value) is not list or len(value) != 4:
        raise MalformedFrame("bad entry")
    idx, term = value[0], value[1]
    _uint(idx)
    _term(term)
    return entry_from_wire(value[2:]), idx, term


def _check_sequence(entries: list[Position], prev_index: int, prev_term: int, term: int) -> None:
    """RAFT-6: a batch continues the log right after `prev_index`, in order, with terms that
    never decrease and never exceed the sender's term."""
    last_term = prev_term
    for offset, (_, idx, entry_term) in enumerate(entries, start=1):
        if idx != prev_index + offset or not last_term <= entry_term <= term:
            raise MalformedFrame("bad entries")
        last_term = entry_term


def _uint(v: object) -> None:
    if type(v) is not int or not 0 <= v <= _UINT64:
        raise MalformedFrame("bad integer")


def _opt_uint(v: object) -> None:
    if v is not None:
        _uint(v)


def _term(v: object) -> None:
    if type(v) is not int or not 0 <= v <= MAX_TERM:
        raise MalformedFrame("bad term")


def _opt_term(v: object) -> None:
    if v is not None:
        _term(v)


def _bool(v: object) -> None:
    if type(v) is not bool:
        raise MalformedFrame("bad boolean")


def _str(v: object) -> None:
    if type(v) is not str:
        raise MalformedFrame("bad string")


def _opt_bin(v: object) -> None:
    if v is not None and type(v) is not bytes:
        raise MalformedFrame("bad chunk")


def _entries(v: object) -> None:
    if type(v) is not list:
        raise MalformedFrame("bad entries")


def _any(v: object) -> None:
    return None


_PLAIN = {
    "request_vote": ("term", "last_log_index", "last_log_term"),
    "response_vote": ("term",),
    "timeout_now": ("term",),
    "pre_vote": ("term", "last_log_index", "last_log_term"),  # RAFT-19
    "pre_vote_granted": ("term",),
    "term_notice": ("term",),  # RAFT-19
}
_APPEND: dict[str, Callable[[object], None]] = {
    "commit_index": _uint,
    "entries": _entries,
    "prev_index": _uint,
    "prev_term": _term,
    "term": _term,
}
_SNAPSHOT: dict[str, Callable[[object], None]] = {
    "chunk": _opt_bin,
    "commit_index": _uint,
    "first": _bool,
    "last": _bool,
    "term": _term,
}
_RESULT: dict[str, Callable[[object], None]] = {
    "error": _opt_uint,
    "index": _opt_uint,
    "request_id": _uint,
    "term": _opt_term,
}


def _check(
    value: dict[str, Any], kind: str, fields: Mapping[str, Callable[[object], None]]
) -> dict[str, Any]:
    if value.keys() != {"type", *fields}:
        raise MalformedFrame(f"bad {kind}")
    for name, validate in fields.items():
        validate(value[name])
    return value


def _schema(
    frame: bytes, kind: str, fields: Mapping[str, Callable[[object], None]]
) -> dict[str, Any]:
    value = codec.decode(frame)
    if not isinstance(value, dict) or value.get("type") != kind:
        raise MalformedFrame(f"expected {kind}")
    return _check(value, kind, fields)

"""Raft messages on the wire: every pysyncobj message survives the trip, and the decoder
refuses anything else with MalformedFrame, whatever the bytes."""

import pickle
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fpai_node.identity import NodeKey
from fpai_node.registry import raft_wire
from fpai_node.registry.state import encode_command
from fpai_node.wire import codec
from fpai_node.wire.errors import MalformedFrame

NODE = NodeKey.from_seed(bytes(32)).node_id
MEMBER = raft_wire.raft_id(NODE, "127.0.0.1:7200")
COMMAND = encode_command("param.set", {"key": "k", "value": 1}, key=bytes(16), by=NODE, at_ms=1)
ENTRIES = [
    raft_wire.NO_OP_ENTRY,
    raft_wire.command_entry(COMMAND),
    raft_wire.membership_entry("add", MEMBER),
    raft_wire.membership_entry("rem", MEMBER),
]
MESSAGES: list[dict[str, Any]] = [
    {"type": "request_vote", "term": 3, "last_log_index": 9, "last_log_term": 2},
    {"type": "response_vote", "term": 3},
    {"type": "timeout_now", "term": 4},
    {
        "type": "append_entries",
        "term": 2,
        "commit_index": 5,
        "prevLogIdx": 6,
        "prevLogTerm": 2,
        "entries": [(e, 7 + i, 2) for i, e in enumerate(ENTRIES)],
    },
    {"type": "append_entries", "term": 2, "commit_index": 5, "serialized": (b"x", True, False)},
    {"type": "append_entries", "term": 2, "commit_index": 5, "serialized": None},
    {"type": "next_node_idx", "next_node_idx": 11, "reset": True, "success": False},
    {"type": "apply_command", "command": ENTRIES[1], "request_id": 3},
    {"type": "apply_command", "command": ENTRIES[1]},
    {"type": "apply_command_response", "request_id": 3, "log_idx": 12, "log_term": 2},
    {"type": "apply_command_response", "request_id": 3, "error": 4},
]


def test_entries_must_follow_the_previous_index_in_order() -> None:
    """A leader's batch is consecutive from prev_index + 1, with terms that never decrease and
    never pass the message's term: anything else could only corrupt a log."""
    base = dict(MESSAGES[3])
    good = base["entries"]
    for entries in (
        [good[1], good[0]],  # out of order
        [(ENTRIES[0], 8, 2)],  # a gap after prev_index 6
        [(ENTRIES[0], 7, 2), (ENTRIES[0], 8, 1)],  # a term going back
        [(ENTRIES[0], 7, 3)],  # a term from the future
    ):
        frame = raft_wire.encode_message({**base, "entries": entries})
        with pytest.raises(MalformedFrame, match="bad entries"):
            raft_wire.decode_message(frame)


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: str(m["type"]))
def test_every_pysyncobj_message_survives_the_wire(message: dict[str, object]) -> None:
    assert raft_wire.decode_message(raft_wire.encode_message(message)) == message


def test_pysyncobj_false_snapshot_chunk_is_sent_as_nothing() -> None:
    """pysyncobj passes False when it cannot read its snapshot; on the wire that is nil."""
    sent = {"type": "append_entries", "term": 2, "commit_index": 5, "serialized": False}
    assert raft_wire.decode_message(raft_wire.encode_message(sent))["serialized"] is None


def test_entries_are_rebuilt_byte_for_byte() -> None:
    for entry in ENTRIES:
        assert raft_wire.entry_from_wire(raft_wire.entry_to_wire(entry)) == entry


def test_an_entry_this_node_did_not_make_is_not_sent() -> None:
    with pytest.raises(ValueError, match="not an entry"):
        raft_wire.entry_to_wire(b"\x03" + pickle.dumps(1, 2))  # pysyncobj's code version
    with pytest.raises(ValueError, match="not an entry"):
        raft_wire.entry_to_wire(b"\x02" + pickle.dumps(("a", "tuple"), 2))  # not a change


def test_a_command_entry_is_its_kind_byte_and_the_command() -> None:
    """No pickle for a registry command: its entry is the command behind one kind byte."""
    command = encode_command("param.set", {"key": "k", "value": 1}, key=b"i" * 16, by=NODE, at_ms=1)
    entry = raft_wire.command_entry(command)
    assert entry == b"\x00" + command
    assert raft_wire.entry_to_wire(entry) == ["command", command]
    assert raft_wire.entry_from_wire(["command", command]) == entry


def test_the_author_of_a_command_is_its_by() -> None:
    assert raft_wire.command_author(ENTRIES[1]) == NODE
    assert raft_wire.command_author(ENTRIES[2]) is None
    assert raft_wire.command_author(raft_wire.command_entry(b"not a command")) is None


def test_hello_names_a_member_with_its_node_id() -> None:
    assert raft_wire.parse_hello(raft_wire.hello(MEMBER, True)) == (MEMBER, True)
    for bad in ("somebody", f"{NODE}@nowhere", f"fpn1x@{MEMBER.split('@')[1]}", "a" * 400):
        frame = codec.encode({"id": bad, "learner": False, "type": "hello", "version": 1})
        with pytest.raises(MalformedFrame):
            raft_wire.parse_hello(frame)


def test_an_oversized_frame_is_refused_before_decoding() -> None:
    with pytest.raises(MalformedFrame, match="oversized"):
        raft_wire.decode_message(b"\x00" * (raft_wire.MAX_FRAME_BYTES + 1))


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_decode_or_are_malformed(data: bytes) -> None:
    """Paired with a valid message read back: a decoder that refused everything would pass."""
    valid = MESSAGES[len(data) % len(MESSAGES)]
    assert raft_wire.decode_message(raft_wire.encode_message(valid)) == valid
    try:
        message = raft_wire.decode_message(data)
    except MalformedFrame:
        return
    assert raft_wire.decode_message(raft_wire.encode_message(message)) == message


values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text() | st.binary(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=500, deadline=None)
@given(
    st.sampled_from(
        ["append_entries", "install_snapshot", "apply_command", "apply_result", "next_index"]
    ),
    st.dictionaries(
        st.sampled_from(
            [
                "term",
                "entries",
                "commit_index",
                "prev_index",
                "prev_term",
                "chunk",
                "first",
                "last",
                "entry",
                "request_id",
                "error",
                "index",
                "next_index",
                "reset",
                "success",
            ]
        ),
        values,
    ),
)
def test_well_formed_maps_of_any_shape_decode_or_are_malformed(
    kind: str, fields: dict[str, codec.Value]
) -> None:
    """Canonical MessagePack with the right type and arbitrary fields: never a crash."""
    try:
        message = raft_wire.decode_message(codec.encode({**fields, "type": kind}))
    except MalformedFrame:
        return
    assert raft_wire.decode_message(raft_wire.encode_message(message)) == message


def test_only_command_bytes_travel_as_commands() -> None:
    """REG-12: a `command` entry carries the command bytes (REG-1) as `bin`, rebuilt byte for
    byte; any other encoding of a command (its decoded map, text, a pickle) or another kind of
    entry is refused before it could reach the log."""
    assert raft_wire.entry_to_wire(raft_wire.entry_from_wire(["command", COMMAND])) == [
        "command",
        COMMAND,
    ]
    for bad in (
        ["command", codec.decode(COMMAND)],
        ["command", COMMAND.hex()],
        ["command", None],
        ["state", COMMAND],
        ["pickle", pickle.dumps(("apply", COMMAND), 2)],
        ["command", COMMAND, 1],
        COMMAND,
    ):
        with pytest.raises(MalformedFrame):
            raft_wire.entry_from_wire(bad)


def test_a_round_encodes_its_append_entries_once_and_any_other_message_afresh() -> None:
    """The transport's encoder reuses a frame only for the same append_entries: any field of
    the key that differs (another follower's position, a new commit index, another last
    entry) gives that message's own bytes."""
    frames = raft_wire.FrameEncoder()
    append = MESSAGES[3]
    first = frames.encode(append)
    assert frames.encode(dict(append)) is first  # the second follower of the round
    changes: list[dict[str, Any]] = [
        {"commit_index": 6},
        {"prevLogIdx": 5, "entries": [(ENTRIES[0], 6, 2), *append["entries"]]},
        {"entries": append["entries"][:-1]},
        {"entries": [*append["entries"][:-1], (ENTRIES[3], 10, 3)]},
        {"term": 3},
    ]
    for change in changes:
        message = {**append, **change}
        assert frames.encode(message) == raft_wire.encode_message(message) != first
    for message in MESSAGES:
        assert frames.encode(message) == raft_wire.encode_message(message)

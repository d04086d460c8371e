"""specs/0007 MEM-13..MEM-16: the memory routes' bodies and the filter's wire form."""

import os

import pytest

from fpai_node.memory import filters, messages
from fpai_node.memory.filters import All, AnyOf, Field, Not
from fpai_node.memory.operations import VECTOR_BYTES, Version, new_record_id
from fpai_node.wire import codec

NODE = "fpn1" + "a" * 32
RID = new_record_id(5, os.urandom(16))


def test_every_body_round_trips() -> None:
    where = All(
        (
            Field("user_id", "eq", "u"),
            AnyOf((Field("metadata.n", "gt", 2.5), Not(Field("kind", "in", ("a", "b"))))),
        )
    )
    bodies = [
        messages.Ops((b"x", b"y")),
        messages.Stored(3),
        messages.Search((1, 2), b"\0" * VECTOR_BYTES, where, 10),
        messages.Scan((0,), None, 100),
        messages.Get((RID,)),
        messages.History(RID),
        messages.DigestRequest(5, bytes(2048)),
        messages.DigestAnswer((1, 2), ((RID, Version(1, 2, NODE)),)),
        messages.Fetch(5, ((RID, Version(1, 2, NODE)),)),
    ]
    for body in bodies:
        assert type(body).decode(body.encode()) == body  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("kind", "value", "reason"),
    [
        (
            messages.Search,
            {"filter": None, "limit": 10, "shards": [64], "vector": bytes(VECTOR_BYTES)},
            "malformed",
        ),
        (
            messages.Search,
            {"filter": None, "limit": 101, "shards": [1], "vector": bytes(VECTOR_BYTES)},
            "malformed",
        ),
        (
            messages.Search,
            {"filter": None, "limit": 1, "shards": [1, 1], "vector": bytes(VECTOR_BYTES)},
            "malformed",
        ),
        (
            messages.Search,
            {
                "filter": ["field", "k", "like", "x"],
                "limit": 1,
                "shards": [1],
                "vector": bytes(VECTOR_BYTES),
            },
            "bad_filter",
        ),
        (messages.Search, {"filter": None, "limit": 1, "shards": [1], "vector": b""}, "malformed"),
        (messages.Get, {"ids": ["not-an-id"]}, "bad_id"),
        (messages.Get, {"ids": []}, "malformed"),
        (messages.DigestRequest, {"digest": b"", "shard": 1}, "malformed"),
        (messages.Fetch, {"keys": [[RID, 1, 2, "nobody"]], "shard": 1}, "malformed"),
        (messages.Ops, {"ops": [1]}, "malformed"),
        (messages.Ops, {"ops": [], "more": True}, "malformed"),
    ],
)
def test_a_body_that_breaks_a_rule_is_refused_with_its_reason(
    kind: type, value: codec.Value, reason: str
) -> None:
    """MEM-13..MEM-16: bounded sizes and exact keys."""
    with pytest.raises(messages.BadRequest) as refused:
        kind.decode(codec.encode(value))
    assert refused.value.reason == reason


def test_filters_are_bounded_and_floats_travel_as_text() -> None:
    """MEM-15"""
    value = filters.to_value(Field("metadata.score", "gte", 0.5))
    assert value == ["field", "metadata.score", "gte", ["float", "0.5"]]
    assert filters.from_value(value) == Field("metadata.score", "gte", 0.5)
    deep: filters.WireValue = ["field", "k", "eq", 1]
    for _ in range(filters.MAX_FILTER_DEPTH + 1):
        deep = ["not", deep]
    wide = ["or", [["field", "k", "eq", i] for i in range(filters.MAX_FILTER_NODES)]]
    for bad in (
        deep,
        wide,
        ["field", "k", "gt", "x"],
        ["field", "k", "contains", 1],
        ["and", []],
        ["field", "k", "eq", ["float", "nan"]],
        ["field", "", "eq", 1],
    ):
        with pytest.raises(filters.BadFilter):
            filters.from_value(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "mem0",
    [
        {"created_at": 1e306},
        {"created_at": float("nan")},
        {"user_id": "\ud800"},
        {"user_id": 10**23},
        {"created_at": {"gte": 10**23}},
        {"metadata": {"score": float("inf")}},
    ],
)
def test_a_mem0_filter_out_of_the_wire_bounds_is_a_bad_filter(mem0: dict[str, object]) -> None:
    """MEM-17 (found by fuzz_memory.py): each was a 500 at the API, not a 400."""
    with pytest.raises(filters.BadFilter):
        filters.from_mem0(mem0)


def test_a_float_travels_only_in_its_shortest_text() -> None:
    """MEM-17: "1.50" would decode and re-encode as "1.5", other bytes than were signed."""
    for text in ("1.50", "+1.5", " 1.5", "1_0", "1e16"):
        with pytest.raises(filters.BadFilter):
            filters.from_value(["field", "metadata.x", "eq", ["float", text]])
    assert filters.from_value(["field", "metadata.x", "eq", ["float", "1e+16"]]) == Field(
        "metadata.x", "eq", 1e16
    )

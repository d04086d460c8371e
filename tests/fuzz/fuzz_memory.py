"""Coverage-guided fuzzing of the memory decoders (specs/0007-memory.md MEM-6, MEM-13..MEM-17).

    python tests/fuzz/fuzz_memory.py -max_total_time=20 -rss_limit_mb=2048 tests/fuzz/corpus-memory

Each input is fed to:

- the operation reader, as a frame (at its own time, then against a clock: MEM-6), and as the
  payload of a frame signed by a fixed key, so that the content checks past the signature are
  reached too (a mutated frame rarely keeps its signature);
- every peer route body's decoder (MEM-13..MEM-15);
- the filter's wire form (MEM-17), after the canonical MessagePack decoder;
- Mem0's filter parser, when the input is JSON text (the API's `filters`).

The target fails if anything but the documented refusal escapes (OperationRejected from the
operation reader; BadRequest from the body decoders; MalformedFrame from `codec.decode` and
BadFilter from the filter parsers; for `json.loads`, its ValueError and RecursionError), if an
operation or body it accepts does not re-encode to the same bytes, or if a filter it accepts
cannot travel: changes on the trip through its wire form, or cannot be encoded in a search
request (the node would fail sending it, not refuse it).

Seeds: the .bin files of protocol/vectors/memory, the payloads of its operations, its filters in
their wire form, and a few Mem0 filters as JSON text; fuzz_memory.dict gives the mutator the
JSON and filter tokens that byte mutations rarely spell out.
"""

import contextlib
import json
import sys
from pathlib import Path

import atheris
import fuzzing

with atheris.instrument_imports(include=["fpai_node", "msgpack"]):
    from fpai_node.identity import NodeKey
    from fpai_node.memory import filters, messages
    from fpai_node.memory.operations import (
        OP_LIFETIME_MS,
        OP_TYPE,
        VECTOR_BYTES,
        OperationRejected,
        read_operation,
        seal_operation,
    )
    from fpai_node.wire import codec
    from fpai_node.wire.envelope import seal
    from fpai_node.wire.errors import MalformedFrame

VECTORS = Path(__file__).resolve().parents[2] / "protocol" / "vectors" / "memory"
DICTIONARY = Path(__file__).with_suffix(".dict")  # JSON and filter tokens, for the mutator
NOW_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z, the vectors' time
KEY = NodeKey.from_seed(bytes(range(32)))
BODIES = (
    messages.Ops,
    messages.Stored,
    messages.Search,
    messages.Scan,
    messages.Get,
    messages.History,
    messages.DigestRequest,
    messages.DigestAnswer,
    messages.Fetch,
)
PAYLOAD = {"user_id": "u", "created_at": 5, "metadata": {"k": [1, "x"], "score": 0.5}}
MEM0_FILTERS = (
    {"user_id": "alice"},
    {"user_id": "*", "kind": "handoff"},
    {"AND": [{"user_id": "u"}, {"created_at": {"gte": "2026-01-01T00:00:00+02:00"}}]},
    {"OR": [{"agent_id": "a"}, {"run_id": {"in": ["r1", "r2"]}}]},
    {"NOT": [{"metadata": {"topic": "tea", "level": {"gt": 2}}}]},
    {"metadata.score": {"lte": 0.75}, "updated_at": {"lt": 1767225600}},
    {"memory": {"icontains": "Straße"}, "hash": {"ne": "x"}},
    {"created_at": {"gt": 1767225600.25}, "metadata": {"n": {"in": [1, 2.5, True]}}},
    {"updated_at": 1.7672256e9, "agent_id": {"nin": ["caf\u00e9"]}},
)


def seed_files() -> dict[str, bytes]:
    seeds = {f"{p.parent.name}_{p.stem}": p.read_bytes() for p in sorted(VECTORS.glob("*/*.bin"))}
    for path in sorted(VECTORS.glob("op-*/op.bin")):
        outer = codec.decode(path.read_bytes())
        assert isinstance(outer, list) and isinstance(outer[0], bytes)
        header = codec.decode(outer[0])
        assert isinstance(header, dict) and isinstance(header["body"], bytes)
        seeds[f"payload_{path.parent.name}"] = header["body"]
    for path in sorted(VECTORS.glob("filter-*/case.json")):
        seeds[f"wire_{path.parent.name}"] = codec.encode(
            json.loads(path.read_text())["input"]["filter"]
        )
    for i, value in enumerate(MEM0_FILTERS):
        seeds[f"mem0_{i}"] = json.dumps(value, ensure_ascii=i % 2 == 0).encode()
    return seeds


def check_operation(frame: bytes) -> None:
    """MEM-6: refused with OperationRejected, or accepted as exactly what a writer signs."""
    for now in (None, NOW_MS):
        with contextlib.suppress(OperationRejected):
            op = read_operation(frame, now_ms=now)
            if op.frame != frame:
                raise AssertionError("an operation must keep its exact bytes")


def check_payload(payload: bytes) -> None:
    """The content checks behind the signature: `payload` validly signed, then read. (Bytes
    that are not canonical MessagePack are refused as `malformed` right after the signature;
    signing them, at ~0.1 ms, would only slow the fuzzer down.)"""
    try:
        codec.decode(payload)
    except MalformedFrame:
        return
    frame = seal(KEY, OP_TYPE, payload, seq=1, now_ms=NOW_MS, lifetime_ms=OP_LIFETIME_MS)
    check_operation(frame)
    with contextlib.suppress(OperationRejected):
        op = read_operation(frame, now_ms=NOW_MS)
        again = seal_operation(
            KEY, op.id, op.action, op.version, op.content, seq=1, now_ms=NOW_MS
        ).frame
        if again != frame:
            raise AssertionError(f"accepted {op!r}, which its writer would sign differently")


def check_bodies(data: bytes) -> None:
    for kind in BODIES:
        with contextlib.suppress(messages.BadRequest):
            body = kind.decode(data)
            if body.encode() != data:
                raise AssertionError(f"{body!r} does not re-encode to its bytes")


def check_travels(condition: filters.Condition) -> None:
    """A filter accepted is one a node can send (MEM-14, MEM-17) and apply."""
    if filters.from_value(filters.to_value(condition)) != condition:
        raise AssertionError(f"{condition!r} changed on the trip through its wire form")
    messages.Search((0,), bytes(VECTOR_BYTES), condition, 1).encode()
    filters.matches(condition, PAYLOAD)


def check_filters(data: bytes) -> None:
    with contextlib.suppress(MalformedFrame, filters.BadFilter):
        check_travels(filters.from_value(codec.decode(data)))
    try:
        value = json.loads(data.decode())
    except (UnicodeDecodeError, ValueError, RecursionError):
        return  # not JSON text: json.loads documents ValueError (and recursion) for it
    with contextlib.suppress(filters.BadFilter):
        check_travels(filters.from_mem0(value))


def test_one_input(data: bytes) -> None:
    check_operation(data)
    check_payload(data)
    check_bodies(data)
    check_filters(data)


if __name__ == "__main__":
    if not any(arg.startswith("-dict=") for arg in sys.argv):
        sys.argv.insert(1, f"-dict={DICTIONARY}")
    fuzzing.run(test_one_input, seed_files)

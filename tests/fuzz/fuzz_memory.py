"""Coverage-guided fuzzing of the memory decoders (specs/0007-memory.md MEM-6, MEM-13..MEM-17).

    python tests/fuzz/fuzz_memory.py -max_total_time=20 -rss_limit_mb=2048 tests/fuzz/corpus-memory

Each input is fed to the operation reader (at its own time and against a clock), to every
peer route body's decoder, to the filter's wire form, and, as text, to Mem0's filter parser.
The target fails if anything but the documented refusal escapes (OperationRejected,
BadRequest, BadFilter, and for JSON text its ValueError), or if a body it accepts does not
re-encode to the same bytes. Seeds are the .bin files of protocol/vectors/memory.
"""

import contextlib
import json
from pathlib import Path

import atheris
import fuzzing

with atheris.instrument_imports(include=["fpai_node", "msgpack"]):
    from fpai_node.memory import filters, messages
    from fpai_node.memory.operations import OperationRejected, read_operation
    from fpai_node.wire import codec
    from fpai_node.wire.errors import MalformedFrame

VECTORS = Path(__file__).resolve().parents[2] / "protocol" / "vectors" / "memory"
NOW_MS = 1_767_225_600_000
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


def seed_files() -> dict[str, bytes]:
    return {f"{p.parent.name}_{p.stem}": p.read_bytes() for p in sorted(VECTORS.glob("*/*.bin"))}


def test_one_input(data: bytes) -> None:
    for now in (None, NOW_MS):
        with contextlib.suppress(OperationRejected):
            op = read_operation(data, now_ms=now)
            if op.frame != data:
                raise AssertionError("an operation must keep its exact bytes")
    for kind in BODIES:
        with contextlib.suppress(messages.BadRequest):
            body = kind.decode(data)
            if body.encode() != data:
                raise AssertionError(f"{body!r} does not re-encode to its bytes")
    with contextlib.suppress(MalformedFrame, filters.BadFilter):
        condition = filters.from_value(codec.decode(data))
        if filters.from_value(filters.to_value(condition)) != condition:
            raise AssertionError(f"{condition!r} changed on the trip through its wire form")
        filters.matches(condition, {"user_id": "u", "metadata": {"k": [1, "x"]}})
    with contextlib.suppress(UnicodeDecodeError, ValueError, RecursionError):
        mem0 = json.loads(data)
        with contextlib.suppress(filters.BadFilter):
            filters.from_mem0(mem0)


if __name__ == "__main__":
    fuzzing.run(test_one_input, seed_files)

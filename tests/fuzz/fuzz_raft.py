"""Coverage-guided fuzzing of the Raft frame decoder (specs/0005-registry.md RAFT-4..RAFT-6).

    python tests/fuzz/fuzz_raft.py -max_total_time=20 -rss_limit_mb=2048 tests/fuzz/corpus-raft

Each input goes through `decode_message` and `parse_hello`. The target fails if anything but
MalformedFrame escapes, or if a frame it accepts does not survive the trip back through
pysyncobj's form (decode, encode, decode). Seeds are the valid frames of protocol/vectors/raft,
copied into an empty corpus directory first.
"""

import contextlib
from pathlib import Path

import atheris
import fuzzing

with atheris.instrument_imports(include=["fpai_node", "msgpack"]):
    from fpai_node.registry import raft_wire
    from fpai_node.wire.errors import MalformedFrame

VECTORS = Path(__file__).resolve().parents[2] / "protocol" / "vectors" / "raft"


def seed_frames() -> dict[str, bytes]:
    return {c.name: (c / "frame.bin").read_bytes() for c in sorted(VECTORS.glob("valid-*"))}


def test_one_input(data: bytes) -> None:
    with contextlib.suppress(MalformedFrame):
        raft_wire.parse_hello(data)
    try:
        message = raft_wire.decode_message(data)
    except MalformedFrame:
        return
    again = raft_wire.decode_message(raft_wire.encode_message(message))
    if again != message:
        raise AssertionError(f"{message!r} changed on the trip back: {again!r}")


if __name__ == "__main__":
    fuzzing.run(test_one_input, seed_frames)

"""Coverage-guided fuzzing of the routing decoders (specs/0006-routing.md FWD-1, FWD-4, RECEIPT-4).

    python tests/fuzz/fuzz_router.py -max_total_time=20 -rss_limit_mb=2048 tests/fuzz/corpus-router

Each input is fed to the forwarded-request decoder, to an event reader (whole, then split in
two), and to the stored-receipt reader. The target fails if anything but a WireError (or, for
receipts, ReceiptRejected) escapes, or if a request or event it accepts does not re-encode to
the same bytes. Seeds are the request, event and receipt files of protocol/vectors/routing.
"""

import contextlib
from pathlib import Path

import atheris
import fuzzing

with atheris.instrument_imports(include=["fpai_node", "msgpack"]):
    from fpai_node.router import messages
    from fpai_node.wire.errors import WireError

VECTORS = Path(__file__).resolve().parents[2] / "protocol" / "vectors" / "routing"


def seed_files() -> dict[str, bytes]:
    return {f"{p.parent.name}_{p.stem}": p.read_bytes() for p in sorted(VECTORS.glob("*/*.bin"))}


def test_one_input(data: bytes) -> None:
    with contextlib.suppress(WireError):
        request = messages.InferRequest.decode(data)
        if request.encode() != data:
            raise AssertionError(f"{request!r} does not re-encode to its bytes")
    cut = len(data) // 2
    with contextlib.suppress(WireError):
        reader = messages.EventReader()
        events = reader.feed(data[:cut]) + reader.feed(data[cut:])
        for event in events:
            again = messages.EventReader().feed(messages.encode_event(event))
            if again != [event]:
                raise AssertionError(f"{event!r} changed on the trip back: {again!r}")
    with contextlib.suppress(messages.ReceiptRejected):
        messages.read_stored_receipt(data)


if __name__ == "__main__":
    fuzzing.run(test_one_input, seed_files)

"""The usage receipts file (fpai_node/router/receipts.py, RECEIPT-3, RECEIPT-4): what is added is
read back verified, a torn tail is ignored and cut, a foreign file is refused, and summarize
totals per direction, peer and model."""

import asyncio
import os
import stat
import struct
import zlib
from pathlib import Path

import pytest

from fpai_node.errors import FpaiError
from fpai_node.identity import NodeKey
from fpai_node.router.messages import (
    InferRequest,
    Receipt,
    ReceiptRejected,
    read_stored_receipt,
    seal_receipt,
)
from fpai_node.router.receipts import (
    MAGIC,
    Kept,
    ReceiptLog,
    Totals,
    read_receipts,
    receipts_path,
    summarize,
)
from fpai_node.wire import codec

NOW = 1_767_225_600_000  # 2026-01-01T00:00:00Z
OWN = NodeKey.from_seed(bytes(range(32)))
PEER_B = NodeKey.from_seed(bytes(range(1, 33)))
PEER_C = NodeKey.from_seed(bytes(range(2, 34)))
BODY = b'{"model":"m","prompt":"hi"}'


def receipt(
    server: NodeKey,
    requester: NodeKey,
    *,
    model: str = "m",
    prompt: int = 3,
    completion: int = 5,
    seq: int = 1,
    request_id: str = "req-1",
) -> bytes:
    request = InferRequest("completion", BODY, request_id, (requester.node_id,))
    return seal_receipt(
        server,
        request,
        model=model,
        prompt_tokens=prompt,
        completion_tokens=completion,
        seq=seq,
        now_ms=NOW + seq,
    )


def served(seq: int, **kw: object) -> bytes:
    """A receipt this node signed for a request PEER_B sent it."""
    return receipt(OWN, PEER_B, seq=seq, request_id=f"req-{seq}", **kw)  # type: ignore[arg-type]


def record(body: bytes) -> bytes:
    return struct.pack(">II", len(body), zlib.crc32(body)) + body


def kept(path: Path) -> list[Kept]:
    items = list(read_receipts(path))
    assert all(isinstance(i, Kept) for i in items), items
    return items  # type: ignore[return-value]


async def write(path: Path, *entries: tuple[str, bytes]) -> ReceiptLog:
    log = ReceiptLog(path)
    for direction, frame in entries:
        log.add(direction, frame)  # type: ignore[arg-type]
    await log.close()
    return log


# --- writing and reading ------------------------------------------------------------------------


async def test_added_receipts_are_read_back_verified_with_their_direction(tmp_path: Path) -> None:
    path = receipts_path(tmp_path)
    assert path == tmp_path / "usage" / "receipts.log"
    mine = served(1)
    theirs = receipt(PEER_B, OWN, seq=7, prompt=11, completion=13, model="big")
    await write(path, ("served", mine), ("used", theirs))
    items = kept(path)
    assert [i.direction for i in items] == ["served", "used"]
    assert items[0].receipt == Receipt(
        server=OWN.node_id,
        requester=PEER_B.node_id,
        request_id="req-1",
        request=InferRequest("completion", BODY, "req-1", (PEER_B.node_id,)).digest(),
        model="m",
        prompt_tokens=3,
        completion_tokens=5,
        at_ms=NOW + 1,
    )
    assert items[1].receipt.server == PEER_B.node_id
    assert items[1].receipt.requester == OWN.node_id
    assert (items[1].receipt.prompt_tokens, items[1].receipt.completion_tokens) == (11, 13)
    assert items[1].receipt.model == "big"


async def test_the_file_layout_is_magic_then_length_crc_body(tmp_path: Path) -> None:
    path = tmp_path / "receipts.log"
    frame = served(1)
    await write(path, ("served", frame))
    body = codec.encode({"dir": "served", "receipt": frame})
    assert MAGIC == b"FPAI-RECEIPTS-1\n"
    assert path.read_bytes() == MAGIC + record(body)


async def test_a_new_file_is_private_and_holds_only_the_magic(tmp_path: Path) -> None:
    path = tmp_path / "usage" / "receipts.log"
    await ReceiptLog(path).close()
    assert path.read_bytes() == MAGIC
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert list(read_receipts(path)) == []


def test_a_missing_file_has_no_receipts(tmp_path: Path) -> None:
    assert list(read_receipts(tmp_path / "nothing.log")) == []


async def test_reopening_appends_after_the_existing_records(tmp_path: Path) -> None:
    path = tmp_path / "receipts.log"
    await write(path, ("served", served(1)))
    await write(path, ("served", served(2)), ("used", receipt(PEER_C, OWN, seq=3)))
    items = kept(path)
    assert [(i.direction, i.receipt.at_ms) for i in items] == [
        ("served", NOW + 1),
        ("served", NOW + 2),
        ("used", NOW + 3),
    ]
    assert path.read_bytes().count(MAGIC) == 1


async def test_close_writes_everything_queued(tmp_path: Path) -> None:
    path = tmp_path / "receipts.log"
    frames = [served(i) for i in range(1, 301)]
    log = ReceiptLog(path)
    for frame in frames[:100]:
        log.add("served", frame)
    await asyncio.sleep(0)  # the first batch is being written while more queue up
    for frame in frames[100:]:
        log.add("served", frame)
    await log.close()
    items = kept(path)
    assert [i.receipt.request_id for i in items] == [f"req-{i}" for i in range(1, 301)]


async def test_receipts_added_while_a_batch_is_written_are_not_lost(tmp_path: Path) -> None:
    path = tmp_path / "receipts.log"
    log = ReceiptLog(path)
    for i in range(1, 41):
        log.add("served", served(i))
        if i % 7 == 0:
            await asyncio.sleep(0.001)
    await log.close()
    assert [i.receipt.request_id for i in kept(path)] == [f"req-{i}" for i in range(1, 41)]


# --- torn tails and foreign files ---------------------------------------------------------------


@pytest.mark.parametrize("cut", [1, 3, 50, "all-but-header-part"])
async def test_a_torn_tail_is_ignored_then_cut_on_open(tmp_path: Path, cut: object) -> None:
    path = tmp_path / "receipts.log"
    frames = [served(1), served(2), served(3)]
    await write(path, *(("served", f) for f in frames))
    whole = path.read_bytes()
    last = len(record(codec.encode({"dir": "served", "receipt": frames[2]})))
    torn = last - 5 if cut == "all-but-header-part" else cut  # leaves 5 bytes of the last head
    assert isinstance(torn, int) and 0 < torn < last
    path.write_bytes(whole[:-torn])

    assert [i.receipt.request_id for i in kept(path)] == ["req-1", "req-2"]

    log = ReceiptLog(path)
    assert path.read_bytes() == whole[:-last]  # the torn record is cut, the rest untouched
    log.add("used", receipt(PEER_C, OWN, seq=9, request_id="after"))
    await log.close()
    items = kept(path)
    assert [(i.direction, i.receipt.request_id) for i in items] == [
        ("served", "req-1"),
        ("served", "req-2"),
        ("used", "after"),
    ]


async def test_a_damaged_record_hides_the_ones_after_it(tmp_path: Path) -> None:
    """RECEIPT-3 reads up to the first damaged record (a CRC mismatch)."""
    path = tmp_path / "receipts.log"
    frames = [served(1), served(2), served(3)]
    await write(path, *(("served", f) for f in frames))
    data = bytearray(path.read_bytes())
    first = len(MAGIC) + len(record(codec.encode({"dir": "served", "receipt": frames[0]})))
    data[first + 20] ^= 0xFF  # inside the second record's body
    path.write_bytes(bytes(data))
    assert [i.receipt.request_id for i in kept(path)] == ["req-1"]


@pytest.mark.parametrize(
    "content",
    [b"NOT-RECEIPTS\n" + b"x" * 40, MAGIC[:-1], b"fpai-receipts-1\n", b"\x00" * 16],
)
async def test_a_file_without_the_magic_is_refused_and_left_alone(
    tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "receipts.log"
    path.write_bytes(content)
    with pytest.raises(FpaiError, match="not a receipts file"):
        ReceiptLog(path)
    with pytest.raises(FpaiError, match="not a receipts file"):
        list(read_receipts(path))
    assert path.read_bytes() == content


# --- records that do not verify -----------------------------------------------------------------


async def test_a_receipt_that_does_not_verify_is_yielded_as_rejected(tmp_path: Path) -> None:
    path = tmp_path / "receipts.log"
    good, bad = served(1), bytearray(served(2))
    at = bytes(bad).index(b"req-2")
    bad[at + 4] = ord("9")  # "req-9": still well-formed, no longer the signed bytes
    await write(path, ("served", good), ("served", bytes(bad)), ("used", b"not a frame"))
    with path.open("ab") as f:  # records the writer would never produce, with good CRCs
        f.write(record(codec.encode({"dir": "lent", "receipt": good})))
        f.write(record(codec.encode({"dir": "served"})))
        f.write(record(b"\xc1"))
        f.write(record(codec.encode({"dir": "used", "receipt": receipt(PEER_C, OWN, seq=3)})))
    items = list(read_receipts(path))
    assert len(items) == 7
    reasons = [i.reason if isinstance(i, ReceiptRejected) else None for i in items]
    assert reasons == [
        None,
        "bad_signature",
        "malformed",
        "malformed",
        "malformed",
        "malformed",
        None,
    ]
    good_ones = [i for i in items if isinstance(i, Kept)]
    assert [(k.direction, k.receipt.request_id) for k in good_ones] == [
        ("served", "req-1"),
        ("used", "req-1"),
    ]
    totals = summarize(good_ones, OWN.node_id)
    assert totals == {
        ("served", PEER_B.node_id, "m"): Totals(1, 3, 5),
        ("used", PEER_C.node_id, "m"): Totals(1, 3, 5),
    }


# --- summarize ----------------------------------------------------------------------------------


def test_summarize_totals_per_direction_peer_and_model() -> None:
    frames = [
        ("served", receipt(OWN, PEER_B, prompt=10, completion=1, seq=1)),
        ("served", receipt(OWN, PEER_B, prompt=20, completion=2, seq=2)),
        ("served", receipt(OWN, PEER_B, prompt=7, completion=7, seq=3, model="other")),
        ("served", receipt(OWN, PEER_C, prompt=1, completion=0, seq=4)),
        ("used", receipt(PEER_B, OWN, prompt=100, completion=50, seq=5)),
        ("used", receipt(PEER_C, OWN, prompt=4, completion=4, seq=6)),
        ("used", receipt(PEER_C, OWN, prompt=6, completion=6, seq=7)),
        ("used", receipt(PEER_B, PEER_C, prompt=999, completion=999, seq=8)),  # not ours
    ]
    items = [Kept(d, read_stored_receipt(f)) for d, f in frames]  # type: ignore[arg-type]
    assert summarize(items, OWN.node_id) == {
        ("served", PEER_B.node_id, "m"): Totals(requests=2, prompt_tokens=30, completion_tokens=3),
        ("served", PEER_B.node_id, "other"): Totals(1, 7, 7),
        ("served", PEER_C.node_id, "m"): Totals(1, 1, 0),
        ("used", PEER_B.node_id, "m"): Totals(1, 100, 50),
        ("used", PEER_C.node_id, "m"): Totals(2, 10, 10),
    }
    assert summarize([], OWN.node_id) == {}


async def test_summarize_over_a_file_written_by_the_log(tmp_path: Path) -> None:
    path = tmp_path / "receipts.log"
    await write(
        path,
        ("served", receipt(OWN, PEER_C, prompt=2, completion=3, seq=1)),
        ("used", receipt(PEER_B, OWN, prompt=5, completion=8, seq=2)),
        ("served", receipt(OWN, PEER_C, prompt=1, completion=1, seq=3)),
    )
    assert summarize(kept(path), OWN.node_id) == {
        ("served", PEER_C.node_id, "m"): Totals(2, 3, 4),
        ("used", PEER_B.node_id, "m"): Totals(1, 5, 8),
    }


def test_a_kept_receipt_needs_no_clock(tmp_path: Path) -> None:
    """RECEIPT-4: the file is read years later; the receipts verify at their own timestamps."""
    path = tmp_path / "receipts.log"
    frame = receipt(OWN, PEER_B, seq=1)
    body = codec.encode({"dir": "served", "receipt": frame})
    path.write_bytes(MAGIC + record(body))
    [item] = kept(path)
    assert item.receipt.at_ms == NOW + 1
    assert os.path.getsize(path) == len(MAGIC) + 8 + len(body)


async def test_damage_mid_file_keeps_the_rest_in_a_private_copy(tmp_path: Path) -> None:
    path = tmp_path / "receipts.log"
    frames = [served(1), served(2), served(3)]
    await write(path, *(("served", f) for f in frames))
    whole = bytearray(path.read_bytes())
    second = len(MAGIC) + len(record(codec.encode({"dir": "served", "receipt": frames[0]})))
    whole[second + 20] ^= 0xFF  # inside the second record's body: its CRC fails
    path.write_bytes(bytes(whole))

    log = ReceiptLog(path)
    await log.close()
    assert path.read_bytes() == bytes(whole[:second])
    [copy] = tmp_path.glob("receipts.log.damaged-*")
    assert copy.stat().st_mode & 0o777 == 0o600
    assert copy.read_bytes() == bytes(whole[second:])  # the damaged record and the third one


async def test_records_older_than_asked_are_skipped_before_their_signatures(
    tmp_path: Path,
) -> None:
    """A restart reads only what it still needs: an old record is not verified at all, so even
    a forged one costs no signature check (and is not reported)."""
    path = tmp_path / "receipts.log"
    old = bytearray(served(1))
    at = bytes(old).index(b"req-1")
    old[at + 4] = ord("9")  # no longer the signed bytes
    await write(path, ("served", bytes(old)), ("served", served(5)))
    assert [i.reason for i in read_receipts(path) if isinstance(i, ReceiptRejected)] == [
        "bad_signature"
    ]
    since = list(read_receipts(path, since_ms=NOW + 3))
    assert [(k.direction, k.receipt.request_id) for k in since] == [("served", "req-5")]  # type: ignore[union-attr]

"""Usage receipts kept in the home for the rewards ledger: an append-only, fsynced file.

    usage/receipts.log   "FPAI-RECEIPTS-1\\n", then records: u32 length, u32 crc32(body),
                         body = canonical {"dir": ..., "receipt": envelope bytes} or
                         {"dir": ..., "receipt": ..., "ack": envelope bytes}

"served" receipts are the ones this node signed for requests it served for a peer (its claim);
"used" ones peers signed for requests this node forwarded to them, with this node's
acknowledgement (its debt); "acked" records are served receipts with the requester's
acknowledgement, once it arrived: the pairs rewards count (specs/0010-rewards.md RWD-2).
Appends are batched: the writer thread fsyncs once for every receipt that queued up while the
previous fsync ran, so a busy node does not pay one fsync per request. A record cut short by a
crash fails its length or CRC check and is ignored when the file is read.
"""

import asyncio
import os
import shutil
import struct
import time
import zlib
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

import structlog

from fpai_node.errors import FpaiError
from fpai_node.router.acks import Pair, read_pair, receipt_hash
from fpai_node.router.messages import Receipt, ReceiptRejected, read_stored_receipt
from fpai_node.wire import codec
from fpai_node.wire.envelope import kept_timestamp
from fpai_node.wire.errors import MalformedFrame

MAGIC = b"FPAI-RECEIPTS-1\n"
_HEAD = struct.Struct(">II")
Direction = Literal["served", "used", "acked"]
DIRECTIONS = ("served", "used", "acked")
log = structlog.get_logger("fpai.router")


def receipts_path(home: Path) -> Path:
    return home / "usage" / "receipts.log"


class ReceiptLog:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = path
        self._path = path
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            if os.fstat(self._fd).st_size == 0:
                os.write(self._fd, MAGIC)
                os.fsync(self._fd)
            else:
                self._recover()
        except BaseException:
            os.close(self._fd)
            raise
        self._queue: list[bytes] = []
        self._flushing: asyncio.Task[None] | None = None

    def _recover(self) -> None:
        """RECEIPT-3: a torn last record (a crash mid-write, never acknowledged) is cut. A
        damaged record with more after it is not a crash: the rest of the file is copied
        aside before the cut, so nothing is lost silently."""
        with self._path.open("rb") as f:
            good, damaged = _scan(f)
            if damaged:
                f.seek(good)
                aside = self._path.with_name(f"{self._path.name}.damaged-{time.time_ns()}")
                with open(os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out:
                    shutil.copyfileobj(f, out)
                    out.flush()
                    os.fsync(out.fileno())
                log.warning("receipts file damaged; the rest copied aside", copy=str(aside))
        if good < os.fstat(self._fd).st_size:
            os.ftruncate(self._fd, good)
            log.warning("receipts file cut after its last whole record", path=str(self._path))

    def add(self, direction: Direction, receipt: bytes, ack: bytes | None = None) -> None:
        """Queue one receipt, with its acknowledgement if it has one; it is on disk once the
        next batch's fsync returns."""
        record: dict[str, codec.Value] = {"dir": direction, "receipt": receipt}
        if ack is not None:
            record["ack"] = ack
        body = codec.encode(record)
        self._queue.append(_HEAD.pack(len(body), zlib.crc32(body)) + body)
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        while self._queue:
            batch, self._queue = self._queue, []
            try:
                await asyncio.to_thread(_append, self._fd, b"".join(batch))
            except OSError as exc:  # a full disk: the node keeps serving, the operator is told
                log.error("usage receipts not written", error=str(exc), receipts=len(batch))

    async def close(self) -> None:
        """Write what is queued, then release the file."""
        while self._flushing is not None and not self._flushing.done():
            await self._flushing
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _records(f: BinaryIO) -> Iterator[bytes]:
    """Record bodies after the magic, up to the first torn or damaged one; FpaiError when the
    file does not start with the magic."""
    if f.read(len(MAGIC)) != MAGIC:
        raise FpaiError(f"{f.name} is not a receipts file; move it away to start afresh")
    while True:
        head = f.read(_HEAD.size)
        if len(head) < _HEAD.size:
            f.seek(-len(head), os.SEEK_CUR)  # stop where the last whole record ends
            return
        length, crc = _HEAD.unpack(head)
        body = f.read(length)
        if len(body) != length or zlib.crc32(body) != crc:
            f.seek(-len(head) - len(body), os.SEEK_CUR)
            return
        yield body


def _scan(f: BinaryIO) -> tuple[int, bool]:
    """(offset after the last whole record, whether the bad record after it is whole: a torn
    write ends the file, damage does not)."""
    for _ in _records(f):
        pass
    good = f.tell()
    head = f.read(_HEAD.size)
    end = f.seek(0, os.SEEK_END)
    if len(head) < _HEAD.size:
        return good, False
    (length,) = struct.unpack(">I", head[:4])
    return good, good + _HEAD.size + length <= end


def _append(fd: int, data: bytes) -> None:
    """All of `data` and an fdatasync, or nothing: a short write is cut back, so one failed
    batch never leaves a torn record in front of the next."""
    offset = os.lseek(fd, 0, os.SEEK_END)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fdatasync(fd)
    except OSError:
        os.ftruncate(fd, offset)
        raise


@dataclass(frozen=True, slots=True)
class Kept:
    direction: Direction
    receipt: Receipt
    frame: bytes = b""  # the receipt as signed
    pair: Pair | None = None  # with its acknowledgement


def read_receipts(path: Path, since_ms: int = 0) -> Iterator[Kept | ReceiptRejected]:
    """Every record up to the first damaged one, each verified (RECEIPT-4); records whose
    receipt is dated before `since_ms` are skipped before their signatures are checked."""
    if not path.exists():
        return
    with path.open("rb") as f:
        yield from _verified(_records(f), since_ms)


def _verified(bodies: Iterator[bytes], since_ms: int) -> Iterator[Kept | ReceiptRejected]:
    for body in bodies:
        try:
            record = codec.decode(body)
        except MalformedFrame as exc:
            yield ReceiptRejected("malformed", str(exc))
            continue
        if (
            not isinstance(record, dict)
            or record.get("dir") not in DIRECTIONS
            or record.keys() - {"ack"} != {"dir", "receipt"}
        ):
            yield ReceiptRejected("malformed", "a record is {dir, receipt[, ack]}")
            continue
        frame, ack = record["receipt"], record.get("ack")
        frame = frame if type(frame) is bytes else b""
        try:
            if since_ms and kept_timestamp(frame) < since_ms:
                continue
            receipt = read_stored_receipt(frame)
            if ack is None:
                yield Kept(record["dir"], receipt, frame)  # type: ignore[arg-type]
                continue
            pair = read_pair(frame, ack if type(ack) is bytes else b"")
        except ReceiptRejected as exc:
            yield exc
            continue
        except MalformedFrame as exc:  # kept_timestamp: not even a frame
            yield ReceiptRejected("malformed", str(exc))
            continue
        yield Kept(record["dir"], receipt, frame, pair)  # type: ignore[arg-type]


@dataclass(slots=True)
class Recent:
    """What a start picks up again from the file, in one pass: served receipts still awaiting
    their acknowledgement and those already acknowledged (the server's side of RWD-3), this
    node's own acknowledgements, which may not have reached their servers (the requester's),
    and every pair it is party to for rewards' digests (RWD-5)."""

    unacknowledged: list[tuple[bytes, Receipt]]
    acknowledged: list[tuple[bytes, int]]  # (receipt hash, receipt time)
    used: list[Pair]
    pairs: list[Pair]


def recent(path: Path, own_id: str, since_ms: int, pairs_since_ms: int) -> Recent:
    """`since_ms` bounds the acknowledgements' part, `pairs_since_ms` the pairs'."""
    served: dict[bytes, tuple[bytes, Receipt]] = {}
    acknowledged: list[tuple[bytes, int]] = []
    used: list[Pair] = []
    pairs: list[Pair] = []
    for item in read_receipts(path, min(since_ms, pairs_since_ms)):
        if isinstance(item, ReceiptRejected):
            continue
        pair, at_ms = item.pair, item.receipt.at_ms
        if (
            pair is not None
            and at_ms >= pairs_since_ms
            and own_id
            in (
                item.receipt.server,
                item.receipt.requester,
            )
        ):
            pairs.append(pair)
        if at_ms < since_ms:
            continue
        if item.direction == "served" and item.receipt.server == own_id:
            served[receipt_hash(item.frame)] = (item.frame, item.receipt)
        elif item.direction == "acked" and pair is not None:
            served.pop(pair.ack.receipt, None)
            acknowledged.append((pair.ack.receipt, at_ms))
        elif item.direction == "used" and pair is not None:
            used.append(pair)
    return Recent(list(served.values()), acknowledged, used, pairs)


@dataclass(slots=True)
class Totals:
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


def summarize(kept: list[Kept], own_id: str) -> dict[tuple[Direction, str, str], Totals]:
    """Totals per (direction, peer, model) of the receipts signed ("served") and accepted
    ("used"): the peer is the other party of each receipt."""
    totals: dict[tuple[Direction, str, str], Totals] = defaultdict(Totals)
    for item in kept:
        if item.direction == "acked":  # the served receipt is counted already
            continue
        if item.pair is not None and not item.pair.ack.counts:  # disputed: nothing accepted
            continue
        r = item.receipt
        peer = r.requester if item.direction == "served" else r.server
        if own_id not in (r.server, r.requester):
            continue
        entry = totals[(item.direction, peer, r.model)]
        entry.requests += 1
        entry.prompt_tokens += r.prompt_tokens
        entry.completion_tokens += r.completion_tokens
    return dict(totals)

"""One shard on this node's disk: its operation log and the vector index of its live records.

    <home>/memory/shard-NN/ops.log   "FPAI-MEMORY-OPS-1\\n", then one record per operation:
                                     u32 length, u32 crc32(body), body = key || frame, where key
                                     is id (16 bytes), at (u64), n (u32), deleted (u8), node
                                     length (u8), node id, all big-endian
    <home>/memory/shard-NN/index/    the vector store of the live records
    <home>/memory/shard-NN/indexed   the log length the index held when it was last flushed

The log is the truth: an operation is acknowledged once it is in the log and fsynced, and the
index is brought up to date from it. On open, the log is read (keys only, not frames) to rebuild
the per-record table and the digest, a torn last record is cut, and every record touched after
the `indexed` mark is written to the index again, so a crash between the log and the index
loses nothing.

Not thread-safe, and blocking: the memory service calls a shard from its one worker thread.
"""

import json
import os
import shutil
import struct
import uuid
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from fpai_node.memory.filters import Condition
from fpai_node.memory.merge import Digest, bucket_of
from fpai_node.memory.operations import Content, Operation, Version
from fpai_node.memory.store import Hit, Payload, PayloadValue, StoredPoint, VectorStore

MAGIC = b"FPAI-MEMORY-OPS-1\n"
_HEAD = struct.Struct(">II")  # length, crc32
_KEY = struct.Struct(">16sQIBB")  # id, at, n, deleted, node length
log = structlog.get_logger("fpai.memory")

OpenStore = Callable[[Path], VectorStore]


@dataclass(slots=True)
class _Record:
    """Where a record's operations are in the log, and which one stands."""

    latest: Version
    deleted: bool
    frames: list[tuple[Version, int, int]] = field(default_factory=list)  # version, offset, len


class Shard:
    def __init__(self, number: int, folder: Path, open_store: OpenStore) -> None:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.number = number
        self.folder = folder
        self.digest = Digest()
        self.records: dict[str, _Record] = {}
        # Kept as operations arrive, so that the event loop can read them (status, metrics)
        # while the worker thread appends: iterating `records` from there could race.
        self.live = 0
        self.operations = 0
        self._fd = os.open(folder / "ops.log", os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            touched = self._load()
            self._store = open_store(folder / "index")
            self._reindex(touched)
        except BaseException:
            os.close(self._fd)
            raise

    # --- writes ---------------------------------------------------------------------------

    def append(self, operations: Iterable[Operation]) -> list[Operation]:
        """Log the operations not held yet, fsync, then index the records they changed.
        Returns the new ones (an operation already held is a no-op: MEM-10)."""
        new: list[Operation] = []
        seen: set[tuple[str, Version]] = set()
        for op in operations:
            record = self.records.get(op.id)
            key = (op.id, op.version)
            if key in seen or (record and any(v == op.version for v, _, _ in record.frames)):
                continue
            seen.add(key)
            new.append(op)
        if not new:
            return []
        offset = os.lseek(self._fd, 0, os.SEEK_END)
        chunks = []
        for op in new:
            body = _key_bytes(op.id, op.version, op.content is None) + op.frame
            chunks.append(_HEAD.pack(len(body), zlib.crc32(body)) + body)
            self._remember(
                op.id,
                op.version,
                op.content is None,
                offset + len(chunks[-1]) - len(op.frame),
                len(op.frame),
            )
            offset += len(chunks[-1])
        os.write(self._fd, b"".join(chunks))
        os.fsync(self._fd)
        self._index({op.id: op for op in new if self.records[op.id].latest == op.version}.values())
        return new

    def checkpoint(self) -> None:
        """Flush the index and mark the log length it holds (the next open reindexes less)."""
        self._store.flush()
        mark = self.folder / "indexed"
        tmp = mark.with_suffix(".tmp")
        tmp.write_text(str(os.lseek(self._fd, 0, os.SEEK_END)))
        os.replace(tmp, mark)

    # --- reads ----------------------------------------------------------------------------

    def search(
        self, vector: Sequence[float], limit: int, where: Condition | None, threshold: float | None
    ) -> list[Hit]:
        return self._store.search(vector, limit, where, threshold)

    def scan(self, where: Condition | None, limit: int, after: str = "") -> list[Hit]:
        return self._store.scan(where, limit, after)

    def latest_frames(self, ids: Iterable[str]) -> list[bytes]:
        """The standing operation of each record held among `ids` (tombstones included)."""
        frames = []
        for record_id in ids:
            record = self.records.get(record_id)
            if record is not None:
                _, offset, length = next(f for f in record.frames if f[0] == record.latest)
                frames.append(os.pread(self._fd, length, offset))
        return frames

    def history_frames(self, record_id: str) -> list[bytes]:
        record = self.records.get(record_id)
        if record is None:
            return []
        return [os.pread(self._fd, length, offset) for _, offset, length in record.frames]

    def keys_in(self, buckets: Iterable[int]) -> list[tuple[str, Version]]:
        """MEM-13: every operation key held in these buckets."""
        wanted = set(buckets)
        return [
            (record_id, version)
            for record_id, record in self.records.items()
            if bucket_of(record_id) in wanted
            for version, _, _ in record.frames
        ]

    def frames_of(self, keys: Iterable[tuple[str, Version]]) -> list[bytes]:
        frames = []
        for record_id, version in keys:
            record = self.records.get(record_id)
            for held, offset, length in record.frames if record else ():
                if held == version:
                    frames.append(os.pread(self._fd, length, offset))
        return frames

    # --- lifecycle ------------------------------------------------------------------------

    def close(self) -> None:
        try:
            self.checkpoint()
            self._store.close()
        finally:
            os.close(self._fd)

    def drop(self) -> None:
        """Forget the shard (its replicas hold everything it had: MEM-14)."""
        try:
            self._store.close()
        finally:
            os.close(self._fd)
        shutil.rmtree(self.folder)

    # --- internals ------------------------------------------------------------------------

    def _remember(
        self, record_id: str, version: Version, deleted: bool, offset: int, length: int
    ) -> None:
        record = self.records.get(record_id)
        if record is None:
            record = self.records[record_id] = _Record(version, deleted)
            self.live += not deleted
        elif version > record.latest:
            self.live += int(record.deleted) - int(deleted)
            record.latest, record.deleted = version, deleted
        self.operations += 1
        record.frames.append((version, offset, length))
        record.frames.sort()
        self.digest.add(record_id, version)

    def _load(self) -> set[str]:
        """Read the log's keys; cut a torn tail; return the records changed after the index
        mark."""
        size = os.fstat(self._fd).st_size
        if size == 0:
            os.write(self._fd, MAGIC)
            os.fsync(self._fd)
            return set()
        with open(self.folder / "ops.log", "rb") as f:
            data = f.read()
        if not data.startswith(MAGIC):
            raise OSError(f"{self.folder / 'ops.log'} is not a memory operation log")
        mark = _read_mark(self.folder / "indexed")
        touched: set[str] = set()
        pos = len(MAGIC)
        while pos + _HEAD.size <= len(data):
            length, crc = _HEAD.unpack_from(data, pos)
            body = data[pos + _HEAD.size : pos + _HEAD.size + length]
            if len(body) != length or zlib.crc32(body) != crc or length < _KEY.size:
                break
            raw_id, at, n, deleted, node_len = _KEY.unpack_from(body)
            node = body[_KEY.size : _KEY.size + node_len].decode()
            record_id = str(uuid.UUID(bytes=raw_id))
            frame_at = pos + _HEAD.size + _KEY.size + node_len
            self._remember(
                record_id,
                Version(at, n, node),
                bool(deleted),
                frame_at,
                length - _KEY.size - node_len,
            )
            if pos >= mark:
                touched.add(record_id)
            pos += _HEAD.size + length
        if pos != len(data):
            log.warning(
                "memory log torn at its end; cut", shard=self.number, at=pos, size=len(data)
            )
            os.ftruncate(self._fd, pos)
            os.fsync(self._fd)
        return touched

    def _reindex(self, touched: Iterable[str]) -> None:
        from fpai_node.memory.operations import read_operation

        ids = sorted(touched)
        if not ids:
            return
        log.info("memory index catching up with its log", shard=self.number, records=len(ids))
        self._index(read_operation(frame) for frame in self.latest_frames(ids))

    def _index(self, standing: Iterable[Operation]) -> None:
        gone, points = [], []
        for op in standing:
            if op.content is None:
                gone.append(op.id)
            else:
                points.append(
                    StoredPoint(op.id, op.content.floats(), payload(op.content, op.version))
                )
        if gone:
            self._store.delete(gone)
        if points:
            self._store.upsert(points)


def payload(content: Content, version: Version) -> Payload:
    """The payload a record is indexed with (store.Payload)."""
    filterable: dict[str, PayloadValue] = {}
    for key, value in json.loads(content.metadata).items():
        if isinstance(value, str | int | float | bool) or (
            isinstance(value, list) and all(isinstance(v, str) for v in value)
        ):
            filterable[key] = value
    return {
        "memory": content.memory,
        "hash": content.hash,
        "kind": content.kind,
        "user_id": content.user_id,
        "agent_id": content.agent_id,
        "run_id": content.run_id,
        "created_at": content.created_at_ms,
        "updated_at": version.at_ms,
        "metadata_json": content.metadata,
        "metadata": filterable,
    }


def _key_bytes(record_id: str, version: Version, deleted: bool) -> bytes:
    node = version.node.encode()
    raw_id = uuid.UUID(record_id).bytes
    return _KEY.pack(raw_id, version.at_ms, version.n, int(deleted), len(node)) + node


def _read_mark(path: Path) -> int:
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return 0

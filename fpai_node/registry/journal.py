"""The Raft log and vote on disk, fsynced before pysyncobj acts on them.

pysyncobj's own FileJournal writes through an mmap that is never synced and keeps term and vote
in a pickle. Raft's safety rests on three things being durable before a node speaks: a log entry
before it is acknowledged or counted towards a commit, and the term and vote before a vote is
cast (specs/0005 RAFT-13). This journal appends each entry as one CRC-checked record and writes
term, vote and commit index to a small canonical MessagePack file replaced atomically. Entries
are stored in their wire form (specs/0005 RAFT-5), so the disk holds no pickle either.

Group commit: `add` writes its record but does not sync it; `sync` makes every record written
so far durable with one fdatasync. The engine calls `sync` before it acknowledges entries, and
its leader counts its own log towards a commit only up to `durable_index` (raft.py), so a batch
of entries costs one fdatasync, not one each, and a leader's sync runs while its followers write
theirs.

Files in the home's raft/ folder:
    log     "FPAI-RAFT-LOG-1\\n", then records: u32 length, u32 crc32(body), body =
            u64 index, u64 term, canonical [kind, data]
    meta    canonical {"commit": uint, "floor": uint, "term": uint, "voted_for": str | nil}
            (floor: the highest term this member reached as a voter; see `enter_role`)

A record cut short by a crash (a torn tail) fails its length or CRC check and is dropped when the
log is opened; it was never acknowledged, because acknowledgement follows the fsync.

pysyncobj calls these methods from its one tick thread; `sync` (and `durable_index`) may also be
called from a leader's sync thread, so the file descriptor is closed or cut only under the lock
that `sync` holds.
"""

import os
import struct
import threading
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, overload

from fpai_node.registry.raft_wire import Position as Entry
from fpai_node.registry.raft_wire import entry_from_wire, entry_to_wire
from fpai_node.wire import codec
from fpai_node.wire.errors import MalformedFrame

MAGIC = b"FPAI-RAFT-LOG-1\n"
_HEAD = struct.Struct(">II")
_POSITION = struct.Struct(">QQ")


class JournalError(Exception):
    """The journal cannot be read: not ours, or damaged before its last good record."""


class DurabilityLost(Exception):
    """fdatasync failed: what was written since the last sync may or may not be on disk, and
    the kernel may have dropped the pages it could not write (a retried fsync can succeed over
    lost data). Nothing written since may be acknowledged; the log cannot be trusted again
    until it is read back from disk, so the engine stops (as etcd and PostgreSQL do)."""


class DurableJournal:
    """pysyncobj's Journal interface over an fsynced append-only file."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._dir = directory
        self._log_path = directory / "log"
        self._meta_path = directory / "meta"
        self._entries: list[Entry] = []
        self._offsets: list[int] = []  # file offset of each entry's record
        self._meta = self._read_meta()
        self._meta_dirty = False
        self._fd = self._open_log()
        self._end = os.fstat(self._fd).st_size  # where the next record goes: no lseek per add
        self._durable_index = self._last_index()  # the log was fsynced as it was opened
        self._lost: str | None = None  # why durability was lost (DurabilityLost): for good
        self._closed = False
        # Set by the engine while a leader's sync thread writes the lazy meta (`flush_meta`),
        # so that the tick thread never waits on the disk for it.
        self.meta_elsewhere = False
        # Held by `sync` for its whole fdatasync, and by whatever closes, replaces or cuts the
        # file: a sync on another thread never flushes a descriptor that was closed (and maybe
        # reused for another file) under it, nor counts records that were cut meanwhile.
        self._lock = threading.Lock()

    # ---- entries -----------------------------------------------------------------------------

    def add(self, command: bytes, idx: int, term: int) -> None:
        """Append one record, durable at the next `sync`. On a failed write (a full disk) the
        file is cut back to where it was and the error raised: the entry was never stored."""
        self._check_durable()
        record = _record(command, idx, term)
        offset = self._end
        try:
            view = memoryview(record)
            while view:
                written = os.pwrite(self._fd, view, self._end)
                self._end += written
                view = view[written:]
        except OSError:
            os.ftruncate(self._fd, offset)
            self._end = offset
            raise
        # Listed only once written in full: a sync that sees this entry covers its record.
        self._entries.append((command, idx, term))
        self._offsets.append(offset)

    @property
    def unsynced(self) -> bool:
        """Records were written since the last `sync`: not yet to be acknowledged."""
        return self._last_index() > self._durable_index

    @property
    def durable_index(self) -> int:
        """The Raft index of the last entry known to be on disk (0: none)."""
        return self._durable_index

    def sync(self) -> None:
        """Make every record written so far durable: one fdatasync for the whole batch. A
        failure is for good (DurabilityLost): see that class for why no retry is safe. Safe
        beside `add` on the tick thread: what was appended before the fdatasync began counts."""
        with self._lock:
            self._check_durable()
            if self._closed:
                return
            # An entry is listed only once its record is written in full, so the fdatasync
            # that follows makes every entry up to `last` durable.
            last = self._last_index()
            if last > self._durable_index:
                self._flush(os.fdatasync)
                self._durable_index = last

    def _check_durable(self) -> None:
        if self._lost is not None:
            raise DurabilityLost(self._lost)

    def clear(self) -> None:
        with self._lock:
            self._truncate(len(MAGIC))
            self._entries.clear()
            self._offsets.clear()
            self._durable_index = 0

    def deleteEntriesFrom(self, entryFrom: int) -> None:
        with self._lock:
            if entryFrom < len(self._offsets):
                self._truncate(self._offsets[entryFrom])
            del self._entries[entryFrom:]
            del self._offsets[entryFrom:]
            self._durable_index = min(self._durable_index, self._last_index())

    def start_at(self, prev: Entry) -> None:
        """Before an engine starts: drop the entries a snapshot ending after `prev` covers, if
        the log still holds them (the snapshot was put in place, then the node stopped or
        crashed before the log was cut). pysyncobj would otherwise find a log that does not
        start at the snapshot and clear it whole, entries after the snapshot included."""
        if not self._entries:
            return
        position = prev[1] - self._entries[0][1]
        if 0 < position < len(self._entries) and self._entries[position] == prev:
            self.deleteEntriesTo(position)

    def deleteEntriesTo(self, entryTo: int) -> None:
        """Log compaction: keep entries from `entryTo` on, rewritten into a new file that
        replaces the old one atomically (the snapshot that covers the rest is already on disk)."""
        kept = self._entries[entryTo:]
        tmp = self._dir / "log.tmp"
        with open(tmp, "wb") as f:
            f.write(MAGIC)
            for command, idx, term in kept:
                f.write(_record(command, idx, term))
            f.flush()
            os.fsync(f.fileno())
        with self._lock:
            os.replace(tmp, self._log_path)
            fsync_directory(self._dir)
            os.close(self._fd)
            self._entries, self._offsets = [], []
            self._fd = self._open_log()
            self._end = os.fstat(self._fd).st_size
            self._durable_index = self._last_index()

    @overload
    def __getitem__(self, item: int) -> Entry: ...
    @overload
    def __getitem__(self, item: slice) -> list[Entry]: ...
    def __getitem__(self, item: int | slice) -> Entry | list[Entry]:
        return self._entries[item]

    def __len__(self) -> int:
        return len(self._entries)

    def _last_index(self) -> int:
        return self._entries[-1][1] if self._entries else 0

    def _destroy(self) -> None:
        """Close the files; records not yet synced are synced first (a clean stop keeps them)."""
        try:
            if self._lost is None:
                self.sync()
                self.flush_meta()
        finally:
            with self._lock:
                self._closed = True
                os.close(self._fd)

    # ---- term, vote, commit index ------------------------------------------------------------

    def setCurrentTerm(self, term: int, votedForNodeId: str | None) -> None:
        """Durable before returning: pysyncobj sends the vote right after this call. Under the
        lock: a leader's sync thread may be writing the meta file at the same moment."""
        with self._lock:
            self._meta["term"] = term
            self._meta["voted_for"] = votedForNodeId
            self._flush_meta(force=True)

    def getCurrentTerm(self) -> int:
        return int(self._meta["term"])

    def getVotedForNodeId(self) -> str | None:
        voted = self._meta["voted_for"]
        return voted if isinstance(voted, str) else None

    def enter_role(self, learner: bool, member: str) -> None:
        """Before an engine starts over this journal (RAFT-14). A learner keeps no term: it never
        votes, and a term left over from its days as a voter (raised by campaigns nobody
        answered) would make it ignore the real leader for good. So its term is set aside as the
        floor and reset. A voter starts at least at the floor, as if it had voted for itself
        there, so that it never votes twice in a term it may already have voted in."""
        if learner:
            if self._meta["term"]:
                self._meta["floor"] = max(self._meta["floor"], self._meta["term"])
                self._meta["term"], self._meta["voted_for"] = 0, None
                self._flush_meta(force=True)
        elif self._meta["term"] < self._meta["floor"]:
            self._meta["term"], self._meta["voted_for"] = self._meta["floor"], member
            self._flush_meta(force=True)

    def setRaftCommitIndex(self, raftCommitIndex: int) -> None:
        """Kept lazily (once a second): a lost commit index is learnt again from the leader."""
        if self._meta["commit"] != raftCommitIndex:
            self._meta["commit"] = raftCommitIndex
            self._meta_dirty = True

    def getRaftCommitIndex(self) -> int:
        last = self._entries[-1][1] if self._entries else 1
        return min(int(self._meta["commit"]), last)

    def onOneSecondTimer(self) -> None:
        if not self.meta_elsewhere:
            self.flush_meta()

    def flush_meta(self) -> None:
        """Any thread: write the commit index if it changed since the last write."""
        with self._lock:
            if not self._closed:
                self._flush_meta()

    # ---- files -------------------------------------------------------------------------------

    def _open_log(self) -> int:
        fd = os.open(self._log_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            data = _read_all(fd)
            if not data:
                os.write(fd, MAGIC)
                os.fsync(fd)
                fsync_directory(self._dir)
                return fd
            if not data.startswith(MAGIC):
                raise JournalError(f"{self._log_path} is not an fpai-node Raft log")
            good = self._load_records(data)
            if good < len(data):
                os.ftruncate(fd, good)  # a torn tail: never acknowledged, see the module notes
            # What a killed process wrote may still be only in the page cache; everything read
            # here is counted as durable from now on (acknowledged, or counted by a leader).
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _load_records(self, data: bytes) -> int:
        """Read every record; the offset where the good ones end. Only the last record may be
        bad (an append cut short by a crash): damage before it is refused, never skipped."""
        offset = len(MAGIC)
        while offset + _HEAD.size <= len(data):
            length, crc = _HEAD.unpack_from(data, offset)
            end = offset + _HEAD.size + length
            body = data[offset + _HEAD.size : end]
            if len(body) != length or zlib.crc32(body) != crc or length < _POSITION.size:
                if end < len(data):
                    raise JournalError(
                        f"{self._log_path}: record at byte {offset} is damaged and more follow"
                    )
                break
            idx, term = _POSITION.unpack_from(body)
            try:
                command = entry_from_wire(codec.decode(body[_POSITION.size :]))
            except MalformedFrame:
                raise JournalError(f"{self._log_path}: record at {offset} is damaged") from None
            self._entries.append((command, idx, term))
            self._offsets.append(offset)
            offset += _HEAD.size + length
        return offset

    def _truncate(self, offset: int) -> None:
        """Cut the log at `offset` (the caller holds the lock); the fsync also makes the
        records before it durable."""
        self._check_durable()
        os.ftruncate(self._fd, offset)
        self._end = offset
        self._flush(os.fsync)

    def _flush(self, flush: Callable[[int], None]) -> None:
        """`flush` (fsync or fdatasync) the log; a failure is for good (DurabilityLost)."""
        try:
            flush(self._fd)
        except OSError as exc:
            self._lost = f"{flush.__name__} of {self._log_path} failed: {exc}"
            raise DurabilityLost(self._lost) from exc

    def _read_meta(self) -> dict[str, Any]:
        meta: dict[str, Any] = {"commit": 1, "floor": 0, "term": 0, "voted_for": None}
        try:
            value = codec.decode(self._meta_path.read_bytes())
        except FileNotFoundError:
            return meta
        except MalformedFrame:
            raise JournalError(f"{self._meta_path} is damaged") from None
        if (
            not isinstance(value, dict)
            or value.keys() != meta.keys()
            or type(value["commit"]) is not int
            or type(value["floor"]) is not int
            or type(value["term"]) is not int
            or not isinstance(value["voted_for"], str | None)
        ):
            raise JournalError(f"{self._meta_path} is damaged")
        return value

    def _flush_meta(self, force: bool = False) -> None:
        if not (force or self._meta_dirty):
            return
        write_atomically(self._meta_path, codec.encode(self._meta))
        self._meta_dirty = False


def _record(command: bytes, idx: int, term: int) -> bytes:
    """One entry as the log stores it: length and CRC-32 of the body, then the body (the
    entry's position, then the entry as on the wire, canonical by construction)."""
    body = _POSITION.pack(idx, term) + codec.pack_ordered(entry_to_wire(command))
    return _HEAD.pack(len(body), zlib.crc32(body)) + body


def write_atomically(path: Path, data: bytes) -> None:
    """Write, fsync, rename over `path`, fsync the folder: the old or the new file, never half."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_directory(path.parent)


def fsync_file(path: Path) -> None:
    """fsync a file written by someone else (pysyncobj), then the folder that names it."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    fsync_directory(path.parent)


def fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_all(fd: int) -> bytes:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)

"""The Raft journal on disk: what is acknowledged survives, a torn tail is dropped, compaction
and truncation keep the file and the memory in step, and damage is refused in one line."""

import errno
import os
import struct
import threading
import zlib
from pathlib import Path

import pytest

from fpai_node.registry.journal import MAGIC, DurabilityLost, DurableJournal, JournalError
from fpai_node.registry.raft_wire import NO_OP_ENTRY, command_entry, membership_entry
from fpai_node.wire import codec

MEMBER = "fpn1aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@127.0.0.1:7200"


def entries(n: int, start: int = 1, term: int = 1) -> list[tuple[bytes, int, int]]:
    return [(command_entry(f"cmd-{i}".encode()), i, term) for i in range(start, start + n)]


def reopened(directory: Path) -> list[tuple[bytes, int, int]]:
    journal = DurableJournal(directory)
    try:
        return list(journal[:])
    finally:
        journal._destroy()


def test_entries_term_and_vote_survive_a_reopen(tmp_path: Path) -> None:
    journal = DurableJournal(tmp_path)
    written = [(NO_OP_ENTRY, 1, 0), *entries(5, start=2), (membership_entry("add", MEMBER), 7, 1)]
    for entry in written:
        journal.add(*entry)
    journal.setCurrentTerm(4, MEMBER)
    journal.setRaftCommitIndex(6)
    journal._destroy()
    again = DurableJournal(tmp_path)
    assert list(again[:]) == written and len(again) == 7
    assert again.getCurrentTerm() == 4 and again.getVotedForNodeId() == MEMBER
    assert again.getRaftCommitIndex() == 6
    again._destroy()


def parse_log(data: bytes) -> list[tuple[int, int, codec.Value]]:
    """The log file by its documented format, read here without the journal's own reader:
    the magic line, then records of u32 length, u32 crc32(body), body = u64 index, u64 term,
    canonical [kind, data], up to the last byte."""
    assert data.startswith(b"FPAI-RAFT-LOG-1\n"), data[:32]
    offset, records = len(b"FPAI-RAFT-LOG-1\n"), []
    while offset < len(data):
        length, crc = struct.unpack_from(">II", data, offset)
        body = data[offset + 8 : offset + 8 + length]
        assert len(body) == length and zlib.crc32(body) == crc, f"bad record at {offset}"
        index, term = struct.unpack_from(">QQ", body)
        records.append((index, term, codec.decode(body[16:])))  # canonical or MalformedFrame
        offset += 8 + length
    return records


def test_nothing_on_disk_is_a_pickle(tmp_path: Path) -> None:
    """Every file the journal leaves parses completely as its own format: a pickle of any
    protocol, or any other encoding, fails here (RAFT-5: entries in their wire form)."""
    journal = DurableJournal(tmp_path)
    for entry in entries(3):
        journal.add(*entry)
    journal.setCurrentTerm(1, MEMBER)
    journal.setRaftCommitIndex(2)
    journal._destroy()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log", "meta"]
    assert parse_log((tmp_path / "log").read_bytes()) == [
        (i, 1, ["command", f"cmd-{i}".encode()]) for i in (1, 2, 3)
    ]
    meta = codec.decode((tmp_path / "meta").read_bytes())
    assert meta == {"commit": 2, "floor": 0, "term": 1, "voted_for": MEMBER}


def test_a_torn_last_record_is_dropped_and_the_file_repaired(tmp_path: Path) -> None:
    """RAFT-13: a last record cut short (an append a crash interrupted) is dropped on start."""
    journal = DurableJournal(tmp_path)
    for entry in entries(3):
        journal.add(*entry)
    journal._destroy()
    log = tmp_path / "log"
    whole = log.read_bytes()
    log.write_bytes(whole[:-5])  # a crash in the middle of the third append
    assert reopened(tmp_path) == entries(2)
    journal = DurableJournal(tmp_path)
    journal.add(*entries(1, start=3, term=2)[0])
    journal._destroy()
    assert reopened(tmp_path) == [*entries(2), *entries(1, start=3, term=2)]


def test_a_damaged_last_record_is_dropped(tmp_path: Path) -> None:
    """RAFT-13: a last record that fails its CRC is dropped on start."""
    journal = DurableJournal(tmp_path)
    for entry in entries(3):
        journal.add(*entry)
    journal._destroy()
    log = tmp_path / "log"
    data = bytearray(log.read_bytes())
    data[-3] ^= 0x01
    log.write_bytes(bytes(data))
    assert reopened(tmp_path) == entries(2)


def test_damage_before_the_last_record_is_refused_not_skipped(tmp_path: Path) -> None:
    """RAFT-13: acknowledged records follow the damage: dropping them would lose committed
    entries, so the log is refused."""
    journal = DurableJournal(tmp_path)
    for entry in entries(5):
        journal.add(*entry)
    journal._destroy()
    log = tmp_path / "log"
    data = bytearray(log.read_bytes())
    data[len(MAGIC) + 12] ^= 0x01  # inside the first record's body
    log.write_bytes(bytes(data))
    with pytest.raises(JournalError, match="damaged and more follow"):
        DurableJournal(tmp_path)


def test_a_failed_append_leaves_no_trace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A full disk: the write fails, the file is cut back, later appends land where they
    should and all of them survive a reopen."""
    journal = DurableJournal(tmp_path)
    journal.add(*entries(1)[0])
    real_pwrite = os.pwrite
    calls = {"n": 0}

    def short_then_full(fd: int, data: bytes, offset: int) -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            return real_pwrite(fd, bytes(data[:7]), offset)  # a short write...
        raise OSError(errno.ENOSPC, "No space left on device")  # ...then the disk is full

    monkeypatch.setattr(os, "pwrite", short_then_full)
    with pytest.raises(OSError, match="No space"):
        journal.add(*entries(1, start=2)[0])
    monkeypatch.setattr(os, "pwrite", real_pwrite)
    journal.add(*entries(1, start=2)[0])
    journal._destroy()
    assert reopened(tmp_path) == entries(2)


def test_truncation_and_compaction_keep_disk_and_memory_equal(tmp_path: Path) -> None:
    journal = DurableJournal(tmp_path)
    for entry in entries(10):
        journal.add(*entry)
    journal.deleteEntriesFrom(7)  # a follower drops a conflicting suffix
    assert [e[1] for e in journal[:]] == list(range(1, 8))
    journal.deleteEntriesTo(4)  # compaction after a snapshot
    assert [e[1] for e in journal[:]] == list(range(5, 8))
    journal.add(*entries(1, start=8, term=3)[0])
    journal._destroy()
    assert [(e[1], e[2]) for e in reopened(tmp_path)] == [(5, 1), (6, 1), (7, 1), (8, 3)]


def test_the_commit_index_never_points_past_the_log(tmp_path: Path) -> None:
    journal = DurableJournal(tmp_path)
    for entry in entries(3):
        journal.add(*entry)
    journal.setRaftCommitIndex(3)
    journal.onOneSecondTimer()
    journal.deleteEntriesFrom(1)
    assert journal.getRaftCommitIndex() == 1
    journal._destroy()


def test_clear_empties_the_log(tmp_path: Path) -> None:
    journal = DurableJournal(tmp_path)
    for entry in entries(3):
        journal.add(*entry)
    journal.clear()
    journal._destroy()
    assert reopened(tmp_path) == []
    assert (tmp_path / "log").read_bytes() == MAGIC


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("log", b"SOMETHING ELSE ENTIRELY", "not an fpai-node Raft log"),
        ("meta", b"\x80\x02}q\x00.", "is damaged"),
        ("meta", b"\x81\xa4term\x01", "is damaged"),
    ],
)
def test_foreign_or_damaged_files_are_refused_in_one_line(
    tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(JournalError, match=message) as error:
        DurableJournal(tmp_path)
    assert "\n" not in str(error.value)


def test_a_learner_keeps_no_term_and_a_voter_never_votes_below_its_floor(tmp_path: Path) -> None:
    """RAFT-14: term 7 reached as a voter is set aside while learning; back as a voter the
    member starts at 7, counted as voted (for itself), so it cannot vote twice in term 7."""
    journal = DurableJournal(tmp_path)
    journal.setCurrentTerm(7, "someone")
    journal.enter_role(learner=True, member=MEMBER)
    assert journal.getCurrentTerm() == 0 and journal.getVotedForNodeId() is None
    journal.setCurrentTerm(3, None)  # the leader it follows is at term 3
    journal._destroy()
    journal = DurableJournal(tmp_path)
    journal.enter_role(learner=False, member=MEMBER)
    assert journal.getCurrentTerm() == 7 and journal.getVotedForNodeId() == MEMBER
    journal.setCurrentTerm(9, None)
    journal.enter_role(learner=False, member=MEMBER)
    assert journal.getCurrentTerm() == 9  # above the floor: untouched
    journal._destroy()


def test_a_batch_of_entries_takes_one_sync_and_votes_are_on_disk_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RAFT-13 with group commit: `add` writes, `sync` makes every record written so far
    durable with one fdatasync (the engine calls it before acknowledging); pysyncobj sends a
    vote right after `setCurrentTerm` returns, so that one syncs before it returns."""
    journal = DurableJournal(tmp_path)
    events: list[str] = []
    real_write, real_pwrite = os.write, os.pwrite
    real_fsync, real_fdatasync = os.fsync, os.fdatasync

    def write(fd: int, data: bytes) -> int:
        events.append("write")
        return real_write(fd, data)

    def pwrite(fd: int, data: bytes, offset: int) -> int:
        events.append("write")
        return real_pwrite(fd, data, offset)

    def fsync(fd: int) -> None:
        events.append("sync")
        real_fsync(fd)

    def fdatasync(fd: int) -> None:
        events.append("sync")
        real_fdatasync(fd)

    monkeypatch.setattr(os, "write", write)
    monkeypatch.setattr(os, "pwrite", pwrite)
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "fdatasync", fdatasync)
    for entry in entries(3):
        journal.add(*entry)
    assert events == ["write"] * 3 and journal.unsynced
    journal.sync()
    assert events == ["write"] * 3 + ["sync"] and not journal.unsynced
    journal.sync()  # nothing new: no second fdatasync
    assert events.count("sync") == 1
    events.clear()
    journal.setCurrentTerm(2, MEMBER)
    assert events[0] == "write" and "sync" in events[1:]
    events.clear()
    journal.setRaftCommitIndex(5)  # kept lazily: learnt again from the leader if lost
    assert events == []
    monkeypatch.undo()
    journal._destroy()
    again = DurableJournal(tmp_path)
    assert list(again[:]) == entries(3) and again.getCurrentTerm() == 2
    again._destroy()


def test_a_failed_sync_is_for_good(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """After a failed fdatasync the kernel may have dropped the unwritten pages and a retry
    can succeed over lost data: the journal refuses every later append and sync."""
    journal = DurableJournal(tmp_path)
    journal.add(*entries(1)[0])
    journal.sync()
    journal.add(*entries(1, start=2)[0])

    def failing(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fdatasync", failing)
    with pytest.raises(DurabilityLost, match="Input/output error"):
        journal.sync()
    monkeypatch.undo()
    with pytest.raises(DurabilityLost):
        journal.sync()
    with pytest.raises(DurabilityLost):
        journal.add(*entries(1, start=3)[0])
    journal._destroy()
    assert reopened(tmp_path)[0] == entries(1)[0]  # the synced record, read back from disk


def test_a_clean_close_syncs_what_was_written(tmp_path: Path) -> None:
    journal = DurableJournal(tmp_path)
    for entry in entries(4):
        journal.add(*entry)
    journal._destroy()
    assert reopened(tmp_path) == entries(4)


def test_a_log_not_cut_after_its_snapshot_starts_at_the_snapshot(tmp_path: Path) -> None:
    """A snapshot put in place, then a stop or crash before the log was cut: the log is cut
    at the snapshot's `prev` on start, so that pysyncobj (which clears a log that does not
    start there) keeps the entries after the snapshot."""
    journal = DurableJournal(tmp_path)
    for entry in entries(10):
        journal.add(*entry)
    journal.start_at(entries(10)[3])  # the snapshot's prev: index 4
    assert [e[1] for e in journal[:]] == list(range(4, 11))
    journal.start_at((command_entry(b"not in the log"), 6, 1))  # another log's entry: kept
    assert [e[1] for e in journal[:]] == list(range(4, 11))
    journal._destroy()
    assert [e[1] for e in reopened(tmp_path)] == list(range(4, 11))


def test_a_sync_on_another_thread_counts_only_what_was_written_before_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A leader's sync thread (RAFT-13): appends go on while it waits on the disk, and its
    durable index covers only the entries listed before its fdatasync began."""
    journal = DurableJournal(tmp_path)
    first, second = entries(2)
    journal.add(*first)
    in_sync, go_on = threading.Event(), threading.Event()
    real_fdatasync = os.fdatasync

    def slow_fdatasync(fd: int) -> None:
        in_sync.set()
        assert go_on.wait(10)
        real_fdatasync(fd)

    monkeypatch.setattr(os, "fdatasync", slow_fdatasync)
    syncer = threading.Thread(target=journal.sync)
    syncer.start()
    assert in_sync.wait(10)
    journal.add(*second)  # the tick thread is not held up by the sync under way
    assert journal.durable_index == 0
    go_on.set()
    syncer.join(10)
    assert journal.durable_index == first[1] and journal.unsynced
    journal.sync()
    assert journal.durable_index == second[1] and not journal.unsynced
    monkeypatch.undo()
    journal._destroy()


def test_a_cut_log_is_durable_only_as_far_as_it_reaches(tmp_path: Path) -> None:
    journal = DurableJournal(tmp_path)
    for entry in entries(4):
        journal.add(*entry)
    journal.sync()
    assert journal.durable_index == 4
    journal.deleteEntriesFrom(2)  # a follower drops entries that conflict with its leader's
    assert journal.durable_index == 2 and not journal.unsynced
    journal.clear()
    assert journal.durable_index == 0
    journal._destroy()


def test_a_sync_after_close_does_nothing(tmp_path: Path) -> None:
    """A leader's sync thread that asks once the engine has closed the journal flushes no
    descriptor: the number may already name another file."""
    journal = DurableJournal(tmp_path)
    journal.add(*entries(1)[0])
    journal._destroy()
    journal.sync()
    assert journal.durable_index == 1


def test_opening_a_log_makes_what_it_holds_durable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A killed process's last records may be only in the page cache; the reopened journal
    counts them durable (a follower acknowledges them), so it fsyncs the log before that."""
    journal = DurableJournal(tmp_path)
    for entry in entries(3):
        journal.add(*entry)
    os.close(journal._fd)  # killed before any sync: nothing flushed by the journal itself
    synced: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    reopened_journal = DurableJournal(tmp_path)
    assert reopened_journal._fd in synced
    assert reopened_journal.durable_index == 3 and not reopened_journal.unsynced
    monkeypatch.undo()
    reopened_journal._destroy()

"""A shard on disk: the fsynced operation log is the truth, the index follows it."""

import os
from pathlib import Path

from fpai_node.identity import NodeKey
from fpai_node.memory.operations import (
    Content,
    Operation,
    Version,
    new_record_id,
    pack_vector,
    seal_operation,
    shard_of_scope,
)
from fpai_node.memory.shard import Shard
from fpai_node.memory.store import VectorStore
from fpai_node.testing.memory_store import MemoryStore

KEY = NodeKey.from_seed(bytes(range(32)))
NOW = 1_767_225_600_000
SHARD = shard_of_scope("user_id", "alice")


class Disk:
    """Stores that outlive a Shard object, as an on-disk engine's do, unless `lose` them."""

    def __init__(self) -> None:
        self.stores: dict[Path, MemoryStore] = {}

    def open(self, path: Path) -> VectorStore:
        return self.stores.setdefault(path, MemoryStore())


def op(rid: str, n: int, text: str | None, axis: int = 0) -> Operation:
    vector = [0.0] * 384
    vector[axis] = 1.0
    content = (
        None
        if text is None
        else Content(text, '{"tag":"x"}', "alice", "", "", "memory", NOW, pack_vector(vector))
    )
    return seal_operation(
        KEY,
        rid,
        "delete" if text is None else "add",
        Version(NOW, n, KEY.node_id),
        content,
        seq=n,
        now_ms=NOW,
    )  # type: ignore[arg-type]


def test_appends_are_logged_indexed_and_idempotent(tmp_path: Path) -> None:
    disk = Disk()
    shard = Shard(SHARD, tmp_path / "s", disk.open)
    a, b = (new_record_id(SHARD, os.urandom(16)) for _ in range(2))
    first = [op(a, 0, "likes tea"), op(b, 0, "likes cats", axis=1)]
    assert shard.append(first) == first
    assert shard.append(first) == []  # MEM-10: already held
    assert shard.append([op(a, 1, "likes coffee"), op(b, 1, None)])
    store = disk.stores[tmp_path / "s" / "index"]
    assert {p.payload["memory"] for p in store.points.values()} == {"likes coffee"}
    assert store.points[a].payload["metadata"] == {"tag": "x"}
    assert shard.live == 1 and shard.operations == 4 and len(shard.history_frames(a)) == 2
    assert [f for f in shard.latest_frames([b])] == [op(b, 1, None).frame]
    assert sorted(shard.keys_in(range(256))) == sorted(
        [
            (a, Version(NOW, 0, KEY.node_id)),
            (a, Version(NOW, 1, KEY.node_id)),
            (b, Version(NOW, 0, KEY.node_id)),
            (b, Version(NOW, 1, KEY.node_id)),
        ]
    )
    assert shard.frames_of([(a, Version(NOW, 1, KEY.node_id))]) == [op(a, 1, "likes coffee").frame]


def test_a_reopened_shard_has_its_records_digest_and_a_torn_tail_cut(tmp_path: Path) -> None:
    disk = Disk()
    shard = Shard(SHARD, tmp_path / "s", disk.open)
    rid = new_record_id(SHARD, os.urandom(16))
    shard.append([op(rid, 0, "likes tea")])
    digest = shard.digest.to_bytes()
    shard.close()
    with open(tmp_path / "s" / "ops.log", "ab") as log:
        log.write(b"\x00\x00\x10\x00torn")  # a crash in the middle of the next append
    again = Shard(SHARD, tmp_path / "s", disk.open)
    assert again.digest.to_bytes() == digest and again.live == 1
    assert again.history_frames(rid) == [op(rid, 0, "likes tea").frame]
    again.append([op(rid, 1, "likes coffee")])  # appends after the cut are readable
    again.close()
    third = Shard(SHARD, tmp_path / "s", disk.open)
    assert len(third.history_frames(rid)) == 2


def test_an_index_that_lost_writes_is_rebuilt_from_the_log(tmp_path: Path) -> None:
    """A kill between the fsynced log and the index flush loses nothing."""
    disk = Disk()
    shard = Shard(SHARD, tmp_path / "s", disk.open)
    kept, lost = (new_record_id(SHARD, os.urandom(16)) for _ in range(2))
    shard.append([op(kept, 0, "kept")])
    shard.checkpoint()
    shard.append([op(lost, 0, "written after the last flush")])
    disk.stores[tmp_path / "s" / "index"].points.pop(lost)  # the index never got it to disk
    Shard(SHARD, tmp_path / "s", disk.open)
    assert set(disk.stores[tmp_path / "s" / "index"].points) == {kept, lost}


def test_drop_removes_the_folder(tmp_path: Path) -> None:
    shard = Shard(SHARD, tmp_path / "s", Disk().open)
    shard.append([op(new_record_id(SHARD, os.urandom(16)), 0, "x")])
    shard.drop()
    assert not (tmp_path / "s").exists()

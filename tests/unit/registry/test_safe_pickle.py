"""The pickle module pysyncobj runs with loads no globals: no pickle can run code."""

import os
import pickle
from pathlib import Path

import pytest

from fpai_node.registry import safe_pickle
from fpai_node.registry.raft_wire import membership_entry


class RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def test_the_entries_pysyncobj_writes_load() -> None:
    assert safe_pickle.loads(membership_entry("add", "m@h:1")[1:]) == ["add", "m@h:1"]
    assert safe_pickle.loads(safe_pickle.dumps(["add", "member"])) == ["add", "member"]
    meta = {"currentTerm": 3, "votedForNodeId": None, "raftCommitIndex": 5}
    assert safe_pickle.loads(safe_pickle.dumps(meta)) == meta


@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_a_pickle_naming_any_global_is_refused_and_runs_nothing(
    tmp_path: Path, protocol: int
) -> None:
    marker = tmp_path / "pwned"
    with pytest.raises(safe_pickle.RefusedPickle, match=r"(posix|os|nt)\.system"):
        safe_pickle.loads(pickle.dumps(RunsCode(marker), protocol))
    assert not marker.exists()


def test_codecs_encode_is_only_latin1() -> None:
    """Protocol 2 spells bytes as _codecs.encode(text, "latin1"): nothing else is allowed."""
    crafted = b"c_codecs\nencode\n(X\x01\x00\x00\x00xX\x04\x00\x00\x00zlibtR."
    with pytest.raises(safe_pickle.RefusedPickle, match="zlib"):
        safe_pickle.loads(crafted)


def test_pysyncobj_runs_with_the_safe_module() -> None:
    import pysyncobj.serializer
    import pysyncobj.syncobj

    import fpai_node.registry.raft  # noqa: F401 (installs the safe module)

    assert pysyncobj.syncobj.pickle is safe_pickle
    assert pysyncobj.serializer.pickle is safe_pickle

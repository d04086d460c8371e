"""Linearizable reads share their `sync` barriers (REG-14): the registry service's read path with
its proposals recorded instead of committed (the commits themselves are tested through real
engines in tests/integration/test_registry.py)."""

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fpai_node.identity import NodeKey
from fpai_node.registry.service import RegistryService
from fpai_node.registry.state import Result
from fpai_node.testing.registry_service import (
    unstarted_registry_service,
)

KEY = NodeKey.from_seed(bytes([5]) * 32)


class RecordedProposals:
    """Stands in for Raft: each `sync` waits until the test commits it."""

    def __init__(self) -> None:
        self.pending: list[asyncio.Future[Result]] = []

    async def propose(self, op: str, args: dict[str, Any], timeout_s: float = 0) -> Result:
        assert op == "sync"
        done: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self.pending.append(done)
        return await done

    def commit_all(self) -> None:
        for done in self.pending:
            if not done.done():
                done.set_result(Result("ok"))


@pytest.fixture
def service(tmp_path: Path) -> Iterator[RegistryService]:
    with unstarted_registry_service(KEY, tmp_path) as unstarted:
        yield unstarted


@pytest.fixture
def raft(service: RegistryService, monkeypatch: pytest.MonkeyPatch) -> RecordedProposals:
    """The proposals `service` makes, recorded for the test to commit or fail."""
    recorded = RecordedProposals()
    monkeypatch.setattr(service, "propose", recorded.propose)
    return recorded


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_reads_share_barriers_and_each_waits_for_one_proposed_after_it(
    service: RegistryService, raft: RecordedProposals
) -> None:
    """REG-17: concurrent reads share a `sync`; a read waits for the first one proposed after
    it arrived, so at most one is on its way while the next gathers readers."""
    first = [asyncio.create_task(service.read()) for _ in range(50)]
    await settle()
    assert len(raft.pending) == 1  # fifty readers, one barrier

    later = [asyncio.create_task(service.read()) for _ in range(50)]
    await settle()
    assert len(raft.pending) == 1  # proposed before they came: they wait for the next one
    raft.commit_all()
    await asyncio.gather(*first)
    await settle()
    assert len(raft.pending) == 2 and not any(t.done() for t in later)
    raft.commit_all()
    await asyncio.gather(*later)
    assert len(raft.pending) == 2  # a hundred linearizable reads, two entries in the log


async def test_a_failed_barrier_fails_its_readers_and_the_next_read_proposes_again(
    service: RegistryService, raft: RecordedProposals
) -> None:
    readers = [asyncio.create_task(service.read()) for _ in range(3)]
    await settle()
    raft.pending[0].set_exception(TimeoutError("no leader"))
    for reader in readers:
        with pytest.raises(TimeoutError):
            await reader
    again = asyncio.create_task(service.read())
    await settle()
    assert len(raft.pending) == 2
    raft.commit_all()
    await again

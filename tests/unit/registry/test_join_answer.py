"""What a node does with a join answer's configuration (specs/0005 REG-15): its engine is
stood in for, and restarts are recorded rather than run."""

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from fpai_node.identity import NodeKey
from fpai_node.registry.raft import RaftStatus
from fpai_node.registry.service import RegistryService
from fpai_node.testing.registry_service import unstarted_registry_service

KEY = NodeKey.from_seed(bytes([70]) * 32)
OTHER = f"{NodeKey.from_seed(bytes([71]) * 32).node_id}@127.0.0.1:7201"
ADDED = f"{NodeKey.from_seed(bytes([72]) * 32).node_id}@127.0.0.1:7202"


@pytest.fixture
def service(tmp_path: Path) -> Iterator[RegistryService]:
    with unstarted_registry_service(KEY, tmp_path) as unstarted:
        yield unstarted


def running(
    service: RegistryService, monkeypatch: pytest.MonkeyPatch, learner: bool, *voters: str
) -> list[tuple[bool, list[str]]]:
    """`service` with an engine whose log lists `voters`; the restarts it asks for."""
    status = RaftStatus(service.member, learner, voters=frozenset(voters))
    monkeypatch.setattr(service, "_engine", SimpleNamespace(status=status, learner=learner))
    restarts: list[tuple[bool, list[str]]] = []

    async def restart(learner: bool, voters: list[str]) -> None:
        restarts.append((learner, sorted(voters)))

    monkeypatch.setattr(service, "_restart", restart)
    return restarts


async def test_a_voter_that_knows_every_listed_voter_keeps_running(
    service: RegistryService, monkeypatch: pytest.MonkeyPatch
) -> None:
    restarts = running(service, monkeypatch, False, service.member, OTHER, ADDED)
    await service._follow_join_answer([service.member, OTHER, ADDED])
    await service._follow_join_answer([service.member, OTHER])  # one it knows, since removed
    assert restarts == []


async def test_a_voter_missing_a_listed_voter_restarts_knowing_it(
    service: RegistryService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Restarted from a commit index older than ADDED's addition, and ADDED leads: neither
    dials the other until this member learns of it (test_registry's kill -9 catch-up)."""
    restarts = running(service, monkeypatch, False, service.member, OTHER)
    await service._follow_join_answer([service.member, OTHER, ADDED])
    assert restarts == [(False, sorted([service.member, OTHER, ADDED]))]


async def test_voters_are_only_added_from_an_answer(
    service: RegistryService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wrong answer could only make this member's majorities larger, never smaller."""
    restarts = running(service, monkeypatch, False, service.member, OTHER)
    await service._follow_join_answer([service.member, ADDED])
    assert restarts == [(False, sorted([service.member, OTHER, ADDED]))]


async def test_a_learner_listed_keeps_running_and_one_not_listed_follows_the_voters(
    service: RegistryService, monkeypatch: pytest.MonkeyPatch
) -> None:
    restarts = running(service, monkeypatch, True, OTHER)
    await service._follow_join_answer([service.member, OTHER, ADDED])
    assert restarts == []  # promoted by its upkeep once its log lists it (RAFT-10)
    await service._follow_join_answer([OTHER, ADDED])
    assert restarts == [(True, [OTHER, ADDED])]

"""`POST /fpai/peer/v1/registry/join` as the registry service answers it (specs/0005 REG-15):
the service's route handler with its Raft engine stood in for by a replica that applies every
proposal at once (the real engines are tested in tests/integration/test_registry.py)."""

import os
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from fpai_node.identity import NodeKey
from fpai_node.registry.raft import RaftStatus
from fpai_node.registry.service import JOIN_PATH, RegistryService
from fpai_node.registry.state import RegistryState, Result, apply, encode_command
from fpai_node.service import FrameRefused, RpcRoute
from fpai_node.testing.registry_service import (
    API_ADDRESS,
    PEER_ADDRESS,
    unstarted_registry_service,
)
from fpai_node.wire import codec

KEY = NodeKey.from_seed(bytes([60]) * 32)
NEWCOMER = NodeKey.from_seed(bytes([61]) * 32)
T0 = 1_767_225_600_000
ASKS = {"api": "10.0.0.2:8100", "peer": "10.0.0.2:7100", "raft": "10.0.0.2:7200"}


@pytest.fixture
def service(tmp_path: Path) -> Iterator[RegistryService]:
    with unstarted_registry_service(KEY, tmp_path) as unstarted:
        yield unstarted


def join_route(service: RegistryService) -> RpcRoute:
    (route,) = service.peer_routes()
    assert isinstance(route, RpcRoute) and route.path == JOIN_PATH
    return route


async def refusal(service: RegistryService, body: bytes) -> str:
    with pytest.raises(FrameRefused) as info:
        await join_route(service).handler(NEWCOMER.node_id, body)
    return info.value.reason


def running_alone(
    service: RegistryService, monkeypatch: pytest.MonkeyPatch, *, hears_a_leader: bool = True
) -> SimpleNamespace:
    """`service` running as the registry's creator, its one voter; proposals apply at once."""
    own = {"api": API_ADDRESS, "peer": PEER_ADDRESS, "raft": service.address}
    first = encode_command(
        "member.join", {"node_id": KEY.node_id, **own}, key=bytes(16), by=KEY.node_id, at_ms=T0
    )
    status = RaftStatus(
        service.member,
        False,
        leader=service.member if hears_a_leader else None,
        is_leader=hears_a_leader,
        voters=frozenset({service.member}),
    )
    engine = SimpleNamespace(status=status, state=apply(RegistryState(), first).state)

    async def propose(op: str, args: dict[str, Any], timeout_s: float = 0) -> Result:
        command = encode_command(op, args, key=os.urandom(16), by=KEY.node_id, at_ms=T0 + 1)
        applied = apply(engine.state, command)
        engine.state = applied.state
        return applied.result

    monkeypatch.setattr(service, "_engine", engine)
    monkeypatch.setattr(service, "phase", "running")
    monkeypatch.setattr(service, "propose", propose)
    return engine


async def test_a_join_is_committed_then_answered_with_role_voters_and_peers(
    service: RegistryService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """REG-15: the receiver proposes `member.join` for the caller (its node id the one its
    certificate proved), and once it is applied answers `{peers, role, voters}`."""
    engine = running_alone(service, monkeypatch)
    answer = await join_route(service).handler(NEWCOMER.node_id, codec.encode(ASKS))
    assert answer is not None
    assert codec.decode(answer) == {
        "peers": [PEER_ADDRESS],  # the other members' peer addresses
        "role": "learner",  # REG-13: a join never takes a seat
        "voters": [service.member],  # Raft's configuration as the receiver's log has it
    }
    member = engine.state.members[NEWCOMER.node_id]
    assert (member.peer, member.api, member.raft) == (ASKS["peer"], ASKS["api"], ASKS["raft"])


async def test_a_join_is_refused_while_the_registry_is_not_ready_or_has_no_leader(
    service: RegistryService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """REG-15: `malformed` for a body that is not `{api, peer, raft}`, `registry_not_ready`
    before the registry runs, `registry_unavailable` when no commit could come."""
    assert await refusal(service, b"\xc1") == "malformed"
    assert await refusal(service, codec.encode({"api": "", "peer": "h:1"})) == "malformed"
    assert await refusal(service, codec.encode(ASKS)) == "registry_not_ready"
    running_alone(service, monkeypatch, hears_a_leader=False)
    assert await refusal(service, codec.encode(ASKS)) == "registry_unavailable"

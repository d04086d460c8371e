"""What the treasury service keeps of the records it checks: one result per registry key,
refusals counted once, nothing for records gone from the registry, so a member rewriting its
records round after round cannot grow a node's memory (specs/0009, TREASURY-2)."""

from dataclasses import dataclass, field

from fpai_node.identity import NodeKey
from fpai_node.registry.state import RegistryState
from fpai_node.treasury.binding import OperatorBinding, binding_parameter
from fpai_node.treasury.service import TreasuryService

NODE = NodeKey.from_seed(bytes([7]) * 32)
MEMBER = NodeKey.from_seed(bytes([8]) * 32)


@dataclass
class Registry:
    """The registry service as the treasury reads it: its local state."""

    state: RegistryState = field(default_factory=RegistryState)


def with_parameters(**parameters: object) -> RegistryState:
    return RegistryState(parameters=parameters)  # type: ignore[arg-type]


def test_checks_are_kept_per_key_counted_once_and_dropped_with_their_record() -> None:
    registry = Registry()
    service = TreasuryService(NODE, registry, None)  # type: ignore[arg-type]
    key = binding_parameter(MEMBER.node_id)
    for n in range(50):  # a member rewriting its binding: each one another operator's
        forged = OperatorBinding.sign(NODE, n + 1).to_value()
        state = with_parameters(**{key: forged})
        for _ in range(3):  # read every round: checked once
            assert service.binding_of(state, MEMBER.node_id) is None
    assert service.refused == {"binding_wrong_node_key": 50}
    assert len(service._checked) == 1
    valid = OperatorBinding.sign(MEMBER, 1)
    assert service.binding_of(with_parameters(**{key: valid.to_value()}), MEMBER.node_id) == valid
    service._forget_stale(RegistryState(), {})
    assert len(service._checked) == 0

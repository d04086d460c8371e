"""Commands for tests of the pure registry (registry/state.py): built and applied in a line."""

from fpai_node.identity import NodeKey
from fpai_node.registry.state import RegistryState, apply, encode_command
from fpai_node.wire import codec

A = NodeKey.from_seed(bytes(32)).node_id
B = NodeKey.from_seed(bytes([1]) * 32).node_id
C = NodeKey.from_seed(bytes([2]) * 32).node_id
T0 = 1_767_225_600_000  # command time of every scripted command unless a test moves it
ADDRESSES = {"peer": "127.0.0.1:7100", "api": "127.0.0.1:8100", "raft": "127.0.0.1:7200"}


def command(op: str, n: int, at: int = T0, by: str = A, **args: codec.Value) -> bytes:
    """The `n`th command of a script: `n` is its idempotency key, so a repeat is a retry."""
    return encode_command(op, args, key=n.to_bytes(16, "big"), by=by, at_ms=at)


def run(*commands: bytes, state: RegistryState | None = None) -> tuple[RegistryState, list[str]]:
    """Apply `commands` in order; the final state and each result as "status[:reason]"."""
    state = state or RegistryState()
    results = []
    for cmd in commands:
        applied = apply(state, cmd)
        state = applied.state
        results.append(
            applied.result.status + (":" + applied.result.reason if applied.result.reason else "")
        )
    return state, results

"""A liar pushes a node up, then the node restarts (specs/0004 GOSSIP-12), on real nodes in
both trust modes. Issue 13's adversarial review: two `suspect` rumors one step apart made B
refute its way to 131,073 and sign it; B restarted at 0, the others still held 131,073, and
every later suspicion at that incarnation was beyond B's step: B could never refute again and
was dead everywhere for an hour. B now keeps the incarnation it signed in its home."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from fpai_node.gossip.messages import Piggyback, Push, Rumor, Status
from fpai_node.gossip.state import MAX_INCARNATION_STEP
from fpai_node.identity import NodeKey
from fpai_node.testing.hostile import send_gossip
from fpai_node.testing.nodeproc import NodeProcess, wait_for
from fpai_node.testing.registry_cluster import free_port
from fpai_node.testing.trust import Trust

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]
MALLORY = NodeKey.generate()


def view_of(node: NodeProcess, other: str) -> tuple[str, int] | None:
    peer = node.peers().get(other)
    return None if peer is None else (peer["state"], int(peer["incarnation"]))


@pytest.fixture
def pair(trust: Trust, tmp_path: Path) -> Iterator[tuple[NodeProcess, NodeProcess]]:
    """A, and B joined to it on a fixed peer port, as a real node restarts on its own."""
    args = ("--api", "127.0.0.1:0", "--no-model")
    b_peer = ("--peer", f"127.0.0.1:{free_port()}")
    with NodeProcess(trust.home(tmp_path / "a"), *args) as a:
        b = NodeProcess(trust.home(tmp_path / "b"), *args, *b_peer, "--join", a.peer)
        with b:
            wait_for(lambda: view_of(a, b.node_id) == ("alive", 0))
            yield a, b


def test_a_node_pushed_up_by_a_liar_still_refutes_after_a_restart(
    pair: tuple[NodeProcess, NodeProcess], trust: Trust
) -> None:
    a, b = pair
    victim, mallory = b.node_id, trust.member(MALLORY)
    for step in (1, 2):  # each within B's step of the incarnation it then has: B refutes
        lie = Rumor(victim, b.peer, step * MAX_INCARNATION_STEP, Status.SUSPECT)
        assert send_gossip(mallory, b.peer, Push(Piggyback((lie,)))) == 204
    pushed = 2 * MAX_INCARNATION_STEP + 1
    wait_for(lambda: view_of(a, victim) == ("alive", pushed))  # B signed it; A holds it
    assert (b.home.root / "gossip-incarnation").read_text().strip() == str(pushed)

    b.kill()  # a crash: A still holds B alive at what it signed
    b.start()
    suspicion = Rumor(victim, b.peer, pushed, Status.SUSPECT)  # at what A holds: taken
    assert send_gossip(mallory, a.peer, Push(Piggyback((suspicion,)))) == 204
    wait_for(lambda: view_of(a, victim) == ("alive", pushed + 1), timeout_s=20)

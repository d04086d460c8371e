"""The testnet's chain process (fpai_node/testnet_chain.py) on a real anvil."""

from pathlib import Path

import pytest

from fpai_node.testing.registry_cluster import free_port
from fpai_node.testnet_chain import TestnetChain


def test_anvil_starts_while_its_command_line_is_still_the_parents(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Until the child has exec'd, /proc shows it with the parent's command line, so
    `running` says no: start waits on the process itself (a CI failure: "anvil did not
    start" with an empty log). Here `running` says no for the whole start."""
    chain = TestnetChain(tmp_path / "chain", free_port())
    monkeypatch.setattr(TestnetChain, "running", lambda self: False)
    try:
        chain.start()
        assert chain.block() is not None
    finally:
        monkeypatch.undo()
        chain.stop(timeout_s=5)
    assert not chain.running() and chain.block() is None
    assert chain.state_file.exists()  # SIGTERM: anvil wrote its state on the way out

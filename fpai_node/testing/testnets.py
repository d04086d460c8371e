"""A testnet as a user starts one (`fpai-node testnet up`), for the tests that need a whole
federation with its chain: started through the real command, stopped whatever happened."""

import contextlib
from collections.abc import Iterator
from pathlib import Path

from fpai_node.errors import FpaiError
from fpai_node.testing.nodeproc import run_cli
from fpai_node.testnet import Testnet, stop


@contextlib.contextmanager
def running_testnet(
    directory: Path, *args: str, env: dict[str, str] | None = None
) -> Iterator[Testnet]:
    """`fpai-node testnet up --nodes 3 --dir DIRECTORY ARGS...` (its nodes inherit `env`);
    on exit every node and the chain are stopped."""
    try:
        up = run_cli(
            "testnet", "up", "--nodes", "3", "--dir", str(directory), *args,
            env=env, timeout_s=240,
        )  # fmt: skip
        assert up.returncode == 0, up.stderr + up.stdout
        testnet = Testnet.load(directory)
        assert testnet is not None
        yield testnet
    finally:
        with contextlib.suppress(FpaiError):
            left = Testnet.load(directory)
            if left is not None:
                stop(left.nodes, timeout_s=5)
                if left.chain is not None:
                    left.chain.stop(timeout_s=5)

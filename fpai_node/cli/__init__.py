"""The `fpai-node` command line."""

import sys

import typer

from fpai_node.chain import restore_recursion_limit
from fpai_node.cli import (
    chain_cmds,
    federation_cmds,
    inference_cmds,
    memory_cmds,
    node_cmds,
    registry_cmds,
    rewards_cmds,
    supervisor_cmds,
    testnet_cmds,
    treasury_cmds,
    usage_cmds,
)
from fpai_node.errors import FpaiError

app = typer.Typer(
    name="fpai-node",
    help="Run a node of the FPAI federation: AI inference on machines you own.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)
node_cmds.register(app)
inference_cmds.register(app)
memory_cmds.register(app)
federation_cmds.register(app)
registry_cmds.register(app)
usage_cmds.register(app)
testnet_cmds.register(app)
chain_cmds.register(app)
treasury_cmds.register(app)
rewards_cmds.register(app)
supervisor_cmds.register(app)


def main() -> None:
    """Entry point: every FpaiError becomes one line on stderr and exit status 1."""
    restore_recursion_limit()  # after every import: see fpai_node/chain/__init__.py
    try:
        app()
    except FpaiError as exc:
        print(f"fpai-node: {exc}", file=sys.stderr)
        sys.exit(1)

"""Where anvil (Foundry's development chain) comes from: the project's own npm install of
`@foundry-rs/anvil` under contracts/node_modules (`make contracts-deps`, and `make test`)."""

from pathlib import Path

from fpai_node.chain.artifacts import ARTIFACTS_DIR, ChainError

NODE_MODULES = ARTIFACTS_DIR.parent / "node_modules"
# anvil's default accounts are derived from this well-known mnemonic: test funds only, ever.
DEV_MNEMONIC = "test test test test test test test test test test test junk"


def anvil_binary() -> Path:
    """The platform's anvil binary from npm `@foundry-rs/anvil`."""
    found = sorted(NODE_MODULES.glob("@foundry-rs/anvil-*/bin/anvil"))
    if not found:
        raise ChainError(f"anvil is not installed under {NODE_MODULES} (run `make contracts-deps`)")
    return found[0]

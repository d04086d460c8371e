"""What the treasury answers when it cannot do a request: light, for the API to import without
loading the chain code."""

from fpai_node.errors import FpaiError

NO_CHAIN = (
    "no chain configured: set chain_rpc (and chain_deployment) in node.toml or FPAI_CHAIN_RPC, "
    "or run `fpai-node testnet up` (docs/treasury.md)"
)


class TreasuryError(FpaiError):
    """A treasury request that cannot be done now; the message says why in one line."""


class BadArgument(FpaiError):
    """A request's argument that is wrong whatever the chain says."""


class RecordRefused(ValueError):
    """A registry record that fails its checks (TREASURY-2, TREASURY-4); `reason` is a short
    code, counted by the reader."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

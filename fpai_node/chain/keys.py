"""Ethereum keys from files: the deployer's today, an operator's next (issue 17)."""

import stat
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

from fpai_node.chain.artifacts import ChainError


def load_key(path: Path) -> LocalAccount:
    """A hex private key from `path`, which only its owner may read."""
    try:
        mode = path.stat().st_mode
        text = path.read_text().strip()
    except OSError as exc:
        raise ChainError(f"cannot read key file {path}: {exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ChainError(f"key file {path} is open to other users (chmod 600 {path})")
    try:
        account: LocalAccount = Account.from_key(text)
    except (ValueError, TypeError):
        raise ChainError(f"{path} does not hold a hex private key") from None
    return account

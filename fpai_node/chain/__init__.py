"""The federation's contracts on an EVM chain: artifacts, deployment, typed calls.

See docs/contracts.md.
"""

import sys

# Python's own default. py_ecc, which eth_account (and so web3) imports, raises the process's
# recursion limit to 100,000 on import; then deep recursion overflows the C stack and kills the
# process instead of raising RecursionError. A 100,000-deep JSON body killed a node that way.
RECURSION_LIMIT = 1000


def restore_recursion_limit() -> None:
    """Undo py_ecc's import-time change: call once every module is imported (the CLI does)."""
    sys.setrecursionlimit(RECURSION_LIMIT)

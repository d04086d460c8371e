"""Reward trees: the Merkle tree of (operator, amount) RewardsDistributor checks claims against.

Pure. A leaf is keccak256(keccak256(abi.encode(address, uint256))); the hash twice keeps a leaf
from ever passing for an inner node. An inner node is keccak256 of its two children in ascending
byte order, so a proof is just the siblings from the leaf up (OpenZeppelin's MerkleProof). Leaves
are sorted before the tree is built, so the root depends only on the set of (operator, amount);
a level with an odd count carries its last node up unchanged.
"""

from collections.abc import Mapping
from dataclasses import dataclass

from eth_abi.abi import encode as abi_encode
from eth_utils.crypto import keccak


def leaf(operator: str, amount: int) -> bytes:
    return keccak(keccak(abi_encode(["address", "uint256"], [operator, amount])))


def parent(a: bytes, b: bytes) -> bytes:
    return keccak(a + b if a <= b else b + a)


@dataclass(frozen=True)
class RewardTree:
    """The tree over `amounts` (operator address -> amount in the reward token's units)."""

    amounts: Mapping[str, int]

    def __post_init__(self) -> None:
        if not self.amounts:
            raise ValueError("a reward tree needs at least one operator")
        if any(not 0 < amount < 2**256 for amount in self.amounts.values()):
            raise ValueError("every amount must be 1 to 2^256-1")
        if len({operator.lower() for operator in self.amounts}) != len(self.amounts):
            raise ValueError("an operator appears twice")

    @property
    def total(self) -> int:
        return sum(self.amounts.values())

    @property
    def root(self) -> bytes:
        return self._levels()[-1][0]

    def proof(self, operator: str) -> list[bytes]:
        """The siblings from `operator`'s leaf to the root."""
        target = leaf(operator, self.amounts[operator])
        levels = self._levels()
        index = levels[0].index(target)
        siblings = []
        for level in levels[:-1]:
            sibling = index ^ 1
            if sibling < len(level):
                siblings.append(level[sibling])
            index //= 2
        return siblings

    def _levels(self) -> list[list[bytes]]:
        level = sorted(leaf(operator, amount) for operator, amount in self.amounts.items())
        levels = [level]
        while len(level) > 1:
            level = [
                parent(level[i], level[i + 1]) if i + 1 < len(level) else level[i]
                for i in range(0, len(level), 2)
            ]
            levels.append(level)
        return levels


def verify(proof: list[bytes], root: bytes, operator: str, amount: int) -> bool:
    """What the contract checks, here: does `proof` take (operator, amount) to `root`?"""
    node = leaf(operator, amount)
    for sibling in proof:
        node = parent(node, sibling)
    return node == root

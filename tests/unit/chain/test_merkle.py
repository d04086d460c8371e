"""Reward trees: every proof verifies, nothing else does, the root depends only on the set."""

import pytest
from eth_utils import keccak, to_checksum_address
from hypothesis import given
from hypothesis import strategies as st

from fpai_node.chain.merkle import RewardTree, leaf, verify

addresses = st.binary(min_size=20, max_size=20).map(lambda b: to_checksum_address(b))
trees = st.dictionaries(addresses, st.integers(1, 2**256 - 1), min_size=1, max_size=40)


def test_a_leaf_is_the_double_keccak_of_the_abi_encoded_pair() -> None:
    operator = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
    once = keccak(bytes.fromhex("00" * 12 + operator[2:].lower()) + (5).to_bytes(32, "big"))
    assert leaf(operator, 5) == keccak(once)


def test_two_leaves_hash_in_ascending_order() -> None:
    a, b = "0x" + "11" * 20, "0x" + "22" * 20
    tree = RewardTree({to_checksum_address(a): 1, to_checksum_address(b): 2})
    low, high = sorted([leaf(a, 1), leaf(b, 2)])
    assert tree.root == keccak(low + high)
    assert tree.proof(to_checksum_address(a)) == [leaf(b, 2)]


def test_a_single_operator_tree_is_its_leaf() -> None:
    operator = to_checksum_address("0x" + "ab" * 20)
    tree = RewardTree({operator: 9})
    assert tree.root == leaf(operator, 9)
    assert tree.proof(operator) == []
    assert tree.total == 9


@given(trees)
def test_every_operator_proves_its_amount_and_no_other(amounts: dict[str, int]) -> None:
    tree = RewardTree(amounts)
    for operator, amount in amounts.items():
        proof = tree.proof(operator)
        assert verify(proof, tree.root, operator, amount)
        assert not verify(proof, tree.root, operator, amount ^ 1)
    assert tree.total == sum(amounts.values())


@given(trees, st.randoms())
def test_the_root_does_not_depend_on_order(amounts: dict[str, int], rng: object) -> None:
    items = list(amounts.items())
    rng.shuffle(items)  # type: ignore[attr-defined]
    assert RewardTree(dict(items)).root == RewardTree(amounts).root


@pytest.mark.parametrize(
    ("amounts", "message"),
    [
        ({}, "at least one"),
        ({"0x" + "11" * 20: 0}, "1 to 2"),
        ({"0x" + "11" * 20: 2**256}, "1 to 2"),
        ({"0x" + "ab" * 20: 1, to_checksum_address("0x" + "ab" * 20): 1}, "twice"),
    ],
)
def test_a_bad_tree_is_refused(amounts: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RewardTree(amounts)

"""Reward epochs on anvil (CHAIN-7, CHAIN-8): a root published by governance, claimed by each
operator with a proof."""

import pytest
from eth_account import Account

from fpai_node.chain.artifacts import ChainError
from fpai_node.chain.governance import Action, Proposal
from fpai_node.chain.merkle import RewardTree
from fpai_node.chain.transactor import Transactor
from fpai_node.testing.chain import (
    Federation,
    advance,
    as_account,
    emitted,
    funded_key,
    pass_proposal,
)

DOLLAR = 10**6


def fund_treasury(fed: Federation, amount: int) -> None:
    minter = Transactor(fed.w3, funded_key(fed.w3))
    minter.send(fed.contracts.stablecoin.functions.mint(fed.contracts.treasury.address, amount))


def publish(fed: Federation, epoch: int, tree: RewardTree) -> None:
    """The proposal an epoch's rewards take: the treasury funds the distributor, which publishes."""
    c = fed.contracts
    proposal = Proposal.by(
        fed.operators[0].address,
        (
            Action.call(c.treasury, "pay", c.stablecoin.address, c.rewards.address, tree.total),
            Action.call(c.rewards, "publish", epoch, tree.root, tree.total),
        ),
        f"Rewards for epoch {epoch}",
    )
    pass_proposal(fed, proposal, fed.operators[:2])


def test_an_epoch_is_published_and_claimed_by_each_operator(fed: Federation) -> None:
    c = fed.contracts
    fund_treasury(fed, 1_000 * DOLLAR)
    amounts = {op.address: (i + 1) * 10 * DOLLAR for i, op in enumerate(fed.operators)}
    tree = RewardTree(amounts)
    publish(fed, 7, tree)
    epoch = c.rewards.functions.epochs(7).call()
    assert epoch[:3] == [tree.root, 60 * DOLLAR, 0]
    assert c.rewards.functions.reserved().call() == 60 * DOLLAR

    for operator, amount in amounts.items():
        # The relayer submits; the tokens go to the operator in the leaf.
        receipt = fed.relayer.send(
            c.rewards.functions.claim(7, operator, amount, tree.proof(operator))
        )
        assert emitted(c.rewards, "Claimed", receipt) == [
            {"epoch": 7, "operator": operator, "amount": amount}
        ]
        assert c.stablecoin.functions.balanceOf(operator).call() == amount
        assert c.rewards.functions.claimed(7, operator).call() is True
    assert c.rewards.functions.reserved().call() == 0
    assert c.stablecoin.functions.balanceOf(c.rewards.address).call() == 0
    assert c.stablecoin.functions.balanceOf(c.treasury.address).call() == 940 * DOLLAR


def test_a_second_claim_a_wrong_amount_and_a_borrowed_proof_revert(fed: Federation) -> None:
    c = fed.contracts
    fund_treasury(fed, 100 * DOLLAR)
    a, b, _ = fed.operators
    tree = RewardTree({a.address: 5 * DOLLAR, b.address: 7 * DOLLAR})
    publish(fed, 1, tree)
    claim = c.rewards.functions.claim
    with pytest.raises(ChainError, match="InvalidProof"):
        fed.relayer.send(claim(1, a.address, 7 * DOLLAR, tree.proof(a.address)))
    with pytest.raises(ChainError, match="InvalidProof"):
        fed.relayer.send(claim(1, a.address, 7 * DOLLAR, tree.proof(b.address)))
    with pytest.raises(ChainError, match="InvalidProof"):
        stranger = Account.create().address
        fed.relayer.send(claim(1, stranger, 7 * DOLLAR, tree.proof(b.address)))
    fed.relayer.send(claim(1, a.address, 5 * DOLLAR, tree.proof(a.address)))
    with pytest.raises(ChainError, match=rf"AlreadyClaimed\(1, {a.address}\)"):
        fed.relayer.send(claim(1, a.address, 5 * DOLLAR, tree.proof(a.address)))
    with pytest.raises(ChainError, match=r"UnknownEpoch\(2\)"):
        fed.relayer.send(claim(2, a.address, 5 * DOLLAR, tree.proof(a.address)))
    assert c.stablecoin.functions.balanceOf(a.address).call() == 5 * DOLLAR


def test_unclaimed_rewards_return_to_the_treasury_after_the_deadline(fed: Federation) -> None:
    c = fed.contracts
    fund_treasury(fed, 100 * DOLLAR)
    a, b, _ = fed.operators
    tree = RewardTree({a.address: 5 * DOLLAR, b.address: 7 * DOLLAR})
    publish(fed, 3, tree)
    fed.relayer.send(c.rewards.functions.claim(3, a.address, 5 * DOLLAR, tree.proof(a.address)))
    with pytest.raises(ChainError, match="ClaimWindowOpen"):
        fed.relayer.send(c.rewards.functions.reclaim(3))

    advance(fed.w3, fed.parameters.claim_window_s + 1)
    with pytest.raises(ChainError, match="ClaimWindowClosed"):
        fed.relayer.send(c.rewards.functions.claim(3, b.address, 7 * DOLLAR, tree.proof(b.address)))
    receipt = fed.relayer.send(c.rewards.functions.reclaim(3))
    assert emitted(c.rewards, "Reclaimed", receipt) == [
        {"epoch": 3, "to": c.treasury.address, "amount": 7 * DOLLAR}
    ]
    assert c.stablecoin.functions.balanceOf(c.treasury.address).call() == 95 * DOLLAR
    assert c.rewards.functions.reserved().call() == 0
    with pytest.raises(ChainError, match="AlreadyReclaimed"):
        fed.relayer.send(c.rewards.functions.reclaim(3))


def test_an_epoch_cannot_be_published_unfunded_or_twice(fed: Federation) -> None:
    c = fed.contracts
    timelock = as_account(fed.w3, c.timelock.address)
    tree = RewardTree({fed.operators[0].address: 10 * DOLLAR})
    with pytest.raises(ChainError, match=rf"Underfunded\(0, {10 * DOLLAR}\)"):
        timelock.send(c.rewards.functions.publish(1, tree.root, tree.total))
    Transactor(fed.w3, funded_key(fed.w3)).send(
        c.stablecoin.functions.mint(c.rewards.address, 15 * DOLLAR)
    )
    timelock.send(c.rewards.functions.publish(1, tree.root, tree.total))
    with pytest.raises(ChainError, match=r"EpochExists\(1\)"):
        timelock.send(c.rewards.functions.publish(1, tree.root, tree.total))
    # 5 tUSD are free; an epoch of 10 would eat into epoch 1's reserve.
    with pytest.raises(ChainError, match=rf"Underfunded\({5 * DOLLAR}, {10 * DOLLAR}\)"):
        timelock.send(c.rewards.functions.publish(2, tree.root, tree.total))
    with pytest.raises(ChainError, match="EmptyRoot"):
        timelock.send(c.rewards.functions.publish(2, b"\0" * 32, 0))


def test_a_root_that_promises_more_than_its_total_pays_no_further(fed: Federation) -> None:
    """Governance published a tree whose leaves sum past the epoch's total (a bad root): the
    claims stop at the total instead of eating another epoch's reserve."""
    c = fed.contracts
    a, b, _ = fed.operators
    tree = RewardTree({a.address: 8 * DOLLAR, b.address: 8 * DOLLAR})
    Transactor(fed.w3, funded_key(fed.w3)).send(
        c.stablecoin.functions.mint(c.rewards.address, 30 * DOLLAR)
    )
    timelock = as_account(fed.w3, c.timelock.address)
    timelock.send(c.rewards.functions.publish(1, tree.root, 10 * DOLLAR))
    timelock.send(c.rewards.functions.publish(2, tree.root, 16 * DOLLAR))
    fed.relayer.send(c.rewards.functions.claim(1, a.address, 8 * DOLLAR, tree.proof(a.address)))
    with pytest.raises(ChainError, match="Underfunded"):
        fed.relayer.send(c.rewards.functions.claim(1, b.address, 8 * DOLLAR, tree.proof(b.address)))
    assert c.rewards.functions.reserved().call() == 18 * DOLLAR

"""The treasury on anvil: revenue into the vault governance chose, yield, and back, all by vote."""

import pytest

from fpai_node.chain import artifacts
from fpai_node.chain.artifacts import ChainError
from fpai_node.chain.governance import Action, Proposal
from fpai_node.chain.transactor import Transactor
from fpai_node.testing.chain import Federation, as_account, emitted, funded_key, pass_proposal

DOLLAR = 10**6  # the test stablecoin has six decimals


def pay_revenue(fed: Federation, amount: int) -> None:
    c = fed.contracts
    payer = Transactor(fed.w3, funded_key(fed.w3))
    payer.send(c.stablecoin.functions.mint(payer.address, amount))
    payer.send(c.stablecoin.functions.approve(c.loop.address, amount))
    payer.send(c.loop.functions.payToken(c.stablecoin.address, amount))


def test_treasury_revenue_goes_into_the_vault_earns_and_comes_back(fed: Federation) -> None:
    c = fed.contracts
    vault = c.vault(c.deployment.address("TestVault"))
    balance = c.stablecoin.functions.balanceOf
    pay_revenue(fed, 1_000 * DOLLAR)
    assert balance(c.treasury.address).call() == 600 * DOLLAR

    invest = Proposal.by(
        fed.operators[0].address,
        (
            Action.call(c.treasury, "chooseVault", vault.address),
            Action.call(c.treasury, "deposit", 500 * DOLLAR),
        ),
        "Put 500 tUSD of the treasury in the test vault",
    )
    receipts = pass_proposal(fed, invest, fed.operators[1:])
    assert c.treasury.functions.vault().call() == vault.address
    assert balance(c.treasury.address).call() == 100 * DOLLAR
    shares = vault.functions.balanceOf(c.treasury.address).call()
    assert shares > 0
    assert c.treasury.functions.vaultValue().call() == 500 * DOLLAR
    (deposited,) = emitted(c.treasury, "Deposited", receipts["execute"])
    assert deposited == {"vault": vault.address, "assets": 500 * DOLLAR, "shares": shares}

    # The vault earns 50 tUSD: the treasury owns every share, so all of it is the treasury's
    # (less the rounding the vault keeps by design: ERC-4626 rounds in the vault's favour).
    Transactor(fed.w3, funded_key(fed.w3)).send(
        c.stablecoin.functions.mint(vault.address, 50 * DOLLAR)
    )
    assert 550 * DOLLAR - 1 <= c.treasury.functions.vaultValue().call() <= 550 * DOLLAR

    divest = Proposal.by(
        fed.operators[0].address,
        (Action.call(c.treasury, "redeem", vault.address, 2**256 - 1),),
        "Take the treasury out of the vault",
    )
    pass_proposal(fed, divest, fed.operators[:2])
    assert vault.functions.balanceOf(c.treasury.address).call() == 0
    assert 650 * DOLLAR - 1 <= balance(c.treasury.address).call() <= 650 * DOLLAR


def test_withdrawing_part_of_the_position_by_assets(fed: Federation) -> None:
    c = fed.contracts
    vault = c.vault(c.deployment.address("TestVault"))
    pay_revenue(fed, 100 * DOLLAR)
    timelock = as_account(fed.w3, c.timelock.address)
    timelock.send(c.treasury.functions.chooseVault(vault.address))
    timelock.send(c.treasury.functions.deposit(60 * DOLLAR))
    receipt = timelock.send(c.treasury.functions.withdraw(vault.address, 25 * DOLLAR))
    assert emitted(c.treasury, "Withdrawn", receipt)[0]["assets"] == 25 * DOLLAR
    assert c.stablecoin.functions.balanceOf(c.treasury.address).call() == 25 * DOLLAR
    assert c.treasury.functions.vaultValue().call() == 35 * DOLLAR


def test_a_deposit_before_a_vault_is_chosen_is_refused(fed: Federation) -> None:
    timelock = as_account(fed.w3, fed.contracts.timelock.address)
    with pytest.raises(ChainError, match=r"NoVault\(\)"):
        timelock.send(fed.contracts.treasury.functions.deposit(1))


def test_a_strangers_dust_does_not_pin_the_treasury_to_a_vault(fed: Federation) -> None:
    """Anyone can deposit into a vault on the treasury's behalf; governance still moves to
    another vault, and takes the old position out by naming its vault."""
    c = fed.contracts
    old = c.vault(c.deployment.address("TestVault"))
    pay_revenue(fed, 100 * DOLLAR)
    timelock = as_account(fed.w3, c.timelock.address)
    timelock.send(c.treasury.functions.chooseVault(old.address))
    timelock.send(c.treasury.functions.deposit(50 * DOLLAR))
    stranger = Transactor(fed.w3, funded_key(fed.w3))
    stranger.send(c.stablecoin.functions.mint(stranger.address, 1))
    stranger.send(c.stablecoin.functions.approve(old.address, 1))
    stranger.send(old.functions.deposit(1, c.treasury.address))

    new = stranger.deploy(artifacts.load("TestVault"), c.stablecoin.address)
    timelock.send(c.treasury.functions.chooseVault(new.address))
    timelock.send(c.treasury.functions.deposit(10 * DOLLAR))
    assert c.treasury.functions.vaultValue().call() == 10 * DOLLAR
    timelock.send(c.treasury.functions.redeem(old.address, 2**256 - 1))
    assert old.functions.balanceOf(c.treasury.address).call() == 0
    assert c.stablecoin.functions.balanceOf(c.treasury.address).call() == 50 * DOLLAR + 1

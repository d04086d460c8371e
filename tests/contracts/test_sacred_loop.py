"""The Sacred Loop on anvil: revenue in ETH and in an ERC-20 split exactly, by CHAIN-3."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fpai_node.chain import artifacts
from fpai_node.chain.artifacts import ChainError
from fpai_node.chain.transactor import Transactor
from fpai_node.testing.chain import ONE_ETH, Federation, as_account, emitted, funded_key

BPS = 10_000
ETH = "0x" + "00" * 20


def expected_split(amount: int, treasury_bps: int) -> tuple[int, int]:
    """docs/contracts.md: growth is rounded down, the treasury gets the rest."""
    growth = amount * (BPS - treasury_bps) // BPS
    return amount - growth, growth


def test_eth_revenue_is_split_60_40_and_the_remainder_goes_to_the_treasury(fed: Federation) -> None:
    c = fed.contracts
    assert c.loop.functions.treasuryBps().call() == 6000
    payer = Transactor(fed.w3, funded_key(fed.w3))
    receipt = payer.transfer(c.loop.address, 10 * ONE_ETH + 7)

    assert fed.w3.eth.get_balance(c.treasury.address) == 6 * ONE_ETH + 5
    assert fed.w3.eth.get_balance(c.growth.address) == 4 * ONE_ETH + 2
    assert fed.w3.eth.get_balance(c.loop.address) == 0
    (received,) = emitted(c.loop, "RevenueReceived", receipt)
    assert received == {"token": ETH, "from": payer.address, "amount": 10 * ONE_ETH + 7}
    assert emitted(c.loop, "RevenueSplit", receipt) == [
        {
            "token": ETH,
            "amount": 10 * ONE_ETH + 7,
            "toTreasury": 6 * ONE_ETH + 5,
            "toGrowth": 4 * ONE_ETH + 2,
        }
    ]
    assert emitted(c.treasury, "Received", receipt) == [
        {"from": c.loop.address, "amount": 6 * ONE_ETH + 5}
    ]
    assert emitted(c.growth, "Received", receipt) == [
        {"from": c.loop.address, "amount": 4 * ONE_ETH + 2}
    ]


def test_stablecoin_revenue_is_paid_in_and_split(fed: Federation) -> None:
    c = fed.contracts
    payer = Transactor(fed.w3, funded_key(fed.w3))
    payer.send(c.stablecoin.functions.mint(payer.address, 1_000_003))
    payer.send(c.stablecoin.functions.approve(c.loop.address, 1_000_003))
    receipt = payer.send(c.loop.functions.payToken(c.stablecoin.address, 1_000_003))

    balance = c.stablecoin.functions.balanceOf
    assert balance(c.treasury.address).call() == 600_002
    assert balance(c.growth.address).call() == 400_001
    assert balance(c.loop.address).call() == balance(payer.address).call() == 0
    assert emitted(c.loop, "RevenueSplit", receipt) == [
        {
            "token": c.stablecoin.address,
            "amount": 1_000_003,
            "toTreasury": 600_002,
            "toGrowth": 400_001,
        }
    ]


def test_a_plain_token_transfer_is_split_by_anyone_calling_distribute(fed: Federation) -> None:
    c = fed.contracts
    payer = Transactor(fed.w3, funded_key(fed.w3))
    payer.send(c.stablecoin.functions.mint(c.loop.address, 10_000))
    Transactor(fed.w3, funded_key(fed.w3)).send(c.loop.functions.distribute(c.stablecoin.address))
    assert c.stablecoin.functions.balanceOf(c.treasury.address).call() == 6_000
    assert c.stablecoin.functions.balanceOf(c.growth.address).call() == 4_000


def test_a_token_governance_did_not_allow_is_refused(fed: Federation) -> None:
    c = fed.contracts
    payer = Transactor(fed.w3, funded_key(fed.w3))
    other = payer.deploy(artifacts.load("TestStablecoin"))
    payer.send(other.functions.mint(payer.address, 100))
    payer.send(other.functions.approve(c.loop.address, 100))
    with pytest.raises(ChainError, match=rf"TokenNotAllowed\({other.address}\)"):
        payer.send(c.loop.functions.payToken(other.address, 100))
    with pytest.raises(ChainError, match="TokenNotAllowed"):
        payer.send(c.loop.functions.distribute(other.address))


# anvil refuses a sender whose balance is 2^128 wei or more (its funds check is 128-bit), so
# real payments stay below; the arithmetic is checked to the contract's limit by splitOf below.
PAYABLE = 2**127
SPLITTABLE = 2**256 - 1  # CHAIN-3: the product is taken at full width, so every amount splits


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(amount=st.integers(0, PAYABLE), treasury_bps=st.integers(0, BPS))
def test_any_amount_under_any_ratio_splits_exactly(
    fed: Federation, amount: int, treasury_bps: int
) -> None:
    """Through real payments: the two shares always sum to what came in, and follow the rule."""
    c, w3 = fed.contracts, fed.w3
    as_account(w3, c.timelock.address).send(c.loop.functions.setSplit(treasury_bps))
    before = (w3.eth.get_balance(c.treasury.address), w3.eth.get_balance(c.growth.address))
    payer = Transactor(w3, funded_key(w3, wei=amount + ONE_ETH))
    payer.transfer(c.loop.address, amount)
    to_treasury = w3.eth.get_balance(c.treasury.address) - before[0]
    to_growth = w3.eth.get_balance(c.growth.address) - before[1]
    assert (to_treasury, to_growth) == expected_split(amount, treasury_bps)
    assert to_treasury + to_growth == amount
    assert w3.eth.get_balance(c.loop.address) == 0


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(amount=st.integers(0, SPLITTABLE), treasury_bps=st.integers(0, BPS))
def test_the_split_rule_holds_up_to_the_largest_splittable_amount(
    fed: Federation, amount: int, treasury_bps: int
) -> None:
    c = fed.contracts
    as_account(fed.w3, c.timelock.address).send(c.loop.functions.setSplit(treasury_bps))
    assert c.loop.functions.splitOf(amount).call() == list(expected_split(amount, treasury_bps))


def test_a_split_above_10000_bps_is_refused(fed: Federation) -> None:
    timelock = as_account(fed.w3, fed.contracts.timelock.address)
    with pytest.raises(ChainError, match=r"InvalidSplit\(10001\)"):
        timelock.send(fed.contracts.loop.functions.setSplit(10_001))


def test_a_reentrant_receiver_takes_its_share_and_no_more(fed: Federation) -> None:
    """Growth is a contract that, when paid, calls the loop again to be paid twice."""
    w3, c = fed.w3, fed.contracts
    attacker = Transactor(w3, funded_key(w3))
    receiver = attacker.deploy(artifacts.load("ReentrantReceiver"))
    callback = c.loop.encode_abi("distribute", [ETH])
    attacker.send(receiver.functions.arm(c.loop.address, callback))
    as_account(w3, c.timelock.address).send(
        c.loop.functions.setDestinations(c.treasury.address, receiver.address)
    )
    treasury_before = w3.eth.get_balance(c.treasury.address)

    attacker.transfer(c.loop.address, 10_000)

    assert receiver.functions.attempts().call() == 1
    assert receiver.functions.failures().call() == 1  # the guard refused the second entry
    assert w3.eth.get_balance(receiver.address) == 4_000
    assert w3.eth.get_balance(c.treasury.address) - treasury_before == 6_000


def test_a_reentrant_token_cannot_be_split_twice(fed: Federation) -> None:
    """The token calls distribute() from inside its own transfer: refused, the split is exact."""
    w3, c = fed.w3, fed.contracts
    attacker = Transactor(w3, funded_key(w3))
    token = attacker.deploy(artifacts.load("ReentrantToken"))
    as_account(w3, c.timelock.address).send(c.loop.functions.setTokenAllowed(token.address, True))
    attacker.send(token.functions.mint(attacker.address, 10_000))
    attacker.send(token.functions.approve(c.loop.address, 10_000))
    attacker.send(
        token.functions.arm(c.loop.address, c.loop.encode_abi("distribute", [token.address]))
    )

    attacker.send(c.loop.functions.payToken(token.address, 10_000))

    attempts = token.functions.attempts().call()
    assert attempts >= 1
    assert token.functions.failures().call() == attempts
    assert token.functions.balanceOf(c.treasury.address).call() == 6_000
    assert token.functions.balanceOf(c.growth.address).call() == 4_000

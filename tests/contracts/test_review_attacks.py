"""An adversarial review's attacks, performed on anvil by someone who is not governance: a
deployer who keeps a back door, an operator who front-runs another's proposal, a relayer, a
stranger against revenue, the vault and the reward accounting. Each test passes when the
defence holds; the five that first got through (a kept timelock role, a loop paying the
deployer, a hijacked proposal, revenue blocked by overflow, a vault move blocked by dust) were
fixed in the contracts, in wiring.py and in governance.py."""

import contextlib
import dataclasses
from typing import Any

import pytest
from eth_account import Account
from eth_utils.crypto import keccak
from web3.contract.contract import ContractFunction
from web3.types import TxReceipt

from fpai_node.chain import artifacts, governance
from fpai_node.chain import deploy as deploy_module
from fpai_node.chain.artifacts import Artifact, ChainError
from fpai_node.chain.contracts import FederationContracts
from fpai_node.chain.deploy import deploy
from fpai_node.chain.governance import Action, Proposal, State, Support
from fpai_node.chain.merkle import RewardTree
from fpai_node.chain.transactor import Transactor
from fpai_node.chain.wiring import check_wiring
from fpai_node.testing.chain import (
    TEST_PARAMETERS,
    Federation,
    advance,
    as_account,
    deploy_federation,
    emitted,
    funded_key,
)

DOLLAR = 10**6
ZERO32 = b"\0" * 32
ANYONE = "0x" + "00" * 20


def role(name: str) -> bytes:
    return keccak(text=name)


def ballot(
    fed: Federation, voter: Any, proposal: int, support: Support = Support.FOR, **kw: Any
) -> governance.Ballot:
    governor = fed.contracts.governor
    return governance.sign_ballot(
        voter,
        chain_id=fed.w3.eth.chain_id,
        governor=governor.address,
        proposal=proposal,
        support=support,
        nonce=kw.pop("nonce", governance.nonce(governor, voter.address)),
        **kw,
    )


def open_vote(fed: Federation, proposal: Proposal) -> None:
    governance.propose(Transactor(fed.w3, fed.operators[0]), fed.contracts.governor, proposal)
    advance(fed.w3, fed.parameters.voting_delay_s + 1)
    assert governance.state(fed.contracts.governor, proposal.id) is State.ACTIVE


def mint(fed: Federation, to: str, amount: int) -> None:
    Transactor(fed.w3, funded_key(fed.w3)).send(fed.contracts.stablecoin.functions.mint(to, amount))


# --- Deployment: what the deployer can keep, and whether check_wiring sees it -------------------


class BackdooringDeployer(Transactor):
    """Runs the real deploy(), but just before renouncing the timelock's admin role grants itself
    PROPOSER_ROLE and CANCELLER_ROLE (one extra transaction nobody else sees in the result)."""

    def send(self, call: ContractFunction, value: int = 0) -> TxReceipt:
        if call.fn_name == "renounceRole":
            timelock = self.w3.eth.contract(
                address=call.address, abi=artifacts.load("FederationTimelock").abi
            )
            for name in ("PROPOSER_ROLE", "CANCELLER_ROLE"):
                super().send(timelock.functions.grantRole(role(name), self.address))
        return super().send(call, value)


class SkimmingDeployer(Transactor):
    """Runs the real deploy(), but builds the Sacred Loop with its own address as `growth`."""

    def deploy(self, artifact: Artifact, *args: Any):  # type: ignore[no-untyped-def]
        if artifact.name == "SacredLoop":
            owner, treasury, _growth, bps, tokens = args
            args = (owner, treasury, self.address, bps, tokens)
        return super().deploy(artifact, *args)


def test_the_honest_deployment_leaves_the_deployer_nothing(fed: Federation) -> None:
    """What deploy() itself leaves: no timelock role for the deployer, every link as documented."""
    c, deployer = fed.contracts, fed.contracts.deployment.deployer
    has_role = c.timelock.functions.hasRole
    for kind in (ZERO32, role("PROPOSER_ROLE"), role("CANCELLER_ROLE"), role("EXECUTOR_ROLE")):
        assert has_role(kind, deployer).call() is False
    assert has_role(role("EXECUTOR_ROLE"), ANYONE).call() is True
    assert has_role(ZERO32, c.timelock.address).call() is True  # the timelock administers itself
    assert has_role(role("CANCELLER_ROLE"), c.governor.address).call() is True
    assert c.timelock.functions.getMinDelay().call() == fed.parameters.timelock_delay_s
    assert c.governor.functions.token().call() == c.votes.address
    assert c.governor.functions.timelock().call() == c.timelock.address
    assert c.loop.functions.treasury().call() == c.treasury.address
    assert c.loop.functions.growth().call() == c.growth.address
    assert c.rewards.functions.returnTo().call() == c.treasury.address
    assert c.rewards.functions.rewardToken().call() == c.stablecoin.address
    assert c.votes.functions.isOperator(deployer).call() is False


def deploy_unchecked(
    monkeypatch: pytest.MonkeyPatch, deployer: Transactor, operators: list[str]
) -> FederationContracts:
    """A deployer that skips deploy()'s own check, as one writing its file by hand would."""
    with monkeypatch.context() as patched:
        patched.setattr(deploy_module, "check_wiring", lambda w3, deployment: None)
        deployment = deploy(deployer, operators, TEST_PARAMETERS)  # type: ignore[arg-type]
    return FederationContracts(deployer.w3, deployment)


def test_a_deployer_that_kept_a_timelock_role_is_refused(
    fed: Federation, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CHAIN-2: with PROPOSER_ROLE kept, the deployer alone could pay the treasury out to
    itself through the timelock, no vote taken. Both deploy() and a node checking the file
    refuse it."""
    w3 = fed.w3
    operators = [Account.create().address for _ in range(3)]
    with pytest.raises(ChainError, match="PROPOSER_ROLE is held by"):
        deploy(BackdooringDeployer(w3, funded_key(w3)), operators, TEST_PARAMETERS)

    deployer = BackdooringDeployer(w3, funded_key(w3))
    c = deploy_unchecked(monkeypatch, deployer, operators)
    deployer.send(c.stablecoin.functions.mint(c.treasury.address, 1_000 * DOLLAR))
    payout = bytes.fromhex(
        c.treasury.encode_abi("pay", [c.stablecoin.address, deployer.address, 1_000 * DOLLAR])[2:]
    )
    salt = b"\x01" * 32
    deployer.send(
        c.timelock.functions.schedule(
            c.treasury.address, 0, payout, ZERO32, salt, TEST_PARAMETERS.timelock_delay_s
        )
    )
    advance(w3, TEST_PARAMETERS.timelock_delay_s + 1)
    deployer.send(c.timelock.functions.execute(c.treasury.address, 0, payout, ZERO32, salt))
    assert c.stablecoin.functions.balanceOf(deployer.address).call() == 1_000 * DOLLAR  # the attack
    with pytest.raises(ChainError, match=rf"PROPOSER_ROLE is held by .*{deployer.address}"):
        check_wiring(w3, c.deployment)


def test_a_loop_that_pays_the_deployer_is_refused(
    fed: Federation, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CHAIN-2: a loop built with the deployer as `growth` would skim 40% of all revenue."""
    w3 = fed.w3
    with pytest.raises(ChainError, match=r"SacredLoop.growth\(\) is 0x"):
        deploy(SkimmingDeployer(w3, funded_key(w3)), [Account.create().address], TEST_PARAMETERS)
    deployer = SkimmingDeployer(w3, funded_key(w3))
    c = deploy_unchecked(monkeypatch, deployer, [Account.create().address])
    with pytest.raises(ChainError, match=rf"SacredLoop.growth\(\) is {deployer.address}"):
        check_wiring(w3, c.deployment)


class AdminKeepingDeployer(Transactor):
    """Runs the real deploy() but never renounces the timelock's admin role."""

    def send(self, call: ContractFunction, value: int = 0) -> TxReceipt:
        if call.fn_name == "renounceRole":
            return self.w3.eth.get_transaction_receipt(
                self.w3.eth.get_block("latest")["transactions"][-1]
            )
        return super().send(call, value)


def test_a_deployer_that_stays_admin_is_refused(fed: Federation) -> None:
    """CHAIN-2: an admin could grant itself any role at any time."""
    deployer = AdminKeepingDeployer(fed.w3, funded_key(fed.w3))
    with pytest.raises(ChainError, match=rf"still administered by .*{deployer.address}"):
        deploy(deployer, [Account.create().address], TEST_PARAMETERS)


def test_code_that_is_not_the_artifact_is_refused(fed: Federation) -> None:
    """CHAIN-2: the address named Treasury holds the growth fund's code (same owner, same
    interface for paying out): refused on its code before anything else."""
    deployment = fed.contracts.deployment
    swapped = dict(deployment.contracts, Treasury=deployment.address("GrowthFund"))
    with pytest.raises(ChainError, match=r"the code of Treasury at .* is not"):
        check_wiring(fed.w3, dataclasses.replace(deployment, contracts=swapped))


def test_a_file_whose_block_misses_the_timelock_set_up_is_refused(fed: Federation) -> None:
    """CHAIN-2: roles are replayed from the timelock's construction; a file that starts after
    it (hiding a grant made there) is refused."""
    late = dataclasses.replace(fed.contracts.deployment, block=fed.w3.eth.block_number)
    with pytest.raises(ChainError, match="the timelock was not constructed within"):
        check_wiring(fed.w3, late)


# --- Governance: one operator, a relayer ------------------------------------------------------


def test_one_operator_cannot_hijack_and_cancel_another_operators_proposal(
    fed: Federation,
) -> None:
    """Operator B sees operator A's propose() in the mempool and sends the identical call first:
    B becomes the proposer of that id and cancels it while pending. With the default client the
    id is dead; B can do it to every proposal, including the one that would remove B."""
    w3 = fed.w3
    # A realistic voting delay (the default is 300 s) leaves B time to cancel.
    slow = deploy_federation(w3, 3, dataclasses.replace(TEST_PARAMETERS, voting_delay_s=300))
    governor, votes = slow.contracts.governor, slow.contracts.votes
    victim_key, attacker_key = slow.operators[0], slow.operators[1]
    attacker = Transactor(w3, attacker_key)
    seen: list[ContractFunction] = []

    class FrontRunVictim(Transactor):
        def send(self, call: ContractFunction, value: int = 0) -> TxReceipt:
            seen.append(call)
            with contextlib.suppress(ChainError):  # the copied call lands first
                attacker.send(call, value)
            return super().send(call, value)

    proposal = Proposal.by(
        victim_key.address,
        (Action.call(votes, "remove", attacker_key.address),),
        "Remove operator B",
    )
    with contextlib.suppress(ChainError):
        governance.propose(FrontRunVictim(w3, victim_key), governor, proposal)
    targets, values, calldatas, description = seen[0].args
    description_hash = keccak(text=description)
    pid = governor.functions.hashProposal(targets, values, calldatas, description_hash).call()
    if governor.functions.proposalProposer(pid).call() == attacker_key.address:
        attacker.send(governor.functions.cancel(targets, values, calldatas, description_hash))

    # The description ends with "#proposer=<A>" (CHAIN-5): B's copy was refused, A's stands.
    assert governor.functions.proposalProposer(pid).call() == victim_key.address
    assert governance.state(governor, pid) is State.PENDING


def test_an_operator_cannot_vote_twice_directly_and_by_relayed_ballots(fed: Federation) -> None:
    c = fed.contracts
    proposal = Proposal.by(
        fed.operators[0].address, (Action.call(c.votes, "admit", Account.create().address),), "X"
    )
    open_vote(fed, proposal)
    voter = fed.operators[1]
    nonce = governance.nonce(c.governor, voter.address)
    # Two ballots signed ahead (nonce n and n+1), plus a direct vote.
    first = ballot(fed, voter, proposal.id, Support.FOR, nonce=nonce)
    second = ballot(fed, voter, proposal.id, Support.FOR, nonce=nonce + 1)
    governance.relay(fed.relayer, c.governor, first)
    with pytest.raises(ChainError, match="GovernorAlreadyCastVote"):
        governance.relay(fed.relayer, c.governor, second)
    with pytest.raises(ChainError, match="GovernorAlreadyCastVote"):
        Transactor(fed.w3, voter).send(c.governor.functions.castVote(proposal.id, 1))
    # Two ballots with the same nonce (the operator changed its mind): whichever the relayer
    # casts first counts, the other can never count as well.
    other = fed.operators[2]
    n = governance.nonce(c.governor, other.address)
    yes = ballot(fed, other, proposal.id, Support.FOR, nonce=n)
    no = ballot(fed, other, proposal.id, Support.AGAINST, nonce=n)
    governance.relay(fed.relayer, c.governor, no)
    with pytest.raises(ChainError, match="GovernorInvalidSignature"):
        governance.relay(fed.relayer, c.governor, yes)
    assert c.governor.functions.proposalVotes(proposal.id).call() == [1, 1, 0]


def test_readmission_or_a_late_admission_adds_no_vote_to_an_open_proposal(fed: Federation) -> None:
    w3, c = fed.w3, fed.contracts
    proposal = Proposal.by(
        fed.operators[0].address, (Action.call(c.votes, "admit", Account.create().address),), "Y"
    )
    open_vote(fed, proposal)
    snapshot = c.governor.functions.proposalSnapshot(proposal.id).call()
    timelock = as_account(w3, c.timelock.address)
    churned, newcomer = fed.operators[2], funded_key(w3)
    timelock.send(c.votes.functions.remove(churned.address))
    timelock.send(c.votes.functions.admit(churned.address))
    timelock.send(c.votes.functions.admit(newcomer.address))
    advance(w3, 1)
    assert c.votes.functions.getVotes(churned.address).call() == 1  # one, never two
    assert c.governor.functions.quorum(snapshot).call() == 2  # the snapshot's operators

    receipt = governance.relay(fed.relayer, c.governor, ballot(fed, churned, proposal.id))
    assert emitted(c.governor, "VoteCast", receipt)[0]["weight"] == 1
    with pytest.raises(ChainError, match="GovernorAlreadyCastVote"):
        governance.relay(fed.relayer, c.governor, ballot(fed, churned, proposal.id))
    with pytest.raises(ChainError, match=rf"GovernorNotOperator\({newcomer.address}\)"):
        governance.relay(fed.relayer, c.governor, ballot(fed, newcomer, proposal.id))
    assert c.governor.functions.hasVoted(proposal.id, newcomer.address).call() is False
    assert c.governor.functions.proposalVotes(proposal.id).call() == [0, 1, 0]


def test_no_one_but_the_governor_can_get_a_call_through_the_timelock(fed: Federation) -> None:
    """A stranger executes a never-scheduled call, an operator schedules one, the governor's ETH
    entrance is closed: all refused."""
    w3, c = fed.w3, fed.contracts
    mint(fed, c.growth.address, 100)
    stranger = Transactor(w3, funded_key(w3))
    payout = bytes.fromhex(
        c.growth.encode_abi("pay", [c.stablecoin.address, stranger.address, 100])[2:]
    )
    with pytest.raises(ChainError, match="TimelockUnexpectedOperationState"):
        stranger.send(c.timelock.functions.execute(c.growth.address, 0, payout, ZERO32, ZERO32))
    with pytest.raises(ChainError, match="AccessControlUnauthorizedAccount"):
        Transactor(w3, fed.operators[0]).send(
            c.timelock.functions.schedule(c.growth.address, 0, payout, ZERO32, ZERO32, 600)
        )
    with pytest.raises(ChainError, match="GovernorDisabledDeposit"):
        stranger.transfer(c.governor.address, 1)
    assert c.stablecoin.functions.balanceOf(c.growth.address).call() == 100


# --- Sacred Loop and treasury: strangers against revenue and the vault -------------------------


def test_a_stranger_cannot_block_stablecoin_revenue_by_inflating_the_loops_balance(
    fed: Federation,
) -> None:
    c = fed.contracts
    # The testnet stablecoin lets anyone mint: 2^250 units sent to the loop by plain transfer.
    mint(fed, c.loop.address, 2**250)
    payer = Transactor(fed.w3, funded_key(fed.w3))
    payer.send(c.stablecoin.functions.mint(payer.address, 1_000))
    payer.send(c.stablecoin.functions.approve(c.loop.address, 1_000))
    # The split is taken at full width (Math.mulDiv, CHAIN-3): no overflow, and the stranger's
    # units are split like any revenue.
    payer.send(c.loop.functions.payToken(c.stablecoin.address, 1_000))
    total = 2**250 + 1_000
    growth = total * 4 // 10
    assert c.stablecoin.functions.balanceOf(c.growth.address).call() == growth
    assert c.stablecoin.functions.balanceOf(c.treasury.address).call() == total - growth


def test_a_stranger_cannot_block_the_treasurys_move_to_another_vault(fed: Federation) -> None:
    w3, c = fed.w3, fed.contracts
    vault = c.vault(c.deployment.address("TestVault"))
    timelock = as_account(w3, c.timelock.address)
    mint(fed, c.treasury.address, 100 * DOLLAR)
    timelock.send(c.treasury.functions.chooseVault(vault.address))
    timelock.send(c.treasury.functions.deposit(100 * DOLLAR))
    timelock.send(c.treasury.functions.redeem(vault.address, 2**256 - 1))  # governance left
    assert vault.functions.balanceOf(c.treasury.address).call() == 0

    # The attack: one unit of the asset deposited in the old vault *for the treasury*.
    stranger = Transactor(w3, funded_key(w3))
    new_vault = stranger.deploy(artifacts.load("TestVault"), c.stablecoin.address)
    stranger.send(c.stablecoin.functions.mint(stranger.address, 1))
    stranger.send(c.stablecoin.functions.approve(vault.address, 1))
    stranger.send(vault.functions.deposit(1, c.treasury.address))

    # chooseVault no longer asks for an empty position (anyone can give the treasury shares);
    # the dust stays redeemable by naming the old vault.
    timelock.send(c.treasury.functions.chooseVault(new_vault.address))
    assert c.treasury.functions.vault().call() == new_vault.address
    timelock.send(c.treasury.functions.redeem(vault.address, 2**256 - 1))
    assert vault.functions.balanceOf(c.treasury.address).call() == 0


def test_revenue_split_cannot_be_redirected_or_taken_by_a_stranger(fed: Federation) -> None:
    """Forced ETH, plain transfers and many tiny payments: the loop keeps nothing, every unit
    reaches one of the two destinations and the shares always sum to what came in."""
    w3, c = fed.w3, fed.contracts
    stranger = Transactor(w3, funded_key(w3))
    before = (w3.eth.get_balance(c.treasury.address), w3.eth.get_balance(c.growth.address))
    total = 0
    for amount in (1, 2, 3, 10_001, 7):
        stranger.transfer(c.loop.address, amount)
        total += amount
    stranger.send(c.loop.functions.distribute(ANYONE))  # nothing held: a no-op
    gained = (
        w3.eth.get_balance(c.treasury.address) - before[0],
        w3.eth.get_balance(c.growth.address) - before[1],
    )
    assert sum(gained) == total and w3.eth.get_balance(c.loop.address) == 0
    # Rounding favours the treasury per payment: 1 and 2 wei go to it whole (see notes).
    assert gained == (1 + 2 + 2 + 6_001 + 5, 0 + 0 + 1 + 4_000 + 2)


# --- Rewards: reserved, reclaim and over-promising epochs ---------------------------------------


def test_reward_accounting_holds_across_epochs_claims_and_reclaims(fed: Federation) -> None:
    w3, c = fed.w3, fed.contracts
    a, b, d = (op.address for op in fed.operators)
    rewards, balance = c.rewards.functions, c.stablecoin.functions.balanceOf
    timelock = as_account(w3, c.timelock.address)
    mint(fed, c.rewards.address, 100 * DOLLAR)
    over = RewardTree({a: 8 * DOLLAR, b: 8 * DOLLAR})  # leaves sum to 16, published as 10
    fair = RewardTree({a: 5 * DOLLAR, d: 7 * DOLLAR})
    timelock.send(rewards.publish(1, over.root, 10 * DOLLAR))
    timelock.send(rewards.publish(2, fair.root, fair.total))
    assert rewards.reserved().call() == 22 * DOLLAR
    mint(fed, c.rewards.address, 3 * DOLLAR)  # a stranger's donation is unreserved, nothing else

    relayer = fed.relayer
    relayer.send(rewards.claim(1, a, 8 * DOLLAR, over.proof(a)))
    with pytest.raises(ChainError, match="Underfunded"):  # epoch 1 stops at its total
        relayer.send(rewards.claim(1, b, 8 * DOLLAR, over.proof(b)))
    with pytest.raises(ChainError, match="InvalidProof"):  # epoch 1's leaf is not epoch 2's
        relayer.send(rewards.claim(2, a, 8 * DOLLAR, over.proof(a)))
    relayer.send(rewards.claim(2, a, 5 * DOLLAR, fair.proof(a)))
    with pytest.raises(ChainError, match="AlreadyClaimed"):
        relayer.send(rewards.claim(2, a, 5 * DOLLAR, fair.proof(a)))
    # Governance cannot over-commit the rest: 103 - 13 paid = 90 held, 9 still reserved.
    with pytest.raises(ChainError, match=rf"Underfunded\({81 * DOLLAR}, {82 * DOLLAR}\)"):
        timelock.send(rewards.publish(3, fair.root, 82 * DOLLAR))
    advance(w3, fed.parameters.claim_window_s - 100)  # epochs 1 and 2 still open
    late = RewardTree({b: 1 * DOLLAR})
    timelock.send(rewards.publish(3, late.root, late.total))

    advance(w3, 101)  # epochs 1 and 2 closed, epoch 3 open
    with pytest.raises(ChainError, match="ClaimWindowClosed"):
        relayer.send(rewards.claim(2, d, 7 * DOLLAR, fair.proof(d)))
    treasury_before = balance(c.treasury.address).call()
    relayer.send(rewards.reclaim(1))
    relayer.send(rewards.reclaim(2))
    assert balance(c.treasury.address).call() - treasury_before == (2 + 7) * DOLLAR
    # Epoch 3 was published later: its reserve is untouched and it still pays.
    assert rewards.reserved().call() == 1 * DOLLAR
    relayer.send(rewards.claim(3, b, 1 * DOLLAR, late.proof(b)))
    assert rewards.reserved().call() == 0
    assert balance(c.rewards.address).call() == 80 * DOLLAR  # the unreserved remainder

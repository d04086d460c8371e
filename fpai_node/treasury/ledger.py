"""The federation's contracts as one node's treasury uses them: what it reads (balances, the
split, proposals and their tallies) and what its operator sends (proposals, ballots relayed,
queue and execute, revenue).

Blocking (web3 over HTTP): the treasury service runs every call in its one worker thread, which
also keeps this operator's transactions, and so their nonces, in order.
"""

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from eth_abi.exceptions import DecodingError
from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from web3 import Web3
from web3.types import TxReceipt

from fpai_node.chain import governance
from fpai_node.chain.artifacts import ChainError
from fpai_node.chain.contracts import FederationContracts
from fpai_node.chain.governance import Action, Ballot, Proposal, State, Support
from fpai_node.chain.transactor import Transactor, guarded
from fpai_node.treasury.errors import BadArgument

ETH = "0x0000000000000000000000000000000000000000"  # how the contracts' events name ETH
LOG_CHUNK_BLOCKS = 5_000  # eth_getLogs ranges: public RPCs refuse wide ones
BPS = 10_000
# What `treasury propose KIND` may ask for, with its arguments (TREASURY-9, docs/treasury.md).
KINDS: Mapping[str, tuple[str, ...]] = {
    "split": ("treasury_bps",),
    "choose-vault": ("vault",),
    "deposit": ("amount",),
    "withdraw": ("amount",),
    "fund-growth": ("amount",),
    "admit": ("operator",),
    "remove": ("operator",),
}


@dataclass(frozen=True)
class Known:
    """A proposal as its ProposalCreated log describes it."""

    proposal: Proposal
    proposer: ChecksumAddress
    vote_start: int
    vote_end: int
    block: int

    @property
    def id(self) -> int:
        return self.proposal.id


class Ledger:
    def __init__(self, contracts: FederationContracts, operator: LocalAccount) -> None:
        self.contracts = contracts
        self.w3: Web3 = contracts.w3
        self.operator = operator
        self.sender = Transactor(self.w3, operator)
        self.chain_id = contracts.deployment.chain_id
        self._known: dict[int, Known] = {}
        self._scanned = contracts.deployment.block - 1
        self._revenue: dict[str, dict[str, int]] = {}
        self._revenue_scanned = contracts.deployment.block - 1
        self._decimals: int | None = None

    # ---- reads -------------------------------------------------------------------------------

    def proposals(self) -> list[Known]:
        """Every proposal made since the deployment, oldest first (ProposalCreated logs, read
        once each)."""
        latest = guarded(lambda: self.w3.eth.block_number)
        event = self.contracts.governor.events.ProposalCreated
        while self._scanned < latest:
            start, end = self._scanned + 1, min(self._scanned + LOG_CHUNK_BLOCKS, latest)
            for log in self._logs(event, start, end):
                args = log["args"]
                actions = tuple(
                    Action(Web3.to_checksum_address(t), bytes(c), int(v))
                    for t, v, c in zip(
                        args["targets"], args["values"], args["calldatas"], strict=True
                    )
                )
                proposal = Proposal(actions, str(args["description"]))
                if proposal.id != int(args["proposalId"]):  # not our governor's arithmetic
                    continue
                self._known[proposal.id] = Known(
                    proposal,
                    Web3.to_checksum_address(args["proposer"]),
                    int(args["voteStart"]),
                    int(args["voteEnd"]),
                    int(log["blockNumber"]),
                )
            self._scanned = end
        return sorted(self._known.values(), key=lambda k: (k.block, k.id))

    def known(self, proposal_id: int) -> Known:
        self.proposals()
        try:
            return self._known[proposal_id]
        except KeyError:
            raise ChainError(f"no proposal {proposal_id:#x} on the governor") from None

    def state(self, proposal_id: int) -> State:
        return governance.state(self.contracts.governor, proposal_id)

    def tally(self, proposal_id: int) -> dict[str, int]:
        against, for_, abstain = guarded(
            lambda: self.contracts.governor.functions.proposalVotes(proposal_id).call()
        )
        return {"for": int(for_), "against": int(against), "abstain": int(abstain)}

    def has_voted(self, proposal_id: int, voter: str) -> bool:
        governor = self.contracts.governor
        return bool(guarded(lambda: governor.functions.hasVoted(proposal_id, voter).call()))

    def weight(self, proposal_id: int, voter: str) -> int:
        """The voter's votes at the proposal's snapshot: 0 or 1 (CHAIN-4). Only once the
        vote is open: before, the snapshot is in the future and the governor cannot say."""
        governor = self.contracts.governor

        def read() -> int:
            snapshot = governor.functions.proposalSnapshot(proposal_id).call()
            return int(governor.functions.getVotes(voter, snapshot).call())

        return guarded(read)

    def nonce(self, voter: str) -> int:
        return governance.nonce(self.contracts.governor, Web3.to_checksum_address(voter))

    def eta(self, proposal_id: int) -> int:
        """When a queued proposal may execute (0 before it is queued)."""
        governor = self.contracts.governor
        return int(guarded(lambda: governor.functions.proposalEta(proposal_id).call()))

    def now(self) -> int:
        """The latest block's time: the governor's clock (CHAIN-4)."""
        return int(guarded(lambda: self.w3.eth.get_block("latest")["timestamp"]))

    def is_operator(self, address: str) -> bool:
        votes = self.contracts.votes
        return bool(guarded(lambda: votes.functions.isOperator(address).call()))

    def decimals(self) -> int:
        if self._decimals is None:
            coin = self.contracts.stablecoin
            self._decimals = int(guarded(lambda: coin.functions.decimals().call()))
        return self._decimals

    def balances(self) -> dict[str, Any]:
        """What the treasury and the growth fund hold, the vault shares and their value, and
        the split, in the stablecoin's units and in wei."""
        c = self.contracts
        coin = c.stablecoin

        def read() -> dict[str, Any]:
            vault = c.treasury.functions.vault().call()
            has_vault = int(vault, 16) != 0
            shares = (
                c.vault(vault).functions.balanceOf(c.treasury.address).call() if has_vault else 0
            )
            return {
                "split": {
                    "treasury_bps": int(c.loop.functions.treasuryBps().call()),
                    "growth_bps": BPS - int(c.loop.functions.treasuryBps().call()),
                },
                "treasury": {
                    "stablecoin": int(coin.functions.balanceOf(c.treasury.address).call()),
                    "eth_wei": int(self.w3.eth.get_balance(c.treasury.address)),
                    "vault": vault if has_vault else None,
                    "vault_shares": int(shares),
                    "vault_value": int(c.treasury.functions.vaultValue().call()),
                },
                "growth": {
                    "stablecoin": int(coin.functions.balanceOf(c.growth.address).call()),
                    "eth_wei": int(self.w3.eth.get_balance(c.growth.address)),
                },
                "operators": int(c.votes.functions.operatorCount().call()),
            }

        return guarded(read)

    def revenue_by_day(self) -> dict[str, dict[str, int]]:
        """Revenue split by the loop, per UTC day and token (RevenueSplit logs, each read
        once: a status costs the blocks since the last one, not the federation's history)."""
        loop = self.contracts.loop
        latest = guarded(lambda: self.w3.eth.block_number)
        while self._revenue_scanned < latest:
            start = self._revenue_scanned + 1
            end = min(start + LOG_CHUNK_BLOCKS - 1, latest)
            for log in self._logs(loop.events.RevenueSplit, start, end):
                block = self._block(int(log["blockNumber"]))
                day = dt.datetime.fromtimestamp(int(block["timestamp"]), dt.UTC).date().isoformat()
                unit = "eth_wei" if log["args"]["token"] == ETH else "stablecoin"
                per_day = self._revenue.setdefault(day, {})
                per_day[unit] = per_day.get(unit, 0) + int(log["args"]["amount"])
            self._revenue_scanned = end
        return {day: dict(amounts) for day, amounts in self._revenue.items()}

    # ---- this operator's writes --------------------------------------------------------------

    def actions(self, kind: str, value: str, vault: str | None = None) -> tuple[Action, ...]:
        """The timelock's calls for a proposal of `kind` (KINDS) with its one argument. A
        deposit goes to `vault`, else the chosen one, else a testnet's TestVault, choosing it
        first when it is not the treasury's vault yet."""
        if kind != "deposit":
            if vault is not None:
                raise BadArgument("--vault goes with a deposit only")
            return (self._action(kind, value),)
        c = self.contracts
        chosen = guarded(lambda: c.treasury.functions.vault().call())
        target = vault or (chosen if int(chosen, 16) else c.deployment.contracts.get("TestVault"))
        if target is None:
            raise BadArgument("the treasury has no vault yet: name one with --vault ADDRESS")
        deposit = Action.call(c.treasury, "deposit", self.units(value))
        if _address(target) == Web3.to_checksum_address(chosen):
            return (deposit,)
        return (Action.call(c.treasury, "chooseVault", _address(target)), deposit)

    def _action(self, kind: str, value: str) -> Action:
        c = self.contracts
        if kind == "split":
            try:
                bps = int(value)
            except ValueError:
                raise BadArgument(
                    f"split: expected the treasury's share in bps, got {value!r}"
                ) from None
            if not 0 <= bps <= BPS:
                raise BadArgument(f"split: the treasury's share is 0..{BPS} bps, got {bps}")
            return Action.call(c.loop, "setSplit", bps)
        if kind == "choose-vault":
            return Action.call(c.treasury, "chooseVault", _address(value))
        if kind == "withdraw":
            vault = guarded(lambda: c.treasury.functions.vault().call())
            if int(vault, 16) == 0:
                raise ChainError("withdraw: the treasury has chosen no vault")
            return Action.call(c.treasury, "withdraw", vault, self.units(value))
        if kind == "fund-growth":
            return Action.call(
                c.treasury, "pay", coin_address(c), c.growth.address, self.units(value)
            )
        if kind in ("admit", "remove"):
            return Action.call(c.votes, kind, _address(value))
        raise BadArgument(f"unknown proposal kind {kind!r} (one of {', '.join(KINDS)})")

    def propose(self, actions: tuple[Action, ...], text: str) -> tuple[Proposal, TxReceipt]:
        proposal = Proposal.by(self.operator.address, actions, text)
        receipt = governance.propose(self.sender, self.contracts.governor, proposal)
        return proposal, receipt

    def sign(self, proposal_id: int, support: Support, nonce: int, reason: str | None) -> Ballot:
        return governance.sign_ballot(
            self.operator,
            chain_id=self.chain_id,
            governor=self.contracts.governor.address,
            proposal=proposal_id,
            support=support,
            nonce=nonce,
            reason=reason,
        )

    def relay(self, ballot: Ballot) -> TxReceipt:
        """Casts `ballot`; the estimate runs first, so a ballot already counted (or for a vote
        that is over) costs nothing: it raises ChainError naming the governor's refusal."""
        return governance.relay(self.sender, self.contracts.governor, ballot)

    def queue(self, proposal: Proposal) -> TxReceipt:
        return governance.queue(self.sender, self.contracts.governor, proposal)

    def execute(self, proposal: Proposal) -> TxReceipt:
        return governance.execute(self.sender, self.contracts.governor, proposal)

    def _logs(self, event: Any, start: int, end: int) -> list[Any]:
        def read() -> list[Any]:
            return list(event.get_logs(from_block=start, to_block=end))

        return guarded(read)

    def _block(self, number: int) -> Any:
        def read() -> Any:
            return self.w3.eth.get_block(number)

        return guarded(read)

    def describe(self, proposal: Proposal) -> list[str]:
        """Each call as `Contract.function(arguments)`, decoded with the deployment's ABIs."""
        names = {a: n for n, a in self.contracts.deployment.contracts.items()}
        shown = []
        for action in proposal.actions:
            name = names.get(action.target)
            if name is None:
                shown.append(f"{action.target}: 0x{action.calldata.hex()}")
                continue
            try:
                function, args = self.contracts[name].decode_function_input(action.calldata)
            except (ValueError, DecodingError):  # any operator may propose any bytes
                shown.append(f"{name}: 0x{action.calldata.hex()}")
                continue
            listed = ", ".join(str(v) for v in args.values())
            shown.append(f"{name}.{function.fn_name}({listed})")
        return shown

    def pay(self, amount: str, asset: str) -> TxReceipt:
        """Sends revenue into the Sacred Loop from this operator's account: ETH, or the
        stablecoin (approved, then paid; minted first on a testnet, whose coin anyone mints)."""
        loop = self.contracts.loop
        if asset == "eth":
            return self.sender.transfer(loop.address, _wei(amount))
        if asset != "stablecoin":
            raise BadArgument(f"--token: expected stablecoin or eth, got {asset!r}")
        units = self.units(amount)
        coin = self.contracts.stablecoin
        if "TestVault" in self.contracts.deployment.contracts:  # a testnet: its coin is free
            held = int(guarded(lambda: coin.functions.balanceOf(self.operator.address).call()))
            if held < units:
                self.sender.send(coin.functions.mint(self.operator.address, units - held))
        self.sender.send(coin.functions.approve(loop.address, units))
        return self.sender.send(loop.functions.payToken(coin.address, units))

    # ---- rewards (specs/0010-rewards.md RWD-9) ----------------------------------------------

    def reward_actions(self, epoch: int, root: bytes, total: int) -> tuple[Action, ...]:
        """What publishes an epoch's rewards: the growth fund pays the distributor the total,
        then the distributor takes the root."""
        c = self.contracts
        return (
            Action.call(c.growth, "pay", coin_address(c), c.rewards.address, total),
            Action.call(c.rewards, "publish", epoch, root, total),
        )

    def published(self, epoch: int) -> tuple[bytes, int, int] | None:
        """(root, total, claim deadline) of a published epoch, or None."""
        rewards = self.contracts.rewards
        root, total, _claimed, deadline, _reclaimed = guarded(
            lambda: rewards.functions.epochs(epoch).call()
        )
        return (
            None if int.from_bytes(root, "big") == 0 else (bytes(root), int(total), int(deadline))
        )

    def claimed(self, epoch: int, operator: str) -> bool:
        rewards = self.contracts.rewards
        return bool(guarded(lambda: rewards.functions.claimed(epoch, _address(operator)).call()))

    def claim(self, epoch: int, amount: int, proof: list[bytes]) -> TxReceipt:
        """Claims this operator's `amount` of `epoch`; a claim the contract would refuse raises
        ChainError naming why (InvalidProof, AlreadyClaimed, ClaimWindowClosed)."""
        rewards = self.contracts.rewards
        return self.sender.send(
            rewards.functions.claim(epoch, self.operator.address, amount, proof)
        )

    def units(self, amount: str) -> int:
        """`amount` of the stablecoin (a decimal like 12.5) in its smallest units."""
        try:
            value = Decimal(amount)
        except InvalidOperation:
            raise BadArgument(f"expected an amount like 12.5, got {amount!r}") from None
        scaled = value.scaleb(self.decimals())
        if not value.is_finite() or value <= 0 or scaled != scaled.to_integral_value():
            places = self.decimals()
            raise BadArgument(
                f"expected a positive amount with at most {places} decimals: {amount!r}"
            )
        return int(scaled)


def coin_address(contracts: FederationContracts) -> ChecksumAddress:
    return contracts.deployment.address("Stablecoin")


def _address(value: str) -> ChecksumAddress:
    if not Web3.is_address(value):
        raise BadArgument(f"expected an address (0x and 40 hex digits), got {value!r}")
    return Web3.to_checksum_address(value)


def _wei(amount: str) -> int:
    try:
        value = Decimal(amount)
    except InvalidOperation:
        raise BadArgument(f"expected an amount of ETH like 0.5, got {amount!r}") from None
    wei = value.scaleb(18)
    if not value.is_finite() or value <= 0 or wei != wei.to_integral_value():
        raise BadArgument(f"expected a positive amount of ETH, got {amount!r}")
    return int(wei)

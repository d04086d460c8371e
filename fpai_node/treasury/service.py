"""The treasury service: this node's operator on the federation's contracts (specs/0009).

It keeps the operator's binding in the registry (TREASURY-3), signs the operator's ballots and
keeps them there (TREASURY-4, TREASURY-5), relays every member's ballots to the chain
(TREASURY-6), tidies its own (TREASURY-7), and queues and executes what passed (TREASURY-8).
Proposals live on the chain; the registry only carries what the chain cannot: who operates which
node, and ballots signed by operators whose nodes may be gone by the time the vote opens.

A node without `chain_rpc` runs everything else as before and answers every treasury request
with NoChain. The chain code (web3, about a second to import) loads only when a chain is
configured, in the service's one worker thread, which also runs every chain call in order.
"""

import asyncio
import hashlib
import time
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import structlog

from fpai_node.chain.operator_key import read_secret
from fpai_node.errors import FpaiError
from fpai_node.identity import NodeKey
from fpai_node.registry.checked import CheckedRecords
from fpai_node.registry.service import RegistryService, RegistryUnavailable
from fpai_node.registry.state import RegistryState
from fpai_node.service import Service
from fpai_node.treasury.binding import OperatorBinding, binding_parameter
from fpai_node.treasury.errors import NO_CHAIN, RecordRefused, TreasuryError

if TYPE_CHECKING:
    from fpai_node.chain.governance import Ballot, State
    from fpai_node.treasury.ledger import Known, Ledger

POLL_S = 2.0  # one upkeep round: a ballot is relayed, a passed proposal queued within seconds
# TREASURY-6, TREASURY-8: the voter's (or proposer's) own node acts at once; every other member
# waits this long times its rank plus one, so one node relays while the rest stand by
DEFAULT_GRACE_S = 10.0
CONNECT_RETRY_S = (1.0, 30.0)  # an unreachable RPC is retried from 1 s, doubling up to 30 s
# TREASURY-5: a member keeps at most 64 parameters (REG-16); its binding and the rest fit beside
MAX_PENDING_BALLOTS = 32
# A status lists the newest proposals: each costs a few chain calls, and a federation's history
# grows without bound; older ones are on the chain (and counted in `proposals_total`)
MAX_LISTED_PROPOSALS = 50
# TREASURY-10: the registry parameter above which the treasury's idle stablecoin (whole units, a
# decimal) is drafted into a vault deposit, for the operator to approve
IDLE_THRESHOLD_PARAMETER = "treasury.idle_threshold"
log = structlog.get_logger("fpai.treasury")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ChainSettings:
    rpc: str
    deployment: Path
    operator_key: Path


class TreasuryService(Service):
    name = "treasury"

    def __init__(
        self,
        key: NodeKey,
        registry: RegistryService,
        chain: ChainSettings | None,
        grace_s: float = DEFAULT_GRACE_S,
        operator_key: Path | None = None,
    ) -> None:
        """`operator_key`: the operator's key file, whose binding (TREASURY-2) the node keeps
        in the registry with a chain or without (rewards name operators by it, RWD-8)."""
        self.node_id = key.node_id
        self._key = key
        self._registry = registry
        self._chain = chain
        self._operator_key = operator_key or (chain.operator_key if chain else None)
        self._grace_s = grace_s
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="treasury")
        self._task: asyncio.Task[None] | None = None
        self._binding_task: asyncio.Task[None] | None = None
        self._ledger: Ledger | None = None
        self._binding: OperatorBinding | None = None
        self._lock = asyncio.Lock()  # one vote at a time: each takes the next nonce
        self._seen: dict[tuple[Any, ...], float] = {}  # when a due action was first seen
        self._final: dict[int, State] = {}  # proposals whose state can no longer change
        self._drafted = ""  # the last draft logged, so each is logged once
        self._voiceless: set[tuple[int, str]] = set()  # ballots logged as never countable
        # Transactions this node sent (`_send`): each may change the draft (TREASURY-10), which
        # the supervisor then reads again without waiting its turn.
        self.sent = 0
        self.phase = "none" if chain is None else "connecting"
        self.error = ""
        self.counts: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()
        self._checked = CheckedRecords((RecordRefused,), self.refused)  # bindings, ballots

    # ---- the service -------------------------------------------------------------------------

    async def start(self) -> None:
        if self._operator_key is not None and self._operator_key.exists():
            self._binding_task = asyncio.create_task(self._keep_binding(self._operator_key))
        if self._chain is not None:
            self._task = asyncio.create_task(self._run(self._chain))

    async def stop(self, leave: bool) -> None:
        tasks = [t for t in (self._task, self._binding_task) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._executor.shutdown(wait=False, cancel_futures=True)

    @property
    def has_chain(self) -> bool:
        return self._ledger is not None

    async def _keep_binding(self, operator_key: Path) -> None:
        """TREASURY-3, chain or not: sign the binding once, then keep it in the registry."""
        try:
            self._binding = await self._call(_bind, operator_key, self._key)
        except FpaiError as exc:
            log.warning("no operator binding", error=str(exc))
            return
        while True:
            try:
                await self._publish_binding()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("operator binding not published")
            await asyncio.sleep(POLL_S)

    def status_sections(self) -> Mapping[str, object]:
        section: dict[str, object] = {"chain": self.phase}
        if self._binding is not None:
            section["operator"] = self._binding.address
        if self.error:
            section["error"] = self.error
        section["done"] = dict(self.counts)
        section["refused"] = dict(self.refused)
        return {"treasury": section}

    async def _call(self, action: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, action, *args)

    async def _send(self, action: Callable[..., T], *args: Any) -> T:
        """`_call` for a ledger call that sends a transaction: counted in `sent`."""
        sent = await self._call(action, *args)
        self.sent += 1
        return sent

    def _ready(self) -> "Ledger":
        if self._ledger is None:
            if self._chain is None:
                raise TreasuryError(NO_CHAIN)
            raise TreasuryError(f"the chain is not ready yet: {self.error or 'connecting'}")
        return self._ledger

    async def _run(self, chain: ChainSettings) -> None:
        delay = CONNECT_RETRY_S[0]
        while self._ledger is None:
            try:
                self._ledger = await self._call(_connect, chain)
            except FpaiError as exc:
                self.error = str(exc)
                log.warning("chain not ready", error=self.error, retry_s=delay)
                await asyncio.sleep(delay)
                delay = min(2 * delay, CONNECT_RETRY_S[1])
        self.phase, self.error = "ready", ""
        log.info("treasury ready", operator=self._ledger.operator.address)
        while True:
            try:
                await self.upkeep()
            except asyncio.CancelledError:
                raise
            except FpaiError as exc:
                self.error = str(exc)
                log.warning("treasury upkeep failed", error=self.error)
            except Exception:
                log.exception("treasury upkeep failed")
            await asyncio.sleep(POLL_S)

    # ---- one round ---------------------------------------------------------------------------

    async def upkeep(self) -> None:
        """One round: the binding (TREASURY-3), every ballot (TREASURY-5..7), then every
        proposal that passed (TREASURY-8)."""
        ledger = self._ready()
        state = self._registry.state
        known = {k.id: k for k in await self._call(ledger.proposals)}
        states = await self._states(ledger, known)
        ballots = self._ballots(state, ledger)
        self._forget_stale(state, states)
        own = [b for node_id, b in ballots if node_id == self.node_id]
        counted = {
            b.proposal_id: await self._call(ledger.has_voted, b.proposal_id, b.voter) for b in own
        }
        done = set()  # TREASURY-7: counted, over, or never countable: the record goes
        for ballot in own:
            if (
                counted[ballot.proposal_id]
                or not _open(states.get(ballot.proposal_id))
                or not await self._may_count(ledger, ballot, states)
            ):
                done.add(ballot.proposal_id)
                await self._forget(ballot.proposal_id)
        live = [b for b in own if b.proposal_id not in done]
        await self._renumber(ledger, live, states, counted)
        for node_id, ballot in ballots:
            if node_id != self.node_id or ballot.proposal_id not in done:
                await self._relay_if_due(ledger, state, node_id, ballot, states)
        for proposal_id, proposal_state in states.items():
            await self._finish_if_due(ledger, state, known[proposal_id], proposal_state)
        self.error = ""

    def _forget_stale(self, state: RegistryState, states: "Mapping[int, State]") -> None:
        """Keep only the checks of records still in the registry and the turns of proposals
        still open or passed: a member rewriting its records cannot grow this node's memory."""
        self._checked.forget_absent(state.parameters)
        self._seen = {a: t for a, t in self._seen.items() if _open_or_passed(states.get(a[1]))}

    async def _states(self, ledger: "Ledger", known: "Mapping[int, Known]") -> "dict[int, State]":
        """Each proposal's state; those that can no longer change are read once."""
        from fpai_node.chain.governance import State

        final = (State.CANCELED, State.DEFEATED, State.EXPIRED, State.EXECUTED)
        states = dict(self._final)
        for proposal_id in known:
            if proposal_id not in self._final:
                states[proposal_id] = await self._call(ledger.state, proposal_id)
                if states[proposal_id] in final:
                    self._final[proposal_id] = states[proposal_id]
        return states

    async def _publish_binding(self) -> None:
        """TREASURY-3: the registry holds this node's own binding, whoever wrote over it."""
        binding = self._binding
        if binding is None:
            return
        key = binding_parameter(self.node_id)
        value = binding.to_value()
        if self._registry.state.parameters.get(key) == value:
            return
        try:
            await self._registry.propose("param.set", {"key": key, "value": value}, 2.0)
            log.info("operator binding published", operator=binding.address)
        except RegistryUnavailable as exc:
            log.info("operator binding deferred", reason=str(exc))

    def binding_of(self, state: RegistryState, node_id: str) -> OperatorBinding | None:
        """The member's valid binding (TREASURY-2), or None; a refused one is counted once."""
        key = binding_parameter(node_id)
        value = state.parameters.get(key)
        if value is None:
            return None
        binding: OperatorBinding | None = self._checked.check(
            key, value, "binding", lambda: OperatorBinding.from_value(node_id, value)
        )
        return binding

    def _ballots(self, state: RegistryState, ledger: "Ledger") -> "list[tuple[str, Ballot]]":
        """Every member's ballot record that passes TREASURY-4, with its member; one that fails
        is counted once and never relayed."""
        from fpai_node.treasury.records import ballot_from_value, parse_ballot_parameter

        found = []
        for key, value in state.parameters.items():
            named = parse_ballot_parameter(key)
            if named is None:
                continue
            node_id, proposal_id = named
            binding = self.binding_of(state, node_id)
            bound = binding.address.encode() if binding is not None else b""
            ballot = self._checked.check(
                key,
                [value, bound],  # checked again when the member's binding changes
                "ballot",
                partial(
                    ballot_from_value,
                    node_id,
                    proposal_id,
                    value,
                    binding,
                    chain_id=ledger.chain_id,
                    governor=ledger.contracts.governor.address,
                ),
            )
            if ballot is not None:
                found.append((node_id, ballot))
        return found

    async def _renumber(
        self,
        ledger: "Ledger",
        own: "list[Ballot]",
        states: "Mapping[int, State]",
        counted: Mapping[int, bool],
    ) -> None:
        """TREASURY-5: this operator's uncounted ballots on open votes hold consecutive nonces
        from the governor's; one that does not (a ballot before it was never counted) is signed
        again with the nonce it must have, or it could never be relayed."""
        waiting = sorted(
            (b for b in own if _open(states.get(b.proposal_id)) and not counted[b.proposal_id]),
            key=lambda b: b.nonce,
        )
        if not waiting:
            return
        first = await self._call(ledger.nonce, waiting[0].voter)
        for offset, ballot in enumerate(waiting):
            if ballot.nonce != first + offset:
                signed = await self._call(
                    ledger.sign, ballot.proposal_id, ballot.support, first + offset, ballot.reason
                )
                await self._keep(signed)
                log.info(
                    "ballot signed again", proposal=f"{ballot.proposal_id:#x}", nonce=first + offset
                )

    async def _may_count(
        self, ledger: "Ledger", ballot: "Ballot", states: "Mapping[int, State]"
    ) -> bool:
        """TREASURY-6: whether the governor can count the ballot: once the vote is open, the
        voter had a vote at the proposal's snapshot (an operator admitted later, or removed
        before it, did not: GovernorNotOperator). Before the vote opens, it may."""
        from fpai_node.chain.governance import State

        if states.get(ballot.proposal_id) is not State.ACTIVE:
            return True
        weight: int = await self._call(ledger.weight, ballot.proposal_id, ballot.voter)
        if weight == 0 and (ballot.proposal_id, ballot.voter) not in self._voiceless:
            self._voiceless.add((ballot.proposal_id, ballot.voter))
            log.warning(
                "ballot can never count: the voter had no vote at the proposal's snapshot",
                proposal=f"{ballot.proposal_id:#x}",
                voter=ballot.voter,
            )
        return weight > 0

    async def _relay_if_due(
        self,
        ledger: "Ledger",
        state: RegistryState,
        node_id: str,
        ballot: "Ballot",
        states: "Mapping[int, State]",
    ) -> None:
        """TREASURY-6: relay a ballot whose vote is open, not yet counted and next in its
        voter's nonces; its own node at once, the others in turn."""
        from fpai_node.chain.artifacts import ChainError
        from fpai_node.chain.governance import State

        if states.get(ballot.proposal_id) is not State.ACTIVE:
            return
        if await self._call(ledger.has_voted, ballot.proposal_id, ballot.voter):
            return
        if not await self._may_count(ledger, ballot, states):
            return
        if await self._call(ledger.nonce, ballot.voter) != ballot.nonce:
            return
        seed = ballot.proposal_id.to_bytes(32, "big") + bytes.fromhex(ballot.voter[2:])
        if not self._due(
            ("relay", ballot.proposal_id, ballot.voter, ballot.nonce), state, {node_id}, seed
        ):
            return
        try:
            receipt = await self._send(ledger.relay, ballot)
        except ChainError as exc:  # counted meanwhile (another relay won), or the vote closed
            log.info("ballot not relayed", proposal=f"{ballot.proposal_id:#x}", reason=str(exc))
            return
        self.counts["relayed"] += 1
        log.info(
            "ballot relayed",
            proposal=f"{ballot.proposal_id:#x}",
            voter=ballot.voter,
            gas=receipt["gasUsed"],
        )

    async def _finish_if_due(
        self, ledger: "Ledger", state: RegistryState, known: "Known", proposal_state: "State"
    ) -> None:
        """TREASURY-8: queue what passed, execute what waited out the timelock; the proposer's
        node at once, the others in turn."""
        from fpai_node.chain.artifacts import ChainError
        from fpai_node.chain.governance import State

        if proposal_state is State.SUCCEEDED:
            step, act = "queue", ledger.queue
        elif proposal_state is State.QUEUED:
            eta = await self._call(ledger.eta, known.id)
            if eta > max(await self._call(ledger.now), int(time.time())):
                return
            step, act = "execute", ledger.execute
        else:
            return
        owners = {
            n
            for n in state.members
            if (b := self.binding_of(state, n)) and b.address == known.proposer
        }
        if not self._due((step, known.id), state, owners, known.id.to_bytes(32, "big")):
            return
        try:
            receipt = await self._send(act, known.proposal)
        except ChainError as exc:  # another node did it first, or it is not yet time
            log.info(f"proposal not {step}d", proposal=f"{known.id:#x}", reason=str(exc))
            return
        self.counts[f"{step}d"] += 1
        log.info(f"proposal {step}d", proposal=f"{known.id:#x}", gas=receipt["gasUsed"])

    def _due(
        self, action: tuple[Any, ...], state: RegistryState, owners: set[str], seed: bytes
    ) -> bool:
        """TREASURY-6, TREASURY-8: an owner acts at once; any other member once the grace times
        (1 + its rank) passed since it first saw the action due, its rank its place among the
        other members ordered by SHA-256(seed || node id)."""
        if self.node_id in owners:
            return True
        first = self._seen.setdefault(action, time.monotonic())
        others = sorted(
            (n for n in state.members if n not in owners),
            key=lambda n: hashlib.sha256(seed + n.encode()).digest(),
        )
        rank = others.index(self.node_id) if self.node_id in others else len(others)
        return time.monotonic() - first >= self._grace_s * (1 + rank)

    async def _keep(self, ballot: "Ballot") -> None:
        from fpai_node.treasury.records import ballot_parameter, ballot_to_value

        key = ballot_parameter(self.node_id, ballot.proposal_id)
        try:
            await self._registry.propose(
                "param.set", {"key": key, "value": ballot_to_value(ballot)}
            )
        except RegistryUnavailable as exc:
            raise TreasuryError(f"the ballot could not be shared: {exc}") from None

    async def _forget(self, proposal_id: int) -> None:
        """TREASURY-7: a ballot counted, or whose vote is over, leaves the registry."""
        from fpai_node.treasury.records import ballot_parameter

        key = ballot_parameter(self.node_id, proposal_id)
        try:
            await self._registry.propose("param.delete", {"key": key}, 2.0)
        except RegistryUnavailable as exc:
            log.info("ballot cleanup deferred", reason=str(exc))

    # ---- requests ----------------------------------------------------------------------------

    async def vote(self, proposal_id: int, support: str, reason: str | None) -> dict[str, Any]:
        """Signs this operator's ballot, keeps it in the registry for any node to relay, and
        relays it now when the vote is open (TREASURY-5)."""
        from fpai_node.chain.artifacts import ChainError
        from fpai_node.chain.governance import State, Support
        from fpai_node.treasury.records import MAX_REASON_BYTES, ballot_parameter

        ledger = self._ready()
        choice = _SUPPORT.get(support)
        if choice is None:
            raise TreasuryError(f"a vote is for, against or abstain, not {support!r}")
        if reason is not None and len(reason.encode()) > MAX_REASON_BYTES:
            raise TreasuryError(f"a reason is at most {MAX_REASON_BYTES} bytes")
        async with self._lock:
            await self._call(ledger.known, proposal_id)
            proposal_state = await self._call(ledger.state, proposal_id)
            if not _open(proposal_state):
                raise TreasuryError(
                    f"proposal {proposal_id:#x} is {proposal_state.name.lower()}: its vote is over"
                )
            me = ledger.operator.address
            if not await self._call(ledger.is_operator, me):
                raise TreasuryError(
                    f"this node's operator {me} is not an operator of the federation "
                    "(an `admit` proposal must pass first)"
                )
            if proposal_state is State.ACTIVE and not await self._call(
                ledger.weight, proposal_id, me
            ):
                raise TreasuryError(
                    f"this node's operator {me} had no vote when {proposal_id:#x} opened "
                    "(admitted after it): the governor would refuse the ballot"
                )
            state = self._registry.state
            if ballot_parameter(self.node_id, proposal_id) in state.parameters or await self._call(
                ledger.has_voted, proposal_id, me
            ):
                raise TreasuryError(f"this operator has already voted on {proposal_id:#x}")
            mine = [b for n, b in self._ballots(state, ledger) if n == self.node_id]
            if len(mine) >= MAX_PENDING_BALLOTS:
                raise TreasuryError(f"{len(mine)} ballots are waiting to be counted; try later")
            nonce = await self._call(ledger.nonce, me)
            for waiting in mine:  # TREASURY-5: after this operator's uncounted open ballots
                waiting_state = await self._call(ledger.state, waiting.proposal_id)
                if _open(waiting_state) and not await self._call(
                    ledger.has_voted, waiting.proposal_id, me
                ):
                    nonce += 1
            ballot = await self._call(ledger.sign, proposal_id, Support(choice), nonce, reason)
            await self._keep(ballot)
        answer: dict[str, Any] = {
            "proposal": f"{proposal_id:#066x}",
            "support": support,
            "nonce": nonce,
        }
        answer["relayed"] = None
        if proposal_state is State.ACTIVE:
            try:
                receipt = await self._send(ledger.relay, ballot)
                self.counts["relayed"] += 1
                answer["relayed"] = receipt["transactionHash"].to_0x_hex()
            except ChainError as exc:  # kept in the registry: another node will relay it
                answer["relay_error"] = str(exc)
        return answer

    async def propose(
        self, kind: str, value: str, text: str, vault: str | None = None
    ) -> dict[str, Any]:
        ledger = self._ready()
        actions = await self._call(ledger.actions, kind, value, vault)
        proposal, receipt = await self._send(ledger.propose, actions, text)
        return {
            "proposal": f"{proposal.id:#066x}",
            "transaction": receipt["transactionHash"].to_0x_hex(),
            "gas": receipt["gasUsed"],
        }

    async def execute(self, proposal_id: int) -> dict[str, Any]:
        """Queues a passed proposal and executes it once its timelock is over: whichever steps
        are due now. Any node may, any number of times: an executed proposal answers its state."""
        from fpai_node.chain.governance import State

        ledger = self._ready()
        known = await self._call(ledger.known, proposal_id)
        done: dict[str, Any] = {}
        proposal_state = await self._call(ledger.state, proposal_id)
        if proposal_state is State.SUCCEEDED:
            done["queued"] = (await self._send(ledger.queue, known.proposal))[
                "transactionHash"
            ].to_0x_hex()
            proposal_state = await self._call(ledger.state, proposal_id)
        if proposal_state is State.QUEUED:
            eta = await self._call(ledger.eta, proposal_id)
            if eta > max(await self._call(ledger.now), int(time.time())):
                done["executable_at"] = eta
            else:
                receipt = await self._send(ledger.execute, known.proposal)
                done["executed"] = receipt["transactionHash"].to_0x_hex()
                proposal_state = await self._call(ledger.state, proposal_id)
        elif not done and proposal_state is not State.EXECUTED:  # executed: nothing to do
            raise TreasuryError(
                f"proposal {proposal_id:#x} is {proposal_state.name.lower()}: "
                "only a proposal that passed can be queued and executed"
            )
        done["state"] = proposal_state.name.lower()
        return done

    # ---- what rewards ask of the chain (specs/0010-rewards.md RWD-9) --------------------------

    @property
    def operator(self) -> str | None:
        """This node's operator address, once the chain is connected."""
        return self._binding.address if self._binding is not None else None

    async def propose_rewards(self, epoch: int, root: bytes, total: int) -> dict[str, Any]:
        ledger = self._ready()
        actions = await self._call(ledger.reward_actions, epoch, root, total)
        text = f"Rewards for epoch {epoch}: root 0x{root.hex()}, total {total}"
        proposal, receipt = await self._send(ledger.propose, actions, text)
        return {
            "proposal": f"{proposal.id:#066x}",
            "transaction": receipt["transactionHash"].to_0x_hex(),
            "gas": receipt["gasUsed"],
        }

    async def published_rewards(self, epoch: int) -> tuple[bytes, int, int] | None:
        ledger = self._ready()
        return await self._call(ledger.published, epoch)

    async def reward_claimed(self, epoch: int) -> bool:
        ledger = self._ready()
        return await self._call(ledger.claimed, epoch, ledger.operator.address)

    async def claim_reward(self, epoch: int, amount: int, proof: list[bytes]) -> dict[str, Any]:
        ledger = self._ready()
        receipt = await self._send(ledger.claim, epoch, amount, proof)
        return {"transaction": receipt["transactionHash"].to_0x_hex(), "gas": receipt["gasUsed"]}

    async def pay(self, amount: str, token: str) -> dict[str, Any]:
        ledger = self._ready()
        receipt = await self._send(ledger.pay, amount, token)
        return {"transaction": receipt["transactionHash"].to_0x_hex(), "gas": receipt["gasUsed"]}

    async def status(self) -> dict[str, Any]:
        """Balances, the split, revenue per day, every proposal with its state and tally, and
        this operator's ballots."""
        ledger = self._ready()
        state = self._registry.state
        known = await self._call(ledger.proposals)
        states = await self._states(ledger, {k.id: k for k in known})
        mine = {b.proposal_id: b for n, b in self._ballots(state, ledger) if n == self.node_id}
        me = ledger.operator.address
        proposals = []
        for k in known[::-1][:MAX_LISTED_PROPOSALS]:
            proposal_state = states[k.id]
            entry: dict[str, Any] = {
                "id": f"{k.id:#066x}",
                "text": k.proposal.description.rpartition("\n\n#proposer=")[0]
                or k.proposal.description,
                "proposer": k.proposer,
                "state": proposal_state.name.lower(),
                "vote_start": k.vote_start,
                "vote_end": k.vote_end,
                "calls": await self._call(ledger.describe, k.proposal),
                "tally": await self._call(ledger.tally, k.id),
                "my_vote": None,
            }
            ballot = mine.get(k.id)
            if ballot is not None:
                entry["my_vote"] = ballot.support.name.lower()
            elif await self._call(ledger.has_voted, k.id, me):
                entry["my_vote"] = "counted"
            if proposal_state.name == "QUEUED":
                entry["eta"] = await self._call(ledger.eta, k.id)
            proposals.append(entry)
        balances = await self._call(ledger.balances)
        draft = self._draft(ledger, state, balances["treasury"]["stablecoin"], proposals)
        return {
            "chain_id": ledger.chain_id,
            "block": await self._call(lambda: ledger.w3.eth.block_number),
            "operator": {
                "address": me,
                "is_operator": await self._call(ledger.is_operator, me),
                "eth_wei": await self._call(lambda: ledger.w3.eth.get_balance(me)),
            },
            **balances,
            "revenue": await self._call(ledger.revenue_by_day),
            "proposals": proposals,
            "proposals_total": len(known),
            "operators": self.operators_of(state),
            "draft": draft,
        }

    def _draft(
        self,
        ledger: "Ledger",
        state: RegistryState,
        idle: int,
        proposals: list[dict[str, Any]],
    ) -> dict[str, str] | None:
        """TREASURY-10: a deposit of the treasury's idle stablecoin once it is above the
        federation's threshold and no deposit is already on its way; only ever proposed by
        the operator (`treasury propose --from-draft`), never by the node alone."""
        threshold = state.parameters.get(IDLE_THRESHOLD_PARAMETER)
        if threshold is None:
            return None
        limit = _amount(threshold, ledger.decimals())
        if limit is None:
            self.refused["idle_threshold_unreadable"] += 1
            return None
        pending = ("pending", "active", "succeeded", "queued")
        if idle <= limit or any(
            p["state"] in pending and any(".deposit(" in c for c in p["calls"]) for p in proposals
        ):
            return None
        amount = _whole(idle, ledger.decimals())
        if self._drafted != amount:
            self._drafted = amount
            log.info("treasury draft pending the operator's approval", deposit=amount)
        return {
            "kind": "deposit",
            "value": amount,
            "text": f"Deposit the treasury's idle {amount} into the vault: above the "
            f"federation's idle threshold of {_whole(limit, ledger.decimals())} "
            f"({IDLE_THRESHOLD_PARAMETER})",
        }

    def operators_of(self, state: RegistryState) -> dict[str, str | None]:
        """Each member's bound operator address (TREASURY-2), None without a valid binding."""
        return {
            node_id: (b.address if (b := self.binding_of(state, node_id)) else None)
            for node_id in sorted(state.members)
        }


_SUPPORT = {"against": 0, "for": 1, "abstain": 2}


def _whole(units: int, decimals: int) -> str:
    """An amount in a token's smallest units as a decimal of whole units: 60, 60.5."""
    return f"{Decimal(units).scaleb(-decimals).normalize():f}"


def _amount(value: object, decimals: int) -> int | None:
    """A registry parameter's amount of whole units (a decimal string or an integer, 0 or
    more) in the token's smallest units; None for anything else."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    try:
        units = Decimal(value).scaleb(decimals)
    except InvalidOperation:
        return None
    if not units.is_finite() or units < 0:
        return None
    return int(units)


def _open(proposal_state: "State | None") -> bool:
    return proposal_state is not None and proposal_state.name in ("PENDING", "ACTIVE")


def _open_or_passed(proposal_state: "State | None") -> bool:
    """A state in which a ballot may still be relayed, or the proposal queued or executed."""
    return proposal_state is not None and proposal_state.name in (
        "PENDING",
        "ACTIVE",
        "SUCCEEDED",
        "QUEUED",
    )


def _connect(chain: ChainSettings) -> "Ledger":
    """In the worker thread: web3 and the chain code, the deployment checked on the chain
    (CHAIN-2), and the operator key."""
    from web3 import HTTPProvider, Web3

    from fpai_node.chain import restore_recursion_limit
    from fpai_node.chain.deployment import Deployment
    from fpai_node.chain.keys import load_key
    from fpai_node.chain.transactor import rpc_errors
    from fpai_node.chain.wiring import check_wiring
    from fpai_node.treasury.ledger import Ledger

    restore_recursion_limit()  # py_ecc, imported just now, raised it (fpai_node/chain/__init__)
    operator = load_key(chain.operator_key)
    deployment = Deployment.load(chain.deployment)
    w3 = Web3(HTTPProvider(chain.rpc, request_kwargs={"timeout": RPC_TIMEOUT_S}))
    with rpc_errors():
        contracts = check_wiring(w3, deployment)
    return Ledger(contracts, operator)


def _bind(operator_key: Path, key: NodeKey) -> OperatorBinding:
    """In the worker thread: the operator key, and this node's binding signed by both keys."""
    return OperatorBinding.sign(key, read_secret(operator_key))


RPC_TIMEOUT_S = 15.0  # one JSON-RPC call; a public endpoint under load answers within seconds

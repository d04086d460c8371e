"""The registry service: this node's Raft member, as the rest of the node sees it (asyncio side).

It decides how this node enters the registry (REG-15): the first node of a federation
bootstraps it; a node given peers to join asks one of them (`registry.join` on the peer channel)
and starts as the voter or learner the registry made it; a node restarted from its home resumes
from what it last knew (raft/engine.json) and asks again only if no leader answers. It proposes
commands with retries under one idempotency key (REG-4), reads locally or through the leader, and
follows its own role: when the registry promotes or demotes it, the engine restarts in its new
mode over the same log.
"""

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import structlog
from prometheus_client.core import Metric

from fpai_node.entropy import random_bytes
from fpai_node.errors import FpaiError
from fpai_node.hostport import HostPort
from fpai_node.identity import NodeKey
from fpai_node.identity.tls import TlsIdentity
from fpai_node.peer.client import PeerClient
from fpai_node.registry.hint import HINT_FILE, Hint, read_hint
from fpai_node.registry.journal import JournalError, write_atomically
from fpai_node.registry.raft import Done, RaftEngine, RaftStatus, RaftTiming, TransportCounters
from fpai_node.registry.raft_wire import parse_raft_id, raft_id
from fpai_node.registry.report import raft_metrics, registry_section
from fpai_node.registry.state import (
    ELECTORS_PARAMETER,
    IDEMPOTENCY_KEY_BYTES,
    MAX_COMMAND_BYTES,
    VOTERS_PARAMETER,
    RegistryState,
    Result,
    encode_command,
)
from fpai_node.service import ActionGate, FrameRefused, PeerRoute, RpcRoute, Service
from fpai_node.wire import codec
from fpai_node.wire.errors import MalformedFrame

JOIN_PATH = "/fpai/peer/v1/registry/join"
MAINTAIN_PERIOD_S = 0.25
WRITE_TIMEOUT_S = 10.0  # a write with no outcome by then is reported as unknown, not failed
LEAVE_TIMEOUT_S = 2.0  # a stopping node waits this long for its removal to commit
RELEASE_TIMEOUT_S = 3.0  # and a voter this long more for the leader to drop it from Raft
JOIN_CALL_TIMEOUT_S = 15.0  # a join needs a commit: a leader election may come first
JOIN_CONNECTIONS_PER_PEER = 1  # this node asks to join one peer at a time
RETRY_S = 0.1
_SUCCESS = 0
_RETRYABLE = frozenset({1, 2, 3, 4, 5, 7})  # queue full, no leader, discarded, leader changed...
log = structlog.get_logger("fpai.registry")


class CommandTooLarge(FpaiError):
    """A command over REG-2's limit: refused before it reaches the log."""


class RegistryUnavailable(FpaiError):
    """No outcome within the time allowed: the registry has no leader this node can reach.
    A write may still be applied later; its idempotency key keeps a retry from applying twice."""


class RegistryService(Service):
    name = "registry"

    def __init__(
        self,
        *,
        key: NodeKey,
        identity: TlsIdentity,
        listener: socket.socket,
        client: PeerClient,
        directory: Path,
        join: Iterable[str],
        peer_address: str,
        api_address: str,
        voters: int,
        timing: RaftTiming,
        parameters: Mapping[str, codec.Value] | None = None,
        electors: Sequence[str] | None = None,
        local_models: Callable[[], Iterable[str]] = tuple,
        gate: ActionGate | None = None,
    ) -> None:
        """`electors`: who may hold a voter seat in a registry this node creates (REG-13;
        None: anyone). `gate`: asked before the leader repairs after a death (RAFT-17)."""
        self.address = str(HostPort.bound_to(listener))
        self.node_id = key.node_id
        self.member = raft_id(key.node_id, self.address)
        self.phase = "starting"
        self.counters = TransportCounters()
        self._identity = identity
        self._listener = listener
        self._dir = directory
        self._join = tuple(a for a in join if a != peer_address)
        self._peer_address = peer_address
        self._api_address = api_address
        self._voters = voters
        self._parameters = dict(parameters or {})  # the genesis': written once, at creation
        if electors is not None:
            self._parameters[ELECTORS_PARAMETER] = list(electors)
        self._timing = timing
        self._local_models = local_models
        self._gate = gate
        self._pool = client.pool(
            connections_per_peer=JOIN_CONNECTIONS_PER_PEER, timeout_s=JOIN_CALL_TIMEOUT_S
        )
        self._engine: RaftEngine | None = None
        self._floor = RegistryState()  # shown while a restarted engine replays its log
        self._tasks: list[asyncio.Task[None]] = []
        self._barrier: asyncio.Future[None] | None = None  # the `sync` on its way (read)
        self._next_barrier: asyncio.Future[None] | None = None  # the one gathering readers
        self._leaderless_since: float | None = None
        self._next_self_check = 0.0
        self._hint: Hint | None = None
        self._outcomes: _Outcomes | None = None  # created on the event loop, at start
        self._wake_due = False  # a wake of the Raft tick thread is scheduled on the loop

    # ---- lifecycle ---------------------------------------------------------------------------

    def peer_routes(self) -> Sequence[PeerRoute]:
        """`registry.join` (PEER-7, REG-15)."""
        return (RpcRoute(JOIN_PATH, self._on_join),)

    async def start(self) -> None:
        self._outcomes = _Outcomes(asyncio.get_running_loop())
        self._dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        hint = self._read_hint()
        if hint is not None and hint.member == self.member:
            self._start_engine(hint.learner, hint.voters)
            self.phase = "running"
            log.info("registry resumed", member=self.member, learner=hint.learner)
        elif self._join or hint is not None:
            self.phase = "joining"
            targets = (*self._join, *(hint.peers if hint else ()))
            self._spawn(self._join_through(targets, first=True))
        else:
            self._start_engine(False, [self.member])
            self.phase = "bootstrapping"
            self._spawn(self._bootstrap())
        self._spawn(self._maintain())

    async def stop(self, leave: bool) -> None:
        """Leave the registry if this node is a member of a larger one (REG-15) and `leave`,
        then stop and close the Raft listener (the service owns it from construction on).
        Without leaving, the node stays a member: a restart, or the whole federation pausing."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        engine = self._engine
        alone = engine is None or not (engine.status.voters - {self.member} or engine.learner)
        if leave and not alone and self.phase == "running" and self._is_member():
            await self._leave()
        self.phase = "stopped"
        if engine is not None:
            self._engine = None
            await asyncio.to_thread(engine.stop)
        self._listener.close()

    async def _leave(self) -> None:
        """REG-15: remove this node, then, for a voter, stay until the leader has taken it out
        of Raft's configuration (it closes the connection then): two voters leaving at once
        must not both be gone while the configuration still counts them."""
        try:
            await self.propose("member.remove", {"node_id": self.node_id}, LEAVE_TIMEOUT_S)
        except RegistryUnavailable:
            log.warning("left without a registry answer; the leader will replace this voter")
            return
        engine = self._engine
        if engine is not None and not engine.learner and not await _released(engine):
            log.warning("left the registry before the leader released this voter")
            return
        log.info("left the registry")

    # ---- reads and writes --------------------------------------------------------------------

    @property
    def state(self) -> RegistryState:
        """The local replica's state (possibly stale), never older than before a restart."""
        engine = self._engine
        if engine is None:
            return self._floor
        state = engine.state
        return state if state.index >= self._floor.index else self._floor

    @property
    def status(self) -> RaftStatus:
        engine = self._engine
        return engine.status if engine is not None else RaftStatus(self.member, False)

    def status_sections(self) -> Mapping[str, object]:
        return {
            "registry": registry_section(
                phase=self.phase,
                address=self.address,
                status=self.status,
                state=self.state,
                refusals=self.counters.refusals,
            )
        }

    def metrics(self) -> Iterable[Metric]:
        return raft_metrics(
            phase=self.phase, status=self.status, state=self.state, refusals=self.counters.refusals
        )

    async def read(self) -> RegistryState:
        """A linearizable read: a barrier, then the local state, which has applied everything
        committed before the barrier. On the leader the barrier is a read index (RAFT-18), which
        writes nothing; elsewhere it is a `sync` through the leader (REG-14).

        Reads share barriers: a read waits for the next barrier begun after it arrived, and
        at most one barrier is on its way while one more gathers readers, so however many
        clients read, the log takes at most one `sync` per commit round trip."""
        barrier = self._next_barrier
        if barrier is None:
            barrier = asyncio.ensure_future(self._barrier_after(self._barrier))
            barrier.add_done_callback(_retrieved)  # every reader may have left meanwhile
            self._next_barrier = barrier
        await asyncio.shield(barrier)
        return self.state

    async def _barrier_after(self, previous: "asyncio.Future[None] | None") -> None:
        if previous is not None:
            await asyncio.gather(previous, return_exceptions=True)
        me = self._next_barrier
        self._next_barrier = None  # reads from now on arrived after this barrier: the next one
        self._barrier = me
        try:
            if not await self._read_index():
                await self.propose("sync", {})
        finally:
            if self._barrier is me:
                self._barrier = None

    async def _read_index(self) -> bool:
        """RAFT-18 on the leader: True once the engine has confirmed it leads and applied up to
        its commit index; False when this node does not lead (a `sync` will do)."""
        engine = self._engine
        if engine is None or not engine.status.is_leader:
            return False
        outcome: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        engine.read_index(self._settler(outcome))
        try:
            index = await asyncio.wait_for(outcome, WRITE_TIMEOUT_S)
        except TimeoutError:
            raise RegistryUnavailable(
                f"the registry leader confirmed no read within {WRITE_TIMEOUT_S:g} s"
            ) from None
        return index is not None

    async def propose(
        self, op: str, args: Mapping[str, codec.Value], timeout_s: float = WRITE_TIMEOUT_S
    ) -> Result:
        """Commit one command; retried with the same bytes until its outcome is known (REG-4),
        so a write that committed despite an error is applied once. `duplicate` is success."""
        command = encode_command(
            op,
            args,
            key=random_bytes(IDEMPOTENCY_KEY_BYTES),
            by=self.node_id,
            at_ms=time.time_ns() // 1_000_000,
        )
        if len(command) > MAX_COMMAND_BYTES:
            raise CommandTooLarge(
                f"{op} is {len(command)} bytes encoded; a registry command is at most "
                f"{MAX_COMMAND_BYTES} bytes"
            )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while (remaining := deadline - loop.time()) > 0:
            engine = self._engine
            if engine is None:
                await asyncio.sleep(min(RETRY_S, remaining))
                continue
            outcome: asyncio.Future[tuple[Result | None, int]] = loop.create_future()
            engine.propose(command, self._done(outcome), wake=False)
            if not self._wake_due:  # the writes queued in this loop iteration share one wake
                self._wake_due = True
                loop.call_soon(self._wake, engine)
            # one timer, where asyncio.wait_for adds a waiter future and callbacks to every write
            timer = loop.call_at(deadline, _expire, outcome)
            try:
                result, error = await outcome
            except TimeoutError:
                break
            finally:
                timer.cancel()
            if error == _SUCCESS and result is not None:
                return Result("ok") if result.status == "duplicate" else result
            if error not in _RETRYABLE:
                raise RegistryUnavailable(f"the registry refused {op} (code {error})")
            await asyncio.sleep(min(RETRY_S, max(0.0, deadline - loop.time())))
        raise RegistryUnavailable(
            f"no registry leader answered within {timeout_s:g} s ({op}); "
            "the write may still be applied"
        )

    def _wake(self, engine: RaftEngine) -> None:
        self._wake_due = False
        engine.wake()

    def _done(self, future: "asyncio.Future[tuple[Result | None, int]]") -> Done:
        """A proposal's callback for the Raft tick thread: `future` gets (result, error)."""
        settle = self._settler(future)
        return lambda result, error: settle((result, error))

    def _settler(self, future: "asyncio.Future[Any]") -> Callable[[Any], None]:
        """A callback for the Raft tick thread that settles `future` on the event loop."""
        outcomes = self._outcomes
        assert outcomes is not None, "the registry service is not started"
        return lambda value: outcomes.settle(future, value)

    # ---- entering the registry ---------------------------------------------------------------

    async def _bootstrap(self) -> None:
        """REG-15: the first node sets the voter target and the genesis parameters, then joins
        the registry it created. A parameter already there (a bootstrap interrupted and started
        again over the same log) is not written again; a node that resumes from its home never
        comes here, so the genesis seeds the registry once and never overrides later changes."""
        while True:
            try:
                if VOTERS_PARAMETER not in self.state.parameters:
                    voters: dict[str, codec.Value] = {
                        "key": VOTERS_PARAMETER,
                        "value": self._voters,
                    }
                    await self.propose("param.set", voters)
                for key, value in self._parameters.items():
                    if key not in self.state.parameters:
                        await self._set_genesis_parameter(key, value)
                await self.propose("member.join", self._join_args(self.node_id))
            except RegistryUnavailable:
                log.info("waiting for the new registry to elect this node")
                continue
            self.phase = "running"
            log.info(
                "registry bootstrapped",
                member=self.member,
                voters=self._voters,
                parameters=sorted(self._parameters),
            )
            return

    async def _set_genesis_parameter(self, key: str, value: codec.Value) -> None:
        try:
            result = await self.propose("param.set", {"key": key, "value": value})
        except CommandTooLarge as exc:  # not expected from a checked genesis: say so, carry on
            log.warning("a genesis parameter was refused", key=key, reason=str(exc))
            return
        if result.status != "ok":
            log.warning("a genesis parameter was refused", key=key, reason=result.reason)

    async def _join_through(self, targets: Iterable[str], first: bool) -> None:
        """Ask each target in turn to add us, until one answers; then run as it says."""
        request = codec.encode(
            {"api": self._api_address, "peer": self._peer_address, "raft": self.address}
        )
        targets = tuple(dict.fromkeys(t for t in targets if t != self._peer_address))
        attempt = 0
        while True:
            for target in targets:
                status, body = await self._pool.call(target, JOIN_PATH, request)
                if status == 200:
                    try:
                        role, voters, peers = _parse_join_answer(body)
                    except MalformedFrame:
                        log.warning("unreadable join answer", peer=target)
                        continue
                    await self._follow_join_answer(voters)
                    self._write_hint(peers, voters)
                    self.phase = "running"
                    log.info("joined the registry", via=target, role=role, voters=len(voters))
                    return
                attempt += 1
                if first or attempt % 5 == 1:
                    log.info(
                        "waiting to join the registry", peer=target, status=status, attempt=attempt
                    )
            await asyncio.sleep(min(2.0, 0.2 * (attempt + 1)))

    async def _on_join(self, peer: str, body: bytes) -> bytes:
        """`registry.join`: add (or update) the caller, then tell it its role and Raft's
        configuration as this node's log has it (REG-15)."""
        try:
            value = codec.decode(body)
        except MalformedFrame:
            raise FrameRefused("malformed") from None
        if not isinstance(value, dict) or value.keys() != {"api", "peer", "raft"}:
            raise FrameRefused("malformed")
        if self._engine is None or self.phase != "running":  # a registry still being created
            raise FrameRefused("registry_not_ready")  # would hand the newcomer its voter seats
        if not _hears_a_leader(self.status):  # no commit could come: say so now, not in 10 s
            raise FrameRefused("registry_unavailable")
        args = {"node_id": peer, **value}
        try:
            result = await self.propose("member.join", args)
        except RegistryUnavailable:
            raise FrameRefused("registry_unavailable") from None
        if result.status != "ok":
            raise FrameRefused(result.reason or result.status)
        state = self.state
        member = state.members.get(peer)
        if member is None:  # removed again between commit and answer: let it ask again
            raise FrameRefused("registry_unavailable")
        peers = sorted(m.peer for n, m in state.members.items() if n != peer)
        answer: dict[str, codec.Value] = {"peers": [*peers], "role": member.role}
        answer["voters"] = [*sorted(self.status.voters)]
        return codec.encode(answer)

    def _join_args(self, node_id: str) -> dict[str, codec.Value]:
        return {
            "api": self._api_address,
            "node_id": node_id,
            "peer": self._peer_address,
            "raft": self.address,
        }

    # ---- following our own role --------------------------------------------------------------

    async def _maintain(self) -> None:
        while True:
            await asyncio.sleep(MAINTAIN_PERIOD_S)
            try:
                await self._maintain_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("registry upkeep failed")

    async def _maintain_once(self) -> None:
        engine = self._engine
        if engine is None or self.phase != "running":
            return
        if engine.durability_error is not None:
            self.phase = "failed"
            log.error("the registry stopped: its log cannot be made durable; restart the node")
            return
        status = engine.status
        now = time.monotonic()
        if not _hears_a_leader(status):
            self._leaderless_since = self._leaderless_since or now
            if now - self._leaderless_since > 3 * self._timing.election_max_s:
                self._leaderless_since = None
                log.info("no registry leader answers; asking the known peers")
                await self._join_through(self._known_peers(), first=False)
            return
        self._leaderless_since = None
        if status.applied_index < status.commit_index or now < self._next_self_check:
            return
        self._next_self_check = now + 1.0
        state = engine.state
        member = state.members.get(self.node_id)
        if member is not None and member.role == "learner" and not engine.learner:
            await self._run_as(True, status.voters - {self.member})  # first: it needs no commit
        elif engine.learner and status.in_configuration and _caught_up(status):
            await self._run_as(False, status.voters)
        if (
            member is None
            or member.relayed_by  # REG-13: confirm, freeing the seat in its relay's quota
            or (member.peer, member.api, member.raft)
            != (self._peer_address, self._api_address, self.address)
        ):
            await self._propose_quietly("member.join", self._join_args(self.node_id))
            return
        await self._register_models(state)
        self._write_hint(sorted(m.peer for n, m in state.members.items() if n != self.node_id))

    async def _register_models(self, state: RegistryState) -> None:
        """Keep the models table listing what this node serves now (REG-9)."""
        local = set(self._local_models())
        listed = {m for m, nodes in state.models.items() if self.node_id in nodes}
        for op, models in (("model.serve", local - listed), ("model.unserve", listed - local)):
            for model in sorted(models):
                await self._propose_quietly(op, {"model_id": model, "node_id": self.node_id})

    async def _propose_quietly(self, op: str, args: Mapping[str, codec.Value]) -> None:
        try:
            await self.propose(op, args, timeout_s=2.0)
        except RegistryUnavailable as exc:
            log.info("registry upkeep deferred", reason=str(exc))

    async def _follow_join_answer(self, configuration: list[str]) -> None:
        """REG-15: a node that Raft's configuration does not list runs as a learner dialling
        that configuration, whatever role the registry gave it: it votes only once its own log
        adds it (RAFT-10), so it never votes in a configuration the federation does not share.
        That covers a newcomer, a voter removed while it was away, and a learner whose list of
        voters went stale. A node the configuration lists keeps running as it is, unless it is
        a voter that does not know every voter listed: it restarts knowing them too."""
        engine = self._engine
        if self.member in configuration and engine is not None:
            known = engine.status.voters
            if not engine.learner and known and not known.issuperset(configuration):
                # A voter resumes from its commit index and hint, both kept lazily (once a
                # second): killed just after a voter was added, it restarts without it, and if
                # that voter leads, neither dials the other (RAFT-3: the greater id dials). Seen
                # in test_registry's kill -9 catch-up test: stuck for good. Voters are only
                # added, so a wrong answer can only make this member's majorities larger.
                log.info("the registry lists voters this node did not know; restarting")
                await self._restart(False, known | set(configuration))
            return
        if engine is not None and engine.learner and engine.status.voters == set(configuration):
            return
        await self._restart(True, configuration)

    async def _run_as(self, learner: bool, voters: Iterable[str]) -> None:
        """Run the engine as a voter or a learner, restarting it if its mode differs."""
        engine = self._engine
        if engine is None or engine.learner != learner:
            await self._restart(learner, voters)

    async def _restart(self, learner: bool, voters: Iterable[str]) -> None:
        """(Re)start the engine over the same log; readers keep the old state meanwhile. A
        voter follows its log's configuration; a learner dials `voters`."""
        engine = self._engine
        if engine is not None:
            log.info("registry engine restarts", learner=learner)
            self._floor = self.state
            self._engine = None
            await asyncio.to_thread(engine.stop)
        voters = sorted(voters)
        try:
            self._start_engine(learner, voters)
        except JournalError as exc:
            self.phase = "failed"
            log.error("the registry engine cannot restart", error=str(exc))
            return
        # The next start must begin where this one does: the configuration the engine starts
        # from is not in the log when it includes the node that bootstrapped the registry.
        self._write_hint(self._hint.peers if self._hint else (), voters)

    def _start_engine(self, learner: bool, voters: Iterable[str]) -> None:
        self._engine = RaftEngine(
            member=self.member,
            learner=learner,
            voters=voters,
            directory=self._dir,
            identity=self._identity,
            listener=self._listener,
            timing=self._timing,
            admits_learner=self._admits_learner,
            counters=self.counters,
            gate=self._gate,
        )

    def _admits_learner(self, node_id: str) -> bool:
        return node_id in self.state.members

    def _is_member(self) -> bool:
        return self.node_id in self.state.members

    def _known_peers(self) -> list[str]:
        peers = [m.peer for n, m in self.state.members.items() if n != self.node_id]
        return [*self._join, *(self._hint.peers if self._hint else ()), *peers]

    # ---- the hint file -----------------------------------------------------------------------

    def _read_hint(self) -> Hint | None:
        self._hint = read_hint(self._dir)
        return self._hint

    def _write_hint(self, peers: Iterable[str], voters: Iterable[str] = ()) -> None:
        """Record how to start next time: the engine's mode and the configuration it knows (or,
        before it has heard from anyone, `voters`)."""
        engine = self._engine
        if engine is None:
            return
        # Before its first tick an engine publishes no configuration: never record "only me",
        # which would make the next start forget the voters the log cannot name.
        known = engine.status.voters or set(voters)
        if not known:
            return
        hint = Hint(self.member, engine.learner, tuple(sorted(known)), tuple(sorted(peers)))
        if hint == self._hint:
            return
        data = {
            "member": hint.member,
            "learner": hint.learner,
            "voters": list(hint.voters),
            "peers": list(hint.peers),
        }
        write_atomically(self._dir / HINT_FILE, json.dumps(data, indent=2).encode())
        self._hint = hint

    def _spawn(self, coroutine: Any) -> None:
        self._tasks.append(asyncio.create_task(coroutine))


def _retrieved(future: "asyncio.Future[None]") -> None:
    if not future.cancelled():
        future.exception()


def _hears_a_leader(status: RaftStatus) -> bool:
    """This node leads, or is connected to the member it takes for the leader. pysyncobj keeps
    naming a leader it lost until it can campaign, which a node nobody accepts never can."""
    return status.is_leader or (status.leader is not None and status.leader in status.connected)


def _caught_up(status: RaftStatus) -> bool:
    """A learner has applied all the leader had committed when it last wrote: only then does its
    log's configuration say what the federation's says (a learner just back from the dead
    still holds the entry that added it, not yet the one that removed it)."""
    return status.leader is not None and 0 < status.leader_commit <= status.applied_index


async def _released(engine: RaftEngine) -> bool:
    """Whether, within RELEASE_TIMEOUT_S, a leader other than us closed our connection: it
    does so when it takes us out of Raft's configuration."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + RELEASE_TIMEOUT_S
    while loop.time() < deadline:
        status = engine.status
        if not status.is_leader and status.leader and status.leader not in status.connected:
            return True
        await asyncio.sleep(0.05)
    return False


class _Outcomes:
    """Outcomes from the Raft tick thread, handed to the event loop one batch per wake-up.

    With one `call_soon_threadsafe` per outcome, a tick that commits 64 writes wakes the loop
    64 times: 64 writes to its self-pipe, each a system call on the tick thread. Here the first
    outcome of a batch schedules the hand-over, and the ones that follow before it runs ride
    along."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._pending: list[tuple[asyncio.Future[Any], object]] = []

    def settle(self, future: "asyncio.Future[Any]", value: object) -> None:
        """Any thread: `future` gets `value` on the loop (unless it is done by then)."""
        with self._lock:
            first = not self._pending
            self._pending.append((future, value))
        if first:
            self._loop.call_soon_threadsafe(self._hand_over)

    def _hand_over(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        for future, value in pending:
            _settle(future, value)


def _settle(future: asyncio.Future[Any], value: object) -> None:
    if not future.done():
        future.set_result(value)


def _expire(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())


def _parse_join_answer(body: bytes) -> tuple[str, list[str], list[str]]:
    value = codec.decode(body)
    if not isinstance(value, dict) or value.keys() != {"peers", "role", "voters"}:
        raise MalformedFrame("bad join answer")
    role, voters, peers = value["role"], value["voters"], value["peers"]
    if role not in ("voter", "learner") or not isinstance(voters, list) or not voters:
        raise MalformedFrame("bad join answer")
    for member in voters:
        parse_raft_id(member)
    if not isinstance(peers, list) or not all(isinstance(p, str) for p in peers):
        raise MalformedFrame("bad join answer")
    return role, voters, peers  # type: ignore[return-value]

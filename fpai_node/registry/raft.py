"""The registry's Raft engine: pysyncobj behind our transport, journal and pickle (specs/0005 §5).

This is the only module that imports pysyncobj. What pysyncobj brings is the Raft algorithm
(elections, log matching, commit, snapshots, single-server membership changes, leadership
transfer). What it would bring on its own is unsafe here, so each of those parts is replaced:

- transport: `TlsTransport` carries Raft messages as canonical MessagePack (raft_wire) over
  mutual TLS 1.3 with the node certificates; the peer's certificate must prove the node id its
  Raft member id claims, and a learner may send only what a learner sends (RAFT-3, RAFT-8);
- journal: `DurableJournal` fsyncs entries, term and vote (journal.py), one fdatasync per batch
  of entries (group commit: see `_Replica`);
- snapshots: our canonical file, written and restored by `_Replica` (REG-11, RAFT-9);
- pickle: pysyncobj's module-level pickle is replaced by `safe_pickle`, which loads no globals.

pysyncobj runs everything in one tick thread: Raft, the transport's sockets (on pysyncobj's own
poller), the journal, applying commands, and the leader's membership policy; only a leader's own
fdatasync runs on a thread beside it (`_LeaderSync`). Other threads only enqueue proposals
(pysyncobj's queue is thread-safe) and read the immutable `state` and `status` this module
publishes.
"""

import logging
import os
import queue
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pysyncobj.serializer
import pysyncobj.syncobj
import structlog
from pysyncobj import SyncObj, SyncObjConf
from pysyncobj.config import FAIL_REASON
from pysyncobj.journal import MemoryJournal
from pysyncobj.node import Node
from pysyncobj.poller import POLL_EVENT_TYPE
from pysyncobj.serializer import SERIALIZER_STATE
from pysyncobj.syncobj import _RAFT_STATE
from pysyncobj.syncobj import monotonicTime as raft_clock  # the clock of its election deadline
from pysyncobj.transport import Transport

from fpai_node.hostport import parse_host_port
from fpai_node.identity.tls import PeerIdentityError, TlsIdentity, client_context, peer_node_id
from fpai_node.identity.tls import server_context as tls_server_context
from fpai_node.peer.limits import Slots
from fpai_node.registry import raft_wire, safe_pickle
from fpai_node.registry.journal import (
    DurabilityLost,
    DurableJournal,
    JournalError,
    fsync_directory,
    fsync_file,
)
from fpai_node.registry.membership import (
    DOWN,
    Action,
    ClusterView,
    MarkDown,
    RaftChange,
    SetRole,
    StepDown,
    is_repair,
    next_action,
    repair_description,
)
from fpai_node.registry.pre_vote import PreVote
from fpai_node.registry.quorum import commit_bound
from fpai_node.registry.raft_wire import MAX_TERM_STEP, TERM_RAISE_INTERVAL_S, raft_id
from fpai_node.registry.read_index import Leadership, Mark, ReadDone, ReadIndex
from fpai_node.registry.state import RegistryState, Result, apply, encode_command
from fpai_node.registry.tls_stream import StreamState, TlsStream
from fpai_node.service import ActionGate, Unsupervised
from fpai_node.wire import codec
from fpai_node.wire.errors import MalformedFrame

SNAPSHOT_FILE = "snapshot"
# RAFT-9: every replica holds the whole registry in memory, and bulk data lives elsewhere
# (REG-2); a received snapshot larger than this is no registry but a disk-filling stream
MAX_SNAPSHOT_BYTES = 256 << 20
LEARNER_MESSAGES = frozenset({"next_node_idx", "apply_command"})  # RAFT-8, pysyncobj's names
LEARNER_PREFIX = "learner:"  # pysyncobj keys state by node id: a learner promoted to voter must
# not share its key with the voter it becomes, or losing the old connection drops the new voter
ACTION_TIMEOUT_S = 10.0  # a membership step with no answer by then is retried
MAX_UNIDENTIFIED = 64  # accepted connections that have not said hello yet (anyone can open one)
# RAFT-3: a member dials another once (again after a loss); one host, however hostile, holds an
# eighth of the slots and cannot keep the registry's own connections out
MAX_UNIDENTIFIED_PER_ADDRESS = 8
POLICY_PERIOD_S = 0.5  # how often the leader compares Raft's voters with the registry's
META_PERIOD_S = 1.0  # a leader's sync thread writes the commit index as often as pysyncobj's timer
_NEVER = float("inf")  # an election deadline pysyncobj cannot reach (RAFT-19, _Replica._onTick)
PUBLISH_PERIOD_S = 0.05  # status and connection upkeep at most this often per tick thread
# the messages this node takes a higher term from (pysyncobj's two, and RAFT-19's notice)
_RAISING = frozenset({"request_vote", "append_entries", "term_notice"})
Done = Callable[[Result | None, int], None]
_READ_ERROR = POLL_EVENT_TYPE.READ | POLL_EVENT_TYPE.ERROR
# Why a connection closed that counts as a refusal: the handshake's (TLS-8), and a frame over
# MAX_FRAME_BYTES (RAFT-2); the rest (the peer left, a timeout after hello) are no one's fault
_COUNTED_CLOSES = frozenset(
    {
        "oversized",
        "no_certificate",
        "expired",
        "untrusted_certificate",
        "tls_version",
        "not_tls",
        "handshake_failed",
        "handshake_aborted",
        "handshake_timeout",
    }
)


def _create_journal(path: str | None) -> Any:
    return DurableJournal(Path(path)) if path else MemoryJournal()


def _harden_pysyncobj() -> None:
    """Route every pickle pysyncobj performs through safe_pickle and its journal through ours.
    Both are module globals that SyncObj looks up when it runs; nothing else is changed."""
    pysyncobj.syncobj.pickle = safe_pickle
    pysyncobj.serializer.pickle = safe_pickle
    pysyncobj.syncobj.createJournal = _create_journal


_harden_pysyncobj()


class _ToStructlog(logging.Handler):
    """pysyncobj logs through the standard library; keep JSON logs JSON."""

    def emit(self, record: logging.LogRecord) -> None:
        level = record.levelname.lower()
        getattr(structlog.get_logger("fpai.raft.pysyncobj"), level, structlog.get_logger().error)(
            record.getMessage(), exc_info=record.exc_info
        )


_pysyncobj_log = logging.getLogger("pysyncobj")
_pysyncobj_log.addHandler(_ToStructlog())
_pysyncobj_log.propagate = False


@dataclass(frozen=True, slots=True)
class RaftTiming:
    """Raft timers; defaults chosen for 2-core machines under load (ENVIRONMENT.md)."""

    election_min_s: float = 1.0  # shorter ones caused spurious elections on 2 busy cores
    election_max_s: float = 2.0  # randomised spread: one candidate usually wins the first round
    heartbeat_s: float = 0.1  # well under a third of the election timeout, as Raft needs
    reconnect_s: float = 0.5  # a restarted voter is back within a second, not pysyncobj's 5 s
    leader_fallback_s: float = 5.0  # a leader cut off from a majority stops serving writes
    dead_after_s: float = 60.0  # a voter unreachable this long is replaced by a live learner
    # A snapshot replaces the log past this many entries. Each one encodes the whole state, the
    # last hour's idempotency keys included (REG-4), holding the GIL on its own thread: at 5,000,
    # a busy registry took one every 2 s, each longer than the last. A replay on restart costs
    # about 30 us an entry (measured: 1.4 s for 50,000 param.set); etcd's default is 100,000.
    compact_after_entries: int = 50_000

    def conf(self, **extra: Any) -> SyncObjConf:
        return SyncObjConf(
            raftMinTimeout=self.election_min_s,
            raftMaxTimeout=self.election_max_s,
            appendEntriesPeriod=self.heartbeat_s,
            connectionTimeout=max(3.5, self.election_max_s),
            connectionRetryTime=self.reconnect_s,
            leaderFallbackTimeout=self.leader_fallback_s,
            appendEntriesUseBatch=False,  # no 100 ms floor on a single write (ENVIRONMENT.md)
            # Far above the largest entry a replica accepts (REG-2: 64 KiB commands), so pysyncobj
            # never splits an entry into its pickled "transmission" chunks (RAFT-4).
            appendEntriesBatchSizeBytes=1 << 20,
            dynamicMembershipChange=True,
            commandsWaitLeader=True,
            tcp_keepalive=None,
            logCompactionMinEntries=self.compact_after_entries,
            **extra,
        )


class RaftMember(Node):  # type: ignore[misc]
    """A Raft member, named `<node id>@<HOST:PORT>` (RAFT-1)."""

    def __init__(self, member: str) -> None:
        node_id, address = raft_wire.parse_raft_id(member)
        super().__init__(member)
        host_port = parse_host_port(address)
        self.node_id = node_id
        self.host = host_port.host
        self.port = host_port.port


@dataclass(frozen=True, slots=True)
class RaftStatus:
    """What the tick thread last published; safe to read from any thread."""

    member: str
    learner: bool
    leader: str | None = None
    is_leader: bool = False
    term: int = 0
    commit_index: int = 0
    applied_index: int = 0
    voters: frozenset[str] = frozenset()  # Raft's configuration as this member's log says
    connected: frozenset[str] = frozenset()
    caught_up: frozenset[str] = frozenset()  # leader only: learners holding every commit
    synced: frozenset[str] = frozenset()  # leader only: voters holding its whole log
    has_quorum: bool = False
    in_configuration: bool = False  # this member's own log lists it among the voters
    leader_commit: int = 0  # the commit index in the leader's last message (0: none, or a snapshot)


@dataclass
class TransportCounters:
    """Refusals by reason and frames by direction, shared across engine restarts."""

    refusals: Counter[str] = field(default_factory=Counter)
    frames_in: int = 0
    frames_out: int = 0


@dataclass(frozen=True, slots=True)
class _Wiring:
    member: str
    learner: bool
    server: ssl.SSLContext
    client: ssl.SSLContext
    listener: socket.socket
    admits_learner: Callable[[str], bool]
    counters: TransportCounters
    reconnect_s: float
    log: Any
    pinned: frozenset[str] = frozenset()  # a learner dials these whatever its log says


class TlsTransport(Transport):  # type: ignore[misc]
    """pysyncobj's Transport over mutual TLS with the node certificates (RAFT-2, RAFT-3).

    The member with the greater id dials (a learner dials every voter); the dialler sends
    `hello` first. The accepting side takes the dialler's node id from its certificate and
    accepts the hello only if the claimed member id carries that node id and is a voter it knows,
    or, for a learner, a registry member; then it answers with its own hello. Either side counts
    the other as connected only then: a node nobody accepts believes itself alone, and a voter
    alone never campaigns (pysyncobj starts elections only when connected to someone)."""

    def __init__(
        self, syncObj: SyncObj, selfNode: Node | None, otherNodes: Iterable[Node], wiring: _Wiring
    ) -> None:
        super().__init__(syncObj, selfNode, otherNodes)
        self._w = wiring
        self._poller = syncObj._poller
        self._nodes: dict[str, RaftMember] = {}
        self._learners: dict[str, Node] = {}
        self._streams: dict[str, TlsStream] = {}  # member id -> its live stream
        self._members: dict[TlsStream, str] = {}  # stream -> member id, once known
        self._certified: dict[TlsStream, str] = {}  # accepted stream -> node id it proved
        self._unidentified = Slots(MAX_UNIDENTIFIED, MAX_UNIDENTIFIED_PER_ADDRESS)
        self._awaiting_answer: set[TlsStream] = set()  # dialled, hello sent, no answer yet
        self._last_dial: dict[str, float] = {}
        self._term_raised: dict[str, float] = {}  # member -> when it last raised our term
        # RAFT-18: per connection, append_entries sent and successful next_index received
        self._appends_sent: Counter[TlsStream] = Counter()
        self._appends_answered: Counter[TlsStream] = Counter()
        self._next_upkeep = 0.0
        self._sync_obj = syncObj
        self._frames = raft_wire.FrameEncoder()
        # A learner dials the configuration it was given as well as the one its log replays:
        # a log that is behind may not yet name the leader it needs to hear from.
        self._pinned = {m: RaftMember(m) for m in wiring.pinned if m != wiring.member}
        syncObj.addOnTickCallback(self._on_tick)
        self._poller.subscribe(wiring.listener.fileno(), self._on_accept, _READ_ERROR)
        for node in otherNodes:
            self.addNode(node)

    # pysyncobj's Transport interface

    def addNode(self, node: Node) -> None:
        if node.id == self._w.member:  # a learner replaying its days as a voter
            return
        member = node if isinstance(node, RaftMember) else RaftMember(node.id)
        self._nodes[member.id] = member

    def dropNode(self, node: Node) -> None:
        self._nodes.pop(node.id, None)
        if node.id in self._pinned:
            return
        stream = self._streams.get(node.id)
        if stream is not None:
            self._members.pop(stream, None)
            del self._streams[node.id]
            stream.close("dropped")

    def send(self, node: Node, message: dict[str, Any]) -> bool:
        stream = self._streams.get(node.id.removeprefix(LEARNER_PREFIX))
        if stream is None or stream.state is not StreamState.OPEN:
            return False
        kind = message["type"]
        if kind == "next_node_idx" and not self._sync_obj.make_durable():
            return False  # RAFT-13: never acknowledge what is not on disk
        if kind == "append_entries":
            self._appends_sent[stream] += 1
        elif kind == "apply_command_response" and "log_idx" in message:
            self._sync_obj.note_forwarded(node, message["log_idx"])
        try:
            frame = self._frames.encode(message)
        except (ValueError, codec.EncodeError) as exc:
            self._w.log.error("raft message not sent", type=message.get("type"), error=str(exc))
            return False
        self._w.counters.frames_out += 1
        sent = stream.send(frame)
        self._subscribe(stream)
        return sent

    def destroy(self) -> None:
        self.setOnMessageReceivedCallback(None)
        self.setOnNodeConnectedCallback(None)
        self.setOnNodeDisconnectedCallback(None)
        self.setOnReadonlyNodeConnectedCallback(None)
        self.setOnReadonlyNodeDisconnectedCallback(None)
        self._poller.unsubscribe(self._w.listener.fileno())
        for stream in [*self._streams.values(), *self._certified, *self._members]:
            stream.close("shutdown")

    # connections

    def _dials(self, member: str) -> bool:
        return self._w.learner or self._w.member > member

    def _on_tick(self) -> None:
        now = time.monotonic()
        if now < self._next_upkeep:
            return
        self._next_upkeep = now + PUBLISH_PERIOD_S
        for stream in [*self._streams.values(), *self._certified, *self._members]:
            stream.check_deadline(now)
        for stream in [*self._certified, *self._awaiting_answer]:
            if now > stream.deadline:  # connected, but no hello in time: not a Raft peer
                self._refuse(stream, "hello_timeout")
        retry = self._w.reconnect_s
        for member, node in list({**self._pinned, **self._nodes}.items()):
            if member in self._streams or not self._dials(member):
                continue
            if now - self._last_dial.get(member, 0.0) < retry:
                continue
            self._last_dial[member] = now
            self._dial(node)

    def _dial(self, node: RaftMember) -> None:
        try:
            stream = TlsStream.dial(
                node.host,
                node.port,
                self._w.client,
                max_frame=raft_wire.MAX_FRAME_BYTES,
                on_open=self._on_dialled_open,
                on_frame=self._on_frame,
                on_close=self._on_close,
            )
        except OSError:
            return
        self._streams[node.id] = stream
        self._members[stream] = node.id
        self._subscribe(stream, force=True)

    def _on_accept(self, descr: int, event: int) -> None:
        try:
            sock, remote = self._w.listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._w.log.warning("raft accept failed", error=str(exc))
            return
        refusal = self._unidentified.refusal(remote[0])
        if refusal is not None:
            sock.close()
            self._w.counters.refusals[refusal] += 1
            return
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            stream = TlsStream(
                sock,
                self._w.server,
                server_side=True,
                max_frame=raft_wire.MAX_FRAME_BYTES,
                on_open=self._on_accepted_open,
                on_frame=self._on_frame,
                on_close=self._on_close,
            )
        except (ssl.SSLError, OSError):
            sock.close()
            return
        self._certified[stream] = ""
        self._unidentified.take(stream, remote[0])
        self._subscribe(stream, force=True)

    def _subscribe(self, stream: TlsStream, force: bool = False) -> None:
        if stream.state is StreamState.CLOSED:
            return
        wants = stream.wants_write
        if force or wants != getattr(stream, "subscribed_write", None):
            mask = _READ_ERROR | (POLL_EVENT_TYPE.WRITE if wants else 0)
            self._poller.subscribe(stream.fileno, self._event_handler(stream), mask)
            stream.subscribed_write = wants  # type: ignore[attr-defined]

    def _event_handler(self, stream: TlsStream) -> Callable[[int, int], None]:
        def handle(descr: int, event: int) -> None:
            stream.on_event(
                bool(event & POLL_EVENT_TYPE.READ),
                bool(event & POLL_EVENT_TYPE.WRITE),
                bool(event & POLL_EVENT_TYPE.ERROR),
            )
            self._subscribe(stream)

        return handle

    def _known(self, member: str) -> RaftMember | None:
        return self._nodes.get(member) or self._pinned.get(member)

    def _on_dialled_open(self, stream: TlsStream, certificate: bytes) -> None:
        member = self._members.get(stream)
        node = self._known(member or "")
        if node is None:
            stream.close("dropped")
            return
        try:
            peer_node_id(certificate, expected=node.node_id)
        except PeerIdentityError as exc:
            self._refuse(stream, exc.reason)
            return
        stream.send(raft_wire.hello(self._w.member, self._w.learner))
        self._awaiting_answer.add(stream)

    def _on_accepted_open(self, stream: TlsStream, certificate: bytes) -> None:
        try:
            self._certified[stream] = peer_node_id(certificate)
        except PeerIdentityError as exc:
            self._refuse(stream, exc.reason)

    def _on_frame(self, stream: TlsStream, frame: bytes) -> None:
        self._w.counters.frames_in += 1
        member = self._members.get(stream)
        if member is None:
            self._on_hello(stream, frame)
            return
        if stream in self._awaiting_answer:
            self._on_answer(stream, member, frame)
            return
        try:
            message = raft_wire.decode_message(frame)
        except MalformedFrame as exc:
            self._refuse(stream, "malformed", detail=str(exc))
            return
        learner = member in self._learners
        refusal = self._authorize(member, learner, message)
        if refusal is not None:
            self._w.counters.refusals[refusal] += 1
            self._w.log.warning("raft message refused", reason=refusal, member=member)
            return
        node = self._learners[member] if learner else self._known(member)
        if node is not None:
            if message["type"] == "next_node_idx" and message["success"]:
                self._appends_answered[stream] += 1
            self._onMessageReceived(node, message)

    def marks(self, voters: frozenset[str]) -> dict[str, Mark]:
        """RAFT-18: where each voter's connection stands as a read arrives."""
        marks = {}
        for voter in voters:
            stream = self._streams.get(voter)
            marks[voter] = Mark(stream, self._appends_sent[stream] if stream else 0)
        return marks

    def answered_since(self, voter: str, mark: Mark) -> bool:
        """The voter answered an append_entries sent after the mark: on the connection marked,
        more successful answers than there were append_entries on it then; on a connection
        opened since (it replaced the marked one, or there was none), any success at all, as
        everything sent on it was sent after the mark."""
        stream = self._streams.get(voter)
        if stream is None:
            return False
        sent_before = mark.sent if stream is mark.connection else 0
        return self._appends_answered[stream] > sent_before

    def _authorize(self, member: str, learner: bool, message: dict[str, Any]) -> str | None:
        """RAFT-8: a learner may only acknowledge entries and forward commands, and a forwarded
        command must be the sender's own (its `by` is the sender's node id). RAFT-15: a voter
        raises this node's term by at most MAX_TERM_STEP, at most once per interval."""
        kind = message["type"]
        if learner and kind not in LEARNER_MESSAGES:
            return "learner_message"
        if kind in _RAISING and message["term"] > self._sync_obj.raftCurrentTerm:
            return self._term_raise(member, message["term"])
        if kind == "apply_command":
            author = raft_wire.command_author(message["command"])
            if author is None:
                return "not_a_command"
            if author != raft_wire.parse_raft_id(member)[0]:
                return "forged_command"
        return None

    def _term_raise(self, member: str, term: int) -> str | None:
        if term > self._sync_obj.raftCurrentTerm + MAX_TERM_STEP:
            return "term_jump"
        now = time.monotonic()
        if now - self._term_raised.get(member, -TERM_RAISE_INTERVAL_S) < TERM_RAISE_INTERVAL_S:
            return "term_rate"
        self._term_raised[member] = now
        return None

    def _on_answer(self, stream: TlsStream, member: str, frame: bytes) -> None:
        try:
            answered, learner = raft_wire.parse_hello(frame)
        except MalformedFrame:
            self._refuse(stream, "malformed")
            return
        if answered != member or learner:
            self._refuse(stream, "wrong_member", member=answered)
            return
        self._awaiting_answer.discard(stream)
        node = self._known(member)
        if node is not None:
            self._onNodeConnected(node)

    def _on_hello(self, stream: TlsStream, frame: bytes) -> None:
        proven = self._certified.pop(stream, "")
        self._unidentified.release(stream)
        try:
            member, learner = raft_wire.parse_hello(frame)
        except MalformedFrame as exc:
            self._refuse(stream, "unknown_version" if "version" in str(exc) else "malformed")
            return
        node_id = raft_wire.parse_raft_id(member)[0]
        if self._w.learner:  # voters never dial a learner: nobody has a reason to
            self._refuse(stream, "not_a_voter", member=member)
            return
        if not proven or node_id != proven:
            self._refuse(stream, "node_id_mismatch", member=member)
            return
        if learner and not self._w.admits_learner(node_id):
            self._refuse(stream, "not_a_member", member=member)
            return
        if not learner and member not in self._nodes:
            self._refuse(stream, "unknown_member", member=member)
            return
        previous = self._streams.pop(member, None)
        if previous is not None:
            self._members.pop(previous, None)
            previous.close("replaced")
            self._disconnected(member)
        self._streams[member] = stream
        self._members[stream] = member
        stream.send(raft_wire.hello(self._w.member, self._w.learner))
        if learner:
            node = Node(LEARNER_PREFIX + member)
            self._learners[member] = node
            self._onReadonlyNodeConnected(node)
        else:
            self._onNodeConnected(self._nodes[member])

    def _refuse(self, stream: TlsStream, reason: str, **context: object) -> None:
        self._w.counters.refusals[reason] += 1
        self._w.log.warning("raft connection refused", reason=reason, **context)
        stream.close(reason)

    def _on_close(self, stream: TlsStream, reason: str) -> None:
        self._poller.unsubscribe(stream.fileno)
        self._appends_sent.pop(stream, None)
        self._appends_answered.pop(stream, None)
        self._certified.pop(stream, None)
        self._unidentified.release(stream)
        answered = stream not in self._awaiting_answer
        self._awaiting_answer.discard(stream)
        member = self._members.pop(stream, None)
        if reason in _COUNTED_CLOSES:
            self._w.counters.refusals[reason] += 1
            self._w.log.warning("raft connection refused", reason=reason)
        if member is not None and self._streams.get(member) is stream:
            del self._streams[member]
            if answered:
                self._disconnected(member)

    def _disconnected(self, member: str) -> None:
        learner = self._learners.pop(member, None)
        if learner is not None:
            self._onReadonlyNodeDisconnected(learner)
        elif (node := self._known(member)) is not None:
            self._onNodeDisconnected(node)


# ---- the replicated state machine ----------------------------------------------------------

SNAPSHOT_FORMAT = "fpai-registry-snapshot-1"


Snapshot = tuple[RegistryState, raft_wire.Position, raft_wire.Position, list[str]]


def read_snapshot(path: Path) -> Snapshot:
    """RAFT-9: a snapshot file, validated whole; JournalError if it is not one."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise JournalError(f"registry snapshot {path} cannot be used: {exc}") from None
    return parse_snapshot(data, str(path))


def parse_snapshot(data: bytes, source: str) -> Snapshot:
    """RAFT-9: a snapshot's bytes, validated whole; JournalError naming `source` if they are
    not one."""
    try:
        value = codec.decode(data)
        if not isinstance(value, dict) or value.keys() != {
            "cluster",
            "format",
            "last",
            "prev",
            "state",
        }:
            raise ValueError("unexpected keys")
        if value["format"] != SNAPSHOT_FORMAT:
            raise ValueError(f"unknown format {value['format']!r}")
        cluster = value["cluster"]
        if not isinstance(cluster, list):
            raise ValueError("bad cluster")
        for member in cluster:
            raft_wire.parse_raft_id(member)
        last = raft_wire.entry_with_position(value["last"])
        prev = raft_wire.entry_with_position(value["prev"])
        state = RegistryState.from_value(value["state"])
    except (ValueError, MalformedFrame) as exc:
        raise JournalError(f"registry snapshot {source} cannot be used: {exc}") from None
    return state, last, prev, cluster  # type: ignore[return-value]


def _position(entry: raft_wire.Position) -> list[codec.Value]:
    command, idx, term = entry
    return [idx, term, *raft_wire.entry_to_wire(command)]


class _CoalescedWake:
    """pysyncobj's pipe notifier, written to once per tick rather than once per command.

    Every proposal wakes the tick thread with a write to a pipe: a system call on the proposing
    thread (the event loop), which releases the GIL and waits to get it back from the tick
    thread. Commands queued before the tick drains the queue ride on the first one's wake-up;
    the tick clears `pending` before it drains, so a command queued after that wakes it again."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.pending = False

    def notify(self) -> None:
        if not self.pending:
            self.pending = True
            self.inner.notify()


class _LeaderSync:
    """A leader's fdatasync on a thread of its own (RAFT-13; the Raft thesis, section 10.2.1).

    The tick thread hands the sync over once it has sent a batch, and goes on to read its
    followers' answers while the disk works; the leader counts its own log towards a commit
    only up to the journal's `durable_index` (`commit_bound`), and this thread wakes the tick
    thread each time that moves. A follower still syncs on the tick thread: it must not answer
    before its own entries are on disk."""

    def __init__(
        self,
        journal: DurableJournal,
        synced: Callable[[], None],
        lost: Callable[[DurabilityLost], None],
        log: Any,  # the engine's bound structlog logger
    ) -> None:
        self._journal = journal
        self._synced = synced
        self._lost = lost
        self._log = log
        self._asked = threading.Condition()
        self._pending = False
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="raft-leader-sync", daemon=True)
        self._thread.start()

    def request(self) -> None:
        """Tick thread: sync what the journal has written so far, soon."""
        with self._asked:
            self._pending = True
            self._asked.notify()

    def stop(self) -> None:
        """Let the sync under way finish, then end the thread."""
        with self._asked:
            self._stopping = True
            self._asked.notify()
        self._thread.join()

    def _flush_meta(self) -> None:
        try:
            self._journal.flush_meta()
        except OSError as exc:  # as on the tick thread: logged, and tried again a period later
            self._log.warning("the registry's commit index was not written", error=str(exc))

    def _run(self) -> None:
        next_meta = time.monotonic() + META_PERIOD_S
        while True:
            with self._asked:
                while not (self._pending or self._stopping):
                    self._asked.wait()
                if self._stopping:
                    return
                self._pending = False
            try:
                self._journal.sync()
                self._synced()
                if time.monotonic() >= next_meta:  # the commit index, kept lazily: once a second
                    next_meta = time.monotonic() + META_PERIOD_S
                    self._flush_meta()
            except DurabilityLost as exc:
                self._lost(exc)
                return
            except Exception as exc:  # a sync thread gone quietly would stall every commit
                self._lost(DurabilityLost(f"the leader's sync thread failed: {exc!r}"))
                return


class _Replica(SyncObj):  # type: ignore[misc]
    """The registry state, changed only by applying committed entries, in log order.

    Group commit (RAFT-13, the Raft thesis section 10.2.1): the journal writes entries as they
    come and syncs them in batches. The leader appends every queued command, sends them to its
    followers in one `append_entries` each, and hands its own sync to `_LeaderSync` while they
    write theirs; its tick thread goes on reading answers, and counts the leader's own log
    towards a commit only up to what is durable (`_hold_back_matches`). A lone voter syncs on
    the tick thread, before it counts. A follower syncs before it acknowledges (the transport
    calls `make_durable` for every `next_index`). pysyncobj with `appendEntriesUseBatch=False` would
    send an `append_entries` to every follower after each command; with it True, it waits up
    to a heartbeat (100 ms) before sending any. Here commands are sent as soon as the queue is
    drained, once per tick, and a new commit index rides with them (RAFT-7)."""

    _SyncObj__pipeNotifier: Any  # pysyncobj's, replaced by a _CoalescedWake over it
    _SyncObj__raftElectionDeadline: float  # pysyncobj's: when this voter may campaign (RAFT-19)

    def __init__(
        self,
        self_member: RaftMember | None,
        others: list[RaftMember],
        directory: Path,
        timing: RaftTiming,
        wiring: _Wiring,
    ) -> None:
        self.registry = RegistryState()
        self.snapshot_error: str | None = None
        self._log = wiring.log
        self._refusals = wiring.counters.refusals
        self._received_bytes = 0  # of the snapshot being received (RAFT-9)
        self._received: Snapshot | None = None  # the one validated, for _load_snapshot to use
        self.durability_error: str | None = None  # the journal could not sync: stopped for good
        self._leader_sync: _LeaderSync | None = None  # started the first time this node leads
        self._true_matches: dict[Node, int] = {}  # while pysyncobj counts commits (RAFT-13)
        self._draining = False  # inside _checkCommandsToApply: append_entries wait for the end
        self._drained_some = False
        # Followers' forwarded commands not yet known committed: member -> their indexes (leader)
        self._forwarded: dict[Node, list[int]] = {}
        self._pre_vote = PreVote(timing.election_min_s)  # RAFT-19
        self._snapshot_path = directory / SNAPSHOT_FILE
        self._snapshot_state = SERIALIZER_STATE.NOT_SERIALIZING
        self._snapshot_writer: threading.Thread | None = None
        # A snapshot received from the leader bumps the generation before pysyncobj renames it
        # into place; a writer that started before gives up rather than put an older one back.
        self._snapshot_lock = threading.Lock()
        self._snapshot_generation = 0
        conf = timing.conf(
            journalFile=str(directory),
            fullDumpFile=str(directory / SNAPSHOT_FILE),
            serializer=self._save_snapshot,
            deserializer=self._load_snapshot,
            serializeChecker=self._snapshot_progress,
        )
        super().__init__(
            self_member,
            others,
            conf=conf,
            nodeClass=RaftMember,
            transportClass=lambda obj, me, nodes: TlsTransport(obj, me, nodes, wiring),
        )
        self.addOnTickCallback(self.make_durable)  # the last thing before the tick thread waits
        self._wake = _CoalescedWake(self._SyncObj__pipeNotifier)
        self._SyncObj__pipeNotifier = self._wake

    def make_durable(self) -> bool:
        """Sync what the journal wrote since the last sync; False once it could not (then the
        engine stops: nothing may be acknowledged, and the log must be read from disk again).
        A leader with other voters hands the sync to its `_LeaderSync` and returns at once."""
        if self.durability_error is not None:
            return False
        journal = self._SyncObj__raftLog
        aside = journal.meta_elsewhere = self._syncs_aside()
        if aside:
            if journal.unsynced:
                if self._leader_sync is None:
                    # The pipe itself, not `_wake`: a wake it coalesced with a proposal's, whose
                    # byte the poll already read, would leave the commit to the next timeout.
                    wake = self._wake.inner.notify
                    self._leader_sync = _LeaderSync(journal, wake, self._sync_lost, self._log)
                self._leader_sync.request()
            return True
        try:
            journal.sync()
        except DurabilityLost as exc:
            self._sync_lost(exc)
            return False
        return True

    def _sync_lost(self, exc: DurabilityLost) -> None:
        """Any thread: the journal could not sync; Raft stops on this node for good."""
        if self.durability_error is not None:
            return  # the sync thread and then the tick thread may both find it
        self.durability_error = str(exc)
        self._log.critical("the registry log cannot be made durable; Raft stops", error=str(exc))
        self.destroy()  # the tick thread stops before its next tick: nothing more is counted

    def _syncs_aside(self) -> bool:
        """A leader with other voters: its own sync runs beside replication (`_LeaderSync`). A
        lone voter's commit rests on its own disk alone, so it syncs before it counts."""
        return bool(self._SyncObj__otherNodes) and self._SyncObj__raftState == _RAFT_STATE.LEADER

    def _hold_back_matches(self) -> None:
        """Before pysyncobj's commit count, which counts the leader's own log whole: lower the
        other voters' match indexes to what a majority holds on disk, the leader's own log
        counted up to its durable index (RAFT-13). pysyncobj then commits exactly that far;
        `_restore_matches` puts the true indexes back before any answer is read."""
        if not self._syncs_aside():
            return
        matches, others = self._SyncObj__raftMatchIndex, self._SyncObj__otherNodes
        durable = self._SyncObj__raftLog.durable_index
        bound = commit_bound(durable, [matches.get(n, 0) for n in others], len(others) + 1)
        held = {node: matches[node] for node in others if node in matches}
        for node, match in held.items():
            matches[node] = min(match, bound)
        self._true_matches = held

    def _restore_matches(self) -> None:
        if self._true_matches:
            self._SyncObj__raftMatchIndex.update(self._true_matches)
            self._true_matches = {}

    def _doDestroy(self) -> None:
        """Tick thread, stopping: the leader's sync thread ends first; the journal then syncs
        what is left as it closes."""
        if self._leader_sync is not None:
            self._leader_sync.stop()
        super()._doDestroy()

    def _onTick(self, timeToWait: float = 0.0) -> None:
        """Every tick starts with a sync of the entries appended since the last one (while
        handling messages at the end of the previous tick: a leader's no-op as it is elected;
        or by a tick that a handler ended early): on the tick thread, durable before this tick
        counts commits; a leader with other voters hands it to `_LeaderSync`, and this tick
        counts its own log only up to what that thread has synced (`_hold_back_matches`). A
        lone voter that elects itself within a tick counts its no-op in the next one."""
        if self.make_durable():
            # pysyncobj reads its clock again later in the tick: shown the real deadline, one
            # passing between the two reads (a GIL switch, a slow metadata sync) would start
            # an election with no pre-vote (a CI failure showed it). So it sees none.
            held = None if self._pre_vote_first() else self._SyncObj__raftElectionDeadline
            if held is not None:
                self._SyncObj__raftElectionDeadline = _NEVER
            self._hold_back_matches()
            try:
                super()._onTick(timeToWait)
            finally:  # unless a message set a deadline of its own (a leader heard, a vote cast)
                self._restore_matches()  # already done, unless the tick ended before applying
                if held is not None and self._SyncObj__raftElectionDeadline == _NEVER:
                    self._SyncObj__raftElectionDeadline = held

    # ---- pre-vote (RAFT-19) ------------------------------------------------------------------

    def _pre_vote_first(self) -> bool:
        """Before pysyncobj's tick may start an election: when the election timer has fired,
        hold the election for another timeout and ask the voters first; it goes ahead at the
        next tick once a majority said yes. A leader's hand-over (`timeout_now`) skips this:
        the voters still hear from the leader that asked for it. True if pysyncobj may
        campaign in this tick (or is not a voter that could)."""
        if self._SyncObj__selfNode is None or self._SyncObj__raftState not in (
            _RAFT_STATE.FOLLOWER,
            _RAFT_STATE.CANDIDATE,
        ):
            return True
        if self._SyncObj__transferInProgress:
            return True
        now = raft_clock()  # pysyncobj's (CLOCK_MONOTONIC_RAW), not time.monotonic: they drift
        if not self._SyncObj__otherNodes and self._SyncObj__raftCurrentTerm == 0:
            # A registry's first voter, bootstrapping it: no leader to wait for, elect now. Not a
            # voter left alone later (the others left): one that left may come back from a home
            # that still says voter, and the election timeout is its time to be heard (RAFT-14).
            self._SyncObj__raftElectionDeadline = 0
        if self._SyncObj__raftElectionDeadline >= now:
            return False
        own_term = self._SyncObj__raftCurrentTerm
        if self._pre_vote.may_campaign(own_term):
            self._pre_vote.election_started()
            return True
        self._SyncObj__raftElectionDeadline = now + self._SyncObj__generateRaftTimeout()
        voters = self._SyncObj__otherNodes
        if self._pre_vote.start(self._SyncObj__selfNode.id, own_term, len(voters) + 1):
            self._SyncObj__raftElectionDeadline = 0  # a lone voter needs no one's yes
            return True
        ask = {
            "type": "pre_vote",
            "term": own_term + 1,
            "last_log_index": self._SyncObj__getCurrentLogIndex(),
            "last_log_term": self._SyncObj__getCurrentLogTerm(),
        }
        for node in voters:
            self._SyncObj__transport.send(node, ask)
        return False

    def _on_pre_vote(self, node: Node, message: dict[str, Any]) -> None:
        """A voter asks, or answers; neither changes a term."""
        if self._SyncObj__selfNode is None:
            return  # a learner has no vote
        own_term = self._SyncObj__raftCurrentTerm
        if message["type"] == "pre_vote_granted":
            voters = len(self._SyncObj__otherNodes) + 1
            campaigning = self._SyncObj__raftState in (_RAFT_STATE.FOLLOWER, _RAFT_STATE.CANDIDATE)
            if campaigning and self._pre_vote.granted(node.id, message["term"], own_term, voters):
                self._SyncObj__raftElectionDeadline = 0  # the next tick starts the election
            return
        if message["term"] <= own_term:  # the asker is behind: tell it, as etcd does
            self._tell_term(node)
            return
        own_log = (self._SyncObj__getCurrentLogTerm(), self._SyncObj__getCurrentLogIndex())
        asker_log = (message["last_log_term"], message["last_log_index"])
        if self._pre_vote.would_grant(
            raft_clock(),
            self._SyncObj__raftState == _RAFT_STATE.LEADER,
            own_term,
            own_log,
            message["term"],
            asker_log,
        ):
            granted = {"type": "pre_vote_granted", "term": message["term"]}
            self._SyncObj__transport.send(node, granted)

    def _tell_term(self, node: Node) -> None:
        """RAFT-19: a leader behind this voter's term hears of it (as etcd answers it), so that
        it steps down. Without this, a voter whose term was raised (by a vote request from a
        candidate that then lost) ignores the leader for good: its pre-votes are refused, since
        the others still hear from that leader, and pysyncobj's answers carry no term."""
        if self._SyncObj__selfNode is not None:
            notice = {"type": "term_notice", "term": self._SyncObj__raftCurrentTerm}
            self._SyncObj__transport.send(node, notice)

    def _on_term_notice(self, term: int) -> None:
        """A voter is at a later term than this node: take it and follow, as on a vote request
        at that term (the transport bounded the raise, RAFT-15)."""
        if term > self._SyncObj__raftCurrentTerm:
            self._SyncObj__setCurrentTerm(term, None)
            self._SyncObj__setState(_RAFT_STATE.FOLLOWER)
            self._SyncObj__raftLeader = None

    def _checkCommandsToApply(self) -> None:
        """Drain the command queue, then send what it appended in one round (group commit)."""
        wake = getattr(self, "_wake", None)  # None on a tick before __init__ has returned
        if wake is not None:
            wake.pending = False  # before draining: a command queued from now on wakes us
        if self.durability_error is not None:
            return  # the sync thread lost the disk during this tick: take no command it cannot log
        self._draining = True
        try:
            super()._checkCommandsToApply()
        finally:
            self._draining = False
        if self._drained_some:
            self._drained_some = False
            SyncObj._SyncObj__sendAppendEntries(self)

    def note_forwarded(self, node: Node, index: int) -> None:
        """Tick thread: `node` forwarded the command now at `index`, and its proposer waits
        until that node applies it."""
        self._forwarded.setdefault(node, []).append(index)

    def _SyncObj__applyLogEntries(self) -> bool:
        """Apply what is committed; True if followers must hear of the new commit index now.

        pysyncobj (with `appendEntriesUseBatch=False`) sends every follower an `append_entries`
        after each commit, only to tell it the new commit index: per write two more frames out,
        two answers in and a wake-up of each follower, all on the path of the leader's reply
        (measured: one client's writes/s went from 502 to 572 without them). Here the commit
        index rides with the next batch or heartbeat (RAFT-7), except for a follower waiting to
        apply a command it forwarded: it is told at once."""
        self._restore_matches()  # pysyncobj has counted its commits: the answers come next
        SyncObj._SyncObj__applyLogEntries(self)
        commit = self._SyncObj__raftCommitIndex
        told = False
        for node, indexes in list(self._forwarded.items()):
            pending = [index for index in indexes if index > commit]
            if len(pending) < len(indexes):  # one of its commands just committed
                told = True
                if pending:
                    self._forwarded[node] = pending
                else:
                    del self._forwarded[node]
        return told

    def _SyncObj__sendAppendEntries(self) -> None:
        if self._draining:
            self._drained_some = True
            return
        SyncObj._SyncObj__sendAppendEntries(self)

    def _SyncObj__onMessageReceived(self, node: Node, message: dict[str, Any]) -> None:
        """pysyncobj's message handler, with three Raft rules it breaks restored (RAFT-7).

        Its leader moves a follower's next index back when a success reply arrives late, and
        sends entries again; its follower then truncates every entry after the previous index,
        matching or not, and re-appends. Between the two, entries the leader counts as stored
        are gone: a committed entry can be lost. So the leader never moves a next index back on
        success, and a follower skips the entries it already has with the same term. Third, its
        follower takes the leader's commit index from snapshot messages, whose log it never
        matched, and would apply entries no leader committed: those messages commit nothing.
        Fourth, it writes a received snapshot over its own before reading it: one that fails
        validation is refused before its last chunk reaches pysyncobj (RAFT-9)."""
        handle = SyncObj._SyncObj__onMessageReceived
        kind = message["type"]
        if kind in ("pre_vote", "pre_vote_granted"):
            self._on_pre_vote(node, message)
            return
        if kind == "term_notice":
            self._on_term_notice(message["term"])
            return
        if kind == "append_entries":
            if message["term"] < self._SyncObj__raftCurrentTerm:
                self._tell_term(node)  # pysyncobj ignores it, and the sender would never know
                return
            self._pre_vote.leader_heard(raft_clock())
        if kind == "append_entries" and "serialized" in message:
            if self._received_snapshot_is_valid(message["serialized"]):
                handle(self, node, {**message, "commit_index": 0})
            return
        if kind == "append_entries" and message.get("entries"):
            trimmed = self._without_entries_we_have(node, message)
            if trimmed is not None:
                handle(self, node, trimmed)
            return
        if kind == "next_node_idx" and message["success"] and not message["reset"]:
            next_index = self._SyncObj__raftNextIndex
            before = next_index.get(node)
            handle(self, node, message)
            if before is not None and next_index.get(node, before) < before:
                next_index[node] = before
            return
        handle(self, node, message)

    def _received_snapshot_is_valid(self, chunk: tuple[bytes, bool, bool] | None) -> bool:
        """RAFT-9, checked before pysyncobj sees the chunk: the received file stays within
        MAX_SNAPSHOT_BYTES, and the one a last chunk completes parses as a snapshot and is
        durable. pysyncobj renames the received file over this node's snapshot before it
        loads it, so a leader's garbage would replace a good snapshot on disk, and the node
        could not start again."""
        if chunk is None:
            return True
        data, first, last = chunk
        incoming = self._SyncObj__serializer._Serializer__incomingTransmissionFile
        if not first and incoming is None:
            return True  # pysyncobj drops a chunk without its first
        self._received_bytes = (0 if first else self._received_bytes) + len(data)
        if self._received_bytes > MAX_SNAPSHOT_BYTES:
            return self._refuse_snapshot(incoming, "larger than the registry can be")
        if not last:
            return True
        if not first:
            incoming.flush()
            data = self._received_file().read_bytes() + data
        try:
            self._received = parse_snapshot(data, "received from the leader")
        except JournalError as exc:
            return self._refuse_snapshot(incoming, str(exc))
        with self._snapshot_lock:  # pysyncobj puts it in place next: no writer may follow
            self._snapshot_generation += 1
        if incoming is not None:
            incoming.flush()
            os.fsync(incoming.fileno())  # RAFT-13: durable before it replaces the log
        return True

    def _refuse_snapshot(self, incoming: Any, error: str) -> bool:
        """Drop what was received of a bad snapshot, then count the refusal: whoever sees the
        count (metrics, a test on another thread) finds the file already gone."""
        if incoming is not None:
            incoming.close()
            self._SyncObj__serializer._Serializer__incomingTransmissionFile = None
        self._received_file().unlink(missing_ok=True)
        self._log.warning("raft snapshot refused", reason="bad_snapshot", error=error)
        self._refusals["bad_snapshot"] += 1
        return False

    def _received_file(self) -> Path:
        """Where pysyncobj's serializer writes a snapshot it receives."""
        return Path(self._SyncObj__serializer._Serializer__fileName + ".1.tmp")

    def _without_entries_we_have(
        self, node: Node, message: dict[str, Any]
    ) -> dict[str, Any] | None:
        log = self._SyncObj__raftLog
        if message["term"] < self.raftCurrentTerm or not len(log):
            return message
        first, last = log[0][1], log[-1][1]
        entries = message["entries"]
        have = 0
        for _, idx, term in entries:
            if not first <= idx <= last or log[idx - first][2] != term:
                break
            have += 1
        if have == 0:
            return message
        _, idx, term = entries[have - 1]
        if have == len(entries) and idx < last:
            # All of them, and more after: keep what follows (no conflict seen), let pysyncobj
            # take the term, the leader and a commit index up to the entries matched, and
            # acknowledge what was sent.
            handle = SyncObj._SyncObj__onMessageReceived
            commit = min(message["commit_index"], idx)
            handle(
                self,
                node,
                {"type": "append_entries", "term": message["term"], "commit_index": commit},
            )
            ack = {"type": "next_node_idx", "next_node_idx": idx + 1, "reset": False}
            self._SyncObj__transport.send(node, {**ack, "success": True})
            return None
        return {**message, "prevLogIdx": idx, "prevLogTerm": term, "entries": entries[have:]}

    def _SyncObj__doApplyCommand(self, entry: bytes) -> Any:
        """pysyncobj's apply of a committed entry: a registry command (`command_entry`) is
        applied here; pysyncobj's own entries (no-ops, membership changes) go to pysyncobj."""
        if entry[:1] == raft_wire.COMMAND_KIND:
            applied = apply(self.registry, entry[1:])
            self.registry = applied.state
            return applied.result
        return SyncObj._SyncObj__doApplyCommand(self, entry)

    def _save_snapshot(self, path: str, data: tuple[Any, Any, Iterable[Node | None]]) -> None:
        """pysyncobj's serializer, called on the tick thread when the log is long: start writing
        the snapshot on a thread of its own, so that Raft does not stop while the whole state
        is encoded (the last hour's idempotency keys included: 169 ms at 72,000 of them, measured).

        The state is immutable, so the writer encodes exactly the state at `last`. pysyncobj
        renames `path` over the snapshot as soon as this returns; nothing is left at `path`,
        so that rename fails (pysyncobj ignores it) and the writer replaces the snapshot itself
        once it is durable, under another temporary name. pysyncobj compacts the log only when
        `_snapshot_progress` reports success, and takes no other snapshot before."""
        Path(path).unlink(missing_ok=True)  # a leftover must never be renamed over the snapshot
        last, prev, cluster = data
        value: dict[str, codec.Value] = {
            "cluster": sorted(n.id for n in cluster if n is not None),
            "format": SNAPSHOT_FORMAT,
            "last": _position(last),
            "prev": _position(prev),
        }
        self._snapshot_state = SERIALIZER_STATE.SERIALIZING
        self._snapshot_writer = threading.Thread(
            target=self._write_snapshot,
            args=(value, self.registry, self._snapshot_generation),
            name="fpai-raft-snapshot",
            daemon=True,
        )
        self._snapshot_writer.start()

    def _write_snapshot(
        self, value: dict[str, codec.Value], state: RegistryState, generation: int
    ) -> None:
        target = self._snapshot_path
        writing = target.with_name(target.name + ".writing")
        try:
            fields = {name: codec.encode(field, 1) for name, field in value.items()}
            data = codec.encode_map({**fields, "state": state.encode(depth=1)})
            with open(writing, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            with self._snapshot_lock:
                if generation != self._snapshot_generation:  # the leader's newer one is in
                    writing.unlink()
                    self._snapshot_state = SERIALIZER_STATE.FAILED
                    return
                os.replace(writing, target)
            fsync_directory(target.parent)
        except Exception as exc:  # a full disk: the log stays as it is, and a later try may do
            self._log.warning("registry snapshot not written", error=str(exc))
            self._snapshot_state = SERIALIZER_STATE.FAILED
            return
        self._snapshot_state = SERIALIZER_STATE.SUCCESS

    def _snapshot_progress(self) -> int:
        """pysyncobj's serializeChecker: the writer's state, success or failure reported once."""
        state = self._snapshot_state
        if state in (SERIALIZER_STATE.SUCCESS, SERIALIZER_STATE.FAILED):
            self._snapshot_state = SERIALIZER_STATE.NOT_SERIALIZING
        return int(state)

    def wait_for_snapshot(self) -> None:
        """Let a snapshot being written finish: an engine started next over the same folder must
        not have its snapshot replaced by this one's."""
        writer = self._snapshot_writer
        if writer is not None:
            writer.join()

    def _load_snapshot(self, path: str) -> tuple[Any, Any, list[RaftMember]]:
        """Restore the state from the snapshot file (at start, or once the leader sent one: then
        as `_received_snapshot_is_valid` parsed it from the same bytes). The file is made
        durable before pysyncobj, on return, replaces the log with it (RAFT-13)."""
        received, self._received = self._received, None  # parsed already, when just received
        try:
            state, last, prev, cluster = received or read_snapshot(Path(path))
        except JournalError as exc:
            self.snapshot_error = str(exc)
            self._log.critical("registry snapshot refused", error=str(exc))
            raise
        fsync_file(Path(path))
        self.registry = state
        return last, prev, [RaftMember(m) for m in cluster]


# ---- the engine ----------------------------------------------------------------------------


class RaftEngine:
    """One running Raft member, voter or learner, over the home's raft/ folder.

    `propose` may be called from any thread; `done(result, fail_reason)` is called from the
    tick thread once the command is applied here (fail_reason 0) or has failed."""

    def __init__(
        self,
        *,
        member: str,
        learner: bool,
        voters: Iterable[str],
        directory: Path,
        identity: TlsIdentity,
        listener: socket.socket,
        timing: RaftTiming,
        admits_learner: Callable[[str], bool],
        counters: TransportCounters,
        gate: ActionGate | None = None,
    ) -> None:
        """`gate`: asked before a repair step (RAFT-17); None lets every step through."""
        voters = tuple(voters)
        snapshot = directory / SNAPSHOT_FILE
        # Read here: a damaged snapshot is refused in one line, not later.
        on_disk = read_snapshot(snapshot) if snapshot.exists() else None
        journal = DurableJournal(directory)
        try:
            journal.enter_role(learner, member)
            if on_disk is not None:
                journal.start_at(on_disk[2])
        finally:
            journal._destroy()
        self.member = member
        self.learner = learner
        self.counters = counters
        self.node_id = raft_wire.parse_raft_id(member)[0]
        self.status = RaftStatus(member, learner)
        self._timing = timing
        self._gate: ActionGate = gate or Unsupervised()
        self._log = structlog.get_logger("fpai.raft").bind(node_id=self.node_id)
        self._next_publish = 0.0
        self._next_policy = 0.0
        self._action_since: float | None = None
        self._synced_term = -1
        self._down_since: dict[str, float] = {}
        self._last_down: dict[str, float] = {}
        wiring = _Wiring(
            member=member,
            learner=learner,
            server=tls_server_context(identity),
            client=client_context(identity),
            listener=listener,
            admits_learner=admits_learner,
            counters=counters,
            reconnect_s=timing.reconnect_s,
            log=self._log,
            pinned=frozenset(voters) if learner else frozenset(),
        )
        others = sorted({v for v in voters if v != member})
        self._replica = _Replica(
            None if learner else RaftMember(member),
            [RaftMember(v) for v in others],
            directory,
            timing,
            wiring,
        )
        self._reads = ReadIndex()
        self._replica.addOnTickCallback(self._on_tick)

    @property
    def state(self) -> RegistryState:
        return self._replica.registry

    @property
    def durability_error(self) -> str | None:
        """Set once the journal could not sync: the engine has stopped for good."""
        return self._replica.durability_error

    @property
    def snapshot_error(self) -> str | None:
        return self._replica.snapshot_error

    def propose(self, command: bytes, done: Done, wake: bool = True) -> None:
        """From any thread: `done(result, error)` on the tick thread once `command` is applied
        or has failed. With `wake` False the tick thread is not woken: the caller calls `wake`
        once after queueing several (a pipe write per command is a system call, and on the
        event loop each one hands the GIL to the tick thread in the middle of a request)."""
        entry = raft_wire.command_entry(command)
        if wake:
            self._replica._applyCommand(entry, done)
            return
        try:
            self._replica._SyncObj__commandsQueue.put_nowait((entry, done))
        except queue.Full:
            done(None, FAIL_REASON.QUEUE_FULL)

    def wake(self) -> None:
        """From any thread: the tick thread drains what `propose(wake=False)` queued."""
        self._replica._wake.notify()

    def read_index(self, done: ReadDone) -> None:
        """RAFT-18, from any thread: `done(index)` on the tick thread once this leader has
        confirmed it leads and applied up to `index`, or `done(None)` if it does not lead."""
        self._reads.ask(done)
        self._replica._wake.notify()  # wake the tick thread now, not at its next timeout

    def stop(self) -> None:
        """Stop the tick thread and close sockets and files (blocks for up to a tick)."""
        self._replica.destroy_synchronous()
        self._replica.wait_for_snapshot()
        notifier = self._replica._wake.inner
        if notifier is not None:  # pysyncobj never closes the pipe that wakes its poller
            os.close(notifier._PipeNotifier__pipeR)
            os.close(notifier._PipeNotifier__pipeW)

    # tick thread

    def _on_tick(self) -> None:
        now = time.monotonic()
        if self._reads.busy and self._reads.tick(
            self._leadership(), self._replica._SyncObj__transport, now
        ):
            self._replica._SyncObj__sendAppendEntries()  # the round's heartbeat, now
        if now >= self._next_publish:
            self._next_publish = now + PUBLISH_PERIOD_S
            self.status = self._read_status()
        if not self.status.is_leader:
            self._synced_term = -1
            self._down_since.clear()
            self._last_down.clear()
        elif now >= self._next_policy:
            self._next_policy = now + POLICY_PERIOD_S
            self._run_policy(now)

    def _leadership(self) -> Leadership | None:
        r = self._replica
        if not r._isLeader():
            return None
        commit, log = r.raftCommitIndex, r._SyncObj__raftLog
        in_term = bool(len(log)) and log[0][1] <= commit <= log[-1][1]
        in_term = in_term and log[commit - log[0][1]][2] == r.raftCurrentTerm
        return Leadership(
            term=r.raftCurrentTerm,
            commit_index=commit,
            applied_index=r.raftLastApplied,
            committed_in_term=in_term,
            others=frozenset(n.id for n in r.otherNodes),
        )

    def _read_status(self) -> RaftStatus:
        r = self._replica
        leader = r._getLeader()
        others = r.otherNodes
        # Every node with a live connection: voters, a learner's pinned voters, and learners.
        connected = {n.id.removeprefix(LEARNER_PREFIX) for n in r._SyncObj__connectedNodes}
        # A learner's configuration lists itself once its log holds the entry adding it.
        voters = {n.id for n in others} | (set() if self.learner else {self.member})
        caught_up: set[str] = set()
        synced: set[str] = set()
        if r._isLeader():
            match = r._SyncObj__raftMatchIndex
            caught_up = {
                n.id.removeprefix(LEARNER_PREFIX)
                for n in r.readonlyNodes
                if match.get(n, 0) >= r.raftCommitIndex
            }
            last = r._SyncObj__getCurrentLogIndex()
            synced = {n.id for n in others if n.id in connected and match.get(n, 0) >= last}
        return RaftStatus(
            member=self.member,
            learner=self.learner,
            leader=leader.id if leader is not None else None,
            is_leader=bool(r._isLeader()),
            term=r.raftCurrentTerm,
            commit_index=r.raftCommitIndex,
            applied_index=r.raftLastApplied,
            voters=frozenset(voters),
            connected=frozenset(connected),
            caught_up=frozenset(caught_up),
            synced=frozenset(synced),
            has_quorum=bool(r.hasQuorum),
            in_configuration=self.member in voters,
            leader_commit=r._SyncObj__leaderCommitIndex or 0,
        )

    def _run_policy(self, now: float) -> None:
        """RAFT-10..RAFT-12: one membership step at a time, once this leader's state is current
        (a `sync` it proposed in this term has been applied)."""
        if self._action_since is not None and now - self._action_since < ACTION_TIMEOUT_S:
            return
        self._action_since = None
        status = self.status
        if self._synced_term != status.term:
            term = status.term

            def synced(result: Result | None, error: int) -> None:
                self._action_since = None
                if error == FAIL_REASON.SUCCESS:
                    self._synced_term = term

            self._begin(now)
            self.propose(self._command("sync", {}), synced)
            return
        state = self.state
        wanted = {raft_id(n, state.members[n].raft) for n in state.voters()}
        everyone = {raft_id(n, m.raft) for n, m in state.members.items()}  # RAFT-16: learners too
        for member in (status.voters | wanted | everyone) - status.connected - {self.member}:
            self._down_since.setdefault(member, now)
            self._last_down[member] = now
        for member in status.connected:
            self._down_since.pop(member, None)
        view = ClusterView(
            self.member,
            status.voters,
            status.connected,
            self._down_since,
            now,
            status.caught_up,
            status.synced,
            self._last_down,
        )
        action = next_action(self.state, view, self._timing.dead_after_s, self._allowed)
        if action is None:
            return
        self._log.info("registry membership step", action=repr(action))
        self._begin(now)
        done = self._action_done(action)
        if isinstance(action, RaftChange):
            self._replica._applyCommand(
                raft_wire.membership_entry(action.change, action.member), done
            )
        elif isinstance(action, SetRole):
            args = {"node_id": action.node_id, "role": action.role}
            self.propose(self._command("member.set_role", args), done)
        elif isinstance(action, StepDown):
            self._replica.transferLeadership(node=RaftMember(action.to), callback=done)
        elif isinstance(action, MarkDown):
            down: dict[str, codec.Value] = {
                "name": action.name,
                "endpoints": list(action.endpoints),
                "health": DOWN,
            }
            self.propose(self._command("service.set", down), done)

    def _allowed(self, action: Action) -> bool:
        """RAFT-17: a repair goes ahead only when the gate (the operator's autonomy) allows."""
        if not is_repair(action):
            return True
        key, kind, subject, summary = repair_description(action, self._timing.dead_after_s)
        return self._gate.allow(key, kind, subject, summary)

    def _begin(self, now: float) -> None:
        self._action_since = now

    def _action_done(self, action: Action) -> Done:
        def done(result: Result | None, error: int) -> None:
            self._action_since = None
            if error != FAIL_REASON.SUCCESS:
                self._log.info("registry membership step failed", action=repr(action), code=error)
                if is_repair(action):
                    key = repair_description(action, self._timing.dead_after_s)[0]
                    self._gate.failed(key, f"the registry refused the step (pysyncobj {error})")

        return done

    def _command(self, op: str, args: Mapping[str, codec.Value]) -> bytes:
        return encode_command(
            op, args, key=os.urandom(16), by=self.node_id, at_ms=time.time_ns() // 1_000_000
        )

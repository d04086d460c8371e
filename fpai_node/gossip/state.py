"""SWIM-style membership, failure detection and signed capability announcements
(specs/0004-gossip.md). Pure: time is an argument, randomness an injected `random.Random`, and
every effect is a returned `Outgoing` for the I/O shell to seal and send.
"""

import heapq
import random
from dataclasses import dataclass, replace
from typing import Generic, TypeVar

from fpai_node.gossip.messages import (
    ANNOUNCE,
    ANNOUNCE_TYPES,
    MAX_INCARNATION,
    NONCE_LENGTH,
    Ack,
    Announcement,
    AnnouncementItem,
    Capabilities,
    GossipMessage,
    Hardware,
    Piggyback,
    Ping,
    PingReq,
    Push,
    Rumor,
    Status,
    Sync,
    SyncReply,
)
from fpai_node.identity.keys import NodeKey
from fpai_node.wire.envelope import PROTOCOL_VERSION, open_envelope, seal
from fpai_node.wire.errors import WireError

MAX_MEMBERS = 2048  # GOSSIP-9: a full member list stays far below one frame (1 MiB)
# GOSSIP-12: how far above its own incarnation a node takes a rumor about itself for one it
# must refute. An honest incarnation rises by one per false suspicion, so no view lags the
# node's own by 65,536; a liar pushing the node up this far per message needs 2^37 messages to
# reach MAX_INCARNATION. (Rumors about other nodes are bounded by their signatures, GOSSIP-10.)
MAX_INCARNATION_STEP = 1 << 16


@dataclass(frozen=True, slots=True)
class GossipConfig:
    """Timers and limits; the rationale of each default is in specs/0004-gossip.md section 6."""

    address: str  # this node's peer address, as others dial it
    probe_interval_ms: int = 1_000  # one protocol period, the simulator's "round"
    ping_timeout_ms: int = 300  # well above a WAN round trip, well below the period
    indirect_probes: int = 3  # k helpers: one slow link alone never causes a suspicion
    suspicion_mult: int = 1  # suspicion lasts mult * ceil(log2(N+1)) periods
    retransmit_mult: int = 2  # each rumor is piggybacked mult * ceil(log2(N+1)) times
    max_rumors: int = 8  # per message: keeps a ping far below one MTU-sized burst
    max_announcements: int = 4  # per message: announcements are ~0.5 KiB each
    sync_interval_ms: int = 30_000  # full-state push-pull is O(N) bytes: a repair, not the path
    # GOSSIP-22: a sync to one dead member (or, with no one live, to the join addresses) this
    # often. Serf retries failed members every 30 s; 5 s lets a healed partition reconverge
    # within 15 s: the first link that heals carries both sides' refutations to the rest.
    reconnect_interval_ms: int = 5_000
    # GOSSIP-23: Lifeguard's local health multiplier tops out here (its default, 8): a node
    # that misses acks probes up to 9 times slower, with 9 times the patience, before it
    # suspects anyone, so its own lost packets do not turn into others' deaths
    max_local_health: int = 8
    announce_lifetime_ms: int = 600_000  # the envelope maximum (VERIFY-8)
    announce_refresh_ms: int = 300_000  # re-sign at half the lifetime: never seen expired
    # GOSSIP-21: operators see who died in the last hour, and every announcement held before
    # the death has expired by then, so none can bring a forgotten node back
    forget_after_ms: int = 3_600_000


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message for the shell to seal and send; `to` is a node id, or an address on join."""

    to: str
    message: GossipMessage


@dataclass(frozen=True, slots=True)
class VerifiedAnnouncement:
    announcement: Announcement
    item: AnnouncementItem
    expires_ms: int


@dataclass(frozen=True, slots=True)
class MemberView:
    node_id: str
    address: str
    status: Status
    incarnation: int
    announcement: Announcement | None


@dataclass(slots=True)
class GossipStats:
    """Counters for metrics and tests: state transitions seen and announcements handled."""

    suspicions: int = 0
    deaths: int = 0
    refutations: int = 0
    announcements_accepted: int = 0
    announcements_stale: int = 0
    announcements_rejected: int = 0
    rumors_refused: int = 0  # GOSSIP-10, GOSSIP-12: an incarnation no signature reaches
    members_refused: int = 0  # GOSSIP-9: the table was full of members worth keeping
    members_evicted: int = 0  # GOSSIP-9: dropped for a newcomer
    members_forgotten: int = 0  # GOSSIP-21: dead or left for forget_after_ms
    reconnects: int = 0  # GOSSIP-22: syncs sent to a dead member or, alone, to the join list


@dataclass(slots=True)
class _Member:
    node_id: str
    address: str
    incarnation: int
    status: Status
    changed_ms: int  # when the status last changed
    announcement: VerifiedAnnouncement | None = None


@dataclass(slots=True)
class _Probe:
    target: str
    nonce: bytes
    sent_ms: int
    timeout_ms: int  # GOSSIP-23: the ping timeout and period, scaled when the probe started
    period_ms: int
    indirect: bool = False


@dataclass(frozen=True, slots=True)
class _Relay:
    requester: str
    nonce: bytes
    expires_ms: int


_T = TypeVar("_T")


@dataclass(slots=True)
class _Queued(Generic[_T]):
    item: _T
    remaining: int


_LIVE = frozenset({Status.ALIVE, Status.SUSPECT})
_NO_HARDWARE = Hardware("", "", 0)


@dataclass(slots=True)
class _Timers:
    next_probe_ms: int
    next_sync_ms: int
    next_reconnect_ms: int


class GossipNode:
    """One node's view of the federation and the protocol that keeps it current."""

    def __init__(
        self, key: NodeKey, config: GossipConfig, rng: random.Random, incarnation: int = 0
    ) -> None:
        """`incarnation`: the one this node last signed, when its shell kept it (GOSSIP-12)."""
        self.node_id = key.node_id
        self.stats = GossipStats()
        self._key = key
        self._config = config
        self._rng = rng
        self._incarnation = incarnation
        self._members: dict[str, _Member] = {}
        self._live = 0  # members alive or suspect, kept in step with _members
        self._suspects: dict[str, int] = {}  # node id -> when the suspicion turns into a death
        self._rumors: dict[str, _Queued[Rumor]] = {}
        self._outbox: dict[str, _Queued[VerifiedAnnouncement]] = {}
        self._own: VerifiedAnnouncement | None = None
        self._own_signed_ms = 0
        self._probe: _Probe | None = None
        self._probe_order: list[str] = []
        self._relays: dict[bytes, _Relay] = {}
        self._timers: _Timers | None = None
        self._left = False
        # GOSSIP-12: this node's incarnation when the message arrived (the step is counted
        # from there, so a message cannot climb by repeating this node)
        self._held_before: int | None = None
        self._refuted = False  # GOSSIP-12: one new signed announcement per message, at its end
        self._join_addresses: tuple[str, ...] = ()  # GOSSIP-22: tried again when alone
        self._health = 0  # GOSSIP-23: Lifeguard's local health multiplier, 0 when all is well

    # Read-only views

    @property
    def config(self) -> GossipConfig:
        return self._config

    @property
    def incarnation(self) -> int:
        return self._incarnation

    @property
    def local_health(self) -> int:
        """GOSSIP-23: 0 when probes are answered; up to max_local_health when they are not."""
        return self._health

    @property
    def own_announcement(self) -> Announcement | None:
        return None if self._own is None else self._own.announcement

    def members(self) -> dict[str, MemberView]:
        """Every other node this one knows, in any state."""
        return {node_id: _view(m) for node_id, m in self._members.items()}

    def member(self, node_id: str) -> MemberView | None:
        m = self._members.get(node_id)
        return None if m is None else _view(m)

    # Commands

    def join(self, bootstrap_addresses: list[str]) -> list[Outgoing]:
        """GOSSIP-20: push-pull with each bootstrap address to learn the whole table."""
        self._join_addresses = tuple(a for a in bootstrap_addresses if a != self._config.address)
        sync = self._sync_request()
        return [Outgoing(a, sync) for a in self._join_addresses]

    def announce(self, capabilities: Capabilities, now_ms: int) -> None:
        """Publish new capabilities: a fresh version, signed, queued for dissemination."""
        self._publish(capabilities, left=False, now_ms=now_ms)

    def leave(self, now_ms: int) -> list[Outgoing]:
        """GOSSIP-15: sign a `left` announcement, push it to a few members, go quiet."""
        push = Push(Piggyback(announcements=(self._resign(left=True, now_ms=now_ms),)))
        alive = self._ids_with(Status.ALIVE)
        fanout = self._rng.sample(alive, min(len(alive), self._retransmit_limit()))
        self._left = True
        return [Outgoing(node_id, push) for node_id in fanout]

    def tick(self, now_ms: int) -> list[Outgoing]:
        """Advance the timers: expire suspicions, finish or start a probe, maybe sync."""
        if self._left:
            return []
        timers = self._timers_at(now_ms)
        self._expire_suspicions(now_ms)
        self._expire_relays(now_ms)
        out = self._advance_probe(now_ms)
        if now_ms >= timers.next_probe_ms and self._probe is None:  # one probe at a time
            timers.next_probe_ms = _next_slot(timers.next_probe_ms, now_ms, self._probe_period)
            self._forget_the_dead(now_ms)
            out += self._start_probe(now_ms)
        if now_ms >= timers.next_sync_ms:
            timers.next_sync_ms = _next_slot(
                timers.next_sync_ms, now_ms, self._config.sync_interval_ms
            )
            out += self._start_sync()
        if now_ms >= timers.next_reconnect_ms:
            timers.next_reconnect_ms = _next_slot(
                timers.next_reconnect_ms, now_ms, self._config.reconnect_interval_ms
            )
            out += self._reconnect()
        if self._own and now_ms >= self._own_signed_ms + self._config.announce_refresh_ms:
            self._resign(left=False, now_ms=now_ms)
        return out

    def receive(self, sender: str, message: GossipMessage, now_ms: int) -> list[Outgoing]:
        """Handle a hop message whose envelope the shell has verified as coming from `sender`."""
        if self._left:
            return []
        self._held_before = None
        out = self._handle(sender, message, now_ms)
        refutation = self._settle_refutation(now_ms)
        if refutation is not None and sender in self._members:
            # GOSSIP-12: the accuser hears the signed answer at once, not when gossip gets to it
            out.append(Outgoing(sender, Push(Piggyback(announcements=(refutation,)))))
        return out

    def _settle_refutation(self, now_ms: int) -> AnnouncementItem | None:
        """GOSSIP-12: however many rumors about this node a message held, one signature."""
        if not self._refuted:
            return None
        self._refuted = False
        self._health = min(self._health + 1, self._config.max_local_health)  # GOSSIP-23
        return self._resign(left=False, now_ms=now_ms)

    def _handle(self, sender: str, message: GossipMessage, now_ms: int) -> list[Outgoing]:
        match message:
            case Ping(nonce, piggyback):
                self._absorb(piggyback, now_ms)
                return [Outgoing(sender, Ack(nonce, self._piggyback(sender, now_ms)))]
            case Ack(nonce, piggyback):
                self._absorb(piggyback, now_ms)
                return self._on_ack(nonce, now_ms)
            case PingReq(nonce, target, _, piggyback):
                self._absorb(piggyback, now_ms)
                member = self._members.get(target)
                if member is None or member.status not in _LIVE:
                    return []  # GOSSIP-11: never dial an address a requester names
                return self._relay_ping(sender, nonce, target, now_ms)
            case Sync(members, digest):
                self._merge_members(sender, members, now_ms)
                self._settle_refutation(now_ms)  # GOSSIP-12: the reply carries the signature
                reply = self._sync_reply(digest, now_ms)
                claimed = _own_address(sender, members)
                if sender in self._members or claimed is None:
                    return [Outgoing(sender, reply)]
                # GOSSIP-19: a sender the table refused gets only this node's own entry and
                # `want` (never a list someone could aim at an address of its choosing), at
                # its own address
                return [Outgoing(claimed, SyncReply((self._own_rumor(),), (), reply.want))]
            case SyncReply(members, announcements, want):
                for item in announcements:  # first: they sign the incarnations listed
                    self._accept_announcement(item, now_ms)
                self._merge_members(sender, members, now_ms)
                return self._answer_want(sender, want, now_ms)
            case Push(piggyback):
                self._absorb(piggyback, now_ms)
                return []

    # Failure detection (GOSSIP-11..14)

    @property
    def _probe_period(self) -> int:
        """GOSSIP-23: the protocol period, longer while this node's own acks go missing."""
        return self._config.probe_interval_ms * (self._health + 1)

    def _timers_at(self, now_ms: int) -> _Timers:
        """Start timers at a random phase so that nodes started together do not probe in step."""
        if self._timers is None:
            self._timers = _Timers(
                now_ms + self._rng.randrange(self._probe_period),
                now_ms + self._rng.randrange(self._config.sync_interval_ms),
                now_ms + self._rng.randrange(self._config.reconnect_interval_ms),
            )
        return self._timers

    def _start_probe(self, now_ms: int) -> list[Outgoing]:
        target = self._next_probe_target()
        if target is None:
            return []
        nonce = self._rng.randbytes(NONCE_LENGTH)
        scale = self._health + 1
        self._probe = _Probe(
            target, nonce, now_ms, self._config.ping_timeout_ms * scale, self._probe_period
        )
        return [Outgoing(target, Ping(nonce, self._piggyback(target, now_ms)))]

    def _next_probe_target(self) -> str | None:
        """Round-robin over a shuffled member list: every member is probed once per pass."""
        while True:
            if not self._probe_order:
                self._probe_order = self._ids_with(Status.ALIVE, Status.SUSPECT)
                if not self._probe_order:
                    return None
                self._rng.shuffle(self._probe_order)
            node_id = self._probe_order.pop()
            member = self._members.get(node_id)
            if member is not None and member.status in _LIVE:
                return node_id

    def _advance_probe(self, now_ms: int) -> list[Outgoing]:
        probe = self._probe
        if probe is None:
            return []
        if probe.target not in self._members:  # forgotten or evicted meanwhile
            self._probe = None
            return []
        if now_ms >= probe.sent_ms + probe.period_ms:
            self._probe = None
            self._health = min(self._health + 1, self._config.max_local_health)  # GOSSIP-23
            return self._suspect(probe.target, now_ms)
        if not probe.indirect and now_ms >= probe.sent_ms + probe.timeout_ms:
            probe.indirect = True
            return self._ping_requests(probe, now_ms)
        return []

    def _ping_requests(self, probe: _Probe, now_ms: int) -> list[Outgoing]:
        """GOSSIP-11: a second direct ping plus k indirect ones through random helpers."""
        target = self._members[probe.target]
        helpers = [i for i in self._ids_with(Status.ALIVE) if i != probe.target]
        chosen = self._rng.sample(helpers, min(len(helpers), self._config.indirect_probes))
        retry = Outgoing(target.node_id, Ping(probe.nonce, self._piggyback(target.node_id, now_ms)))
        return [
            retry,
            *(
                Outgoing(
                    h,
                    PingReq(
                        probe.nonce, target.node_id, target.address, self._piggyback(h, now_ms)
                    ),
                )
                for h in chosen
            ),
        ]

    def _on_ack(self, nonce: bytes, now_ms: int) -> list[Outgoing]:
        if self._probe is not None and self._probe.nonce == nonce:
            self._probe = None
            self._health = max(self._health - 1, 0)  # GOSSIP-23
        relay = self._relays.pop(nonce, None)
        if relay is None:
            return []
        ack = Ack(relay.nonce, self._piggyback(relay.requester, now_ms))
        return [Outgoing(relay.requester, ack)]

    def _relay_ping(self, requester: str, nonce: bytes, to: str, now_ms: int) -> list[Outgoing]:
        """GOSSIP-11: ping `to` (a member's id, else the address the requester gave)."""
        own_nonce = self._rng.randbytes(NONCE_LENGTH)
        self._relays[own_nonce] = _Relay(requester, nonce, now_ms + self._probe_period)
        return [Outgoing(to, Ping(own_nonce, self._piggyback(to, now_ms)))]

    def _expire_relays(self, now_ms: int) -> None:
        expired = [n for n, r in self._relays.items() if r.expires_ms <= now_ms]
        for nonce in expired:
            del self._relays[nonce]

    def _suspect(self, node_id: str, now_ms: int) -> list[Outgoing]:
        """GOSSIP-11: suspect the target and tell it at once (Lifeguard's buddy system): if it
        is alive, its refutation comes straight back (GOSSIP-12) rather than after gossip has
        carried the suspicion to it, which under loss can take longer than the suspicion."""
        member = self._members.get(node_id)
        if member is None or member.status is not Status.ALIVE:
            return []
        self._set_status(member, Status.SUSPECT, now_ms)
        self._queue_rumor(member)
        return [Outgoing(node_id, Push(self._piggyback(node_id, now_ms)))]

    def _suspicion_deadline(self, now_ms: int) -> int:
        """GOSSIP-13, GOSSIP-23: `suspicion_mult * log(N)` of this node's periods from now,
        counted as they are when the suspicion starts."""
        return now_ms + self._config.suspicion_mult * self._log_n() * self._probe_period

    def _expire_suspicions(self, now_ms: int) -> None:
        expired = [i for i, deadline in self._suspects.items() if now_ms >= deadline]
        for node_id in expired:
            member = self._members[node_id]
            self._set_status(member, Status.DEAD, now_ms)
            self._queue_rumor(member)

    # Membership (GOSSIP-9, GOSSIP-10, GOSSIP-12)

    def _merge_members(self, sender: str, members: tuple[Rumor, ...], now_ms: int) -> None:
        """Anti-entropy: apply a member list; only the sender's claim about itself spreads.
        GOSSIP-19: a list may be old news (its sender may have been cut off from the member it
        calls dead), so a death of a member this node holds is taken as a suspicion, and spread
        so that the member hears it and refutes, as memberlist does."""
        for rumor in members:
            if rumor.node_id == sender:
                self._apply_rumor(rumor, now_ms, spread=True)
            elif rumor.status is Status.DEAD and rumor.node_id in self._members:
                self._apply_rumor(replace(rumor, status=Status.SUSPECT), now_ms, spread=True)
            else:
                self._apply_rumor(rumor, now_ms, spread=False)

    def _apply_rumor(self, rumor: Rumor, now_ms: int, spread: bool) -> None:
        if rumor.node_id == self.node_id:
            self._refute(rumor)
            return
        member = self._members.get(rumor.node_id)
        ceiling = _signed_ceiling(member)
        if rumor.incarnation > ceiling:
            # GOSSIP-10: the node never signed this incarnation; an alive rumor one above is
            # its refutation racing the announcement that signs it, not a lie
            racing = rumor.status is Status.ALIVE and rumor.incarnation == ceiling + 1
            self.stats.rumors_refused += not racing
            return
        if member is None:
            if rumor.status is Status.DEAD:
                return
            # GOSSIP-9: a rumor alone takes only the place of a member dead or gone
            member = self._admit(
                rumor.node_id, rumor.address, rumor.incarnation, now_ms, announced=False
            )
            if member is None:
                return
            self._set_status(member, rumor.status, now_ms)
        elif not _supersedes(rumor, member):
            return
        else:
            member.incarnation = rumor.incarnation
            member.address = rumor.address
            self._set_status(member, rumor.status, now_ms)
        if spread:
            self._queue_rumor(member)

    def _refute(self, rumor: Rumor) -> None:
        """GOSSIP-12: a claim about this node at its own incarnation or above is answered
        by a higher incarnation, signed in a new announcement (once the message is handled)
        and spread as an alive rumor."""
        if self._held_before is None:
            self._held_before = self._incarnation
        if rumor.incarnation > self._held_before + MAX_INCARNATION_STEP:
            self.stats.rumors_refused += 1  # no honest view of this node is this far above
            return
        if self._left or rumor.incarnation < self._incarnation:
            return
        if rumor.status is Status.ALIVE and rumor.incarnation == self._incarnation:
            return
        if rumor.incarnation >= MAX_INCARNATION:  # 2^37 messages away (GOSSIP-12)
            return
        self._incarnation = rumor.incarnation + 1
        self.stats.refutations += 1
        self._rumors[self.node_id] = _Queued(self._own_rumor(), self._retransmit_limit())
        self._refuted = True

    def _own_rumor(self) -> Rumor:
        return Rumor(self.node_id, self._config.address, self._incarnation, Status.ALIVE)

    def _admit(
        self, node_id: str, address: str, incarnation: int, now_ms: int, *, announced: bool
    ) -> _Member | None:
        """A new member, dead until _set_status counts it; when the table is full it takes
        the place of one worth less (GOSSIP-9), else None."""
        if len(self._members) >= MAX_MEMBERS:
            victim = self._least_worth_keeping(announced)
            if victim is None:
                self.stats.members_refused += 1
                return None
            self._forget(victim)
            self.stats.members_evicted += 1
        member = _Member(node_id, address, incarnation, Status.DEAD, now_ms)
        self._members[node_id] = member
        return member

    def _least_worth_keeping(self, for_announced: bool) -> _Member | None:
        """GOSSIP-9: the dead or left member held longest; for a newcomer with a signed
        announcement, else the member without one (suspect first) held longest."""
        if len(self._members) > self._live:  # someone is dead or left: O(1) to know
            gone = (m for m in self._members.values() if m.status not in _LIVE)
            return min(gone, key=lambda m: m.changed_ms)
        if not for_announced:
            return None
        unproven = [m for m in self._members.values() if m.announcement is None]
        if not unproven:
            return None
        return min(unproven, key=lambda m: (m.status is Status.ALIVE, m.changed_ms))

    def _forget_the_dead(self, now_ms: int) -> None:
        """GOSSIP-21: members dead or left for forget_after_ms are dropped from the table."""
        horizon = now_ms - self._config.forget_after_ms
        for member in [m for m in self._members.values() if m.status not in _LIVE]:
            if member.changed_ms <= horizon:
                self._forget(member)
                self.stats.members_forgotten += 1

    def _forget(self, member: _Member) -> None:
        del self._members[member.node_id]
        self._live -= member.status in _LIVE
        self._suspects.pop(member.node_id, None)
        self._rumors.pop(member.node_id, None)
        self._outbox.pop(member.node_id, None)

    def _set_status(self, member: _Member, status: Status, now_ms: int) -> None:
        before = member.status
        if before is status:
            if status is Status.SUSPECT:  # a new incarnation restarts the timer
                self._suspects[member.node_id] = self._suspicion_deadline(now_ms)
            return
        self._live += (status in _LIVE) - (before in _LIVE)
        member.status = status
        member.changed_ms = now_ms
        self._suspects.pop(member.node_id, None)
        if status is Status.SUSPECT:
            self._suspects[member.node_id] = self._suspicion_deadline(now_ms)
            self.stats.suspicions += 1
        elif status is Status.DEAD:
            self.stats.deaths += 1

    def _ids_with(self, *statuses: Status) -> list[str]:
        return [i for i, m in self._members.items() if m.status in statuses]

    def _log_n(self) -> int:
        """ceil(log2(N + 1)) for N live nodes including this one."""
        return (self._live + 1).bit_length()

    def _retransmit_limit(self) -> int:
        return self._config.retransmit_mult * self._log_n()

    # Dissemination (GOSSIP-16, GOSSIP-17)

    def _queue_rumor(self, member: _Member) -> None:
        if member.status is Status.LEFT:
            return
        rumor = Rumor(member.node_id, member.address, member.incarnation, member.status)
        self._rumors[member.node_id] = _Queued(rumor, self._retransmit_limit())

    def _piggyback(self, to: str, now_ms: int) -> Piggyback:
        """GOSSIP-16: a rumor about the receiver itself goes first, so that a suspected
        node learns it at the first message and refutes before its suspicion times out.
        GOSSIP-8: an announcement whose frame has expired is dropped, never sent."""
        for origin in [o for o, q in self._outbox.items() if q.item.expires_ms <= now_ms]:
            del self._outbox[origin]
        announcements = _take(self._outbox, self._config.max_announcements, None)
        receiver = self._members.get(to)
        # GOSSIP-16: a suspect hears of its suspicion in every message, not only while the
        # rumor is queued (under loss the queued copies can all be spent before one arrives)
        carry = (
            receiver is not None and receiver.status is Status.SUSPECT and to not in self._rumors
        )
        rumors = _take(self._rumors, self._config.max_rumors - carry, to)
        if carry:
            assert receiver is not None
            rumors.insert(0, Rumor(to, receiver.address, receiver.incarnation, Status.SUSPECT))
        return Piggyback(tuple(rumors), tuple(a.item for a in announcements))

    def _absorb(self, piggyback: Piggyback, now_ms: int) -> None:
        for item in piggyback.announcements:  # first: they sign the incarnations rumored
            self._accept_announcement(item, now_ms)
        for rumor in piggyback.rumors:
            self._apply_rumor(rumor, now_ms, spread=True)

    # Announcements (GOSSIP-4..8)

    def _publish(self, capabilities: Capabilities, left: bool, now_ms: int) -> AnnouncementItem:
        """GOSSIP-5: versions start at the clock in microseconds, so they survive restarts."""
        previous = self._own.item.version if self._own else 0
        version = max(previous + 1, now_ms * 1000)
        announcement = Announcement(
            version, PROTOCOL_VERSION, left, capabilities, self._incarnation
        )
        lifetime = self._config.announce_lifetime_ms
        payload = announcement.encode()
        frame = seal(self._key, ANNOUNCE, payload, seq=version, now_ms=now_ms, lifetime_ms=lifetime)
        item = AnnouncementItem(self.node_id, version, frame)
        self._own = VerifiedAnnouncement(announcement, item, now_ms + lifetime)
        self._own_signed_ms = now_ms
        self._outbox[self.node_id] = _Queued(self._own, self._retransmit_limit())
        return item

    def _resign(self, *, left: bool, now_ms: int) -> AnnouncementItem:
        """A new version of what this node last announced (nothing but its address if it
        never did), at its current incarnation."""
        if self._own is not None:
            capabilities = self._own.announcement.capabilities
        else:
            capabilities = Capabilities(self._config.address, "", (), _NO_HARDWARE, 0, 0)
        return self._publish(capabilities, left=left, now_ms=now_ms)

    def _accept_announcement(self, item: AnnouncementItem, now_ms: int) -> None:
        """GOSSIP-7: skip what is not newer, verify the rest end to end as the origin's."""
        if item.origin == self.node_id:
            return
        member = self._members.get(item.origin)
        current = member.announcement if member else None
        if current is not None and current.item.version >= item.version:
            self.stats.announcements_stale += 1
            return
        verified = _verify(item, now_ms)
        if verified is None:
            self.stats.announcements_rejected += 1
            return
        self.stats.announcements_accepted += 1
        announced = verified.announcement
        caps = announced.capabilities
        if member is None:
            member = self._admit(
                item.origin, caps.peer_address, announced.incarnation, now_ms, announced=True
            )
            if member is None:
                return
            self._set_status(member, Status.ALIVE, now_ms)
        member.announcement = verified
        if announced.left:
            member.incarnation = max(member.incarnation, announced.incarnation)  # GOSSIP-15
            self._set_status(member, Status.LEFT, now_ms)
        elif member.status is Status.LEFT:
            self._set_status(member, Status.ALIVE, now_ms)  # a newer signed word: it is back
        if not announced.left and announced.incarnation > member.incarnation:
            member.incarnation = announced.incarnation  # GOSSIP-12: a signed refutation
            self._set_status(member, Status.ALIVE, now_ms)
            self._queue_rumor(member)
        self._outbox[item.origin] = _Queued(verified, self._retransmit_limit())

    # Anti-entropy (GOSSIP-18..20)

    def _start_sync(self) -> list[Outgoing]:
        alive = self._ids_with(Status.ALIVE)
        if not alive:
            return []
        return [Outgoing(self._rng.choice(alive), self._sync_request())]

    def _reconnect(self) -> list[Outgoing]:
        """GOSSIP-22: push-pull with one dead member, which refutes its death in the reply if
        it is back; with no member live, with every join address as at the start (a node
        that started or stayed alone in a partition has no one else to ask)."""
        if self._live == 0 and self._join_addresses:
            self.stats.reconnects += 1
            sync = self._sync_request()
            return [Outgoing(address, sync) for address in self._join_addresses]
        # only members that signed where they listen: a rumor alone could aim the reconnects
        # at any address, every interval for an hour
        signed = [
            m.announcement.announcement.capabilities.peer_address
            for m in self._members.values()
            if m.status is Status.DEAD and m.announcement is not None
        ]
        if not signed:
            return []
        self.stats.reconnects += 1
        return [Outgoing(self._rng.choice(signed), self._sync_request())]

    def _sync_request(self) -> Sync:
        digest = [(i, v.item.version) for i, v in self._announcements()]
        return Sync(self._member_list(), tuple(digest))

    def _member_list(self) -> tuple[Rumor, ...]:
        others = (
            Rumor(m.node_id, m.address, m.incarnation, m.status)
            for m in self._members.values()
            if m.status is not Status.LEFT
        )
        return (self._own_rumor(), *others)

    def _announcements(self) -> list[tuple[str, VerifiedAnnouncement]]:
        pairs = [(i, m.announcement) for i, m in self._members.items() if m.announcement]
        if self._own is not None:
            pairs.append((self.node_id, self._own))
        return pairs

    def _sync_reply(self, digest: tuple[tuple[str, int], ...], now_ms: int) -> SyncReply:
        theirs = dict(digest)
        newer: list[AnnouncementItem] = []
        want: list[str] = []
        for origin, ann in self._announcements():
            if ann.item.version > theirs.pop(origin, -1) and ann.expires_ms > now_ms:
                newer.append(ann.item)
        for origin, version in theirs.items():
            member = self._members.get(origin)
            mine = member.announcement if member else None
            if origin != self.node_id and (mine is None or mine.item.version < version):
                want.append(origin)
        return SyncReply(self._member_list(), tuple(newer), tuple(want))

    def _answer_want(self, sender: str, want: tuple[str, ...], now_ms: int) -> list[Outgoing]:
        wanted = set(want)
        items = tuple(
            ann.item
            for origin, ann in self._announcements()
            if origin in wanted and ann.expires_ms > now_ms
        )
        return [Outgoing(sender, Push(Piggyback(announcements=items)))] if items else []


def _verify(item: AnnouncementItem, now_ms: int) -> VerifiedAnnouncement | None:
    try:
        envelope = open_envelope(
            item.frame, now_ms=now_ms, known_types=ANNOUNCE_TYPES, replay_guard=None
        )
        announcement = Announcement.decode(envelope.payload)
    except WireError:
        return None
    if envelope.sender != item.origin or announcement.version != item.version:
        return None
    return VerifiedAnnouncement(announcement, item, envelope.expires_ms)


def _own_address(sender: str, members: tuple[Rumor, ...]) -> str | None:
    """Where a sender this node did not admit (a full table, GOSSIP-9) says it listens: the
    answer to its sync still reaches it, and with it the `want` that lets it prove itself."""
    for rumor in members:
        if rumor.node_id == sender:
            return rumor.address
    return None


def _signed_ceiling(member: _Member | None) -> int:
    """GOSSIP-10: the highest incarnation a rumor about `member` may carry: one its own
    announcement signed, or that this node already holds (0 for a node it does not know)."""
    if member is None:
        return 0
    signed = member.announcement.announcement.incarnation if member.announcement else 0
    return max(member.incarnation, signed)


def _supersedes(rumor: Rumor, member: _Member) -> bool:
    """GOSSIP-10: the SWIM precedence of a rumor over what this node believes."""
    if member.status is Status.LEFT:
        return False  # GOSSIP-15: only the node's own newer announcement brings it back
    if member.status is Status.DEAD:
        return rumor.status is Status.ALIVE and rumor.incarnation > member.incarnation
    if rumor.status is Status.ALIVE:
        return rumor.incarnation > member.incarnation
    if rumor.status is Status.SUSPECT:
        if member.status is Status.SUSPECT:
            return rumor.incarnation > member.incarnation
        return rumor.incarnation >= member.incarnation
    return rumor.incarnation >= member.incarnation  # dead over alive or suspect


def _take(queue: dict[str, _Queued[_T]], limit: int, first: str | None) -> list[_T]:
    """`first`'s item if queued, then those sent least often so far, up to `limit`; each send
    uses up one retransmission."""
    if not queue:
        return []
    chosen = heapq.nlargest(limit, queue.items(), key=lambda kv: kv[1].remaining)
    head = queue.get(first) if first is not None else None
    if first is not None and head is not None and (first, head) not in chosen:
        chosen = [(first, head), *chosen[: limit - 1]]
    for key, queued in chosen:
        queued.remaining -= 1
        if queued.remaining <= 0:
            del queue[key]
    return [queued.item for _, queued in chosen]


def _next_slot(slot_ms: int, now_ms: int, period_ms: int) -> int:
    """The first period boundary after `now_ms`, skipping any a late tick missed."""
    missed = (now_ms - slot_ms) // period_ms + 1
    return slot_ms + missed * period_ms


def _view(member: _Member) -> MemberView:
    announcement = member.announcement.announcement if member.announcement else None
    return MemberView(
        member.node_id, member.address, member.status, member.incarnation, announcement
    )

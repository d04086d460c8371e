"""Registry state and the pure `apply` of commands (specs/0005-registry.md, REG-1..REG-12).

Every replica applies the same committed command bytes in the same order, so `apply` must be a
function of (state, bytes) alone: no clock, no randomness, no exception for any input. A bad
command is rejected the same way everywhere and leaves the state as it was. Each command carries
a 16-byte idempotency key: a write that a client retried after a lost acknowledgement (pysyncobj
reports LEADER_CHANGED for writes that did commit) is applied once.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, TypeVar

from immutables import Map

from fpai_node.hostport import parse_host_port
from fpai_node.identity.nodeid import is_node_id
from fpai_node.registry.dedup import ID_BYTES, DedupWindow
from fpai_node.registry.holdings import Holdings, parameter_owner, service_owner
from fpai_node.wire import codec
from fpai_node.wire.errors import MalformedFrame

IDEMPOTENCY_KEY_BYTES = ID_BYTES  # REG-1: 16 bytes
DEDUP_RETENTION_MS = 3_600_000  # REG-4: retries come within seconds; an hour is far beyond
VOTERS_PARAMETER = "registry.voters"
ELECTORS_PARAMETER = "registry.electors"  # REG-13: who may hold a voter seat (unset: anyone)
DEFAULT_VOTERS = 3  # REG-13: survives one lost voter; 5 survives two at the cost of slower commits
VOTER_COUNTS = (1, 3, 5, 7)  # odd: an even count adds a voter without adding fault tolerance
MAX_COMMAND_BYTES = 64 * 1024  # REG-2: registry entries are small; bulk data lives elsewhere
MAX_TEXT = 255
# REG-10: a snapshot holds a parameter's value three levels down (REG-11), where a command holds
# it two: a value one level taller would commit, then make every snapshot unencodable (CANON-6)
# and stop log compaction for good.
MAX_VALUE_HEIGHT = codec.MAX_DEPTH - 3
# REG-16: what a member that is not a voter may keep in the registry under its own name, so that
# no member can fill every replica's memory: its announcement-sized settings and a few services
MEMBER_PARAMETERS = 64
MEMBER_SERVICES = 16
# REG-13: joins a member that is not a voter may relay before those newcomers confirm themselves.
# An honest newcomer confirms on its first upkeep, within seconds; 8 leaves room for a burst of
# newcomers through one member, and caps what a member can invent at 8 node ids.
MEMBER_RELAYS = 8
# REG-13: a relayed newcomer that has not joined itself this long (in command time, either way)
# is forgotten: an honest one confirms within seconds of starting, a slow start included, so
# an outsider's relayed key, or a crashed newcomer, holds a relay or a place for 10 min at most
PENDING_EXPIRY_MS = 600_000
# REG-13: relayed newcomers not yet confirmed, in all: outsiders that ask honest members (or
# voters, who have no quota) to relay them can hold no more places than this
MAX_PENDING = 64
# REG-13: every replica holds every member, and a join answer lists them all (about 100 bytes
# each); a federation this size is far beyond one registry's voters anyway.
MAX_MEMBERS = 4096
ROLES = ("voter", "learner")
_COMMAND_KEYS = frozenset({"args", "at", "by", "id", "op"})
_SNAPSHOT_KEYS = frozenset({"applied", "index", "members", "models", "parameters", "services"})
_MEMBER_KEYS = frozenset({"api", "joined_at", "peer", "raft", "relayed_by", "role"})
_MEMBER_KEYS_V1 = _MEMBER_KEYS - {"relayed_by"}  # snapshots written before REG-13 relays
_K = TypeVar("_K")
_V = TypeVar("_V")


@dataclass(frozen=True, slots=True)
class Member:
    role: str
    peer: str
    api: str
    raft: str
    joined_at_ms: int
    relayed_by: str = ""  # REG-13: the member that relayed its join, until it joins itself


@dataclass(frozen=True, slots=True)
class Service:
    endpoints: tuple[str, ...]
    health: str


def _frozen(mapping: dict[_K, _V]) -> Mapping[_K, _V]:
    return MappingProxyType(mapping)


_UNCOUNTED = Holdings(Map(), Map(), 0)  # a state built with these counts its own


def _voters(members: Mapping[str, Member]) -> int:
    return sum(1 for m in members.values() if m.role == "voter")


@dataclass(frozen=True, slots=True)
class RegistryState:
    """An immutable snapshot; `apply` returns a new one sharing the untouched tables."""

    members: Mapping[str, Member] = field(default_factory=lambda: _frozen({}))
    services: Mapping[str, Service] = field(default_factory=lambda: _frozen({}))
    models: Mapping[str, frozenset[str]] = field(default_factory=lambda: _frozen({}))
    # A persistent hash trie: a param.set shares the rest of the table with the state before, where
    # a copied dict cost every write time in proportion to every parameter held (6.1 us at 64
    # parameters, 1.1 ms at 10,000; Map.set: 0.4 and 0.6 us). Parameters are the table that grows:
    # every member's settings, and the ballots and digests of treasury and rewards.
    parameters: Map[str, codec.Value] = field(default_factory=Map)
    applied: DedupWindow = field(default_factory=DedupWindow)  # REG-4: (id, at) remembered
    index: int = 0  # commands applied, accepted or not
    # REG-16's counts, derived from the tables and kept by apply; read them through `held()`.
    # `dataclasses.replace` would carry them over to new tables: build a new state instead.
    holdings: Holdings = field(default=_UNCOUNTED, compare=False, repr=False)

    def held(self) -> Holdings:
        """REG-16's counts: a state built without them (a snapshot read, a test) counts them
        the first time they are asked for, and keeps them; apply passes them on, so neither a
        write nor a state built along the way counts anything."""
        if self.holdings is _UNCOUNTED:
            counted = Holdings.count(self.parameters, self.services, _voters(self.members))
            object.__setattr__(self, "holdings", counted)  # derived: the state is unchanged
        return self.holdings

    def to_value(self) -> codec.Value:
        """The canonical snapshot (REG-11): equal states have equal bytes on every replica."""
        return {
            "applied": [[k, at] for k, at in self.applied.sorted_pairs()],
            **self._tables(),
        }

    def encode(self, depth: int = 0) -> bytes:
        """`codec.encode(self.to_value(), depth)`, with the idempotency window packed by msgpack
        in C (`DedupWindow.packed`): walking each pair in `codec.encode` took 5.4 us a pair,
        with the GIL held (1.1 s for 200,000). `depth`: where the state sits in a snapshot, so
        that a value nested too deep for the whole is refused here as `codec.encode` would."""
        tables = self._tables().items()
        fields = {name: codec.encode(value, depth + 1) for name, value in tables}
        return codec.encode_map({"applied": self.applied.packed(), **fields})

    def _tables(self) -> dict[str, codec.Value]:
        return {
            "index": self.index,
            "members": {
                n: {
                    "api": m.api,
                    "joined_at": m.joined_at_ms,
                    "peer": m.peer,
                    "raft": m.raft,
                    "relayed_by": m.relayed_by,
                    "role": m.role,
                }
                for n, m in self.members.items()
            },
            "models": {m: list(sorted(nodes)) for m, nodes in self.models.items()},
            "parameters": dict(self.parameters),
            "services": {
                s: {"endpoints": list(v.endpoints), "health": v.health}
                for s, v in self.services.items()
            },
        }

    @classmethod
    def from_value(cls, value: codec.Value) -> "RegistryState":
        """The state a REG-11 snapshot describes; ValueError for anything else, so that a damaged
        or hostile snapshot is refused whole rather than half restored."""
        data: Any = value
        try:
            _require(isinstance(data, dict) and data.keys() == _SNAPSHOT_KEYS)
            members = {}
            for node, m in data["members"].items():
                _require(is_node_id(node) and isinstance(m, dict))
                _require(m.keys() == _MEMBER_KEYS or m.keys() == _MEMBER_KEYS_V1)
                _require(m["role"] in ROLES and type(m["joined_at"]) is int)
                _require(all(isinstance(m[k], str) for k in ("api", "peer", "raft")))
                relayed_by = m.get("relayed_by", "")
                _require(relayed_by == "" or is_node_id(relayed_by))
                members[node] = Member(
                    m["role"], m["peer"], m["api"], m["raft"], m["joined_at"], relayed_by
                )
            models = {}
            for model, nodes in data["models"].items():
                _require(
                    isinstance(nodes, list) and bool(nodes) and all(is_node_id(n) for n in nodes)
                )
                models[model] = frozenset(nodes)
            services = {}
            for name, v in data["services"].items():
                _require(isinstance(v, dict) and v.keys() == {"endpoints", "health"})
                _require(isinstance(v["endpoints"], list) and isinstance(v["health"], str))
                _require(all(isinstance(e, str) for e in v["endpoints"]))
                services[name] = Service(tuple(v["endpoints"]), v["health"])
            applied = []
            for pair in data["applied"]:
                _require(isinstance(pair, list) and len(pair) == 2)
                key, at = pair
                _require(isinstance(key, bytes) and len(key) == IDEMPOTENCY_KEY_BYTES)
                _require(type(at) is int)
                applied.append((key, at))
            parameters = data["parameters"]
            index = data["index"]
            _require(isinstance(parameters, dict) and type(index) is int and index >= 0)
        except (AttributeError, TypeError) as exc:
            raise ValueError("not a registry snapshot") from exc
        return cls(
            members=_frozen(members),
            services=_frozen(services),
            models=_frozen(models),
            parameters=Map(parameters),
            applied=DedupWindow.of(applied),
            index=index,
        )

    def voters(self) -> list[str]:
        return sorted(n for n, m in self.members.items() if m.role == "voter")

    def learners(self) -> list[str]:
        return sorted(n for n, m in self.members.items() if m.role == "learner")

    def eligible(self, node_id: str) -> bool:
        """REG-13: whether `node_id` may hold a voter seat: anyone while `registry.electors` is
        unset, else only the node ids it lists (a value that is no list of strings: nobody, so
        a mistake never opens the seats)."""
        electors = self.parameters.get(ELECTORS_PARAMETER)
        if electors is None and ELECTORS_PARAMETER not in self.parameters:
            return True
        return isinstance(electors, list) and node_id in electors

    @property
    def target_voters(self) -> int:
        """REG-13: the federation's voter count, a parameter so that every replica agrees."""
        value = self.parameters.get(VOTERS_PARAMETER)
        return value if type(value) is int and value in VOTER_COUNTS else DEFAULT_VOTERS


@dataclass(frozen=True, slots=True)
class Result:
    """What a proposer learns: `ok`, `duplicate` (already applied) or `rejected` with why."""

    status: str
    reason: str = ""


_OK = Result("ok")


@dataclass(frozen=True, slots=True)
class Applied:
    state: RegistryState
    result: Result


class _Invalid(Exception):
    pass


def _require(condition: bool) -> None:
    if not condition:
        raise ValueError("not a registry snapshot")


def encode_command(
    op: str, args: Mapping[str, codec.Value], *, key: bytes, by: str, at_ms: int
) -> bytes:
    """REG-1: a command's canonical bytes, as a proposer builds them. Only `args` is walked by
    the canonical encoder; the other fields are scalars, checked here and given in key order:
    3 µs a command, where encoding it whole took 6 (on the event loop, for every write)."""
    if not (type(op) is type(by) is str and type(key) is bytes and type(at_ms) is int):
        raise codec.EncodeError("a command's op and by are strings, its id bytes, its at an int")
    fields = {"args": codec.canonical(dict(args), 1), "at": at_ms, "by": by, "id": key, "op": op}
    try:
        return codec.pack_ordered(fields)
    except OverflowError:
        raise codec.EncodeError(f"integer {at_ms} outside the int64/uint64 range") from None


def apply(state: RegistryState, command: bytes) -> Applied:
    """REG-3: the next state after `command`; never raises, whatever the bytes."""
    try:
        op, args, key, by, at = _parse(command)
    except _Invalid as exc:
        return Applied(_counted(state), Result("rejected", str(exc)))
    if op == "sync":  # REG-14: a read barrier; it changes nothing, so there is nothing to remember
        return Applied(_counted(state), Result("rejected", "bad_args") if args else _OK)
    if state.applied.holds(key, at):
        return Applied(_counted(state), Result("duplicate"))
    if not _allowed(state, op, args, by, at):
        return Applied(_remembered(state, state, key, at), Result("rejected", "not_allowed"))
    try:
        changed = _OPS[op](state, args, by, at)
    except _Invalid as exc:
        return Applied(_remembered(state, state, key, at), Result("rejected", str(exc)))
    return Applied(_remembered(state, changed, key, at), _OK)


def _counted(state: RegistryState) -> RegistryState:
    """`state` after one more command that changed nothing else."""
    return RegistryState(
        state.members,
        state.services,
        state.models,
        state.parameters,
        state.applied,
        state.index + 1,
        state.holdings,
    )


def _with(
    s: RegistryState,
    *,
    members: Mapping[str, Member] | None = None,
    services: Mapping[str, Service] | None = None,
    models: Mapping[str, frozenset[str]] | None = None,
    parameters: Map[str, codec.Value] | None = None,
    holdings: Holdings | None = None,
) -> RegistryState:
    """`s` with some tables replaced: `dataclasses.replace` without its field-by-field checks.
    Applying a param.set (on every replica, for every write) went from 21.2 to 19.0 us.
    `holdings`: the counts after the change, from whoever changes the parameters or services;
    new members have their voters counted here."""
    if holdings is None:
        holdings = s.holdings
        if members is not None and holdings is not _UNCOUNTED:
            holdings = holdings.with_voters(_voters(members))
    return RegistryState(
        s.members if members is None else members,
        s.services if services is None else services,
        s.models if models is None else models,
        s.parameters if parameters is None else parameters,
        s.applied,
        s.index,
        holdings,
    )


def _remembered(before: RegistryState, after: RegistryState, key: bytes, at: int) -> RegistryState:
    """`after`'s tables, one command past `before`, with (key, at) remembered (REG-4): ids are
    kept for DEDUP_RETENTION_MS of command time, forgotten by the command's own timestamp so
    that every replica forgets the same ids at the same index. One construction per command,
    where three `dataclasses.replace` calls were a third of apply's time under cProfile."""
    applied = before.applied.remember(key, at, at - DEDUP_RETENTION_MS)
    return RegistryState(
        after.members,
        after.services,
        after.models,
        after.parameters,
        applied,
        before.index + 1,
        after.holdings,
    )


def _allowed(s: RegistryState, op: str, args: Mapping[str, codec.Value], by: str, at: int) -> bool:
    """REG-16: voters administer the registry; any member may keep a bounded number of
    parameters and services under its own name, relay a bounded number of newcomers' joins
    (REG-13), and manage its own models and membership. Until the registry has a voter, anyone
    may do anything: it is being created."""
    proposer = s.members.get(by)
    if proposer is not None and proposer.role == "voter":
        return True
    held = s.held()
    if not held.voters:
        return True
    target = args.get("node_id")
    if op in ("member.remove", "model.serve", "model.unserve"):
        return target == by
    if op == "member.join":  # a member relays a newcomer's join; only a node moves itself
        return target == by or (
            by in s.members and target not in s.members and _pending(s, at, by) < MEMBER_RELAYS
        )
    if by not in s.members:
        return False
    if op in ("param.set", "param.delete"):
        key = args.get("key")
        return _own(s.parameters, held.parameters, key, parameter_owner, by, op, MEMBER_PARAMETERS)
    if op in ("service.set", "service.remove"):
        name = args.get("name")
        return _own(s.services, held.services, name, service_owner, by, op, MEMBER_SERVICES)
    return False  # member.add, member.set_role


def _own(
    table: Mapping[str, object],
    counts: Mapping[str, int],
    name: codec.Value,
    owner_of: Callable[[str], str | None],
    by: str,
    op: str,
    limit: int,
) -> bool:
    """REG-16: the entry is under the member's own name (`owner_of` reads it from the prefix),
    and a new one fits its quota (`counts`: how many each member has)."""
    if not isinstance(name, str) or owner_of(name) != by:
        return False
    if not op.endswith(".set") or name in table:
        return True
    return counts.get(by, 0) < limit


def _pending(s: RegistryState, at: int, by: str | None = None) -> int:
    """REG-13: the members relayed (by `by`, or by anyone) that have not joined themselves
    since, and are not yet expired at command time `at`."""
    return sum(
        1
        for m in s.members.values()
        if m.relayed_by and (by is None or m.relayed_by == by) and not _expired(m, at)
    )


def _expired(member: Member, at: int) -> bool:
    """REG-13: a relayed member unconfirmed for PENDING_EXPIRY_MS of command time. Either way:
    a relay's `at` is its proposer's clock, and one dated ahead must not outlive the rule."""
    return bool(member.relayed_by) and abs(at - member.joined_at_ms) > PENDING_EXPIRY_MS


def _parse(command: bytes) -> tuple[str, dict[str, codec.Value], bytes, str, int]:
    if len(command) > MAX_COMMAND_BYTES:
        raise _Invalid("oversized")
    try:
        value = codec.decode(command)
    except MalformedFrame:
        raise _Invalid("malformed") from None
    if not isinstance(value, dict) or value.keys() != _COMMAND_KEYS:
        raise _Invalid("malformed")
    op, args, key, by, at = value["op"], value["args"], value["id"], value["by"], value["at"]
    if not isinstance(op, str) or (op not in _OPS and op != "sync"):
        raise _Invalid("unknown_op")
    if not isinstance(args, dict):
        raise _Invalid("malformed")
    if not isinstance(key, bytes) or len(key) != IDEMPOTENCY_KEY_BYTES:
        raise _Invalid("malformed")
    if not is_node_id(by) or type(at) is not int or at < 0:
        raise _Invalid("malformed")
    return op, args, key, by, at


def _address(args: Mapping[str, codec.Value], name: str) -> str:
    """A HOST:PORT a node can dial: refused here rather than failing every node that reads it.
    `api` may also be empty: a node with no client API (REG-7, GOSSIP-4)."""
    if name == "api" and args.get(name) == "":
        return ""
    value = _text(args, name)
    try:
        parse_host_port(value)
    except ValueError:
        raise _Invalid(f"bad_{name}") from None
    return value


def _text(args: Mapping[str, codec.Value], name: str) -> str:
    value = args.get(name)
    if not isinstance(value, str) or not 0 < len(value.encode()) <= MAX_TEXT:
        raise _Invalid(f"bad_{name}")
    return value


def _node(args: Mapping[str, codec.Value], name: str = "node_id") -> str:
    value = args.get(name)
    if not is_node_id(value):
        raise _Invalid(f"bad_{name}")
    return value


def _exact(args: Mapping[str, codec.Value], *names: str) -> None:
    if args.keys() != set(names):
        raise _Invalid("bad_args")


def _member_add(s: RegistryState, args: dict[str, codec.Value], by: str, at: int) -> RegistryState:
    _exact(args, "node_id", "role", "peer", "api", "raft")
    node, role = _node(args), _text(args, "role")
    if role not in ROLES:
        raise _Invalid("bad_role")
    if node in s.members:
        raise _Invalid("already_member")
    member = Member(role, _address(args, "peer"), _address(args, "api"), _address(args, "raft"), at)
    return _with(s, members=_frozen({**s.members, node: member}))


def _member_join(s: RegistryState, args: dict[str, codec.Value], by: str, at: int) -> RegistryState:
    """REG-13: a newcomer is a learner, except the registry's first member (it created it); the
    leader fills voter seats from connected learners (RAFT-11), so a node id that nobody runs
    never holds one. A relayed newcomer stays counted against its relay until it joins itself,
    which it can only do over its own Raft connection (RAFT-8), or until it expires. A member
    that joins again keeps its role and joined_at and takes its new addresses."""
    _exact(args, "node_id", "peer", "api", "raft")
    node = _node(args)
    peer, api, raft = _address(args, "peer"), _address(args, "api"), _address(args, "raft")
    s = _without(s, [n for n, m in s.members.items() if _expired(m, at) and n != node])
    existing = s.members.get(node)
    if existing is not None:
        relayed_by = "" if by == node else existing.relayed_by
        member = replace(existing, peer=peer, api=api, raft=raft, relayed_by=relayed_by)
    elif len(s.members) >= MAX_MEMBERS:
        raise _Invalid("members_full")
    elif by != node and _pending(s, at) >= MAX_PENDING:
        raise _Invalid("pending_full")
    else:
        role = "learner" if s.voters() else "voter"
        member = Member(role, peer, api, raft, at, "" if by == node else by)
    return _with(s, members=_frozen({**s.members, node: member}))


def _without(s: RegistryState, nodes: list[str]) -> RegistryState:
    """The state with `nodes` no longer members, nor serving any model."""
    if not nodes:
        return s
    gone = frozenset(nodes)
    members = {n: m for n, m in s.members.items() if n not in gone}
    models = {m: held - gone for m, held in s.models.items() if held - gone}
    return _with(s, members=_frozen(members), models=_frozen(models))


def _member_remove(
    s: RegistryState, args: dict[str, codec.Value], by: str, at: int
) -> RegistryState:
    _exact(args, "node_id")
    node = _node(args)
    if node not in s.members:
        raise _Invalid("not_member")
    return _without(s, [node])


def _member_role(s: RegistryState, args: dict[str, codec.Value], by: str, at: int) -> RegistryState:
    _exact(args, "node_id", "role")
    node, role = _node(args), _text(args, "role")
    if role not in ROLES:
        raise _Invalid("bad_role")
    if node not in s.members:
        raise _Invalid("not_member")
    member = replace(s.members[node], role=role)
    return _with(s, members=_frozen({**s.members, node: member}))


def _service_set(s: RegistryState, args: dict[str, codec.Value], by: str, at: int) -> RegistryState:
    _exact(args, "name", "endpoints", "health")
    name, health = _text(args, "name"), _text(args, "health")
    endpoints = args["endpoints"]
    if not isinstance(endpoints, list) or not all(
        isinstance(e, str) and 0 < len(e.encode()) <= MAX_TEXT for e in endpoints
    ):
        raise _Invalid("bad_endpoints")
    service = Service(tuple(endpoints), health)  # type: ignore[arg-type]
    held = s.held()
    holdings = held if name in s.services else held.service(name, 1)
    return _with(s, services=_frozen({**s.services, name: service}), holdings=holdings)


def _service_remove(
    s: RegistryState, args: dict[str, codec.Value], by: str, at: int
) -> RegistryState:
    _exact(args, "name")
    name = _text(args, "name")
    if name not in s.services:
        raise _Invalid("no_such_service")
    services = _frozen({k: v for k, v in s.services.items() if k != name})
    return _with(s, services=services, holdings=s.held().service(name, -1))


def _model_serve(s: RegistryState, args: dict[str, codec.Value], by: str, at: int) -> RegistryState:
    _exact(args, "model_id", "node_id")
    model, node = _text(args, "model_id"), _node(args)
    if node not in s.members:
        raise _Invalid("not_member")
    nodes = s.models.get(model, frozenset()) | {node}
    return _with(s, models=_frozen({**s.models, model: nodes}))


def _model_unserve(
    s: RegistryState, args: dict[str, codec.Value], by: str, at: int
) -> RegistryState:
    _exact(args, "model_id", "node_id")
    model, node = _text(args, "model_id"), _node(args)
    remaining = s.models.get(model, frozenset()) - {node}
    models = {k: v for k, v in s.models.items() if k != model}
    if remaining:
        models[model] = remaining
    return _with(s, models=_frozen(models))


def _param_set(s: RegistryState, args: dict[str, codec.Value], by: str, at: int) -> RegistryState:
    _exact(args, "key", "value")
    key = _text(args, "key")
    if _height(args["value"]) > MAX_VALUE_HEIGHT:
        raise _Invalid("bad_value")
    held = s.held()
    holdings = held if key in s.parameters else held.parameter(key, 1)
    return _with(s, parameters=s.parameters.set(key, args["value"]), holdings=holdings)


def _height(value: codec.Value) -> int:
    """REG-10: how many arrays and maps nest inside one another in `value` (a scalar: 0)."""
    if type(value) is list:
        return 1 + max(map(_height, value), default=-1)
    if type(value) is dict:
        return 1 + max(map(_height, value.values()), default=-1)
    return 0


def _param_delete(
    s: RegistryState, args: dict[str, codec.Value], by: str, at: int
) -> RegistryState:
    _exact(args, "key")
    key = _text(args, "key")
    if key not in s.parameters:
        raise _Invalid("no_such_parameter")
    holdings = s.held().parameter(key, -1)
    return _with(s, parameters=s.parameters.delete(key), holdings=holdings)


_OPS = {
    "member.add": _member_add,
    "member.join": _member_join,
    "member.remove": _member_remove,
    "member.set_role": _member_role,
    "service.set": _service_set,
    "service.remove": _service_remove,
    "model.serve": _model_serve,
    "model.unserve": _model_unserve,
    "param.set": _param_set,
    "param.delete": _param_delete,
}
OPS: frozenset[str] = frozenset({*_OPS, "sync"})

"""Genesis files: what a node needs to create or join a federation (testnet/README.md).

    federation_id = "fpai-testnet-1"
    protocol_version = 1
    bootstrap = ["203.0.113.7:7100", "seed.example.org:7100"]
    registry_voters = 3
    registry_electors = ["fpn1...", "fpn1..."]

    [parameters]
    "testnet.name" = "FPAI testnet"
    open_registration = true

An unknown key is an error rather than silently ignored, so a node never runs a federation's
genesis it only half understands. `registry_voters`, `registry_electors` (the node ids that may
hold a voter seat, REG-13) and `[parameters]` are read by the node that creates the registry
(the first node): they become registry parameters once, at creation
(`RegistryService._bootstrap`); later changes go through the registry itself.
"""

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from fpai_node.config import Settings
from fpai_node.errors import ConfigError
from fpai_node.hostport import parse_host_port
from fpai_node.identity.nodeid import is_node_id
from fpai_node.registry.state import (
    DEFAULT_VOTERS,
    ELECTORS_PARAMETER,
    MAX_COMMAND_BYTES,
    MAX_TEXT,
    VOTERS_PARAMETER,
)
from fpai_node.wire import PROTOCOL_VERSION, codec

_KEYS = frozenset(
    {
        "federation_id",
        "protocol_version",
        "bootstrap",
        "registry_voters",
        "registry_electors",
        "parameters",
    }
)
GENESIS_VOTERS = (3, 5)  # a federation's registry survives one lost voter (3) or two (5)
DEFAULT_GENESIS_VOTERS = DEFAULT_VOTERS  # REG-13: survives one lost voter, fastest commits
# A parameter travels as one `param.set` command (REG-2: at most MAX_COMMAND_BYTES); this leaves
# room for the command's envelope (op, idempotency key, proposer's node id, timestamp).
MAX_PARAMETER_BYTES = MAX_COMMAND_BYTES - 1024
ParameterValue = str | int | bool


@dataclass(frozen=True, slots=True)
class Genesis:
    federation_id: str
    protocol_version: int
    bootstrap: tuple[str, ...]
    registry_voters: int = DEFAULT_GENESIS_VOTERS
    parameters: Mapping[str, ParameterValue] = field(default_factory=lambda: MappingProxyType({}))
    registry_electors: tuple[str, ...] | None = None  # None: the creating node decides


def load_genesis(path: Path) -> Genesis:
    """Read and check a genesis file; every problem is a one-line ConfigError naming the file
    and the key."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"genesis file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"genesis file {path}: cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"genesis file {path}: invalid TOML: {exc}") from None
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise ConfigError(f"genesis file {path}: unknown key {unknown[0]!r}")
    federation_id = data.get("federation_id")
    if not isinstance(federation_id, str) or not federation_id.strip():
        raise ConfigError(f"genesis file {path}: federation_id must be a non-empty string")
    version = data.get("protocol_version")
    if type(version) is not int:
        raise ConfigError(f"genesis file {path}: protocol_version must be an integer")
    if version != PROTOCOL_VERSION:
        raise ConfigError(
            f"genesis file {path}: federation {federation_id} speaks protocol {version}, "
            f"this node speaks {PROTOCOL_VERSION}"
        )
    bootstrap = data.get("bootstrap", [])
    if not isinstance(bootstrap, list) or not all(isinstance(b, str) for b in bootstrap):
        raise ConfigError(f"genesis file {path}: bootstrap must be a list of HOST:PORT strings")
    try:
        peers = tuple(dict.fromkeys(str(parse_host_port(b)) for b in bootstrap))
    except ValueError as exc:
        raise ConfigError(f"genesis file {path}: bootstrap: {exc}") from None
    voters = data.get("registry_voters", DEFAULT_GENESIS_VOTERS)
    if type(voters) is not int or voters not in GENESIS_VOTERS:
        raise ConfigError(
            f"genesis file {path}: registry_voters must be 3 or 5 (an integer), got {voters!r}"
        )
    electors = data.get("registry_electors")
    if electors is not None and (
        not isinstance(electors, list) or not electors or not all(is_node_id(e) for e in electors)
    ):
        raise ConfigError(
            f"genesis file {path}: registry_electors must be a non-empty list of node ids "
            "(`fpai-node id` prints a node's)"
        )
    table = data.get("parameters", {})
    if not isinstance(table, dict):
        raise ConfigError(f"genesis file {path}: parameters must be a table ([parameters])")
    parameters: dict[str, ParameterValue] = {}
    for key, value in _flatten(table, ""):
        problem = _parameter_problem(key, value, parameters)
        if problem:
            raise ConfigError(f"genesis file {path}: parameters.{key}: {problem}")
        parameters[key] = value  # type: ignore[assignment]  # checked just above
    return Genesis(
        federation_id,
        version,
        peers,
        voters,
        MappingProxyType(dict(sorted(parameters.items()))),
        None if electors is None else tuple(dict.fromkeys(electors)),
    )


def registry_voters(settings: Settings, genesis: Genesis | None) -> int:
    """The voter target this node gives a registry it creates: the genesis' when it has one
    (the genesis defines the federation), else the node's registry_voters setting, else 3. A
    setting that contradicts the genesis is an error, not silently overruled."""
    if genesis is None:
        return settings.registry_voters or DEFAULT_VOTERS
    if settings.registry_voters not in (None, genesis.registry_voters):
        raise ConfigError(
            f"genesis file {settings.genesis}: registry_voters is {genesis.registry_voters}, but "
            f"this node's registry_voters setting (--registry-voters, FPAI_REGISTRY_VOTERS or "
            f"node.toml) is {settings.registry_voters}: the genesis decides; drop the setting"
        )
    return genesis.registry_voters


def registry_electors(
    settings: Settings, genesis: Genesis | None, node_id: str
) -> tuple[str, ...] | None:
    """REG-13: who may hold a voter seat in a registry this node creates (None: anyone). The
    genesis decides when it says; a federation-preset registry admits only certified nodes,
    and one whose peer channel listens on loopback only this machine's, so anyone of those may
    vote; otherwise strangers can join, and only the creator votes until the voters elect
    others (`fpai-node registry elect NODE_ID`)."""
    if genesis is not None and genesis.registry_electors is not None:
        return genesis.registry_electors
    if settings.preset == "federation" or settings.peer.is_loopback:
        return None
    return (node_id,)


def _flatten(table: dict[str, object], prefix: str) -> list[tuple[str, object]]:
    """A nested table's keys joined with '.': `a.b = 1` (a dotted TOML key, which TOML reads as
    a table) and `"a.b" = 1` both name the registry parameter `a.b`."""
    items: list[tuple[str, object]] = []
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            if not value:
                items.append((name, value))  # reported as a bad value, not dropped silently
            items += _flatten(value, f"{name}.")
        else:
            items.append((name, value))
    return items


def _parameter_problem(key: str, value: object, seen: Mapping[str, object]) -> str:
    if key in seen:
        return "defined twice (as a dotted key and as a quoted key)"
    if key == VOTERS_PARAMETER:
        return "set the top-level registry_voters instead"
    if key == ELECTORS_PARAMETER:
        return "set the top-level registry_electors instead"
    if not 0 < len(key.encode()) <= MAX_TEXT:
        return f"a parameter key has 1 to {MAX_TEXT} bytes"
    if isinstance(value, float):
        return (
            f"{value!r} is a floating-point number, which registry values cannot hold (their "
            "canonical encoding has none): write an integer (e.g. in thousandths) or a string"
        )
    if not isinstance(value, str | int | bool):
        kind = type(value).__name__
        return f"must be a string, an integer or a boolean, got a {kind}"
    if len(codec.encode({"key": key, "value": value})) > MAX_PARAMETER_BYTES:
        return f"too long: a parameter and its key take at most {MAX_PARAMETER_BYTES} bytes"
    return ""

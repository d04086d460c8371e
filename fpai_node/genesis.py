"""Genesis files: what a node needs to join a federation it has never seen (testnet/README.md).

    federation_id = "fpai-testnet-1"
    protocol_version = 1
    bootstrap = ["203.0.113.7:7100", "seed.example.org:7100"]

Later versions add registry voters and parameters; an unknown key is an error rather than
silently ignored, so a node never runs a federation's genesis it only half understands.
"""

import tomllib
from dataclasses import dataclass
from pathlib import Path

from fpai_node.config import parse_host_port
from fpai_node.errors import ConfigError
from fpai_node.wire import PROTOCOL_VERSION

_KEYS = frozenset({"federation_id", "protocol_version", "bootstrap"})


@dataclass(frozen=True, slots=True)
class Genesis:
    federation_id: str
    protocol_version: int
    bootstrap: tuple[str, ...]


def load_genesis(path: Path) -> Genesis:
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
    if not isinstance(federation_id, str) or not federation_id:
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
        peers = tuple(str(parse_host_port(b)) for b in bootstrap)
    except ValueError as exc:
        raise ConfigError(f"genesis file {path}: bootstrap: {exc}") from None
    return Genesis(federation_id, version, peers)

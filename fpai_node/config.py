"""Settings: one frozen object resolved CLI flag > FPAI_* environment > node.toml > preset.

Every key is declared once in `FIELDS` with its parser and the reason for its default. A bad
value anywhere is a ConfigError naming where it came from and the key, in one line.
"""

import os
import tomllib
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from fpai_node.errors import ConfigError
from fpai_node.hostport import HostPort, parse_host_port
from fpai_node.supervisor.actions import MODES

Preset = Literal["local", "testnet", "federation"]
PRESETS: tuple[Preset, ...] = ("local", "testnet", "federation")
LOG_FORMATS = ("auto", "console", "json")
LOG_LEVELS = ("debug", "info", "warning", "error")
ENV_PREFIX = "FPAI_"
RAFT_PORT_OFFSET = 100  # 7100 -> 7200: one --peer flag places both channels


@dataclass(frozen=True, slots=True)
class Settings:
    home: Path
    preset: Preset = "local"
    api: HostPort = HostPort("127.0.0.1", 8100)
    api_keys: tuple[str, ...] = ()
    insecure_public: bool = False
    log_format: str = "auto"
    log_level: str = "info"
    models: tuple[str, ...] = ()
    no_model: bool = False
    upstreams: tuple[str, ...] = ()
    upstream_api_key: str | None = None
    context_length: int = 4096
    threads: int = 0
    batch_sequences: int = 8
    flash_attention: bool = True
    queue_depth: int = 16
    peer: HostPort = HostPort("127.0.0.1", 7100)
    join: tuple[str, ...] = ()
    genesis: str | None = None
    raft: HostPort | None = None
    registry_voters: int | None = None  # unset: the genesis' registry_voters, else 3
    registry_dead_after_s: int = 60
    memory: bool = True
    memory_qdrant_url: str | None = None
    memory_qdrant_api_key: str | None = None
    chain_rpc: str | None = None
    chain_deployment: str | None = None
    treasury_grace_s: int = 10
    autonomy: str = "supervised"

    @property
    def config_file(self) -> Path:
        return self.home / "node.toml"

    @property
    def raft_address(self) -> HostPort:
        """The Raft endpoint: as set, else the peer host with the peer port + 100 (port 0, any
        free port, stays 0)."""
        if self.raft is not None:
            return self.raft
        port = self.peer.port + RAFT_PORT_OFFSET if self.peer.port else 0
        return HostPort(self.peer.host, port)


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def _address(text: str) -> str:
    return str(parse_host_port(text))


def _nonempty(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be empty")
    return text


def _choice(options: tuple[str, ...]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in options:
            raise ValueError(f"expected one of {', '.join(options)}, got {text!r}")
        return text

    return parse


def _model_spec(text: str) -> str:
    from fpai_node.inference.models import parse_model_spec

    parse_model_spec(text)
    return text


def _url(text: str) -> str:
    parsed = urllib.parse.urlsplit(text)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError(f"expected an http:// or https:// URL, got {text!r}")
    return text.rstrip("/")


def _int_between(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"expected an integer, got {text!r}") from None
        if not low <= value <= high:
            raise ValueError(f"expected an integer from {low} to {high}, got {value}")
        return value

    return parse


def _odd_voters(text: str) -> int:
    value = _int_between(1, 7)(text)
    if value % 2 == 0:
        raise ValueError(f"expected 1, 3, 5 or 7 voters (an odd number), got {value}")
    return value


def _api_key(text: str) -> str:
    if len(text) < 16 or any(c.isspace() for c in text):
        raise ValueError("an API key needs at least 16 characters and no white space")
    return text


@dataclass(frozen=True, slots=True)
class Field:
    """One setting: how to read it from text (env, flags) and from TOML, and why its default."""

    name: str
    parse: Callable[[str], Any]
    toml_type: type
    rationale: str
    is_list: bool = False

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    def from_toml(self, value: object) -> Any:
        if self.is_list:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError("expected a list of strings")
            return tuple(self.parse(v) for v in value)
        if type(value) is not self.toml_type:
            raise ValueError(f"expected a {self.toml_type.__name__}, got {value!r}")
        return value if self.toml_type is bool else self.parse(str(value))

    def from_text(self, text: str) -> Any:
        if self.is_list:
            return tuple(self.parse(part.strip()) for part in text.split(",") if part.strip())
        return self.parse(text)


FIELDS: tuple[Field, ...] = (
    Field(
        "api",
        parse_host_port,
        str,
        "loopback: the client API is private until the operator decides otherwise",
    ),
    Field(
        "api_keys",
        _api_key,
        str,
        "none: a loopback API is reachable only by this machine's users",
        is_list=True,
    ),
    Field(
        "insecure_public",
        _parse_bool,
        bool,
        "false: a public bind without an API key must be an explicit, visible choice",
    ),
    Field(
        "log_format",
        _choice(LOG_FORMATS),
        str,
        "auto: coloured console lines for a terminal, JSON lines for log collectors",
    ),
    Field(
        "log_level",
        _choice(LOG_LEVELS),
        str,
        "info: lifecycle events and rejections without per-request noise",
    ),
    Field(
        "models",
        _model_spec,
        str,
        "none: serve the bundled Gemma 3 270M; PATH.gguf[=ID] for llama.cpp, else a vLLM model",
        is_list=True,
    ),
    Field(
        "no_model",
        _parse_bool,
        bool,
        "false: a node serves something unless it is meant as a pure gateway",
    ),
    Field(
        "upstreams",
        _url,
        str,
        "none: OpenAI-compatible servers (Ollama, llama.cpp, vLLM) whose models this node serves",
        is_list=True,
    ),
    Field(
        "upstream_api_key",
        _nonempty,
        str,
        "unset: sent as the bearer key to every upstream that needs one",
    ),
    Field(
        "context_length",
        _int_between(256, 1 << 20),
        int,
        "4096 tokens (capped at the model's own): room for chat history within CPU memory",
    ),
    Field(
        "threads",
        _int_between(0, 1024),
        int,
        "0 means every core: a node's CPU is there to serve inference",
    ),
    Field(
        "batch_sequences",
        _int_between(1, 64),
        int,
        "8 requests per llama.cpp model decoded in one batch: on 2 cores 8 give 2.1-2.8x the "
        "tokens/s of one at a time and 4 give 2.4x (benchmarks/inference.py); each holds "
        "context_length tokens of cache (8 x 4096: 943 MiB peak RSS, against 773 before batching)",
    ),
    Field(
        "flash_attention",
        _parse_bool,
        bool,
        "true: llama.cpp's flash attention is faster on CPU too (measured on 2 cores: 44 against "
        "42 tok/s for one stream, 71 against 68 for eight)",
    ),
    Field(
        "peer",
        parse_host_port,
        str,
        "loopback: peers on other machines need the operator to choose a reachable address",
    ),
    Field(
        "join",
        _address,
        str,
        "none: the first node of a federation; others join any member's HOST:PORT",
        is_list=True,
    ),
    Field(
        "genesis",
        _nonempty,
        str,
        "unset: a genesis file names a federation and its bootstrap peers (testnet/README.md)",
    ),
    Field(
        "raft",
        parse_host_port,
        str,
        "the peer host, port + 100 (7200): Raft traffic, mutual TLS like the peer channel",
    ),
    Field(
        "registry_voters",
        _odd_voters,
        int,
        "unset: the genesis file's registry_voters, else 3: the registry survives one lost "
        "voter; 5 survives two, with slower commits",
    ),
    Field(
        "registry_dead_after_s",
        _int_between(1, 86_400),
        int,
        "60 s: a voter unreachable this long is replaced by a live learner; restarts are quicker",
    ),
    Field(
        "memory",
        _parse_bool,
        bool,
        "true: every node holds memory shards, so memory survives any one node (specs/0007)",
    ),
    Field(
        "memory_qdrant_url",
        _url,
        str,
        "unset: shards live in Qdrant's embedded engine under <home>/memory; a URL puts them in "
        "a Qdrant server or cluster, for stores beyond one disk",
    ),
    Field(
        "memory_qdrant_api_key",
        _nonempty,
        str,
        "unset: sent to the Qdrant server of memory_qdrant_url when it needs one",
    ),
    Field(
        "chain_rpc",
        _url,
        str,
        "unset: no chain, and the treasury answers 'no chain configured'; any EVM JSON-RPC URL "
        "(docs/treasury.md)",
    ),
    Field(
        "chain_deployment",
        _nonempty,
        str,
        "unset: <home>/chain/deployment.json, where `testnet up` puts it; the file `fpai-node "
        "chain deploy --out` wrote, checked on the chain before use",
    ),
    Field(
        "treasury_grace_s",
        _int_between(0, 3600),
        int,
        "10 s: a ballot's or proposal's own node relays, queues and executes at once; every other "
        "node waits this long times its turn, so one acts and the rest stand by (specs/0009)",
    ),
    Field(
        "autonomy",
        _choice(MODES),
        str,
        "supervised: the node finds what needs repair (a dead voter, a dead node's shards) and "
        "an operator approves each repair; autonomous repairs and records it; off does neither",
    ),
    Field(
        "queue_depth",
        _int_between(0, 10_000),
        int,
        "16 waiting requests per model: beyond that a client hears 429 now, not a timeout later",
    ),
)
_BY_NAME = {f.name: f for f in FIELDS}
TOML_KEYS = ("preset", *_BY_NAME)


def load_settings(
    home: Path,
    *,
    cli: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Resolve every setting; `cli` holds only the flags the user actually gave (typed values)."""
    cli = dict(cli or {})
    environ = os.environ if environ is None else environ
    file_values = _read_toml(home / "node.toml")
    preset = _resolve_preset(cli, environ, file_values, home / "node.toml")
    values: dict[str, Any] = {"home": home, "preset": preset}
    for f in FIELDS:
        if f.name in cli:
            values[f.name] = cli[f.name]
        elif f.env in environ:
            try:
                values[f.name] = f.from_text(environ[f.env])
            except ValueError as exc:
                raise ConfigError(f"{f.env}: {exc}") from None
        elif f.name in file_values:
            try:
                values[f.name] = f.from_toml(file_values[f.name])
            except ValueError as exc:
                raise ConfigError(f"{home / 'node.toml'}: {f.name}: {exc}") from None
    return Settings(**values)


def _resolve_preset(
    cli: Mapping[str, Any],
    environ: Mapping[str, str],
    file_values: Mapping[str, object],
    config_file: Path,
) -> Preset:
    for source, value in (
        ("--preset", cli.get("preset")),
        (ENV_PREFIX + "PRESET", environ.get(ENV_PREFIX + "PRESET")),
        (f"{config_file}: preset", file_values.get("preset")),
    ):
        if value is None:
            continue
        if value not in PRESETS:
            raise ConfigError(f"{source}: expected one of {', '.join(PRESETS)}, got {value!r}")
        return value
    return "local"


def _read_toml(path: Path) -> dict[str, object]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    for key in data:
        if key not in TOML_KEYS:
            raise ConfigError(f"{path}: unknown key {key!r} (known keys: {', '.join(TOML_KEYS)})")
    mode = path.stat().st_mode & 0o777
    if (data.get("api_keys") or data.get("upstream_api_key")) and mode & 0o077:
        raise ConfigError(
            f"{path} holds API keys and others may read it (mode {mode:04o}): "
            f"run `chmod 600 {path}`"
        )
    return data


def check_safe_binds(settings: Settings) -> None:
    """SEC: a public client API needs an API key, or the operator's explicit --insecure-public."""
    if not settings.api.is_loopback and not settings.api_keys and not settings.insecure_public:
        raise ConfigError(
            f"refusing to serve the API on non-loopback address {settings.api} without an API "
            "key; pass --api-key (or set api_keys), or --insecure-public to accept the risk"
        )


def render_node_toml(preset: Preset) -> str:
    """The node.toml that `init` writes: the preset, then every other key commented out with the
    default it would take and why."""
    defaults = Settings(home=Path())
    lines = [
        "# fpai-node configuration. Precedence: command-line flag > FPAI_* environment > this file",
        "# > preset. Uncomment a line to change it.",
        "",
        "# Defaults for a kind of deployment: local, testnet or federation.",
        f'preset = "{preset}"',
        "",
    ]
    for f in FIELDS:
        value = getattr(defaults, f.name)
        if value is None:
            lines += [f"# {f.rationale} (env {f.env})", f"# {f.name} = ...", ""]
            continue
        if isinstance(value, bool):
            shown = "true" if value else "false"
        elif isinstance(value, int):
            shown = str(value)
        elif isinstance(value, tuple):
            shown = "[" + ", ".join(f'"{v}"' for v in value) + "]"
        else:
            shown = f'"{value}"'
        lines += [f"# {f.rationale} (env {f.env})", f"# {f.name} = {shown}", ""]
    return "\n".join(lines)

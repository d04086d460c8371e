"""`init`, `id`, `start` and `status`: the commands that create and run one node."""

import json
from pathlib import Path
from typing import Annotated, Any

import structlog
import typer

from fpai_node.chain import operator_key as operator_keys
from fpai_node.cli.client import NodeClient
from fpai_node.config import (
    FIELDS,
    LOG_FORMATS,
    LOG_LEVELS,
    PRESETS,
    Preset,
    check_safe_binds,
    load_settings,
)
from fpai_node.errors import ConfigError, NodeNotRunningError
from fpai_node.home import Home, default_home
from fpai_node.identity import NodeKey
from fpai_node.log import configure_logging

HomeOption = Annotated[
    Path | None,
    typer.Option(
        "--home", metavar="DIR", help="Node home directory [default: $FPAI_HOME, else ~/.fpai]"
    ),
]
ApiOption = Annotated[
    str | None,
    typer.Option("--api", metavar="URL", help="A node's API, e.g. http://127.0.0.1:8100"),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
PresetOption = Annotated[
    str | None, typer.Option("--preset", help=f"One of {', '.join(PRESETS)} [default: local]")
]


KeyOption = Annotated[
    str | None,
    typer.Option(
        "--api-key", metavar="KEY", help="Bearer key [default: the home's first api_keys]"
    ),
]


def keyed_client(home: Path | None, api: str | None, api_key: str | None) -> NodeClient:
    """A client for the home's node that sends --api-key, else the first of FPAI_API_KEYS or
    of the home's node.toml: a node started with keys from either is found by its clients."""
    target = home_of(home)
    if api_key is None:
        keys = load_settings(target.root).api_keys
        api_key = keys[0] if keys else None
    return NodeClient(node_url(target, api), api_key)


def node_url(home: Home, api: str | None) -> str:
    """The API of the node to talk to: --api, else the address the home's node wrote."""
    url = api or home.read_api_url()
    if url is None:
        raise NodeNotRunningError(f"no node is running for home {home.root}")
    return url.rstrip("/")


def home_of(path: Path | None) -> Home:
    return Home((path or default_home()).expanduser().absolute())


def _preset(value: str | None) -> Preset:
    if value is not None and value not in PRESETS:
        raise ConfigError(f"--preset: expected one of {', '.join(PRESETS)}, got {value!r}")
    return value or "local"


def init(
    home: HomeOption = None,
    preset: PresetOption = None,
    operator_key: Annotated[
        Path | None,
        typer.Option(
            "--operator-key",
            metavar="FILE",
            help="Import this Ethereum key (hex, mode 0600) for the operator [default: a new key]",
        ),
    ] = None,
) -> None:
    """Create a node home with node.toml, a new Ed25519 node key and an operator key; print the
    node id and the operator's address."""
    target = home_of(home)
    key = target.init(_preset(preset), operator_key)
    typer.echo(f"initialised {target.root}")
    typer.echo(f"node id {key.node_id}")
    typer.echo(f"operator {operator_address(target)}")


def node_id(
    home: HomeOption = None,
    as_json: JsonOption = False,
    operator: Annotated[
        bool, typer.Option("--operator", help="Print the operator's Ethereum address instead")
    ] = False,
) -> None:
    """Print this node's id (one line, for scripts), or with --json its public key and its
    operator's address too."""
    target = home_of(home)
    key = NodeKey.load(target.key_file)
    if as_json:
        shown = {
            "node_id": key.node_id,
            "public_key": key.public_key.hex(),
            "operator": operator_address(target),
        }
        typer.echo(json.dumps(shown))
    elif operator:
        typer.echo(operator_address(target))
    else:
        typer.echo(key.node_id)


def operator_address(home: Home) -> str:
    """The address of the home's operator key, made first for a home older than such keys."""
    home.ensure_operator_key()
    return operator_keys.address_of(operator_keys.read_secret(home.operator_key_file))


def start(
    home: HomeOption = None,
    preset: PresetOption = None,
    api: Annotated[
        str | None,
        typer.Option("--api", metavar="HOST:PORT", help="Client API address [127.0.0.1:8100]"),
    ] = None,
    api_key: Annotated[
        list[str] | None,
        typer.Option("--api-key", metavar="KEY", help="Require this bearer key (repeatable)"),
    ] = None,
    insecure_public: Annotated[
        bool | None,
        typer.Option("--insecure-public", help="Allow a non-loopback API without an API key"),
    ] = None,
    log_format: Annotated[
        str | None, typer.Option("--log-format", help=f"One of {', '.join(LOG_FORMATS)}")
    ] = None,
    log_level: Annotated[
        str | None, typer.Option("--log-level", help=f"One of {', '.join(LOG_LEVELS)}")
    ] = None,
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            metavar="PATH[=ID]",
            help="Serve this model (repeatable): a .gguf file with llama.cpp, else a vLLM model",
        ),
    ] = None,
    no_model: Annotated[
        bool | None, typer.Option("--no-model", help="Serve nothing locally (a gateway node)")
    ] = None,
    upstream: Annotated[
        list[str] | None,
        typer.Option(
            "--upstream", metavar="URL", help="Serve the models of this OpenAI-compatible server"
        ),
    ] = None,
    peer: Annotated[
        str | None,
        typer.Option("--peer", metavar="HOST:PORT", help="Peer channel address [127.0.0.1:7100]"),
    ] = None,
    join: Annotated[
        list[str] | None,
        typer.Option(
            "--join", metavar="HOST:PORT", help="A federation member to join (repeatable)"
        ),
    ] = None,
    genesis: Annotated[
        Path | None,
        typer.Option("--genesis", metavar="FILE", help="A federation's genesis file (bootstrap)"),
    ] = None,
    raft: Annotated[
        str | None,
        typer.Option("--raft", metavar="HOST:PORT", help="Registry (Raft) address [peer port+100]"),
    ] = None,
    registry_voters: Annotated[
        str | None,
        typer.Option(
            "--registry-voters", metavar="N", help="Voters a new registry keeps: 1, 3, 5 or 7 [3]"
        ),
    ] = None,
    autonomy: Annotated[
        str | None,
        typer.Option(
            "--autonomy",
            metavar="MODE",
            help="off, supervised (repairs wait for `fpai-node actions approve`) or autonomous "
            "[supervised]",
        ),
    ] = None,
) -> None:
    """Run the node in the foreground until Ctrl-C or SIGTERM (creates the home if missing)."""
    import uvloop

    from fpai_node.node import serve

    target = home_of(home)
    flags = _flags(preset, api, api_key, insecure_public, log_format, log_level)
    if peer is not None:
        flags["peer"] = _parse_one("peer", "--peer", peer)
    if raft is not None:
        flags["raft"] = _parse_one("raft", "--raft", raft)
    if registry_voters is not None:
        flags["registry_voters"] = _parse_one(
            "registry_voters", "--registry-voters", registry_voters
        )
    if autonomy is not None:
        flags["autonomy"] = _parse_one("autonomy", "--autonomy", autonomy)
    if genesis is not None:
        flags["genesis"] = str(genesis.expanduser().absolute())
    for name, flag, values in (
        ("models", "--model", model),
        ("upstreams", "--upstream", upstream),
        ("join", "--join", join),
    ):
        if values:
            flags[name] = _parse_list(name, flag, values)
    if no_model:
        flags["no_model"] = True
    settings = load_settings(target.root, cli=flags)
    check_safe_binds(settings)
    configure_logging(settings.log_format, settings.log_level)
    if target.is_initialised():
        key = NodeKey.load(target.key_file)
        made = target.ensure_operator_key()
        if made is not None:  # a home from before operator keys
            structlog.get_logger("fpai.cli").info("operator key created", operator=made)
    else:
        key = target.init(settings.preset)
        structlog.get_logger("fpai.cli").info(
            "home initialised", home=str(target.root), node_id=key.node_id
        )
    # uvloop's loop, not asyncio's own: 6 to 12% more registry writes a second at 16 clients,
    # side by side (docs/registry.md)
    uvloop.run(serve(settings, key))


def _flags(
    preset: str | None,
    api: str | None,
    api_key: list[str] | None,
    insecure_public: bool | None,
    log_format: str | None,
    log_level: str | None,
) -> dict[str, Any]:
    """Typed values of the flags the user gave, validated with the same rules as node.toml."""
    given: dict[str, Any] = {}
    if preset is not None:
        given["preset"] = _preset(preset)
    for name, flag, value in (
        ("api", "--api", api),
        ("log_format", "--log-format", log_format),
        ("log_level", "--log-level", log_level),
    ):
        if value is not None:
            given[name] = _parse_one(name, flag, value)
    if api_key:
        given["api_keys"] = _parse_list("api_keys", "--api-key", api_key)
    if insecure_public:
        given["insecure_public"] = True
    return given


def _parse_one(name: str, flag: str, value: str) -> Any:
    """A flag's value, checked by the same rule as the node.toml key of that name."""
    parse = next(f.parse for f in FIELDS if f.name == name)
    try:
        return parse(value)
    except ValueError as exc:
        raise ConfigError(f"{flag}: {exc}") from None


def _parse_list(name: str, flag: str, values: list[str]) -> tuple[str, ...]:
    return tuple(_parse_one(name, flag, v) for v in values)


def status(
    home: HomeOption = None,
    api: ApiOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a running node's status."""
    url = node_url(home_of(home), api)
    data = NodeClient(url.rstrip("/")).get("/fpai/v1/status")
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    registry = data.get("registry") or {}
    rows = [
        ("node", data.get("node_id")),
        ("version", f"{data.get('version')} (protocol {data.get('protocol_version')})"),
        ("api", url),
        ("peer", (data.get("peer_channel") or {}).get("address") or "-"),
        ("preset", data.get("preset")),
        ("uptime", f"{data.get('uptime_s', 0):.0f} s"),
        ("peers", _peer_counts(data.get("peers") or [])),
        ("registry", f"leader {registry.get('leader') or '-'}, term {registry.get('term', 0)}"),
        ("models", ", ".join(str(m.get("id", "?")) for m in data.get("models") or []) or "none"),
    ]
    supervisor = data.get("supervisor")
    if supervisor:
        audit = supervisor["sovereignty"]
        rows.append(
            ("autonomy", f"{supervisor['autonomy']}, {supervisor['pending']} action(s) pending")
        )
        weak = ", ".join(w["kind"] for w in audit["single_points_of_failure"]) or "none found"
        rows.append(
            ("sovereign", f"{audit['score']} / {audit['max']}; single points of failure: {weak}")
        )
    for label, value in rows:
        typer.echo(f"{label:<9}{value}")


def peers(
    home: HomeOption = None,
    api: ApiOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the peers a running node knows, with their state and models."""
    table = NodeClient(node_url(home_of(home), api)).get("/fpai/v1/status").get("peers") or []
    if as_json:
        typer.echo(json.dumps(table, indent=2))
        return
    if not table:
        typer.echo("no peers")
        return
    typer.echo(f"{'NODE':<38}{'STATE':<9}{'PEER ADDRESS':<24}MODELS")
    for entry in table:
        models = ", ".join(m["id"] for m in entry.get("models") or []) or "-"
        typer.echo(f"{entry['node_id']:<38}{entry['state']:<9}{entry['address']:<24}{models}")


def _peer_counts(peers: list[dict[str, Any]]) -> str:
    """`3 (2 alive, 1 dead)`: the whole table at a glance."""
    states: dict[str, int] = {}
    for peer in peers:
        states[peer.get("state", "?")] = states.get(peer.get("state", "?"), 0) + 1
    detail = ", ".join(f"{n} {state}" for state, n in sorted(states.items()))
    return f"{len(peers)} ({detail})" if peers else "0"


def register(app: typer.Typer) -> None:
    app.command()(init)
    app.command("id")(node_id)
    app.command()(start)
    app.command()(status)
    app.command()(peers)

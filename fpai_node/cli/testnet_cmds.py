"""`fpai-node testnet up|status|down`: a federation of N nodes on this machine, in one command."""

import contextlib
import json
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from fpai_node import testnet_chain
from fpai_node.cli.client import NodeClient
from fpai_node.cli.node_cmds import JsonOption
from fpai_node.errors import ConfigError, FpaiError
from fpai_node.testnet import (
    DEFAULT_BASE_PORT,
    NodeView,
    Progress,
    Testnet,
    created_paths,
    default_directory,
    observe,
    prepare,
    stop,
    up,
)

testnet_app = typer.Typer(
    name="testnet",
    help="Run a federation of N nodes on this machine (loopback), for trying fpai-node.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
DirOption = Annotated[
    Path | None,
    typer.Option("--dir", metavar="DIR", help="Where the testnet lives [default: ~/.fpai-testnet]"),
]
SPINNER = "|/-\\"


@testnet_app.command("up")
def up_command(
    nodes: Annotated[
        int | None, typer.Option("--nodes", min=1, help="How many nodes [default: 3]")
    ] = None,
    directory: DirOption = None,
    base_port: Annotated[
        int | None,
        typer.Option(
            "--base-port",
            metavar="P",
            help=f"API ports from P, peer P+100, Raft P+200 [default: {DEFAULT_BASE_PORT}]",
        ),
    ] = None,
    serving: Annotated[
        int,
        typer.Option(
            "--serving", min=0, help="How many nodes serve the bundled model; the rest route"
        ),
    ] = 1,
    no_chain: Annotated[
        bool, typer.Option("--no-chain", help="No chain (anvil) and so no treasury")
    ] = False,
) -> None:
    """Create (or resume) the testnet, start its chain and its nodes, wait until they form one
    federation."""
    root = (directory or default_directory()).expanduser().absolute()
    testnet = Testnet.load(root)
    if testnet is None:
        missing = None if no_chain else testnet_chain.available()
        if missing is not None:
            typer.echo(f"no chain, so no treasury: {missing}")
        chain = not no_chain and missing is None
        testnet = Testnet.plan(root, nodes or 3, base_port or DEFAULT_BASE_PORT, serving, chain)
        typer.echo(f"creating a testnet of {len(testnet.nodes)} nodes in {root}")
    else:
        if nodes is not None and nodes != len(testnet.nodes):
            raise ConfigError(
                f"{root} holds a testnet of {len(testnet.nodes)} nodes; run `fpai-node testnet "
                f"down --dir {root} --purge` first to make one of {nodes}"
            )
        if base_port is not None and base_port != testnet.nodes[0].api_port:
            raise ConfigError(f"{root} holds a testnet on base port {testnet.nodes[0].api_port}")
        typer.echo(f"resuming the testnet in {root}")
    prepare(testnet)
    seconds = up(testnet, _progress_printer(), on_step=lambda step: typer.echo(step, err=True))
    _clear_line()
    count = len(testnet.nodes)
    typer.echo(f"the federation is up: {count} nodes, healthy and converged in {seconds:.1f} s\n")
    _print_table(observe(testnet))
    first = testnet.nodes[0]
    _print_chain(testnet)
    treasury = (
        f"     fpai-node treasury status --home {first.home}\n" if testnet.chain is not None else ""
    )
    typer.echo(
        f"\ntry: curl {first.api_url}/v1/models\n"
        f"{treasury}"
        f"     fpai-node testnet status --dir {root}\n"
        f"     fpai-node testnet down --dir {root}"
    )


@testnet_app.command("status")
def status_command(directory: DirOption = None, as_json: JsonOption = False) -> None:
    """Show every node's health, the registry leader it sees and its peers."""
    testnet = _existing(directory)
    views = observe(testnet)
    if as_json:
        typer.echo(json.dumps([_view_json(v) for v in views], indent=2))
        return
    _print_table(views)
    _print_chain(testnet)
    down = [v.node.name for v in views if not v.healthy]
    if down:
        typer.echo(f"\nnot answering: {', '.join(down)} (see their logs in {testnet.directory})")


@testnet_app.command("down")
def down_command(
    directory: DirOption = None,
    purge: Annotated[
        bool,
        typer.Option("--purge", help="Also delete the testnet's directory (keys, state, logs)"),
    ] = False,
) -> None:
    """Stop every node (gracefully, then by force after 20 s); the state stays unless --purge."""
    testnet = _existing(directory)
    running = [n.name for n in testnet.nodes if n.running()]
    killed = stop(testnet.nodes)
    if testnet.chain is not None:
        testnet.chain.stop()  # after the nodes: a node stopping may still talk to it
    testnet.save()
    typer.echo(
        f"stopped {len(running)} node(s)"
        + (" and the chain" if testnet.chain is not None else "")
        + (f"; killed {', '.join(killed)}" if killed else "")
    )
    if purge:
        for path in created_paths(testnet):
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # only if nothing else lives there
            testnet.directory.rmdir()
        typer.echo(f"deleted the testnet in {testnet.directory}")
    else:
        typer.echo(f"state kept in {testnet.directory}: `fpai-node testnet up` resumes it")


def _existing(directory: Path | None) -> Testnet:
    root = (directory or default_directory()).expanduser().absolute()
    testnet = Testnet.load(root)
    if testnet is None:
        raise FpaiError(f"no testnet in {root}; create one with `fpai-node testnet up`")
    return testnet


def _progress_printer() -> Callable[[Progress], None]:
    """A spinner line on a terminal; a line every 5 s otherwise (logs, CI)."""
    tty = sys.stderr.isatty()
    last = [0.0]
    turn = [0]

    def show(p: Progress) -> None:
        text = (
            f"waiting for the federation: {p.healthy}/{p.total} healthy, {p.registered}/{p.total} "
            f"registered, {p.converged}/{p.total} see every peer ({p.elapsed_s:.0f} s)"
        )
        if tty:
            turn[0] += 1
            sys.stderr.write(f"\r{SPINNER[turn[0] % len(SPINNER)]} {text}\x1b[K")
            sys.stderr.flush()
        elif time.monotonic() - last[0] >= 5.0:
            last[0] = time.monotonic()
            print(text, file=sys.stderr, flush=True)

    return show


def _clear_line() -> None:
    if sys.stderr.isatty():
        sys.stderr.write("\r\x1b[K")
        sys.stderr.flush()


def _print_table(views: list[NodeView]) -> None:
    typer.echo(
        f"{'NAME':<8}{'NODE ID':<38}{'API':<24}{'STATE':<9}{'PEERS':>6}  {'LEADER':<10}MODELS"
    )
    for v in views:
        state = "up" if v.healthy else ("starting" if v.running else "down")
        leader = (
            "self" if v.leader and v.leader == v.node_id else (v.leader[:8] if v.leader else "-")
        )
        typer.echo(
            f"{v.node.name:<8}{v.node_id or '-':<38}{v.node.api_url:<24}{state:<9}"
            f"{v.alive_peers:>6}  {leader:<10}{', '.join(v.models) or 'routes'}"
        )


def _print_chain(testnet: Testnet) -> None:
    """The chain's line, and the treasury as the first node that answers sees it."""
    chain = testnet.chain
    if chain is None:
        typer.echo("\nchain: none (created with --no-chain, or without anvil)")
        return
    block = chain.block()
    state = f"block {block}" if block is not None else "down"
    typer.echo(f"\nchain: anvil at {chain.rpc}, {state}; contracts in {chain.deployment_file}")
    for node in testnet.nodes:
        try:
            data = NodeClient(node.api_url, timeout_s=5.0).get("/fpai/v1/treasury")
        except FpaiError:
            continue
        held, growth = data["treasury"], data["growth"]
        open_votes = sum(1 for p in data["proposals"] if p["state"] in ("pending", "active"))
        typer.echo(
            f"treasury: {_usd(held['stablecoin'])} idle, {_usd(held['vault_value'])} in the vault; "
            f"growth {_usd(growth['stablecoin'])}; {len(data['proposals'])} proposal(s), "
            f"{open_votes} open to vote"
        )
        return
    typer.echo("treasury: no node answers")


def _usd(units: int) -> str:
    return f"{units / 10**6:,.2f} USD"  # the testnet's stablecoin has 6 decimals


def _view_json(v: NodeView) -> dict[str, Any]:
    return {
        "name": v.node.name,
        "node_id": v.node_id or None,
        "api": v.node.api_url,
        "peer": v.node.peer,
        "running": v.running,
        "healthy": v.healthy,
        "leader": v.leader or None,
        "alive_peers": v.alive_peers,
        "registry_members": v.members,
        "models": v.models,
        "log": str(v.node.log_path),
    }


def register(app: typer.Typer) -> None:
    app.add_typer(testnet_app)

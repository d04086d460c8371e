"""`fpai-node registry`: the federation's registry as the running node sees it."""

import json
import urllib.parse
from typing import Annotated, Any

import typer

from fpai_node.cli.node_cmds import (
    ApiOption,
    HomeOption,
    JsonOption,
    KeyOption,
    keyed_client,
)
from fpai_node.errors import FpaiError
from fpai_node.identity.nodeid import is_node_id
from fpai_node.registry.state import ELECTORS_PARAMETER

app = typer.Typer(
    help="Show the registry (members, models, services, parameters) or set a parameter.",
    invoke_without_command=True,
    no_args_is_help=False,
)
StaleOption = Annotated[
    bool, typer.Option("--stale", help="Read this node's replica without asking the leader.")
]


@app.callback()
def show(
    ctx: typer.Context,
    home: HomeOption = None,
    api: ApiOption = None,
    as_json: JsonOption = False,
    stale: StaleOption = False,
    api_key: KeyOption = None,
) -> None:
    """List the registry's members, models, services and parameters."""
    if ctx.invoked_subcommand is not None:
        return
    data = keyed_client(home, api, api_key).get("/fpai/v1/registry" + ("?stale=1" if stale else ""))
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    leader = data.get("leader") or "none"
    typer.echo(f"leader {leader}, term {data.get('term')}, {data.get('index')} commands applied")
    typer.echo(f"\n{'MEMBER':<38}{'ROLE':<9}{'PEER':<22}{'API':<22}RAFT")
    for m in data.get("members") or []:
        typer.echo(f"{m['node_id']:<38}{m['role']:<9}{m['peer']:<22}{m['api']:<22}{m['raft']}")
    models = data.get("models") or {}
    typer.echo("\nMODELS" + ("" if models else "  none"))
    for model, nodes in models.items():
        typer.echo(f"  {model}: {', '.join(nodes)}")
    services = data.get("services") or {}
    typer.echo("\nSERVICES" + ("" if services else "  none"))
    for name, service in services.items():
        typer.echo(f"  {name} ({service['health']}): {', '.join(service['endpoints'])}")
    parameters = data.get("parameters") or {}
    typer.echo("\nPARAMETERS" + ("" if parameters else "  none"))
    for key, value in parameters.items():
        typer.echo(f"  {key} = {json.dumps(value)}")


@app.command("get")
def get(
    key: Annotated[str, typer.Argument(help="Parameter name")],
    home: HomeOption = None,
    api: ApiOption = None,
    stale: StaleOption = False,
    api_key: KeyOption = None,
) -> None:
    """Print one parameter's value as JSON (read through the leader unless --stale)."""
    data = keyed_client(home, api, api_key).get(
        _parameter_path(key) + ("?stale=1" if stale else "")
    )
    typer.echo(json.dumps(data.get("value")))


@app.command("set")
def set_(
    key: Annotated[str, typer.Argument(help="Parameter name")],
    value: Annotated[str, typer.Argument(help="A JSON value (512, true, [1, 2]) or plain text")],
    home: HomeOption = None,
    api: ApiOption = None,
    api_key: KeyOption = None,
) -> None:
    """Set a parameter for the whole federation (committed through the registry's leader)."""
    client = keyed_client(home, api, api_key)
    data = client.put(_parameter_path(key), {"value": parse_value(value)})
    typer.echo(f"{key} = {json.dumps(data.get('value'))}")


@app.command("elect")
def elect(
    node_id: Annotated[str, typer.Argument(help="The node id that may hold a voter seat")],
    home: HomeOption = None,
    api: ApiOption = None,
    api_key: KeyOption = None,
) -> None:
    """Let a node hold a voter seat (REG-13): add it to registry.electors. Needs a voter's
    node; the leader promotes it while the voters are fewer than the target."""
    if not is_node_id(node_id):
        raise FpaiError(f"{node_id!r} is not a node id (`fpai-node id` prints a node's)")
    client = keyed_client(home, api, api_key)
    parameters = client.get("/fpai/v1/registry").get("parameters") or {}
    if ELECTORS_PARAMETER not in parameters:
        raise FpaiError(
            f"every member may already hold a voter seat ({ELECTORS_PARAMETER} is not set)"
        )
    electors = parameters[ELECTORS_PARAMETER]
    if not isinstance(electors, list):
        raise FpaiError(f"{ELECTORS_PARAMETER} is not a list: set it with `registry set`")
    if node_id in electors:
        typer.echo(f"{node_id} may already hold a voter seat")
        return
    client.put(_parameter_path(ELECTORS_PARAMETER), {"value": [*electors, node_id]})
    typer.echo(f"{node_id} may now hold a voter seat")


def parse_value(text: str) -> Any:
    """JSON when the text is JSON, else the text itself: `512` is a number, `hello` a string."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    if isinstance(value, float):
        raise FpaiError(
            f"{text}: registry values cannot be floating-point numbers; "
            "use an integer or quote it as a string"
        )
    return value


def _parameter_path(key: str) -> str:
    return "/fpai/v1/registry/parameters/" + urllib.parse.quote(key, safe="")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="registry")

"""`fpai-node actions list|approve|reject` and `fpai-node sovereignty`: the repairs the node's
supervisor has found and done, and the federation's sovereignty score with its evidence
(docs/operator-guide.md, "Autonomy" and "Sovereignty")."""

import datetime as dt
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from fpai_node.cli.node_cmds import ApiOption, HomeOption, JsonOption, KeyOption, keyed_client
from fpai_node.errors import FpaiError
from fpai_node.testnet import Testnet, default_directory

actions_app = typer.Typer(
    help="Repairs the supervisor found: list them, approve or reject the pending ones.",
    no_args_is_help=True,
)
IdArgument = Annotated[str, typer.Argument(metavar="ID", help="The action's id (actions list)")]


@actions_app.command("list")
def list_actions(
    home: HomeOption = None,
    api: ApiOption = None,
    as_json: JsonOption = False,
    api_key: KeyOption = None,
) -> None:
    """Every repair this node recorded, newest first, with its state and outcome."""
    data = keyed_client(home, api, api_key).get("/fpai/v1/actions")
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    actions = data["actions"]
    pending = sum(a["state"] == "pending" for a in actions)
    typer.echo(f"autonomy {data['autonomy']}; {len(actions)} action(s), {pending} pending")
    for action in actions:
        typer.echo(_line(action))


def _line(action: dict[str, Any]) -> str:
    when = dt.datetime.fromtimestamp(action["updated_at"]).strftime("%Y-%m-%d %H:%M:%S")
    text = f"{action['id']:>4}  {action['state']:<9} {when}  {action['summary']}"
    if action["outcome"] and action["state"] != "pending":
        text += f"\n      {action['outcome']}"
    return text


@actions_app.command("approve")
def approve(
    action_id: IdArgument,
    home: HomeOption = None,
    api: ApiOption = None,
    api_key: KeyOption = None,
) -> None:
    """Let a pending repair go ahead (or a failed one try again)."""
    done = keyed_client(home, api, api_key).post(f"/fpai/v1/actions/{action_id}/approve", {})
    typer.echo(f"approved {done['id']}: {done['summary']}")


@actions_app.command("reject")
def reject(
    action_id: IdArgument,
    home: HomeOption = None,
    api: ApiOption = None,
    api_key: KeyOption = None,
) -> None:
    """Refuse a pending repair; it is not asked again while it stays due."""
    done = keyed_client(home, api, api_key).post(f"/fpai/v1/actions/{action_id}/reject", {})
    typer.echo(f"rejected {done['id']}: {done['summary']}")


def sovereignty(
    home: HomeOption = None,
    api: ApiOption = None,
    as_json: JsonOption = False,
    api_key: KeyOption = None,
    drill: Annotated[
        bool,
        typer.Option(
            "--drill",
            help="On a testnet: stop the node that serves most, check chat, memory and the "
            "treasury through the others, bring it back",
        ),
    ] = False,
    directory: Annotated[
        Path | None,
        typer.Option("--dir", metavar="DIR", help="The testnet to drill [~/.fpai-testnet]"),
    ] = None,
) -> None:
    """The sovereignty score from what this node can verify, each part with its evidence, and
    the single points of failure it finds."""
    if drill:
        _drill(directory or default_directory(), as_json)
        return
    data = keyed_client(home, api, api_key).get("/fpai/v1/sovereignty")
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    typer.echo(f"sovereignty {data['score']} / {data['max']} (autonomy {data['autonomy']})")
    for part in data["components"]:
        typer.echo(f"  {part['title']}: {part['points']} / {part['max']}")
        for line in part["evidence"]:
            typer.echo(f"      {line}")
    weaknesses = data["single_points_of_failure"]
    typer.echo(f"single points of failure: {len(weaknesses) or 'none found'}")
    for weakness in weaknesses:
        typer.echo(f"  - {weakness['detail']} ({weakness['kind']})")


def _drill(directory: Path, as_json: bool) -> None:
    from fpai_node.drill import run_drill

    testnet = Testnet.load(directory)
    if testnet is None:
        raise FpaiError(f"no testnet in {directory}: `fpai-node testnet up --dir {directory}`")
    report = run_drill(testnet, lambda step: None if as_json else typer.echo(f"... {step}"))
    if as_json:
        typer.echo(json.dumps(report.public(), indent=2))
    else:
        for check in report.checks:
            typer.echo(f"{'ok  ' if check.ok else 'FAIL'} {check.name}: {check.detail}")
        verdict = "survives" if report.ok else "does NOT survive"
        typer.echo(f"the federation {verdict} the loss of {report.stopped} ({report.stopped_id})")
    if not report.ok:
        raise typer.Exit(1)


def register(root: typer.Typer) -> None:
    root.add_typer(actions_app, name="actions")
    root.command("sovereignty")(sovereignty)

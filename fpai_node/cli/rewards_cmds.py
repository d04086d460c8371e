"""`fpai-node rewards`: what this node earned for the compute it contributed, and its claims
(docs/rewards.md, specs/0010-rewards.md)."""

import json
from typing import Annotated, Any

import typer

from fpai_node.cli.node_cmds import ApiOption, HomeOption, JsonOption, KeyOption, keyed_client

app = typer.Typer(
    help="What this node earned per epoch, what is pending and claimable, and fraud reports.",
    invoke_without_command=True,
)
EpochOption = Annotated[int | None, typer.Option("--epoch", min=0, help="Only this epoch")]


@app.callback()
def show(
    ctx: typer.Context,
    epoch: EpochOption = None,
    home: HomeOption = None,
    api: ApiOption = None,
    as_json: JsonOption = False,
    api_key: KeyOption = None,
) -> None:
    """Per epoch: open, settling or final; what this node served and used; once final, what it
    earned, its operator's amount and whether that is published and claimed."""
    if ctx.invoked_subcommand is not None:
        return
    query = "" if epoch is None else f"?epoch={epoch}"
    data = keyed_client(home, api, api_key).get(f"/fpai/v1/rewards{query}")
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    typer.echo(
        f"node {data['node_id']}, operator {data['operator'] or 'none (no chain configured)'}; "
        f"epoch now {data['current_epoch']} ({data['parameters']['epoch_s']} s each)"
    )
    if not data["parameters"]["rates"] or not data["parameters"]["requester_cap"]:
        typer.echo("rewards are off: the voters have set no rewards.rate.<model> or no cap")
    if not data["epochs"]:
        typer.echo("no epochs with work yet")
    for shown in data["epochs"]:
        typer.echo(_epoch_line(shown))
        if shown["state"] == "final":
            typer.echo(f"    federation: root {shown['root'] or 'none'}, total {shown['total']}")
        for line in shown.get("lines", []):
            typer.echo(
                f"    {line['model']} {line['server'][:12]}… for {line['requester'][:12]}…: "
                f"{line['prompt']}+{line['completion']} tokens agreed "
                f"(claimed {line['claimed_prompt']}+{line['claimed_completion']}): "
                f"{line['value']} ({line['reason']})"
            )
    reports = data["reports"]
    for report in reports["against_this_node"]:
        typer.echo(
            f"FRAUD REPORT against this node, epoch {report['epoch']}, by "
            f"{report['checker']}: {report['reason']} ({report['detail']})"
        )
    if reports["filed_by_this_node"]:
        typer.echo(f"fraud reports this node filed: {len(reports['filed_by_this_node'])}")


def _epoch_line(shown: dict[str, Any]) -> str:
    served = sum(r["requests"] for r in shown["served"])
    used = sum(r["requests"] for r in shown["used"])
    disputed = sum(r["disputed"] for r in shown["served"])
    text = f"epoch {shown['epoch']} {shown['state']}: served {served}, used {used}"
    if disputed:
        text += f", {disputed} disputed"
    if shown["state"] != "final":
        return text + (", digest committed" if shown["committed"] else "") + " (pending)"
    text += f"; earned {shown['earned']}"
    if "operator_amount" in shown:
        text += f", operator's amount {shown['operator_amount']}"
    chain = shown.get("chain", {})
    if chain.get("published"):
        state = "claimed" if chain["claimed"] else f"claimable {chain['claimable']}"
        match = "" if chain["matches"] else " WITH ANOTHER ROOT"
        text += f"; published{match}, {state}"
    elif "chain" in shown:
        text += "; not published yet"
    return text


@app.command("claim")
def claim(
    epoch: EpochOption = None,
    home: HomeOption = None,
    api: ApiOption = None,
    api_key: KeyOption = None,
) -> None:
    """Claim this operator's rewards on chain: one epoch, or every final epoch not claimed."""
    body: dict[str, Any] = {} if epoch is None else {"epoch": epoch}
    answer = keyed_client(home, api, api_key).post("/fpai/v1/rewards/claims", body)
    if not answer["claims"]:
        typer.echo("no final epoch to claim")
    for done in answer["claims"]:
        if "skipped" in done:
            typer.echo(f"epoch {done['epoch']}: not claimed: {done['skipped']}")
        else:
            typer.echo(
                f"epoch {done['epoch']}: claimed {done['amount']} "
                f"(transaction {done['transaction']})"
            )


@app.command("propose")
def propose(
    epoch: Annotated[int, typer.Argument(min=0, help="A final epoch")],
    home: HomeOption = None,
    api: ApiOption = None,
    api_key: KeyOption = None,
) -> None:
    """Propose publishing a final epoch's rewards as this node computes them; the operators
    vote with `fpai-node treasury vote`."""
    answer = keyed_client(home, api, api_key).post("/fpai/v1/rewards/proposals", {"epoch": epoch})
    typer.echo(
        f"proposal {answer['proposal']}: epoch {epoch}, root {answer['root']}, total "
        f"{answer['total']} (transaction {answer['transaction']})"
    )


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="rewards")

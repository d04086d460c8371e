"""`fpai-node treasury`: the federation's treasury through the running node (docs/treasury.md)."""

import datetime as dt
import json
from typing import Annotated, Any

import typer

from fpai_node.cli.node_cmds import ApiOption, HomeOption, JsonOption, KeyOption, keyed_client
from fpai_node.errors import ConfigError, FpaiError

app = typer.Typer(help="See the treasury, propose, vote, execute, and pay revenue in.")
ProposalArgument = Annotated[str, typer.Argument(help="Proposal id (0x hex, as status shows)")]
STABLECOIN_DECIMALS = 6  # how status shows stablecoin amounts: the deployment's coin has 6


@app.command("status")
def status(
    home: HomeOption = None,
    api: ApiOption = None,
    as_json: JsonOption = False,
    api_key: KeyOption = None,
) -> None:
    """Balances (treasury, vault, growth), the split, revenue per day, proposals with their
    state and tally, and this operator's votes."""
    data = keyed_client(home, api, api_key).get("/fpai/v1/treasury")
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    me = data["operator"]
    role = "an operator" if me["is_operator"] else "not (yet) an operator"
    typer.echo(
        f"chain {data['chain_id']}, block {data['block']}; "
        f"this node's operator {me['address']} is {role}"
    )
    split = data["split"]
    typer.echo(
        f"split: {split['treasury_bps'] / 100:g}% treasury, {split['growth_bps'] / 100:g}% growth"
    )
    treasury, growth = data["treasury"], data["growth"]
    vault = treasury["vault"] or "none chosen"
    typer.echo(
        f"treasury: {_coin(treasury['stablecoin'])} idle, {_coin(treasury['vault_value'])} in "
        f"vault {vault} ({treasury['vault_shares']} shares), {_eth(treasury['eth_wei'])}"
    )
    typer.echo(f"growth:   {_coin(growth['stablecoin'])}, {_eth(growth['eth_wei'])}")
    revenue = data["revenue"]
    typer.echo("revenue:" + ("  none yet" if not revenue else ""))
    for day, amounts in sorted(revenue.items()):
        typer.echo(
            f"  {day}: {_coin(amounts.get('stablecoin', 0))}, {_eth(amounts.get('eth_wei', 0))}"
        )
    proposals = data["proposals"]
    typer.echo("proposals:" + ("  none" if not proposals else ""))
    for p in proposals:
        tally = p["tally"]
        mine = f", my vote {p['my_vote']}" if p["my_vote"] else ""
        typer.echo(
            f"  {p['id']}  {p['state']}: for {tally['for']}, against {tally['against']}, "
            f"abstain {tally['abstain']}{mine}"
        )
        typer.echo(
            f"    {p['text'].splitlines()[0] if p['text'] else ''}  [{'; '.join(p['calls'])}]"
        )
        if "eta" in p:
            typer.echo(f"    executable from {_time(p['eta'])}")
    draft = data["draft"]
    if draft is not None:
        typer.echo(
            f"draft, pending your approval: {draft['kind']} {draft['value']} "
            "(`fpai-node treasury propose --from-draft`)"
        )


@app.command("propose")
def propose(
    kind: Annotated[
        str | None,
        typer.Argument(
            help="split (treasury bps), choose-vault (address), deposit, withdraw, "
            "fund-growth (amounts), admit or remove (operator address)"
        ),
    ] = None,
    value: Annotated[str | None, typer.Argument(help="The kind's one argument")] = None,
    text: Annotated[str | None, typer.Option("--text", help="Why, for the other operators")] = None,
    vault: Annotated[
        str | None,
        typer.Option("--vault", help="deposit: into this ERC-4626 vault [the treasury's]"),
    ] = None,
    from_draft: Annotated[
        bool,
        typer.Option("--from-draft", help="Propose what the node drafted (see `treasury status`)"),
    ] = False,
    home: HomeOption = None,
    api: ApiOption = None,
    api_key: KeyOption = None,
) -> None:
    """Submit a proposal as this node's operator (it must be an operator)."""
    client = keyed_client(home, api, api_key)
    if from_draft:
        if kind is not None or value is not None:
            raise ConfigError("--from-draft proposes the node's draft: give no KIND or VALUE")
        draft = client.get("/fpai/v1/treasury")["draft"]
        if draft is None:
            raise FpaiError("the node has no draft: the treasury is not above its idle threshold")
        kind, value, text = draft["kind"], draft["value"], text or draft["text"]
    elif kind is None or value is None:
        raise ConfigError("give KIND and VALUE, or --from-draft")
    body: dict[str, Any] = {"kind": kind, "value": value}
    for name, given in (("text", text), ("vault", vault)):
        if given is not None:
            body[name] = given
    answer = client.post("/fpai/v1/treasury/proposals", body)
    typer.echo(f"proposal {answer['proposal']} (transaction {answer['transaction']})")


@app.command("vote")
def vote(
    proposal: ProposalArgument,
    support: Annotated[str, typer.Argument(help="for, against or abstain")],
    reason: Annotated[str | None, typer.Option("--reason", help="Why, on the chain")] = None,
    home: HomeOption = None,
    api: ApiOption = None,
    api_key: KeyOption = None,
) -> None:
    """Sign this operator's ballot; the federation's nodes relay it to the chain."""
    body: dict[str, Any] = {"support": support}
    if reason is not None:
        body["reason"] = reason
    client = keyed_client(home, api, api_key)
    answer = client.post(f"/fpai/v1/treasury/proposals/{proposal}/votes", body)
    if answer["relayed"]:
        typer.echo(f"voted {support}: counted (transaction {answer['relayed']})")
    else:
        typer.echo(f"voted {support}: signed and shared; a node will relay it when the vote opens")


@app.command("execute")
def execute(
    proposal: ProposalArgument,
    home: HomeOption = None,
    api: ApiOption = None,
    api_key: KeyOption = None,
) -> None:
    """Queue a passed proposal and execute it once the timelock allows (any node may)."""
    answer = keyed_client(home, api, api_key).post(
        f"/fpai/v1/treasury/proposals/{proposal}/execute", {}
    )
    if "queued" in answer:
        typer.echo(f"queued (transaction {answer['queued']})")
    if "executed" in answer:
        typer.echo(f"executed (transaction {answer['executed']})")
    elif "executable_at" in answer:
        typer.echo(f"the timelock holds it until {_time(answer['executable_at'])}")
    elif "queued" not in answer:
        typer.echo(f"nothing to do: the proposal is {answer['state']}")


@app.command("pay")
def pay(
    amount: Annotated[str, typer.Argument(help="How much, e.g. 12.5")],
    asset: Annotated[str, typer.Option("--token", help="stablecoin or eth")] = "stablecoin",
    home: HomeOption = None,
    api: ApiOption = None,
    api_key: KeyOption = None,
) -> None:
    """Pay revenue into the Sacred Loop from this operator's account: it splits at once."""
    client = keyed_client(home, api, api_key)
    answer = client.post("/fpai/v1/treasury/payments", {"amount": amount, "token": asset})
    typer.echo(f"paid {amount} {asset} into the loop (transaction {answer['transaction']})")


def _coin(units: int) -> str:
    return f"{units / 10**STABLECOIN_DECIMALS:,.2f} USD"


def _eth(wei: int) -> str:
    return f"{wei / 10**18:g} ETH"


def _time(timestamp: int) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="treasury")

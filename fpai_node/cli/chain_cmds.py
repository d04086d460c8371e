"""`fpai-node chain`: put the federation's contracts on an EVM chain (docs/contracts.md)."""

from pathlib import Path
from typing import Annotated

import typer

from fpai_node.chain import restore_recursion_limit
from fpai_node.chain.artifacts import ChainError
from fpai_node.chain.parameters import GovernanceParameters
from fpai_node.cli.node_cmds import HomeOption, JsonOption
from fpai_node.home import default_home

app = typer.Typer(help="Deploy the federation's contracts to an EVM chain.", no_args_is_help=True)
DEFAULTS = GovernanceParameters()


def deployment_file(home: Path | None) -> Path:
    return (home or default_home()) / "chain" / "deployment.json"


@app.command("deploy")
def deploy_command(
    rpc: Annotated[str, typer.Option("--rpc", metavar="URL", help="The chain's JSON-RPC URL.")],
    operators: Annotated[
        list[str],
        typer.Option("--operator", metavar="ADDRESS", help="A first operator (repeatable)."),
    ],
    key_file: Annotated[
        Path | None,
        typer.Option(
            "--key-file", metavar="FILE", help="The deployer's private key (hex, mode 0600)."
        ),
    ] = None,
    dev_account: Annotated[
        bool,
        typer.Option("--dev-account", help="Deploy from the RPC's first unlocked account (anvil)."),
    ] = False,
    stablecoin: Annotated[
        str | None,
        typer.Option(
            "--stablecoin",
            metavar="ADDRESS",
            help="The revenue and reward token [default: deploy the testnet token and vault].",
        ),
    ] = None,
    voting_delay: Annotated[int, typer.Option(help="Seconds.")] = DEFAULTS.voting_delay_s,
    voting_period: Annotated[int, typer.Option(help="Seconds.")] = DEFAULTS.voting_period_s,
    timelock_delay: Annotated[int, typer.Option(help="Seconds.")] = DEFAULTS.timelock_delay_s,
    quorum: Annotated[int, typer.Option(help="Percent of operators.")] = DEFAULTS.quorum_percent,
    treasury_bps: Annotated[
        int, typer.Option(help="Treasury share of revenue in basis points.")
    ] = DEFAULTS.treasury_bps,
    claim_window: Annotated[int, typer.Option(help="Seconds.")] = DEFAULTS.claim_window_s,
    out: Annotated[
        Path | None,
        typer.Option("--out", metavar="FILE", help="[default: HOME/chain/deployment.json]"),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing file.")] = False,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Deploy the contract set, hand it to governance and write the addresses for the node."""
    target = out or deployment_file(home)
    if target.exists() and not force:
        raise ChainError(f"{target} already holds a deployment (--force replaces it)")
    parameters = GovernanceParameters(
        voting_delay_s=voting_delay,
        voting_period_s=voting_period,
        timelock_delay_s=timelock_delay,
        quorum_percent=quorum,
        treasury_bps=treasury_bps,
        claim_window_s=claim_window,
    )
    # web3 is imported here, not with the CLI: it costs about a second on every start.
    from fpai_node.chain.deploy import deploy_to

    restore_recursion_limit()  # importing web3 raised it (fpai_node/chain/__init__.py)
    deployment = deploy_to(
        rpc,
        key_file=key_file,
        dev_account=dev_account,
        operators=operators,
        parameters=parameters,
        stablecoin=stablecoin,
        progress=lambda step: typer.echo(step + " ...", err=True),
    )
    deployment.save(target)
    if as_json:
        typer.echo(deployment.to_json(), nl=False)
        return
    typer.echo(f"deployed on chain {deployment.chain_id}; addresses written to {target}")
    for name, address in deployment.contracts.items():
        typer.echo(f"  {name:<20}{address}")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="chain")

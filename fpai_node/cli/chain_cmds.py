"""`fpai-node chain`: put the federation's contracts on an EVM chain (docs/contracts.md)."""

import stat
from pathlib import Path
from typing import Annotated

import typer
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from eth_utils.address import is_address, to_checksum_address
from web3 import Web3

from fpai_node.chain.artifacts import ChainError
from fpai_node.chain.deploy import deploy
from fpai_node.chain.deployment import GovernanceParameters
from fpai_node.chain.transactor import Transactor, guarded, rpc_errors
from fpai_node.cli.node_cmds import HomeOption, JsonOption
from fpai_node.home import default_home

app = typer.Typer(help="Deploy the federation's contracts to an EVM chain.", no_args_is_help=True)
DEFAULTS = GovernanceParameters()
RPC_TIMEOUT_S = 30  # one JSON-RPC call; a public endpoint answers in well under a second


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
    parameters.check()
    w3 = Web3(Web3.HTTPProvider(rpc, request_kwargs={"timeout": RPC_TIMEOUT_S}))
    sender = Transactor(w3, _deployer(w3, key_file, dev_account))
    chosen = [_address("--operator", a) for a in operators]
    token = None if stablecoin is None else _address("--stablecoin", stablecoin)
    with rpc_errors():
        deployment = deploy(
            sender,
            chosen,
            parameters,
            stablecoin=token,
            progress=lambda step: typer.echo(step + " ...", err=True),
        )
    deployment.save(target)
    if as_json:
        typer.echo(deployment.to_json(), nl=False)
        return
    typer.echo(f"deployed on chain {deployment.chain_id}; addresses written to {target}")
    for name, address in deployment.contracts.items():
        typer.echo(f"  {name:<20}{address}")


def _deployer(w3: Web3, key_file: Path | None, dev_account: bool) -> LocalAccount | ChecksumAddress:
    if (key_file is None) == (not dev_account):
        raise ChainError("give exactly one of --key-file FILE and --dev-account")
    if key_file is None:
        accounts = guarded(lambda: w3.eth.accounts)
        if not accounts:
            raise ChainError("the RPC unlocks no account: --dev-account needs a dev chain (anvil)")
        return accounts[0]
    return load_key(key_file)


def load_key(path: Path) -> LocalAccount:
    """A hex private key from `path`, which only its owner may read."""
    try:
        mode = path.stat().st_mode
        text = path.read_text().strip()
    except OSError as exc:
        raise ChainError(f"cannot read key file {path}: {exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ChainError(f"key file {path} is open to other users (chmod 600 {path})")
    try:
        account: LocalAccount = Account.from_key(text)
    except (ValueError, TypeError):
        raise ChainError(f"{path} does not hold a hex private key") from None
    return account


def _address(option: str, value: str) -> ChecksumAddress:
    if not is_address(value):
        raise ChainError(f"{option} {value!r} is not an Ethereum address")
    return to_checksum_address(value)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="chain")

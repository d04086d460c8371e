"""`fpai-node usage`: what this node served for peers and used from them, from the signed
receipts kept in its home (works whether the node runs or not)."""

import json

import typer

from fpai_node.cli.node_cmds import HomeOption, JsonOption, home_of
from fpai_node.errors import FpaiError
from fpai_node.identity import NodeKey
from fpai_node.router.receipts import Kept, read_receipts, receipts_path, summarize


def usage(home: HomeOption = None, as_json: JsonOption = False) -> None:
    """Sum the usage receipts per peer and model: served (for peers) and used (from peers)."""
    root = home_of(home)
    if not root.key_file.exists():
        raise FpaiError(f"{root.root} is not a node home (run `fpai-node init` first)")
    own = NodeKey.load(root.key_file).node_id
    kept: list[Kept] = []
    rejected = 0
    for item in read_receipts(receipts_path(root.root)):
        if isinstance(item, Kept):
            kept.append(item)
        else:
            rejected += 1
    totals = [
        {
            "direction": direction,
            "peer": peer,
            "model": model,
            "requests": t.requests,
            "prompt_tokens": t.prompt_tokens,
            "completion_tokens": t.completion_tokens,
        }
        for (direction, peer, model), t in sorted(summarize(kept, own).items())
    ]
    if as_json:
        typer.echo(json.dumps({"node_id": own, "totals": totals, "unverifiable": rejected}))
        return
    if not totals:
        typer.echo("no usage receipts yet")
    else:
        typer.echo(
            f"{'DIRECTION':<10}{'PEER':<38}{'MODEL':<24}{'REQUESTS':>9}{'PROMPT':>10}"
            f"{'COMPLETION':>12}"
        )
        for t in totals:
            typer.echo(
                f"{t['direction']:<10}{t['peer']:<38}{t['model']:<24}{t['requests']:>9}"
                f"{t['prompt_tokens']:>10}{t['completion_tokens']:>12}"
            )
    if rejected:
        typer.echo(f"{rejected} receipt(s) in the file do not verify and were not counted")


def register(root: typer.Typer) -> None:
    root.command("usage")(usage)

"""`models` and `chat`: use a running node's OpenAI API from the command line."""

import json
import sys
from typing import Annotated, Any

import typer

from fpai_node.cli.node_cmds import ApiOption, HomeOption, JsonOption, KeyOption, keyed_client
from fpai_node.errors import FpaiError


def models(
    home: HomeOption = None,
    api: ApiOption = None,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the federation's models as a running node sees them: its own, then its peers'."""
    data = keyed_client(home, api, api_key).get("/v1/models")["data"]
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    if not data:
        typer.echo("no models")
        return
    typer.echo(f"{'MODEL':<32}{'BACKEND':<10}{'CONTEXT':>8}  SERVED BY")
    for model in sorted(data, key=lambda m: (not (m.get("fpai") or {}).get("local"), m["id"])):
        extra: dict[str, Any] = model.get("fpai") or {}
        context = extra.get("context_length") or "-"
        nodes = extra.get("nodes") or []
        where = "this node" if extra.get("local") else ", ".join(nodes) or "-"
        typer.echo(f"{model['id']:<32}{extra.get('backend', '-'):<10}{context!s:>8}  {where}")


def chat(
    prompt: Annotated[str, typer.Argument(help="What to say to the model")],
    model: Annotated[
        str | None,
        typer.Option(
            "--model", metavar="ID", help="[default: the node's first model, else the federation's]"
        ),
    ] = None,
    system: Annotated[str | None, typer.Option("--system", help="A system message")] = None,
    max_tokens: Annotated[int | None, typer.Option("--max-tokens", min=1)] = None,
    no_stream: Annotated[
        bool, typer.Option("--no-stream", help="Wait for the whole answer")
    ] = False,
    home: HomeOption = None,
    api: ApiOption = None,
    api_key: KeyOption = None,
) -> None:
    """Ask a running node's model and print the answer as it is generated."""
    client = keyed_client(home, api, api_key)
    if model is None:
        known = [
            m
            for m in client.get("/v1/models")["data"]
            if not (m.get("fpai") or {}).get("embeddings_only")
        ]
        if not known:
            raise FpaiError("no node of the federation serves a model yet; pass --model ID")
        local = [m for m in known if (m.get("fpai") or {}).get("local")]
        model = str((local or known)[0]["id"])
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": prompt}
    ]
    body: dict[str, Any] = {"model": model, "messages": messages, "stream": not no_stream}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    if no_stream:
        answer = client.post("/v1/chat/completions", body)
        typer.echo(answer["choices"][0]["message"]["content"])
        return
    for event in client.stream("/v1/chat/completions", body):
        for choice in event.get("choices", []):
            sys.stdout.write(choice.get("delta", {}).get("content") or "")
            sys.stdout.flush()
    sys.stdout.write("\n")


def register(app: typer.Typer) -> None:
    app.command()(models)
    app.command()(chat)

"""`memory` and `handoff`: the federation's memory from the command line, through a running
node's Mem0-compatible API (docs/memory.md)."""

import json
import sys
import urllib.parse
from pathlib import Path
from typing import Annotated, Any

import typer

from fpai_node.cli.client import NodeClient
from fpai_node.cli.node_cmds import ApiOption, HomeOption, JsonOption, KeyOption, keyed_client
from fpai_node.errors import FpaiError

memory_app = typer.Typer(
    help="Add, search, list and forget memories (replicated across the federation).",
    no_args_is_help=True,
)
handoff_app = typer.Typer(
    help="Save what a session did and should do next; load it on any node.", no_args_is_help=True
)
UserOption = Annotated[str | None, typer.Option("--user", metavar="ID", help="The user's id")]
AgentOption = Annotated[str | None, typer.Option("--agent", metavar="ID", help="The agent's id")]
RunOption = Annotated[str | None, typer.Option("--run", metavar="ID", help="The run's id")]


def _scope(user: str | None, agent: str | None, run: str | None) -> dict[str, str]:
    return {k: v for k, v in (("user_id", user), ("agent_id", agent), ("run_id", run)) if v}


def _filters(user: str | None, agent: str | None, run: str | None) -> dict[str, Any] | None:
    scope = _scope(user, agent, run)
    if not scope:
        return None
    return {"AND": [{k: v} for k, v in scope.items()]}


def _line(record: dict[str, Any]) -> str:
    score = f"{record['score']:.3f}  " if "score" in record else ""
    owner = record.get("user_id") or record.get("agent_id") or record.get("run_id") or "-"
    return f"{record['id']}  {score}{owner:<16} {record['memory']}"


def _client(home: Path | None, api: str | None, api_key: str | None) -> NodeClient:
    return keyed_client(home, api, api_key)


@memory_app.command("add")
def add(
    text: Annotated[str, typer.Argument(help="What to remember")],
    user: UserOption = None,
    agent: AgentOption = None,
    run: RunOption = None,
    metadata: Annotated[
        str | None, typer.Option("--metadata", metavar="JSON", help="A JSON object")
    ] = None,
    infer: Annotated[
        bool, typer.Option("--infer/--no-infer", help="Extract facts with the chat model")
    ] = False,
    home: HomeOption = None,
    api: ApiOption = None,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Remember a text for a user, agent or run (one of them is required)."""
    scope = _scope(user, agent, run)
    if not scope:
        raise FpaiError("give --user, --agent or --run: a memory belongs to someone")
    body: dict[str, Any] = {"messages": [{"role": "user", "content": text}], "infer": infer}
    body.update(scope)
    if metadata is not None:
        try:
            body["metadata"] = json.loads(metadata)
        except ValueError:
            raise FpaiError("--metadata: not valid JSON") from None
    answer = _client(home, api, api_key).post("/v3/memories/add/", body)
    if as_json:
        typer.echo(json.dumps(answer, indent=2))
        return
    for record in answer["results"]:
        typer.echo(f"{record['event']:<4} {record['id']}  {record['memory']}")
    if answer.get("note"):
        typer.echo(f"note: {answer['note']}")


@memory_app.command("search")
def search(
    query: Annotated[str, typer.Argument(help="What to look for, in words")],
    user: UserOption = None,
    agent: AgentOption = None,
    run: RunOption = None,
    top_k: Annotated[int, typer.Option("--top-k", min=1, max=100)] = 10,
    home: HomeOption = None,
    api: ApiOption = None,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """The memories closest in meaning to a query, best first."""
    body: dict[str, Any] = {"query": query, "top_k": top_k}
    if (where := _filters(user, agent, run)) is not None:
        body["filters"] = where
    results = _client(home, api, api_key).post("/v3/memories/search/", body)["results"]
    _print(results, as_json, "no memory matches")


@memory_app.command("list")
def list_(
    user: UserOption = None,
    agent: AgentOption = None,
    run: RunOption = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=100)] = 100,
    home: HomeOption = None,
    api: ApiOption = None,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Memories, newest first."""
    body: dict[str, Any] = {}
    if (where := _filters(user, agent, run)) is not None:
        body["filters"] = where
    answer = _client(home, api, api_key).post(f"/v3/memories/?page=1&page_size={limit}", body)
    _print(answer["results"], as_json, "no memories")


@memory_app.command("get")
def get(
    memory_id: Annotated[str, typer.Argument(metavar="ID")],
    home: HomeOption = None,
    api: ApiOption = None,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """One memory by id."""
    record = _client(home, api, api_key).get(f"/v1/memories/{_segment(memory_id)}/")
    _print([record], as_json, "")


@memory_app.command("forget")
def forget(
    memory_id: Annotated[str | None, typer.Argument(metavar="[ID]")] = None,
    user: UserOption = None,
    agent: AgentOption = None,
    run: RunOption = None,
    home: HomeOption = None,
    api: ApiOption = None,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Forget one memory by id, or every memory of a user, agent or run."""
    client = _client(home, api, api_key)
    scope = _scope(user, agent, run)
    if (memory_id is None) == (not scope):
        raise FpaiError("give a memory ID, or --user/--agent/--run (not both)")
    if memory_id is not None:
        answer = client.delete(f"/v1/memories/{_segment(memory_id)}/")
    else:
        answer = client.delete(f"/v1/memories/?{urllib.parse.urlencode(scope)}")
    typer.echo(json.dumps(answer) if as_json else answer.get("message", "done"))


@memory_app.command("history")
def history(
    memory_id: Annotated[str, typer.Argument(metavar="ID")],
    home: HomeOption = None,
    api: ApiOption = None,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Every change to a memory, oldest first, with the node that made it."""
    changes = _client(home, api, api_key).get_list(f"/v1/memories/{_segment(memory_id)}/history/")
    if as_json:
        typer.echo(json.dumps(changes, indent=2))
        return
    for c in changes:
        text = c["new_memory"] if c["new_memory"] is not None else c["old_memory"]
        typer.echo(f"{c['created_at']}  {c['event']:<6} {text}  (by {c['node_id']})")


@handoff_app.command("save")
def save(
    agent: Annotated[str, typer.Option("--agent", metavar="ID", help="The agent's id")],
    file: Annotated[
        Path | None,
        typer.Option("--file", metavar="FILE", help="A JSON object with done, decided, open, next"),
    ] = None,
    done: Annotated[list[str] | None, typer.Option("--done", help="What the session did")] = None,
    decided: Annotated[list[str] | None, typer.Option("--decided", help="What it decided")] = None,
    open_: Annotated[list[str] | None, typer.Option("--open", help="What it left open")] = None,
    next_: Annotated[list[str] | None, typer.Option("--next", help="What to do next")] = None,
    run: RunOption = None,
    home: HomeOption = None,
    api: ApiOption = None,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Store a session's handoff for an agent (each section repeatable, or all from --file)."""
    body: dict[str, Any] = {}
    if file is not None:
        try:
            loaded = json.loads(sys.stdin.read() if str(file) == "-" else file.read_text())
        except (OSError, ValueError) as exc:
            raise FpaiError(f"--file {file}: {exc}") from None
        if not isinstance(loaded, dict):
            raise FpaiError(f"--file {file}: expected a JSON object")
        body.update(loaded)
    for name, items in (("done", done), ("decided", decided), ("open", open_), ("next", next_)):
        if items:
            body[name] = [*body.get(name, []), *items]
    body["agent_id"] = agent
    if run:
        body["run_id"] = run
    saved = _client(home, api, api_key).post("/fpai/v1/handoff", body)
    typer.echo(json.dumps(saved, indent=2) if as_json else f"saved handoff {saved['id']}")


@handoff_app.command("load")
def load(
    agent: Annotated[str, typer.Option("--agent", metavar="ID", help="The agent's id")],
    last: Annotated[int, typer.Option("--last", min=1, max=100, help="How many of the latest")] = 1,
    home: HomeOption = None,
    api: ApiOption = None,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """The agent's latest handoff(s), from any node."""
    query = urllib.parse.urlencode({"agent_id": agent, "limit": last})
    results = _client(home, api, api_key).get(f"/fpai/v1/handoff?{query}")["results"]
    if as_json:
        typer.echo(json.dumps(results, indent=2))
        return
    for handoff in results:
        typer.echo(f"handoff {handoff['id']} ({handoff['created_at']})")
        for name in ("done", "decided", "open", "next"):
            for item in handoff[name]:
                typer.echo(f"  {name:<8}{item}")


def _print(records: list[dict[str, Any]], as_json: bool, empty: str) -> None:
    if as_json:
        typer.echo(json.dumps(records, indent=2))
    elif not records and empty:
        typer.echo(empty)
    for record in [] if as_json else records:
        typer.echo(_line(record))


def _segment(text: str) -> str:
    return urllib.parse.quote(text, safe="")


def register(app: typer.Typer) -> None:
    app.add_typer(memory_app, name="memory")
    app.add_typer(handoff_app, name="handoff")

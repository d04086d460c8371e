"""What a node last knew of its place in Raft (`<home>/raft/engine.json`): how it starts before
anyone answers, and where it finds its federation again when restarted without --join.

Light on purpose: `fpai-node testnet up` reads it to tell a first start from a resume, without
importing the registry's engine.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import structlog

from fpai_node.registry.raft_wire import parse_raft_id
from fpai_node.wire.errors import MalformedFrame

log = structlog.get_logger("fpai.registry")

HINT_FILE = "engine.json"


def remembered_peers(directory: Path) -> tuple[str, ...]:
    """The peer addresses of the registry's members as this node last knew them (its hint): a
    node restarted without --join finds its federation through them."""
    hint = read_hint(directory)
    return hint.peers if hint is not None else ()


@dataclass(frozen=True, slots=True)
class Hint:
    """What this node last knew of its place in Raft: how to start before anyone answers."""

    member: str
    learner: bool
    voters: tuple[str, ...]
    peers: tuple[str, ...]


def read_hint(directory: Path) -> Hint | None:
    """The hint in `directory`, or None when there is none or it cannot be trusted."""
    try:
        data = json.loads((directory / HINT_FILE).read_text())
        hint = Hint(data["member"], data["learner"], tuple(data["voters"]), tuple(data["peers"]))
        for member in (hint.member, *hint.voters):
            parse_raft_id(member)
        if not all(isinstance(p, str) for p in hint.peers):
            raise ValueError("peers are HOST:PORT strings")
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, MalformedFrame) as exc:
        log.warning("ignoring an unreadable registry hint", error=str(exc))
        return None
    return hint

"""The incarnation a node last signed, kept across restarts (specs/0004 GOSSIP-12).

A liar can make a node refute its way up, 65,536 a message; if the node then restarted at 0,
the others would still hold it at what it signed, and every suspicion at that incarnation
would be beyond the step the node accepts about itself: it could never refute again. Keeping
the number makes a restart resume where the node left off. A write lost to a power cut only
brings back that case, so the file is replaced atomically, without fsync (refutations come
from the network, and an fsync each would let a peer drive the disk).
"""

import os
from pathlib import Path

import structlog

from fpai_node.gossip.messages import MAX_INCARNATION

log = structlog.get_logger("fpai.gossip")


def load_incarnation(path: Path) -> int:
    """The number kept in `path`; 0 when there is none, or it is not one (said in the log)."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return 0
    except (OSError, UnicodeDecodeError) as exc:
        log.warning("gossip incarnation unreadable; starting at 0", path=str(path), error=str(exc))
        return 0
    if not text.isdigit() or int(text) > MAX_INCARNATION:
        log.warning("gossip incarnation is not one; starting at 0", path=str(path))
        return 0
    return int(text)


def save_incarnation(path: Path, incarnation: int) -> None:
    """Replace `path` with `incarnation`, atomically (no fsync: see the module docstring)."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(f"{incarnation}\n", encoding="ascii")
    os.replace(temporary, path)

"""Which rules of specs/ no vector and no test cites (issue 14): a rule nothing checks is a
sentence the next implementer can read differently without anyone noticing.

A rule is cited when its anchor (`REG-4`), or a range that covers it (`GOSSIP-9..GOSSIP-12`),
appears in a test under tests/ or in a vector's case.json under protocol/vectors/. A rule that
no automated check can pin (a design decision, a recommendation about operations) says so in
the spec itself: its text holds `(untestable: <why>)`, and it is then listed apart.

    python -m fpai_node.testing.spec_coverage      # prints the uncited rules; exit 1 if any

`make test` runs it (tests/conformance/test_vectors.py), and keeps the list empty.
"""

import re
import sys
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_ANCHOR = re.compile(r'<a id="([A-Z]+-\d+)"></a>')
_CITATION = re.compile(r"\b([A-Z]+)-(\d+)(?:\.\.(?:[A-Z]+-)?(\d+))?\b")
_UNTESTABLE = "(untestable:"


def rules(specs: Path = ROOT / "specs") -> dict[str, str]:
    """Every rule anchor of specs/*.md, with the text of its paragraph. An id anchored twice
    is an error: a citation of it would name two rules."""
    found: dict[str, str] = {}
    for path in sorted(specs.glob("*.md")):
        text = path.read_text(encoding="utf-8")
        marks = list(_ANCHOR.finditer(text))
        for i, mark in enumerate(marks):
            if mark.group(1) in found:
                raise ValueError(f"{path.name}: rule {mark.group(1)} is anchored twice")
            end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
            found[mark.group(1)] = text[mark.end() : end]
    return found


def citations(texts: Iterable[str]) -> set[str]:
    """The rule ids the texts name, ranges (`RAFT-10..RAFT-12`, `GOSSIP-9..12`) expanded."""
    cited: set[str] = set()
    for text in texts:
        for prefix, low, high in _CITATION.findall(text):
            last = int(high) if high else int(low)
            cited |= {f"{prefix}-{n}" for n in range(int(low), last + 1)}
    return cited


def checked_texts(root: Path = ROOT) -> Iterable[str]:
    """The tests and the vectors' case files: what runs, or is replayed, in `make test`."""
    for path in sorted((root / "tests").rglob("*.py")):
        yield path.read_text(encoding="utf-8")
    for path in sorted((root / "protocol" / "vectors").rglob("case.json")):
        yield path.read_text(encoding="utf-8")


def uncited(root: Path = ROOT) -> tuple[list[str], list[str]]:
    """(rules nothing cites, rules nothing cites that the spec calls untestable)."""
    all_rules = rules(root / "specs")
    cited = citations(checked_texts(root))
    missing = [r for r in all_rules if r not in cited]
    untestable = [r for r in missing if _UNTESTABLE in all_rules[r]]
    return [r for r in missing if r not in untestable], untestable


def main() -> int:
    missing, untestable = uncited()
    for rule in untestable:
        print(f"{rule}: untestable, as its spec says")
    for rule in missing:
        print(f"{rule}: cited by no test and no vector")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())

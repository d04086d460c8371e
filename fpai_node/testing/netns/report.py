"""The campaign's report: a Markdown table per run and the same figures as JSON (the history
of every operation in a file of its own)."""

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fpai_node.testing.netns.workload import PACE_S

if TYPE_CHECKING:
    from fpai_node.testing.netns.campaign import CampaignResult, PhaseResult

COLUMNS = (
    "fault",
    "target",
    "ops attempted",
    "ok",
    "failed",
    "indeterminate",
    "writes acked",
    "acked writes lost",
    "linearizability violations",
    "minority acks",
    "heal→writable s (max)",
    "heal→all alive s",
    "false deaths",
    "term before→after (max during)",
    "chat after heal s (max)",
)


def seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.1f}"


def _slowest(times: dict[str, float | None]) -> str:
    if not times:
        return "-"
    if any(t is None for t in times.values()):
        never = sorted(n for n, t in times.items() if t is None)
        return f"never ({', '.join(never)})"
    return seconds(max(t for t in times.values() if t is not None))


def row(phase: "PhaseResult") -> list[str]:
    c = phase.counts
    minority = str(phase.minority_acks) if phase.injected.minority else "n/a"
    before = max(phase.terms_before.values(), default=0)
    after = max(phase.terms_after.values(), default=0)
    return [
        phase.fault + ("" if phase.whole_at_start else " (†)"),
        ", ".join(phase.injected.targets),
        str(c["attempted"]),
        str(c["ok"]),
        str(c["failed"]),
        str(c["indeterminate"]),
        str(c["writes_acknowledged"]),
        str(len(phase.lost)),
        str(len(phase.violations)),
        minority,
        _slowest(phase.recovery.writable),
        seconds(phase.recovery.all_alive),
        str(len(phase.false_deaths)),
        f"{before}→{after} ({phase.max_term_during})",
        _slowest(phase.recovery.chat),
    ]


LEGEND = """\
Operations are the workload's (reads and writes through every node, from outside). *failed*:
an error answer, or no connection; *indeterminate*: sent, then a timeout or a broken connection.
*Acked writes lost*: acknowledged writes neither final nor superseded by a later write of the
key. *Minority acks*: writes acknowledged by a node on the minority side for requests sent
after the cut and answered before the heal. *heal→writable*: until a write through each node
succeeds (slowest node shown). *heal→all alive*: until every node's status lists every other
node `alive`. *False deaths*: a node seen `dead` by an observer that had no cut link to it and
where neither was killed or paused. *Chat after heal*: until each gateway's chat answered 200
(the answer's arrival, so it includes that answer's own latency; slowest gateway shown)."""


def details(phase: "PhaseResult") -> list[str]:
    r = phase.recovery

    def each(times: dict[str, float | None]) -> str:
        return ", ".join(f"{n} {seconds(t)}" for n, t in sorted(times.items()))

    errors = "; ".join(f"{n}: {', '.join(e)}" for n, e in sorted(r.chat_errors.items()) if e)
    latency = ", ".join(f"{n} {t:.2f}" for n, t in sorted(r.chat_latency.items()))
    return [
        f"- **{phase.fault}** ({phase.title}; leader before: {phase.leader_before}, load "
        f"average {phase.load_average:.1f}): writable {each(r.writable)}; chat {each(r.chat)} "
        f"(that answer took {latency or '-'} s)"
        + (f"; chat errors after the heal: {errors}" if errors else ""),
    ]


def markdown(result: "CampaignResult") -> str:
    t = result.timing
    lines = [
        f"# Fault campaign: {result.nodes} nodes",
        "",
        f"Baseline {t.baseline_s:g} s, hold {t.hold_s:g} s, recovery measured up to "
        f'{t.observe_cap_s:g} s after each heal ("never": no success begun within it); '
        f"{result.duration_s:.0f} s in all. Times are seconds from the heal (for a kill: from "
        "the restart command). Workload: one client per node, one operation every "
        f"{PACE_S:g} s at most.",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    lines += ["| " + " | ".join(row(p)) + " |" for p in result.phases]
    if any(not p.whole_at_start for p in result.phases):
        lines += ["", "(†) the federation was not whole when this fault began."]
    lines += ["", LEGEND, "", "## Per node", ""]
    lines += [line for p in result.phases for line in details(p)]
    lines += ["", "## Failed checks", ""]
    failures = result.failures()
    lines += [f"- {fault}: {'; '.join(f)}" for fault, f in failures.items()] or ["none"]
    return "\n".join(lines) + "\n"


def as_json(result: "CampaignResult") -> dict[str, Any]:
    phases = []
    for p in result.phases:
        record = asdict(p)
        record.pop("history")
        record.pop("chat_history")
        record["injected"]["cut"] = sorted(
            "-".join(sorted(h.name for h in each)) for each in p.injected.cut
        )
        for name in ("down", "minority"):
            record["injected"][name] = sorted(record["injected"][name])
        record["failures"] = p.failures()
        phases.append(record)
    return {
        "nodes": result.nodes,
        "timing": asdict(result.timing),
        "duration_s": round(result.duration_s, 1),
        "phases": phases,
    }


def write(result: "CampaignResult", directory: Path) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    stem = f"report-{result.nodes}nodes"
    md = directory / f"{stem}.md"
    js = directory / f"{stem}.json"
    md.write_text(markdown(result))
    js.write_text(json.dumps(as_json(result), indent=1, default=str) + "\n")
    histories = {p.fault: {"registry": p.history, "chat": p.chat_history} for p in result.phases}
    (directory / f"history-{result.nodes}nodes.json").write_text(json.dumps(histories) + "\n")
    return md, js

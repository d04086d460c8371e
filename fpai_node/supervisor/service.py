"""The supervisor: the node's gate for repairs (fpai_node/service.py ActionGate), its record
of them, and its watch over the node and the federation (docs/operator-guide.md, "Autonomy").

The parts that repair ask the gate from their own threads (the registry's tick thread); the
record lives behind one lock, and a loop on the event loop ends repairs nobody asks for any
more, writes the record to <home>/supervisor/actions.json and logs every change.
"""

import asyncio
import dataclasses
import json
import os
import threading
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping
from pathlib import Path
from typing import Any

import structlog
from prometheus_client.core import GaugeMetricFamily, Metric

from fpai_node.registry.membership import DOWN, MOVE_SERVICES, REPLACE_VOTER
from fpai_node.registry.state import RegistryState
from fpai_node.service import Service
from fpai_node.supervisor.actions import MODES, Action, ActionBook
from fpai_node.supervisor.checks import Check
from fpai_node.supervisor.observe import Observation

ROUND_S = 1.0  # repairs end, the record is written and changes are logged within a second
ACTIONS_FILE = "actions.json"
log = structlog.get_logger("fpai.supervisor")


class Supervisor(Service):
    name = "supervisor"

    def __init__(
        self,
        mode: str,
        directory: Path,
        registry_state: Callable[[], RegistryState],
        observe: Callable[[], Observation | None] = lambda: None,
    ) -> None:
        """`observe`: what the node observes of itself and the federation (supervisor/observe.py),
        read for the status and metrics; None before the node has composed its observer."""
        self._dir = directory
        self._file = directory / ACTIONS_FILE
        self._registry_state = registry_state
        self._observe = observe
        self._lock = threading.Lock()
        self._book = ActionBook(mode, _read_history(self._file))
        self._written = self._book.version
        self._logged: dict[str, str] = {a.id: a.state for a in self._book.actions()}
        self._loops: list[Callable[[], Coroutine[Any, Any, None]]] = []
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def mode(self) -> str:
        return self._book.mode

    # ---- the gate (any thread) ---------------------------------------------------------------

    def allow(self, key: str, kind: str, subject: str, summary: str, reports: bool = False) -> bool:
        with self._lock:
            return self._book.ask(key, kind, subject, summary, time.time(), reports)

    def failed(self, key: str, reason: str) -> None:
        with self._lock:
            self._book.failed(key, reason, time.time())

    def succeeded(self, key: str, outcome: str) -> None:
        with self._lock:
            self._book.succeeded(key, outcome, time.time())

    # ---- the operator ------------------------------------------------------------------------

    def actions(self) -> list[Action]:
        with self._lock:
            return self._book.actions()

    def decide(self, action_id: str, approve: bool) -> Action:
        """Approve or reject a repair; raises ActionError for an unknown or settled one."""
        with self._lock:
            book = self._book
            action = (book.approve if approve else book.reject)(action_id, time.time())
        self._publish()
        return action

    # ---- the service -------------------------------------------------------------------------

    def watch(self, loop: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run `loop` (a policy that asks the gate, supervisor/treasury_policy.py) while the
        supervisor runs."""
        self._loops.append(loop)

    async def start(self) -> None:
        self._dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        log.info("supervisor started", autonomy=self.mode)
        self._tasks = [asyncio.create_task(run()) for run in (self._loop, *self._loops)]

    async def stop(self, leave: bool) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._publish()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(ROUND_S)
            try:
                with self._lock:
                    self._book.settle(time.time(), self._resolved)
                self._publish()
            except Exception:
                log.exception("supervisor round failed")

    def _resolved(self, action: Action) -> str | None:
        """What is observed once a registry repair is complete, or None if it is not."""
        state = self._registry_state()
        if action.kind == REPLACE_VOTER and action.subject not in state.voters():
            return f"{action.subject} no longer votes; {len(state.voters())} voters"
        if action.kind == MOVE_SERVICES:
            services = [name for name in state.services if name.startswith(f"{action.subject}/")]
            if all(state.services[name].health == DOWN for name in services):
                return (
                    f"every service of {action.subject} is down ({len(services)}); its memory "
                    "shards are placed on live holders"
                )
        return None

    def _publish(self) -> None:
        """Log what changed since the last call and write the record if it changed."""
        with self._lock:
            version = self._book.version
            actions = self._book.actions()
        for action in reversed(actions):
            if self._logged.get(action.id) != action.state:
                self._logged[action.id] = action.state
                log.info(
                    "supervisor action",
                    action_id=action.id,
                    kind=action.kind,
                    subject=action.subject,
                    state=action.state,
                    attempts=action.attempts,
                    outcome=action.outcome,
                    autonomy=self.mode,
                )
        if version != self._written and self._dir.exists():
            _write_history(self._file, actions)
            self._written = version

    # ---- what the node shows -----------------------------------------------------------------

    def _checks(self) -> tuple[Check, ...]:
        observation = self._observe()
        return () if observation is None else observation.checks

    def status_sections(self) -> Mapping[str, object]:
        """`supervisor`: the mode, the actions waiting, the checks and the sovereignty audit."""
        actions = self.actions()
        section: dict[str, object] = {
            "autonomy": self.mode,
            "pending": sum(a.state == "pending" for a in actions),
            "open": sum(a.is_open for a in actions),
        }
        observation = self._observe()
        if observation is not None:
            section["checks"] = [c.public() for c in observation.checks]
            section["sovereignty"] = observation.report.public()
        return {"supervisor": section}

    def metrics(self) -> Iterable[Metric]:
        with self._lock:
            counts = self._book.counts()
        family = GaugeMetricFamily(
            "fpai_supervisor_actions",
            "Repairs this node's supervisor has recorded, by kind and state.",
            labels=["kind", "state"],
        )
        for (kind, state), count in sorted(counts.items()):
            family.add_metric([kind, state], count)
        yield family
        mode = GaugeMetricFamily(
            "fpai_supervisor_autonomy",
            "The supervisor's autonomy mode (1 for the mode in force).",
            labels=["mode"],
        )
        for name in MODES:
            mode.add_metric([name], 1 if name == self.mode else 0)
        yield mode
        checks = GaugeMetricFamily(
            "fpai_supervisor_check_ok",
            "What the supervisor observes: 1 when a check holds, 0 when it does not.",
            labels=["check"],
        )
        for check in self._checks():
            checks.add_metric([check.name], 1 if check.ok else 0)
        yield checks


def _read_history(path: Path) -> list[Action]:
    """The record a previous run wrote; an unreadable file is logged and set aside, never
    fatal (it is a record, not state the node needs)."""
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
        return [Action(**row) for row in rows]
    except FileNotFoundError:
        return []
    except (OSError, ValueError, TypeError) as exc:
        aside = path.with_suffix(".unreadable")
        log.warning("supervisor record unreadable; set aside", path=str(aside), error=str(exc))
        path.replace(aside)
        return []


def _write_history(path: Path, actions: list[Action]) -> None:
    rows = [dataclasses.asdict(a) for a in reversed(actions)]
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    os.replace(temporary, path)

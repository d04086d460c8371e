"""The supervisor's record of repairs, and the autonomy modes that decide them. Pure: time comes
in as an argument, and the I/O shell (supervisor/service.py) locks, persists and logs.

A repair is asked for by the part that would do it (the registry leader, a backend), by a key
that names the repair, again and again while it is due. What happens depends on the mode:
- `off`: nothing is recorded and nothing is done; the operator repairs by hand.
- `supervised` (the default): the first ask records the repair as `pending`; it goes ahead once
  an operator approves it (`approved`, then `running`), or never, once rejected.
- `autonomous`: the first ask records it as `running` and it goes ahead.
A step that fails is retried after a backoff that doubles, and after MAX_ATTEMPTS the repair is
`failed` and nothing asks it through again: a broken repair never loops. A repair nobody asks
for any more ends: `done` when what it was for is observed (its `resolved` check), else
`withdrawn` (the member came back before approval, or this node stopped leading).
"""

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace

MODES = ("off", "supervised", "autonomous")
PENDING, APPROVED, RUNNING = "pending", "approved", "running"
DONE, FAILED, REJECTED, WITHDRAWN = "done", "failed", "rejected", "withdrawn"
OPEN = frozenset({PENDING, APPROVED, RUNNING})
HOLDING = frozenset({REJECTED, FAILED})  # closed, and still answering "no" while asked for
MAX_ATTEMPTS = 5  # a repair that failed five times needs a person, not a sixth try
BACKOFF_INITIAL_S = 5.0  # a registry step that failed (an election under way) settles in seconds
BACKOFF_MAX_S = 300.0  # 5, 10, 20, 40, 80 s: the fifth try comes about 2.5 min after the first
# A repair not asked for over this long is no longer due: the registry asks every 0.5 s while a
# repair is due, a backend at each restart it wants; 10 s also covers a leader's pause.
QUIET_S = 10.0
KEEP = 200  # finished repairs kept in the record (and its file): weeks of a busy federation


class ActionError(Exception):
    """An operator's decision that cannot apply: an unknown id, or a repair not pending."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Action:
    id: str
    key: str  # names the repair: "<kind>:<subject>"
    kind: str  # replace_voter, move_services, restart_backend
    subject: str  # the member or backend it is about
    summary: str  # one sentence an operator approves or rejects
    state: str
    created_at: float  # unix seconds
    updated_at: float
    attempts: int = 0  # steps let through (the first and each retry)
    outcome: str | None = None  # what happened, or why it is waiting
    retry_at: float | None = None  # a failed step's backoff ends then
    asked_at: float = 0.0  # the last time the repair was asked for
    reports: bool = False  # its asker says when a step succeeded or failed (not `settle`)

    @property
    def is_open(self) -> bool:
        return self.state in OPEN

    def public(self) -> dict[str, object]:
        """The action as `GET /fpai/v1/actions` shows it (docs/api.md)."""
        return {
            "id": self.id,
            "kind": self.kind,
            "subject": self.subject,
            "summary": self.summary,
            "state": self.state,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "attempts": self.attempts,
            "outcome": self.outcome,
            "retry_at": self.retry_at,
        }


def backoff_s(attempts: int) -> float:
    """The wait after the `attempts`-th failed step."""
    return min(BACKOFF_INITIAL_S * 2.0 ** (attempts - 1), BACKOFF_MAX_S)


class ActionBook:
    """Every repair this node has recorded, open and finished, newest last."""

    def __init__(self, mode: str, history: Iterable[Action] = ()) -> None:
        if mode not in MODES:
            raise ValueError(f"autonomy must be one of {', '.join(MODES)}, got {mode!r}")
        self.mode = mode
        self._actions: dict[str, Action] = {}  # id -> action, in creation order
        self._open: dict[str, str] = {}  # key -> id of the open action for it
        self._next_id = 1
        for action in history:  # a restart keeps the record; what was open is re-asked
            if action.is_open:
                action = replace(action, state=WITHDRAWN, outcome="the node restarted")
            self._actions[action.id] = action
            self._next_id = max(self._next_id, int(action.id) + 1)
        self.version = 0  # bumped at every change: the shell persists and logs on a change

    def actions(self) -> list[Action]:
        """Newest first."""
        return list(reversed(self._actions.values()))

    def get(self, action_id: str) -> Action:
        action = self._actions.get(action_id)
        if action is None:
            raise ActionError(f"no action {action_id!r} on this node", "unknown_action")
        return action

    def open_action(self, key: str) -> Action | None:
        action_id = self._open.get(key)
        return None if action_id is None else self._actions[action_id]

    # ---- asked by the parts that repair ------------------------------------------------------

    def ask(
        self, key: str, kind: str, subject: str, summary: str, now: float, reports: bool = False
    ) -> bool:
        """Whether the repair named `key` may take its next step now. With `reports`, the asker
        ends each step with `succeeded` or `failed`, and a running repair is never ended for
        being quiet."""
        if self.mode == "off":
            return False
        action = self.open_action(key)
        if action is None:
            state = RUNNING if self.mode == "autonomous" else PENDING
            attempts = 1 if state == RUNNING else 0
            waiting = None if state == RUNNING else "waiting for an operator's approval"
            action = Action(
                str(self._next_id),
                key,
                kind,
                subject,
                summary,
                state,
                now,
                now,
                attempts,
                waiting,
                reports=reports,
            )
            self._next_id += 1
            self._open[key] = action.id
            self._put(action)
        self._actions[action.id] = replace(action, asked_at=now)
        if action.retry_at is not None and now < action.retry_at:
            return False
        if action.state == APPROVED or action.retry_at is not None:
            self._put(
                replace(
                    action,
                    state=RUNNING,
                    attempts=action.attempts + 1,
                    retry_at=None,
                    updated_at=now,
                    asked_at=now,
                )
            )
        return self._actions[action.id].state == RUNNING

    def failed(self, key: str, reason: str, now: float) -> None:
        action = self.open_action(key)
        if action is None or action.state != RUNNING:
            return
        if action.attempts >= MAX_ATTEMPTS:
            outcome = f"gave up after {action.attempts} attempts: {reason}"
            self._close(action, FAILED, outcome, now)
            return
        wait = backoff_s(action.attempts)
        outcome = f"attempt {action.attempts} failed: {reason}; next in {wait:g} s"
        self._put(replace(action, outcome=outcome, retry_at=now + wait, updated_at=now))

    def succeeded(self, key: str, outcome: str, now: float) -> None:
        action = self.open_action(key)
        if action is not None and action.state == RUNNING:
            self._close(action, DONE, outcome, now)

    # ---- the operator ------------------------------------------------------------------------

    def approve(self, action_id: str, now: float) -> Action:
        """A pending repair goes ahead at its next ask; a failed one is tried again."""
        action = self.get(action_id)
        if action.state == FAILED and self._open.get(action.key) in (None, action.id):
            self._open[action.key] = action.id
            action = replace(action, attempts=0, retry_at=None)
        elif action.state != PENDING:
            raise ActionError(f"action {action_id} is {action.state}, not pending", "not_pending")
        return self._put(replace(action, state=APPROVED, outcome="approved", updated_at=now))

    def reject(self, action_id: str, now: float) -> Action:
        """A pending repair never goes ahead; the same repair is asked again only after it
        stopped being due (a new action)."""
        action = self.get(action_id)
        if action.state != PENDING:
            raise ActionError(f"action {action_id} is {action.state}, not pending", "not_pending")
        return self._put(replace(action, state=REJECTED, outcome="rejected", updated_at=now))

    # ---- the supervisor's round --------------------------------------------------------------

    def settle(self, now: float, resolved: Callable[[Action], str | None]) -> list[Action]:
        """End the repairs nobody asks for any more (QUIET_S): `done` with what `resolved`
        observed, else withdrawn. A rejected or failed repair answers "no" while it is still
        asked for, and frees its key once it is not. Returns the actions it ended."""
        ended: list[Action] = []
        for key, action_id in list(self._open.items()):
            action = self._actions[action_id]
            if now - action.asked_at < QUIET_S:
                continue
            if action.state in HOLDING:
                del self._open[key]
                continue
            if action.state == RUNNING and action.reports:
                continue  # its asker reports the outcome
            outcome = resolved(action) if action.state == RUNNING else None
            if outcome is not None:
                ended.append(self._close(action, DONE, outcome, now))
            else:
                reason = "no longer needed" if action.state != RUNNING else "no longer asked for"
                ended.append(self._close(action, WITHDRAWN, reason, now))
        return ended

    def counts(self) -> Mapping[tuple[str, str], int]:
        """(kind, state) -> actions, for metrics."""
        counts: dict[tuple[str, str], int] = {}
        for action in self._actions.values():
            counts[action.kind, action.state] = counts.get((action.kind, action.state), 0) + 1
        return counts

    def _close(self, action: Action, state: str, outcome: str, now: float) -> Action:
        self._open.pop(action.key, None)
        closed = self._put(replace(action, state=state, outcome=outcome, updated_at=now))
        held = set(self._open.values())
        finished = [a for a in self._actions.values() if a.id not in held]
        for old in finished[: max(0, len(finished) - KEEP)]:
            del self._actions[old.id]
        return closed

    def _put(self, action: Action) -> Action:
        self._actions[action.id] = action
        if action.state in HOLDING:  # keeps its key: asked again, it stays closed
            self._open[action.key] = action.id
        self.version += 1
        return action

"""What a promote run decided, in one word, from the states its tasks ended in.

The promote DAG ends in one task per outcome, so the Airflow grid shows at a glance whether a run
promoted, rejected, handed over to a rollout or could not evaluate, not only whether it was green.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

PROMOTED = "promoted"
HANDED_TO_ROLLOUT = "handed_to_rollout"
REJECTED = "rejected"
NOT_APPROVED = "not_approved"
NOT_PROMOTED = "not_promoted"
NOTHING_TO_EVALUATE = "nothing_to_evaluate"
CANNOT_EVALUATE = "cannot_evaluate"
FAILED = "failed"

# Outcomes that leave the run failed (red): somebody has to look.
FAILING = frozenset({CANNOT_EVALUATE, FAILED})
OUTCOMES: tuple[str, ...] = (
    PROMOTED,
    HANDED_TO_ROLLOUT,
    REJECTED,
    NOT_APPROVED,
    NOT_PROMOTED,
    NOTHING_TO_EVALUATE,
    CANNOT_EVALUATE,
    FAILED,
)
_FAILED_STATES = frozenset({"failed", "upstream_failed"})
# The promote DAG's tasks in the order they run; the first that stopped the run decides.
_PATH = (
    "find_candidates",
    "evaluate",
    "conclude_evaluation",
    "request_approval",
    "wait_for_approval",
    "settle_approval",
    "promote_challenger",
    "start_rollout",
)
_SKIPPED_MEANS = {
    "find_candidates": NOTHING_TO_EVALUATE,
    "conclude_evaluation": REJECTED,
    "settle_approval": NOT_APPROVED,
    "promote_challenger": NOT_PROMOTED,
    "start_rollout": NOT_PROMOTED,
}
_SUCCESS_MEANS = {"promote_challenger": PROMOTED, "start_rollout": HANDED_TO_ROLLOUT}


@dataclass(frozen=True)
class RunOutcome:
    """A promote run's outcome and the task that decided it."""

    outcome: str
    decided_by: str | None

    @property
    def failing(self) -> bool:
        return self.outcome in FAILING

    def describe(self) -> str:
        """One line for the log and the end task."""
        where = f" (decided by {self.decided_by})" if self.decided_by else ""
        return f"{self.outcome.replace('_', ' ')}{where}"


def promote_outcome(states: Mapping[str, str | None], verdict: str | None) -> RunOutcome:
    """The outcome of a promote run from its tasks' end states (Airflow's state names) and the
    evaluation's verdict (None when there was none)."""
    for task_id in _PATH:
        if task_id not in states:
            continue
        state = states[task_id]
        if state in _FAILED_STATES:
            if task_id == "conclude_evaluation" and verdict == CANNOT_EVALUATE:
                return RunOutcome(CANNOT_EVALUATE, task_id)
            return RunOutcome(FAILED, task_id)
        if state == "skipped":
            return RunOutcome(_SKIPPED_MEANS.get(task_id, NOTHING_TO_EVALUATE), task_id)
        if state == "success" and task_id in _SUCCESS_MEANS:
            return RunOutcome(_SUCCESS_MEANS[task_id], task_id)
    return RunOutcome(FAILED, None)

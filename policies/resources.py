"""Where heavy work runs: the Airflow pool and Celery queue of training tasks, and every pool the
DAGs need. Read from the environment of the DAG processor and the init step (a deployment's
choice, the same for every model), light enough for DAG files to import at parse time."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from policies.schema import Policy

POOL_ENV = "PROMOTION_TRAINING_POOL"
SLOTS_ENV = "PROMOTION_TRAINING_POOL_SLOTS"
QUEUE_ENV = "PROMOTION_TRAINING_QUEUE"
DEFAULT_POOL = "training"
DEFAULT_SLOTS = 2


class ResourceSettingsError(ValueError):
    """A training resource setting is garbled; the message names the variable."""


@dataclass(frozen=True)
class TrainingResources:
    """The pool every training task runs in, its slots, and the Celery queue it is sent to (None:
    Airflow's default queue, which is also what every other executor ignores)."""

    pool: str = DEFAULT_POOL
    slots: int = DEFAULT_SLOTS
    queue: str | None = None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> TrainingResources:
        """Read PROMOTION_TRAINING_POOL, PROMOTION_TRAINING_POOL_SLOTS, PROMOTION_TRAINING_QUEUE."""
        env = os.environ if environ is None else environ
        slots = env.get(SLOTS_ENV, "").strip() or str(DEFAULT_SLOTS)
        if not slots.isdigit() or int(slots) < 1:
            raise ResourceSettingsError(f"{SLOTS_ENV} must be a whole number ≥ 1, got {slots!r}")
        return cls(
            pool=env.get(POOL_ENV, "").strip() or DEFAULT_POOL,
            slots=int(slots),
            queue=env.get(QUEUE_ENV, "").strip() or None,
        )

    def task_arguments(self) -> dict[str, str]:
        """The `@task` arguments of a training task."""
        return {"pool": self.pool, **({"queue": self.queue} if self.queue else {})}


def airflow_pools(policies: Iterable[Policy], training: TrainingResources) -> dict[str, dict]:
    """Every pool the DAGs use, in the form `airflow pools import` reads: one single-slot pool per
    model for its alias moves, and the training pool."""
    pools = {
        policy.alias_pool: {
            "slots": 1,
            "description": f"one writer of {policy.model_name}'s aliases at a time",
            "include_deferred": False,
        }
        for policy in policies
    }
    pools[training.pool] = {
        "slots": training.slots,
        "description": "training runs at once, whatever the model",
        "include_deferred": False,
    }
    return pools

"""Training tasks run in the training pool and queue; alias moves, promotions and rollbacks don't."""

from __future__ import annotations

from tests.dags.parsing import run_on_dag_folder

TASKS_SCRIPT = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
assert not bag.import_errors, bag.import_errors
print(json.dumps({
    f"{dag_id}.{task.task_id}": [task.pool, task.queue]
    for dag_id, dag in bag.dags.items() for task in dag.tasks
}))
"""
TRAINING_TASKS = ["extract_window", "validate_window", "train_candidate"]


def task_resources(**env: str) -> dict[str, list[str]]:
    return run_on_dag_folder(TASKS_SCRIPT, env)


def test_training_runs_in_its_pool_and_queue_and_nothing_else_does() -> None:
    resources = task_resources(
        PROMOTION_TRAINING_POOL="heavy_training", PROMOTION_TRAINING_QUEUE="training"
    )

    training = {f"train_user_churn.{task}" for task in TRAINING_TASKS}
    assert {key: resources[key] for key in training} == {
        key: ["heavy_training", "training"] for key in training
    }
    others = {key: value for key, value in resources.items() if key not in training}
    assert others["train_user_churn.register_candidate"][0] == "aliases_user_churn"
    assert all(pool != "heavy_training" and queue != "training" for pool, queue in others.values())


def test_without_a_queue_training_uses_airflows_default_queue() -> None:
    resources = task_resources(PROMOTION_TRAINING_QUEUE="")

    assert resources["train_user_churn.train_candidate"] == ["training", "default"]

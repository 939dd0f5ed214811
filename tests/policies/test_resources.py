"""Training resources from the environment, and the pools the init step creates."""

from __future__ import annotations

import pytest

from policies import load_policy
from policies.loader import POLICIES_DIR
from policies.resources import ResourceSettingsError, TrainingResources, airflow_pools

POLICY = load_policy(POLICIES_DIR / "user_churn.yaml")


def test_unset_training_runs_in_the_training_pool_on_the_default_queue() -> None:
    resources = TrainingResources.from_environment({})

    assert resources == TrainingResources(pool="training", slots=2, queue=None)
    assert resources.task_arguments() == {"pool": "training"}


def test_a_configured_queue_is_passed_to_the_training_tasks() -> None:
    resources = TrainingResources.from_environment(
        {
            "PROMOTION_TRAINING_POOL": "heavy",
            "PROMOTION_TRAINING_POOL_SLOTS": "4",
            "PROMOTION_TRAINING_QUEUE": "training",
        }
    )

    assert resources.task_arguments() == {"pool": "heavy", "queue": "training"}
    assert resources.slots == 4


@pytest.mark.parametrize("slots", ["0", "two", "-1", "1.5"])
def test_garbled_slots_name_the_variable(slots: str) -> None:
    with pytest.raises(ResourceSettingsError, match="PROMOTION_TRAINING_POOL_SLOTS must be"):
        TrainingResources.from_environment({"PROMOTION_TRAINING_POOL_SLOTS": slots})


def test_the_pools_are_one_alias_writer_per_model_and_the_shared_training_pool() -> None:
    pools = airflow_pools([POLICY], TrainingResources(pool="training", slots=3))

    assert {name: pool["slots"] for name, pool in pools.items()} == {
        POLICY.alias_pool: 1,
        "training": 3,
    }

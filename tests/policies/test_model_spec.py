"""The policy's `model` and `tuning` sections: what a user may write, and the errors they get."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from policies import PolicyError, load_policy
from policies.__main__ import main
from policies.loader import POLICIES_DIR, policy_files
from tests.support import write_policy

ROOT = Path(__file__).resolve().parents[2]
REGRESSION = {
    "model__task": "regression",
    "model__flavor": "lightgbm_regressor",
    "promotion__metric": "rmse",
    "promotion__calibration": None,
}


def problems_of(tmp_path: Path, **changes: object) -> list[str]:
    with pytest.raises(PolicyError) as raised:
        load_policy(write_policy(tmp_path, "churn", **changes))
    return raised.value.problems


def test_a_regression_policy_with_lightgbm_regressor_loads(tmp_path: Path) -> None:
    policy = load_policy(write_policy(tmp_path, "churn", **REGRESSION))
    assert (policy.task, policy.model.import_path) == ("regression", "lightgbm.LGBMRegressor")


def test_a_policy_without_a_metric_is_measured_by_its_tasks_first_one(tmp_path: Path) -> None:
    policy = load_policy(
        write_policy(tmp_path, "churn", **{**REGRESSION, "promotion__metric": None})
    )
    assert policy.promotion.metric == "rmse"


def test_a_metric_not_of_the_task_names_promotion_metric_and_the_allowed_ones(
    tmp_path: Path,
) -> None:
    assert problems_of(tmp_path, **{**REGRESSION, "promotion__metric": "roc_auc"}) == [
        "promotion.metric: roc_auc does not measure a regression model; use one of rmse, mae, r2"
    ]
    assert problems_of(tmp_path, promotion__metric="rmse") == [
        "promotion.metric: rmse does not measure a binary model; use one of accuracy, roc_auc, "
        "log_loss, f1, precision, recall"
    ]


def test_calibration_is_refused_for_regression(tmp_path: Path) -> None:
    changes = {**REGRESSION, "promotion__calibration": {"measure": "brier", "max_worsening": 0.01}}
    [problem] = problems_of(tmp_path, **changes)
    assert problem.startswith("promotion.calibration: a regression model has no probabilities")


def test_a_floor_outside_the_unit_interval_is_allowed_for_an_unbounded_metric(
    tmp_path: Path,
) -> None:
    changes = {**REGRESSION, "triggers__performance": {"floor": 12.5}}
    assert (
        load_policy(write_policy(tmp_path, "churn", **changes)).triggers.performance.floor == 12.5
    )


def test_a_flavor_must_suit_the_task(tmp_path: Path) -> None:
    [problem] = problems_of(
        tmp_path, model__task="regression", promotion__metric="rmse", promotion__calibration=None
    )
    assert problem.startswith(
        "model.flavor: lightgbm_classifier does not learn a regression task; use one of lightgbm_regressor"
    )


def test_exactly_one_of_flavor_estimator_or_factory(tmp_path: Path) -> None:
    assert problems_of(tmp_path, model__estimator="lightgbm.LGBMClassifier") == [
        "model: give exactly one of 'flavor', 'estimator' (import path) or 'factory' "
        "(package.module:function), got flavor, estimator"
    ]


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        (
            "estimator",
            "LGBMClassifier",
            "model.estimator: 'LGBMClassifier' is not an import path of a class (e.g. lightgbm.LGBMRegressor)",
        ),
        (
            "factory",
            "mypackage.build",
            "model.factory: 'mypackage.build' is not package.module:function",
        ),
    ],
)
def test_import_paths_are_checked_for_their_shape_at_load(
    tmp_path: Path, field: str, value: str, expected: str
) -> None:
    assert problems_of(tmp_path, model__flavor=None, **{f"model__{field}": value}) == [expected]


def test_a_wrong_hyperparameter_type_is_named(tmp_path: Path) -> None:
    assert problems_of(tmp_path, model__hyperparameters={"num_leaves": [1, 2]}) == [
        "model.hyperparameters: values must be numbers, text, true/false or null, not: "
        "num_leaves (list)"
    ]


def test_a_gate_outside_the_metrics_range_is_refused(tmp_path: Path) -> None:
    assert problems_of(tmp_path, model__validation_gate=70) == [
        "model.validation_gate: roc_auc lies in [0, 1], got 70.0"
    ]


def test_a_tuning_section_loads_with_its_search_space(tmp_path: Path) -> None:
    tuning = {
        "trials": 10,
        "timeout_minutes": 5,
        "pruning": True,
        "search_space": {
            "learning_rate": {"type": "float", "low": 0.01, "high": 0.3, "log": True},
            "min_child_samples": {"type": "int", "low": 5, "high": 50},
            "boosting_type": {"type": "categorical", "choices": ["gbdt", "dart"]},
        },
    }
    policy = load_policy(
        write_policy(tmp_path, "churn", tuning=tuning, model__hyperparameters={"n_estimators": 50})
    )
    assert policy.tuning.trials == 10 and policy.tuning.folds == 3
    assert policy.tuning.search_space["learning_rate"].log


@pytest.mark.parametrize(
    ("tuning", "expected"),
    [
        (
            {"trials": 501, "search_space": {"a": {"type": "int", "low": 1, "high": 2}}},
            "tuning.trials: Input should be less than or equal to 500",
        ),
        (
            {"search_space": {"num_leaves": {"type": "int", "low": 9, "high": 2}}},
            "tuning.search_space.num_leaves.int: low 9 is above high 2",
        ),
        (
            {
                "search_space": {
                    "learning_rate": {"type": "float", "low": 0, "high": 1, "log": True}
                }
            },
            "tuning.search_space.learning_rate.float: log needs low > 0",
        ),
        (
            {"search_space": {}},
            "tuning.search_space: Dictionary should have at least 1 item after validation, not 0",
        ),
        (
            {"search_space": {"num_leaves": {"type": "int", "low": 4, "high": 31}}},
            "tuning.search_space: num_leaves also fixed in model.hyperparameters; keep each in one place",
        ),
    ],
    ids=["too-many-trials", "low-above-high", "log-of-zero", "empty-space", "also-fixed"],
)
def test_tuning_errors_name_the_field(tmp_path: Path, tuning: dict, expected: str) -> None:
    assert problems_of(tmp_path, tuning=tuning) == [expected]


def test_every_shipped_policy_passes_the_estimator_check() -> None:
    files = policy_files(POLICIES_DIR) + policy_files(ROOT / "demo" / "policies")
    assert len(files) >= 2
    assert main(["check", *map(str, files)]) == 0


def test_the_check_command_exits_non_zero_naming_file_and_field(tmp_path: Path) -> None:
    bad = write_policy(tmp_path, "churn", model__hyperparameters={"n_estimator": 100})
    write_policy(tmp_path, "good")
    result = subprocess.run(
        [sys.executable, "-m", "policies", "check", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"{bad}: model.hyperparameters.n_estimator: not a parameter of lightgbm.LGBMClassifier "
        "(did you mean 'n_estimators'?)"
    ]

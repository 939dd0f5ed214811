"""The train DAG's steps: every window it checks is recorded; training per task, tuning and the
training-quality gate on a real MLflow store."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

import registry
from demo.source_data import generate_user_features
from policies import Policy, load_policy
from registry.moves import current_ledger
from registry.validation_records import read_validations
from tests.support import write_policy
from tests.workflow.test_validation import POLICY, window
from workflow import modeling, train
from workflow.runs import RunContext
from workflow.validation import DataValidationError

RUN = RunContext(dag_id="train_user_churn", run_id="scheduled__2026-02-01")


def _extracted(tmp_path: Path, rows: int, drop: tuple[str, ...] = ()) -> train.TrainingWindow:
    path = tmp_path / "window.parquet"
    window(rows=rows).drop(columns=list(drop)).to_parquet(path, index=False)
    return train.TrainingWindow(
        data_url=path.as_uri(),
        rows=rows,
        source="sqlite:///source.db",
        selection="user_features",
        window_start="2026-01-01T00:00:00",
        window_end="2026-02-01T00:00:00",
        holdout_start="2026-02-01T00:00:00",
        holdout_end="2026-02-08T00:00:00",
    )


def test_a_passing_window_is_recorded_as_passed(mlflow_store: str, tmp_path: Path) -> None:
    extracted = _extracted(tmp_path, rows=600)

    assert train.validate(POLICY, extracted, RUN) == extracted
    (record,) = read_validations(current_ledger().url, POLICY.model_name)
    assert (record.passed, record.failed_checks, record.rows) == (True, (), 600)
    assert (record.window_start, record.run_id) == ("2026-01-01T00:00:00", RUN.run_id)


def test_a_failing_window_raises_every_problem_and_records_each(
    mlflow_store: str, tmp_path: Path
) -> None:
    with pytest.raises(DataValidationError) as raised:
        train.validate(POLICY, _extracted(tmp_path, rows=10, drop=("region",)), RUN)

    assert str(raised.value).startswith(
        f"training window 2026-01-01T00:00:00 → 2026-02-01T00:00:00 of {POLICY.model_name} "
        "failed validation:"
    )
    (record,) = read_validations(current_ledger().url, POLICY.model_name)
    assert not record.passed
    assert record.failed_checks == (
        "missing column(s): region",
        "too few rows: 10 < validation.min_rows=500",
    )


# Training per task, on a real MLflow store: what the version records and what it answers.

FRAME = generate_user_features(days=10, rows_per_day=80)
FRAME["spend"] = 2.0 * FRAME["support_tickets"] - 0.3 * FRAME["sessions_7d"].fillna(0)
FRAME["tier"] = np.select(
    [FRAME["support_tickets"] == 0, FRAME["support_tickets"] == 1], ["calm", "some"], "busy"
)
SMALL = {"n_estimators": 20, "num_leaves": 7}


def _policy(tmp_path: Path, **changes: object) -> Policy:
    return load_policy(write_policy(tmp_path, "churn", **changes))


def _window_of(tmp_path: Path, frame: pd.DataFrame) -> train.TrainingWindow:
    path = tmp_path / "window.parquet"
    frame.to_parquet(path, index=False)
    return train.TrainingWindow(
        data_url=path.as_uri(),
        rows=len(frame),
        source="sqlite:///source.db",
        selection="user_features",
        window_start="2026-01-01T00:00:00",
        window_end="2026-01-11T00:00:00",
        holdout_start="2026-01-11T00:00:00",
        holdout_end="2026-01-15T00:00:00",
    )


def _train(policy: Policy, tmp_path: Path, frame: pd.DataFrame = FRAME) -> registry.VersionInfo:
    candidate = train.train_and_register(
        policy, _window_of(tmp_path, frame), RUN, artifact_root=str(tmp_path / "artifacts")
    )
    return registry.get_version(candidate.model, candidate.version)


def _signature_outputs(version: registry.VersionInfo) -> list[dict]:
    from mlflow.models import get_model_info

    return get_model_info(version.source).signature.outputs.to_dict()


def test_a_regression_policy_trains_a_version_answering_values(
    mlflow_store: str, tmp_path: Path
) -> None:
    policy = _policy(
        tmp_path,
        model__task="regression",
        model__flavor="lightgbm_regressor",
        model__hyperparameters=SMALL,
        model__seed=4,
        source__target="spend",
        promotion__metric="rmse",
        promotion__calibration=None,
    )
    version = _train(policy, tmp_path)

    tags = version.tags
    assert (tags["lineage.task"], tags["lineage.estimator"], tags["lineage.seed"]) == (
        "regression",
        "lightgbm.LGBMRegressor",
        "4",
    )
    assert json.loads(tags["lineage.params"]) == {**SMALL, "random_state": 4, "verbose": -1}
    assert float(tags["train.validation_rmse"]) < FRAME["spend"].std()
    [output] = _signature_outputs(version)
    assert output["type"] in {"double", "tensor"}
    rows = FRAME[policy.source.features.all].head(7)
    values = modeling.predictions(registry.load_model("churn", version.version), rows, "regression")
    assert values.shape == (7,) and values.dtype == np.float64
    params = mlflow.get_run(version.run_id).data.params
    assert (params["task"], params["estimator"], params["seed"]) == (
        "regression",
        "lightgbm.LGBMRegressor",
        "4",
    )


def test_a_multiclass_policy_with_text_classes_answers_class_probabilities(
    mlflow_store: str, tmp_path: Path
) -> None:
    policy = _policy(
        tmp_path,
        model__task="multiclass",
        model__flavor="sklearn_random_forest",
        model__hyperparameters={"n_estimators": 20},
        source__target="tier",
        promotion__metric="macro_f1",
    )
    version = _train(policy, tmp_path)

    assert float(version.tags["train.validation_macro_f1"]) > 1 / 3
    assert [column["name"] for column in _signature_outputs(version)] == ["busy", "calm", "some"]
    model = registry.load_model("churn", version.version)
    rows = FRAME[policy.source.features.all].head(4)
    assert modeling.predictions(model, rows, "multiclass").shape == (4, 3)
    train.name_challenger(policy, train.Candidate("churn", version.version, version.run_id), RUN)
    assert registry.get_alias_version("churn", "challenger") == version.version


def test_tuning_runs_each_trial_nested_and_puts_the_best_parameters_on_the_version(
    mlflow_store: str, tmp_path: Path
) -> None:
    tuning = {
        "trials": 3,
        "folds": 2,
        "pruning": True,
        "seed": 1,
        "search_space": {
            "num_leaves": {"type": "int", "low": 4, "high": 12},
            "learning_rate": {"type": "float", "low": 0.05, "high": 0.3, "log": True},
        },
    }
    policy = _policy(tmp_path, model__hyperparameters={"n_estimators": 15}, tuning=tuning)
    version = _train(policy, tmp_path)

    trials = mlflow.search_runs(
        experiment_names=["churn"],
        filter_string=f"tags.mlflow.parentRunId = '{version.run_id}'",
        output_format="list",
    )
    assert len(trials) == 3
    used = json.loads(version.tags["lineage.params"])
    best = next(
        run for run in trials if run.data.tags["tuning.trial"] == version.tags["tuning.best_trial"]
    )
    assert {name: str(used[name]) for name in ("num_leaves", "learning_rate")} == {
        name: best.data.params[name] for name in ("num_leaves", "learning_rate")
    }
    assert used["n_estimators"] == 15
    completed = [run for run in trials if run.data.tags["tuning.state"] == "complete"]
    assert version.tags["tuning.trials"] == str(len(completed))
    best_value = max(run.data.metrics["cv_roc_auc"] for run in completed)
    assert float(version.tags["tuning.best_value"]) == pytest.approx(best_value, abs=1e-6)


def test_a_label_shuffled_candidate_is_registered_rejected_and_never_challenger(
    mlflow_store: str, tmp_path: Path
) -> None:
    shuffled = FRAME.assign(target=np.random.default_rng(3).permutation(FRAME["target"]))
    policy = _policy(tmp_path, model__hyperparameters=SMALL, model__validation_gate=0.6)
    version = _train(policy, tmp_path, shuffled)

    assert version.tags["promotion.verdict"] == "rejected_at_training"
    score = float(version.tags["train.validation_roc_auc"])
    assert version.tags["promotion.reason"] == (
        f"validation roc_auc {score:.4f} misses model.validation_gate: at least 0.6"
    )
    assert registry.version_state("churn", version.version) == "rejected"
    with pytest.raises(train.TrainingRejected, match=r"churn v1 is not challenger: validation"):
        train.name_challenger(
            policy, train.Candidate("churn", version.version, version.run_id), RUN
        )
    assert registry.get_alias_version("churn", "challenger") is None


def test_a_candidate_meeting_the_gate_becomes_challenger(mlflow_store: str, tmp_path: Path) -> None:
    policy = _policy(tmp_path, model__hyperparameters=SMALL, model__validation_gate=0.6)
    version = _train(policy, tmp_path)
    assert "promotion.verdict" not in version.tags
    train.name_challenger(policy, train.Candidate("churn", version.version, version.run_id), RUN)
    assert registry.get_alias_version("churn", "challenger") == version.version


@pytest.mark.parametrize(
    ("metric", "score", "gate", "missed"),
    [
        ("roc_auc", 0.59, 0.6, True),
        ("roc_auc", 0.6, 0.6, False),
        ("rmse", 2.1, 2.0, True),
        ("rmse", 1.9, 2.0, False),
    ],
)
def test_the_gate_is_a_floor_or_for_lower_is_better_metrics_a_ceiling(
    tmp_path: Path, metric: str, score: float, gate: float, missed: bool
) -> None:
    changes = {"promotion__metric": metric, "model__validation_gate": gate}
    if metric == "rmse":
        changes |= {
            "model__task": "regression",
            "model__flavor": "lightgbm_regressor",
            "promotion__calibration": None,
        }
    assert (train.gate_verdict(_policy(tmp_path, **changes), score) is not None) == missed

"""train_<model> per task through Airflow (`airflow dags test`): a regression policy trains, names
its challenger, goes through promote_<model> (first champion, then a paired comparison of errors)
and rolls back; a multiclass one trains, promotes a better version and rolls back; a policy whose
hyperparameter LightGBM refuses fails its first task in one attempt, before anything is
extracted."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import mlflow
import pytest

import registry
from demo.lifecycle import DagRunFailed, Lifecycle, Workspace
from demo.source_data import as_of_for_window, generate_user_features, write_source
from tests.support import write_policy

pytestmark = pytest.mark.integration

SPEND_QUERY = (
    "SELECT *, 2.0 * support_tickets + 0.01 * days_since_signup AS spend FROM user_features"
)


def task_states(workspace: Workspace, dag_id: str) -> dict[str, tuple[str, int]]:
    with sqlite3.connect(workspace.airflow_home / "airflow.db") as db:
        rows = db.execute(
            "SELECT task_id, state, try_number FROM task_instance WHERE dag_id = ?", (dag_id,)
        )
        return {task: (state, tries) for task, state, tries in rows}


def airflow_on_demo_rows(
    tmp_path: Path, policies: Path, monkeypatch: pytest.MonkeyPatch
) -> Lifecycle:
    """A fresh workspace: the demo's 90 days of rows in the source, Airflow ready for `policies`,
    and its MLflow store made current."""
    workspace = Workspace(tmp_path / "workspace")
    lifecycle = Lifecycle(workspace, policies)
    lifecycle.reset()
    write_source(workspace.source, generate_user_features(days=90, rows_per_day=40))
    lifecycle.prepare_airflow()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", workspace.tracking_uri)
    mlflow.set_tracking_uri(workspace.tracking_uri)
    return lifecycle


def query_policy(
    policies: Path, name: str, query: str, task: str, metric: str, hyperparameters: dict
) -> None:
    """A LightGBM policy of `task` whose source is `query` and target the column `name`, with a
    guardrail per plan, each slice large enough in a two-week holdout of 560 rows."""
    write_policy(
        policies,
        name,
        source__table=None,
        source__query=query,
        source__target=name,
        model__task=task,
        model__flavor="lightgbm_regressor" if task == "regression" else "lightgbm_classifier",
        model__hyperparameters=hyperparameters,
        promotion__metric=metric,
        promotion__calibration=None,
        promotion__slices=[
            {"column": "plan", "kind": "categorical", "max_regression": 0.05, "min_rows": 50}
        ],
    )


def test_a_regression_policy_trains_promotes_rolls_back_and_a_refused_hyperparameter_fails_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()

    def spend_policy(hyperparameters: dict) -> None:
        query_policy(policies, "spend", SPEND_QUERY, "regression", "rmse", hyperparameters)

    spend_policy({"n_estimators": 2, "num_leaves": 2, "learning_rate": 0.05})  # about the mean
    write_policy(policies, "churn", model__hyperparameters={"num_leaves": -3})
    lifecycle = airflow_on_demo_rows(tmp_path, policies, monkeypatch)
    workspace = lifecycle.workspace

    lifecycle.run_dag("train_spend", {"as_of": as_of_for_window(1)})
    version = registry.get_version("spend", 1)
    assert registry.get_alias_version("spend", "challenger") == 1
    assert (version.tags["lineage.task"], version.tags["lineage.estimator"]) == (
        "regression",
        "lightgbm.LGBMRegressor",
    )
    lifecycle.run_dag("promote_spend", None)
    assert registry.get_alias_version("spend", "champion") == 1

    spend_policy({"n_estimators": 30, "num_leaves": 7})
    lifecycle.run_dag("train_spend", {"as_of": "2026-03-29"})  # two weeks later
    assert float(registry.get_version("spend", 2).tags["train.validation_rmse"]) < 2.0
    lifecycle.run_dag("promote_spend", None)
    compared = registry.get_version("spend", 2).tags
    assert (compared["eval.task"], compared["eval.metric"], compared["eval.test"]) == (
        "regression",
        "rmse",
        "paired_t",
    )
    assert (compared["eval.verdict"], compared["eval.champion_version"]) == ("promote", "1")
    assert registry.get_alias_version("spend", "champion") == 2

    # The preflight scores both versions' errors on the newest window: v1's is far larger, so the
    # rollback is refused until the on-call engineer forces it.
    recent = {"as_of": "2026-03-29"}
    with pytest.raises(DagRunFailed):
        lifecycle.run_dag("rollback_spend", recent)
    refused = sorted(workspace.logs.glob("*-rollback_spend.log"))[-1].read_text()
    assert "refused: the target scores worse than the champion on recent data" in refused
    assert "rmse" in refused
    assert registry.get_alias_version("spend", "champion") == 2
    lifecycle.run_dag("rollback_spend", {**recent, "force": True})
    assert registry.get_alias_version("spend", "champion") == 1
    rolled_back = registry.alias_history("spend", "champion")[-1]
    assert (rolled_back.kind, rolled_back.from_version, rolled_back.to_version) == (
        "rollback",
        2,
        1,
    )
    assert rolled_back.evidence["target_score"] > rolled_back.evidence["champion_score"]

    with pytest.raises(DagRunFailed, match=r"churn\.yaml: model\.hyperparameters\.num_leaves: -3"):
        lifecycle.run_dag("train_churn", {"as_of": as_of_for_window(1)})
    states = task_states(workspace, "train_churn")
    assert states["check_policy"] == ("failed", 1)
    assert states.get("extract_window", ("upstream_failed", 0))[0] == "upstream_failed"


# Three classes of text from the demo's churn rows: churned, else at risk (support tickets), else
# retained; the features carry most of it, the churn draw adds noise.
TIER_QUERY = (
    "SELECT *, CASE WHEN target = 1 THEN 'churned' WHEN support_tickets >= 2 THEN 'at_risk' "
    "ELSE 'retained' END AS tier FROM user_features"
)


def test_a_multiclass_policy_trains_promotes_a_better_version_and_rolls_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()

    def tier_policy(hyperparameters: dict) -> None:
        query_policy(policies, "tier", TIER_QUERY, "multiclass", "accuracy", hyperparameters)

    tier_policy({"n_estimators": 2, "num_leaves": 2, "learning_rate": 0.01})  # about the priors
    lifecycle = airflow_on_demo_rows(tmp_path, policies, monkeypatch)
    workspace = lifecycle.workspace

    lifecycle.run_dag("train_tier", {"as_of": as_of_for_window(1)})
    first = registry.get_version("tier", 1).tags
    assert first["lineage.task"] == "multiclass"
    lifecycle.run_dag("promote_tier", None)
    assert registry.get_alias_version("tier", "champion") == 1

    tier_policy({"n_estimators": 100, "num_leaves": 15, "learning_rate": 0.1})
    lifecycle.run_dag("train_tier", {"as_of": "2026-03-29"})
    lifecycle.run_dag("promote_tier", None)
    compared = registry.get_version("tier", 2).tags
    assert (compared["eval.task"], compared["eval.metric"], compared["eval.verdict"]) == (
        "multiclass",
        "accuracy",
        "promote",
    )
    assert registry.get_alias_version("tier", "champion") == 2

    # The preflight finds version 1 far worse on the newest window; the on-call engineer forces.
    recent = {"as_of": "2026-03-29"}
    with pytest.raises(DagRunFailed):
        lifecycle.run_dag("rollback_tier", recent)
    refused = sorted(workspace.logs.glob("*-rollback_tier.log"))[-1].read_text()
    assert "refused: the target scores worse than the champion on recent data" in refused
    assert registry.get_alias_version("tier", "champion") == 2
    lifecycle.run_dag("rollback_tier", {**recent, "force": True})
    assert registry.get_alias_version("tier", "champion") == 1

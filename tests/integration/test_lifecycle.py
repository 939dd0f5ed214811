"""The whole lifecycle through Airflow (`airflow dags test`) on real MLflow stores.

train → challenger → promote (first champion) → train on drifted data → promote (champion moves)
→ rollback (champion returns). Runs on SQLite, and on PostgreSQL as MLflow backend and source
database when PROMOTION_TEST_POSTGRES_URL is set (CI sets it).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import mlflow
import pytest

import registry
from demo.lifecycle import DagRunFailed, Lifecycle, Workspace
from demo.source_data import as_of_for_window, generate_user_features, write_source
from promotion.outcomes import OUTCOMES
from tests.support import write_policy

pytestmark = pytest.mark.integration
MODEL = "user_churn"


def start(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch, policies_dir: Path | None = None
) -> Lifecycle:
    lifecycle = Lifecycle(workspace, policies_dir)
    lifecycle.reset()
    write_source(workspace.source, generate_user_features())
    lifecycle.prepare_airflow()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", workspace.tracking_uri)
    mlflow.set_tracking_uri(workspace.tracking_uri)
    return lifecycle


def aliases(model: str = MODEL) -> tuple[int | None, int | None]:
    return registry.get_alias_version(model, "champion"), registry.get_alias_version(
        model, "challenger"
    )


def queued_asset_runs(workspace: Workspace) -> list[str]:
    with sqlite3.connect(workspace.airflow_home / "airflow.db") as db:
        return [row[0] for row in db.execute("SELECT target_dag_id FROM asset_dag_run_queue")]


def promote_outcomes(workspace: Workspace) -> dict[str, str]:
    """The end tasks of the last promote run that did not end skipped: what the grid shows."""
    with sqlite3.connect(workspace.airflow_home / "airflow.db") as db:
        (run_id,) = db.execute(
            "SELECT run_id FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1",
            (f"promote_{MODEL}",),
        ).fetchone()
        rows = db.execute(
            "SELECT task_id, state FROM task_instance WHERE dag_id = ? AND run_id = ?",
            (f"promote_{MODEL}", run_id),
        )
        return {task: state for task, state in rows if task in OUTCOMES and state != "skipped"}


def description(version: int | None = None) -> str:
    client = mlflow.MlflowClient()
    if version is None:
        return client.get_registered_model(MODEL).description
    return client.get_model_version(MODEL, str(version)).description


def check_first_champion_report(version: registry.VersionInfo) -> None:
    run_id = version.tags["eval.run_id"]
    evaluation = mlflow.artifacts.load_dict(f"runs:/{run_id}/evaluation.json")
    assert evaluation["challenger_metrics"]["roc_auc"] == pytest.approx(
        float(version.tags["eval.challenger_score"]), abs=1e-6
    )
    guardrails = {g["name"]: g["status"] for g in evaluation["guardrails"]}
    assert guardrails["latency"] == guardrails["size"] == "pass"
    assert guardrails["calibration brier"] == "skipped"
    report = Path(mlflow.artifacts.download_artifacts(f"runs:/{run_id}/evaluation/report.html"))
    assert "<h2>Holdout metrics</h2>" in report.read_text()
    assert "- roc_auc: " in description(version.version)


def run_lifecycle(lifecycle: Lifecycle) -> None:
    workspace = lifecycle.workspace

    lifecycle.run_dag(f"train_{MODEL}", {"as_of": as_of_for_window(1)})
    assert aliases() == (None, 1)
    v1 = registry.get_version(MODEL, 1)
    assert v1.tags["lineage.window_start"] == "2025-12-31T00:00:00"
    assert v1.tags["lineage.window_end"] == "2026-03-01T00:00:00"
    assert v1.tags["lineage.holdout_end"] == "2026-03-15T00:00:00"
    assert int(v1.tags["lineage.rows"]) > 6000
    assert len(v1.tags["lineage.dataset_digest"]) >= 8
    assert v1.tags["lineage.airflow_dag_id"] == f"train_{MODEL}"
    assert v1.tags["lineage.airflow_run_id"].startswith("manual__")
    assert v1.tags["lineage.code_version"]
    assert "***" in v1.tags["lineage.source"] or "password" not in v1.tags["lineage.source"]
    assert (
        mlflow.get_run(v1.run_id).inputs.dataset_inputs[0].dataset.digest
        == v1.tags["lineage.dataset_digest"]
    )
    assert queued_asset_runs(workspace) == [f"promote_{MODEL}"]  # the Asset schedules the promotion

    model = registry.load_model(MODEL, 1)  # the registered pipeline loads back and scores raw rows
    rows = generate_user_features(days=1, rows_per_day=5)
    assert model.predict_proba(rows.drop(columns=["target", "created_at"])).shape == (5, 2)

    lifecycle.run_dag(f"promote_{MODEL}")
    assert aliases() == (1, None)
    assert registry.get_version(MODEL, 1).tags["promotion.verdict"] == "promote"
    assert promote_outcomes(workspace) == {"promoted": "success"}
    check_first_champion_report(registry.get_version(MODEL, 1))

    with pytest.raises(DagRunFailed, match="no previous champion"):
        lifecycle.run_dag(f"rollback_{MODEL}")
    assert aliases() == (1, None)

    lifecycle.run_dag(f"train_{MODEL}", {"as_of": as_of_for_window(2)})
    assert aliases() == (1, 2)
    lifecycle.run_dag(f"promote_{MODEL}")
    assert aliases() == (2, None)
    assert promote_outcomes(workspace) == {"promoted": "success"}
    promoted = registry.alias_history(MODEL, "champion")[-1]
    assert (promoted.from_version, promoted.to_version, promoted.kind) == (1, 2, "promote")
    assert promoted.actor.startswith(f"promote_{MODEL}/manual__")
    assert promoted.evidence["ci_low"] > 0.005  # the interval's lower bound cleared the policy
    assert "superiority needs the lower bound ≥ +0.0050: met" in promoted.reason
    v2 = registry.get_version(MODEL, 2)
    assert v2.tags["eval.verdict"] == "promote"
    assert (
        float(v2.tags["eval.ci_low"])
        <= float(v2.tags["eval.delta"])
        <= float(v2.tags["eval.ci_high"])
    )
    assert v2.tags["eval.test"] == "delong"
    report_run = mlflow.get_run(v2.tags["eval.run_id"])
    assert report_run.data.tags["eval.challenger_version"] == "2"
    artifacts = {
        a.path for a in mlflow.MlflowClient().list_artifacts(report_run.info.run_id, "evaluation")
    }
    assert artifacts == {
        "evaluation/report.html",
        "evaluation/roc_curve.png",
        "evaluation/calibration.png",
    }
    state, evaluation, _ = description(2).split("\n\n---\n\n")
    assert state.startswith("**State: champion** since ") and "Aliases now: `champion`." in state
    assert evaluation.startswith("**Evaluation: promote**")
    assert report_run.info.run_id in evaluation
    assert description(1).startswith("**State: retired** on ")

    with pytest.raises(DagRunFailed, match="DAG param version: user_churn has no version 3"):
        lifecycle.run_dag(f"rollback_{MODEL}", {"version": 3})
    lifecycle.run_dag(f"rollback_{MODEL}", {"reason": "on-call: bad predictions"})
    assert aliases() == (1, None)
    rolled_back = registry.alias_history(MODEL, "champion")[-1]
    assert (rolled_back.from_version, rolled_back.to_version, rolled_back.kind) == (
        2,
        1,
        "rollback",
    )
    assert rolled_back.reason.startswith("on-call: bad predictions")
    assert [m.kind for m in registry.alias_history(MODEL, "champion")] == [
        "promote",
        "promote",
        "rollback",
    ]
    restored, rolled_back = description(1), description(2)
    assert restored.startswith("**State: champion** again since ")
    assert "put back by a rollback by `rollback_user_churn/manual__" in restored
    assert ": on-call: bad predictions (" in restored and "Aliases now: `champion`." in restored
    assert rolled_back.startswith("**State: rolled back** on ")
    assert "champion is now v1. Holds no alias." in rolled_back
    assert "**Evaluation: promote**" in rolled_back  # the verdict stays, below the state
    newest = [line for line in description().splitlines() if line.startswith("| 20")][0]
    assert " | `champion` | v2 → v1 | rollback | rollback_user_churn/manual__" in newest


def test_lifecycle_on_sqlite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_lifecycle(start(Workspace(tmp_path / "ws"), monkeypatch))


def test_lifecycle_on_postgresql(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workspace = Workspace(tmp_path / "ws", mlflow_uri=postgres_url, source_url=postgres_url)
    run_lifecycle(start(workspace, monkeypatch))


def test_bad_source_windows_fail_clearly_and_register_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    write_policy(policies, "too_few_rows", validation__min_rows=100_000)
    write_policy(
        policies,
        "missing_column",
        source__features={"numeric": ["sessions_7d", "lifetime_value"], "categorical": []},
        promotion__slices=[],
    )
    lifecycle = start(Workspace(tmp_path / "ws"), monkeypatch, policies)

    with pytest.raises(DagRunFailed, match=r"too few rows: \d+ < validation.min_rows=100000"):
        lifecycle.run_dag("train_too_few_rows", {"as_of": as_of_for_window(1)})
    with pytest.raises(DagRunFailed, match=r"missing column\(s\): lifetime_value"):
        lifecycle.run_dag("train_missing_column", {"as_of": as_of_for_window(1)})
    assert mlflow.MlflowClient().search_model_versions() == []
    assert not any(
        (lifecycle.workspace.root / "work").rglob("*.parquet")
    )  # cleaned up after failure


def test_challenger_with_an_empty_holdout_cannot_be_evaluated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lifecycle = start(Workspace(tmp_path / "ws"), monkeypatch)
    lifecycle.run_dag(f"train_{MODEL}", {"as_of": "2026-07-20"})  # the source ends on 2026-06-30
    with pytest.raises(
        DagRunFailed, match=r"v1 of user_churn cannot be evaluated: .*too few rows: 0"
    ):
        lifecycle.run_dag(f"promote_{MODEL}")
    assert aliases() == (None, 1)  # no alias moved; the candidate waits for a usable holdout
    assert promote_outcomes(lifecycle.workspace) == {"cannot_evaluate": "failed"}
    tags = registry.get_version(MODEL, 1).tags
    assert tags["eval.verdict"] == "cannot_evaluate"
    assert tags["promotion.verdict"] == "cannot_evaluate"

"""promote_<model> through Airflow (`airflow dags test`) on versions registered outside the
workflow: logged from a notebook, registered and aliased `challenger` by hand, no lineage tags."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import mlflow
import mlflow.pyfunc
import mlflow.sklearn
import pytest
import skops.io
from mlflow.models import infer_signature
from sklearn.dummy import DummyClassifier

import registry
from demo.lifecycle import DagRunFailed, Lifecycle, Workspace
from demo.source_data import as_of_for_window, generate_user_features
from promotion.lifecycle import State
from tests.integration.test_lifecycle import MODEL, aliases, promote_outcomes, start

pytestmark = pytest.mark.integration

NUMERIC = ["sessions_7d", "days_since_signup", "avg_order_value", "support_tickets"]
# The demo source ends on 2026-06-30: the policy's most recent holdout is its last 14 days.
LATEST = {"as_of": "2026-06-30"}
RAISING_MODEL = """
import mlflow.pyfunc
from mlflow.models import set_model


class FeatureStoreModel(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        raise RuntimeError("feature store not reachable")


set_model(FeatureStoreModel())
"""


@pytest.fixture(scope="module")
def lifecycle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lifecycle]:
    """A workspace whose v1, trained and promoted by the workflow, is champion."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        lifecycle = start(Workspace(tmp_path_factory.mktemp("external") / "ws"), monkeypatch)
        lifecycle.run_dag(f"train_{MODEL}", {"as_of": as_of_for_window(1)})
        lifecycle.run_dag(f"promote_{MODEL}")
        assert aliases() == (1, None)
        mlflow.create_experiment(
            "notebook", artifact_location=(lifecycle.workspace.root / "notebook").as_uri()
        )
        yield lifecycle


def register_from_notebook(log) -> int:
    """Log a model in a notebook's experiment, register it and alias it `challenger` by hand."""
    mlflow.set_experiment("notebook")
    with mlflow.start_run():
        info = log()
    version = mlflow.register_model(info.model_uri, MODEL).version
    mlflow.MlflowClient().set_registered_model_alias(MODEL, "challenger", version)
    return int(version)


def tries(lifecycle: Lifecycle, task_id: str) -> tuple[str, int]:
    with sqlite3.connect(lifecycle.workspace.airflow_home / "airflow.db") as db:
        return db.execute(
            "SELECT state, try_number FROM task_instance WHERE dag_id = ? AND task_id = ? "
            "ORDER BY id DESC LIMIT 1",
            (f"promote_{MODEL}", task_id),
        ).fetchone()


def test_a_notebook_sklearn_version_gets_a_verdict_with_its_report(lifecycle: Lifecycle) -> None:
    rows = generate_user_features()
    model = DummyClassifier(strategy="prior").fit(rows[NUMERIC], rows["target"])
    version = register_from_notebook(
        lambda: mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(rows[NUMERIC], model.predict_proba(rows[NUMERIC])),
            pip_requirements=["scikit-learn"],
            skops_trusted_types=skops.io.get_untrusted_types(data=skops.io.dumps(model)),
        )
    )
    lifecycle.run_dag(f"promote_{MODEL}", LATEST)

    tags = registry.get_version(MODEL, version).tags
    assert tags["eval.verdict"] == tags["promotion.verdict"] == "reject"
    assert tags["eval.champion_version"] == "1"
    assert (tags["eval.holdout_start"], tags["eval.holdout_end"]) == (
        "2026-06-16T00:00:00",
        "2026-06-30T00:00:00",
    )
    assert tags["eval.holdout_origin"] == "policy"
    assert "no lineage.holdout_start/end tags" in tags["eval.holdout_reason"]
    report = mlflow.artifacts.download_artifacts(f"runs:/{tags['eval.run_id']}/evaluation")
    html = (Path(report) / "report.html").read_text()
    assert "<h2>Comparison</h2>" in html and "<h2>Guardrails</h2>" in html
    assert "on holdout [2026-06-16T00:00:00, 2026-06-30T00:00:00) (policy)" in html
    assert promote_outcomes(lifecycle.workspace) == {"rejected": "success"}
    assert aliases() == (1, None)
    assert registry.version_state(MODEL, version) is State.REJECTED
    assert (
        mlflow.MlflowClient()
        .get_model_version(MODEL, str(version))
        .description.startswith("**State: rejected**")
    )


def test_a_pyfunc_version_that_fails_to_predict_cannot_be_evaluated_in_one_attempt(
    lifecycle: Lifecycle, tmp_path: Path
) -> None:
    code = tmp_path / "feature_store_model.py"
    code.write_text(RAISING_MODEL)
    rows = generate_user_features(days=1, rows_per_day=5)[NUMERIC]
    version = register_from_notebook(
        lambda: mlflow.pyfunc.log_model(
            name="model",
            python_model=str(code),
            signature=infer_signature(rows, [0.5] * len(rows)),
            pip_requirements=["mlflow"],
        )
    )
    with pytest.raises(DagRunFailed, match="cannot be scored"):
        lifecycle.run_dag(f"promote_{MODEL}", LATEST)

    assert tries(lifecycle, "conclude_evaluation") == ("failed", 1)
    assert tries(lifecycle, "evaluate") == ("success", 1)
    tags = registry.get_version(MODEL, version).tags
    assert tags["promotion.verdict"] == "cannot_evaluate"
    assert "RuntimeError: feature store not reachable" in tags["promotion.reason"]
    assert aliases() == (1, None)
    assert registry.version_state(MODEL, version) is State.REJECTED

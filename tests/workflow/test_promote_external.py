"""promote_<model>'s task bodies on versions registered outside the workflow: logged from a
notebook, without lineage tags, aliased `challenger` by hand."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import mlflow
import mlflow.pyfunc
import mlflow.sklearn
import numpy as np
import pandas as pd
import pytest
import skops.io
from mlflow.models import infer_signature
from sklearn.dummy import DummyClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

import registry
from demo.source_data import generate_user_features, write_source
from policies.loader import load_policy
from promotion.lifecycle import State
from tests.support import write_policy
from workflow import promote
from workflow.promote import encode_classes
from workflow.runs import RunContext
from workflow.scoring import Scored

MODEL = "churn"
RUN = RunContext(dag_id="promote_churn", run_id="manual__1")
NOW = datetime(2026, 3, 15)
NUMERIC = ["sessions_7d", "days_since_signup", "avg_order_value", "support_tickets"]


@pytest.fixture
def rows(tmp_path: Path) -> pd.DataFrame:
    return generate_user_features(days=90, rows_per_day=60)


@pytest.fixture
def policy(tmp_path: Path, rows: pd.DataFrame, mlflow_store: str):
    url = f"sqlite:///{tmp_path / 'source.db'}"
    write_source(url, rows)
    return load_policy(write_policy(tmp_path, MODEL, source__conn_id=None, source__url=url))


class Raises(mlflow.pyfunc.PythonModel):
    """A custom model whose predict fails, as a notebook's half-finished model may."""

    def predict(self, context, model_input: pd.DataFrame, params=None) -> list[float]:
        raise RuntimeError("feature store not reachable")


def log_from_notebook(model, example: pd.DataFrame) -> int:
    """Log and register a model as a notebook would: no lineage tags, a signature from an example."""
    mlflow.set_experiment("notebook")
    with mlflow.start_run():
        if isinstance(model, mlflow.pyfunc.PythonModel):
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=model,
                signature=infer_signature(example, np.zeros(len(example))),
                pip_requirements=["mlflow"],
            )
        else:
            info = mlflow.sklearn.log_model(
                model,
                name="model",
                signature=infer_signature(example, model.predict_proba(example)),
                pip_requirements=["scikit-learn"],
                skops_trusted_types=skops.io.get_untrusted_types(data=skops.io.dumps(model)),
            )
    registry.ensure_registered_model(MODEL)
    return registry.register_version(
        MODEL, info.model_uri, run_id=None, tags={}, description=""
    ).version


def alias_by_hand(alias: str, version: int) -> None:
    mlflow.MlflowClient().set_registered_model_alias(MODEL, alias, str(version))


def notebook_pipeline():
    return make_pipeline(SimpleImputer(), LogisticRegression(max_iter=500))


def fitted(model, rows: pd.DataFrame):
    training = rows[rows["created_at"] < datetime(2026, 3, 1)]
    return model.fit(training[NUMERIC], training["target"])


def test_a_notebook_version_without_lineage_is_evaluated_on_the_policys_latest_holdout(
    policy, rows: pd.DataFrame
) -> None:
    version = log_from_notebook(fitted(notebook_pipeline(), rows), rows[NUMERIC])
    alias_by_hand("challenger", version)
    evaluation = promote.evaluate(policy, promote.find_candidates(policy, None, RUN), RUN, NOW)
    assert evaluation.result.verdict != "cannot_evaluate"
    assert evaluation.holdout == "[2026-03-01T00:00:00, 2026-03-15T00:00:00)"
    assert evaluation.holdout_origin == "policy"
    tags = registry.get_version(MODEL, version).tags
    assert tags["eval.holdout_origin"] == "policy"
    assert "has no lineage.holdout_start/end tags" in tags["eval.holdout_reason"]
    assert tags["eval.run_id"] == evaluation.eval_run_id
    described = mlflow.MlflowClient().get_model_version(MODEL, str(version)).description
    assert "the policy's most recent holdout (14 days to 2026-03-15T00:00:00)" in described
    assert registry.version_state(MODEL, version) is State.CANDIDATE


def test_a_rejected_notebook_version_is_recorded_rejected(policy, rows: pd.DataFrame) -> None:
    champion = log_from_notebook(fitted(notebook_pipeline(), rows), rows[NUMERIC])
    for alias, to, kind in (
        ("challenger", champion, "candidate"),
        ("champion", champion, "promote"),
    ):
        registry.move_alias(MODEL, alias, to, kind=kind, actor="t", reason="setup")
    registry.move_alias(MODEL, "challenger", None, kind="promote", actor="t", reason="setup")
    weak = log_from_notebook(fitted(DummyClassifier(strategy="prior"), rows), rows[NUMERIC])
    alias_by_hand("challenger", weak)  # the ledger last left challenger unset: a drift

    evaluation = promote.evaluate(policy, promote.find_candidates(policy, None, RUN), RUN, NOW)
    with pytest.raises(promote.NotPromoted, match="rejected"):
        promote.conclude_evaluation(policy, evaluation, RUN)
    assert registry.version_state(MODEL, weak) is State.REJECTED
    assert registry.get_alias_version(MODEL, "challenger") is None
    assert registry.get_alias_version(MODEL, "champion") == champion


def test_a_version_whose_predict_fails_cannot_be_evaluated_and_loses_its_alias(
    policy, rows: pd.DataFrame
) -> None:
    version = log_from_notebook(Raises(), rows[NUMERIC])
    alias_by_hand("challenger", version)
    evaluation = promote.evaluate(policy, promote.find_candidates(policy, None, RUN), RUN, NOW)
    with pytest.raises(promote.CannotEvaluate, match="feature store not reachable"):
        promote.conclude_evaluation(policy, evaluation, RUN)
    tags = registry.get_version(MODEL, version).tags
    assert tags["promotion.verdict"] == "cannot_evaluate"
    assert "challenger v1 cannot be scored (binary): RuntimeError" in tags["promotion.reason"]
    described = mlflow.MlflowClient().get_model_version(MODEL, str(version)).description
    assert "feature store not reachable" in described
    assert registry.get_alias_version(MODEL, "challenger") is None
    assert registry.version_state(MODEL, version) is State.REJECTED


def test_multiclass_labels_are_indexed_over_both_models_classes() -> None:
    labels = np.array(["dog", "cat", "eel"])
    challenger = Scored(np.array([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]]), ("dog", "cat"))
    champion = Scored(np.array([[0.6, 0.4], [0.3, 0.7], [0.1, 0.9]]), ("cat", "eel"))
    codes, (mine, theirs), classes = encode_classes(labels, [challenger, champion])
    assert classes == ("dog", "cat", "eel")
    assert codes.tolist() == [0, 1, 2]
    assert mine.tolist() == [[0.9, 0.1, 0.0], [0.2, 0.8, 0.0], [0.5, 0.5, 0.0]]
    assert theirs.tolist() == [[0.0, 0.6, 0.4], [0.0, 0.3, 0.7], [0.0, 0.1, 0.9]]


def test_a_label_no_model_knows_gets_a_column_of_its_own() -> None:
    answers = Scored(np.array([[1.0, 0.0], [0.0, 1.0]]), (0, 1))
    codes, _, classes = encode_classes(np.array([1, 2]), [answers])
    assert classes == ("0", "1", "2") and codes.tolist() == [1, 2]


def test_a_version_needing_a_column_the_holdout_lacks_cannot_be_evaluated(
    policy, rows: pd.DataFrame
) -> None:
    extra = rows.assign(age=30.0)
    columns = [*NUMERIC, "age"]
    model = notebook_pipeline().fit(extra[columns], extra["target"])
    version = log_from_notebook(model, extra[columns])
    alias_by_hand("challenger", version)
    evaluation = promote.evaluate(policy, promote.find_candidates(policy, None, RUN), RUN, NOW)
    assert evaluation.faulty == "challenger"
    with pytest.raises(
        promote.CannotEvaluate, match="input column\\(s\\) missing from the holdout: age"
    ):
        promote.conclude_evaluation(policy, evaluation, RUN)
    assert registry.get_alias_version(MODEL, "challenger") is None

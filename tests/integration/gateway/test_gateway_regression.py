"""A regressor under a real uvicorn: its version tagged `lineage.task=regression` answers each
row's value, the log keeps it, and a numeric label joins it as a squared error."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from gateway.predlog import arm_windows, create_engine, log_tables
from tests.integration.gateway.support import AUTH, row, training_frame, use_store, wait_until

pytestmark = pytest.mark.integration

MODEL = "gw_regressor"


def _log_regressor() -> tuple[str, str, object]:
    """Fit and log a small regression pipeline (skops, signature, input example)."""
    import mlflow
    import skops.io
    from mlflow.models import infer_signature
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    frame, _ = training_frame(400, seed=3)
    target = 2.0 * frame["sessions_7d"] + 0.01 * frame["days_since_signup"]
    pipeline = Pipeline(
        [
            (
                "preprocess",
                ColumnTransformer(
                    [
                        ("numeric", "passthrough", ["sessions_7d", "days_since_signup"]),
                        ("categorical", OneHotEncoder(handle_unknown="ignore"), ["plan"]),
                    ]
                ),
            ),
            ("model", Ridge(alpha=1.0)),
        ]
    ).fit(frame, target)
    experiment = mlflow.set_experiment("gateway-regression")
    with mlflow.start_run(experiment_id=experiment.experiment_id) as run:
        info = mlflow.sklearn.log_model(
            pipeline,
            name="model",
            signature=infer_signature(frame, pipeline.predict(frame)),
            input_example=frame.head(3),
            serialization_format="skops",
            skops_trusted_types=skops.io.get_untrusted_types(data=skops.io.dumps(pipeline)),
        )
    return info.model_uri, run.info.run_id, pipeline


@pytest.fixture(scope="module")
def regressor(store):
    import registry

    use_store(store)
    model_uri, run_id, pipeline = _log_regressor()
    registry.ensure_registered_model(MODEL)
    version = registry.register_version(
        MODEL, model_uri, run_id=run_id, tags={"lineage.task": "regression"}, description=""
    ).version
    registry.move_alias(MODEL, "champion", version, kind="promote", actor="test", reason="setup")
    return version, pipeline


def test_a_regressor_answers_its_values_and_its_labels_join_as_squared_errors(
    regressor, start_gateway, tmp_path
) -> None:
    import pandas as pd

    version, pipeline = regressor
    log_url = f"sqlite:///{tmp_path / 'predictions.db'}"
    gateway = start_gateway("--model", MODEL, "--log-url", log_url, "--log-flush-interval", "0.1")
    payloads = [row(i) for i in range(5)]
    with gateway.client() as client:
        answers = [
            client.post(f"/models/{MODEL}/invocations", json=payload).json() for payload in payloads
        ]
        expected = [
            float(pipeline.predict(pd.DataFrame(p["dataframe_records"]))[0]) for p in payloads
        ]
        assert [a["predictions"][0] for a in answers] == pytest.approx(expected)
        assert {a["version"] for a in answers} == {version}
        stored = client.post(
            f"/models/{MODEL}/feedback",
            json={"labels": [{"request_id": a["request_id"], "label": 1.5} for a in answers]},
            headers=AUTH,
        )
        assert stored.json()["stored"] == 5
        refused = client.post(
            f"/models/{MODEL}/feedback",
            json={"request_id": answers[0]["request_id"], "label": "high", "overwrite": True},
            headers=AUTH,
        )
        assert refused.status_code == 422 and "finite number" in refused.json()["detail"]
    engine = create_engine(log_url)

    def logged() -> int:
        with engine.connect() as connection:
            return connection.execute(sa.text("SELECT count(*) FROM prediction_log")).scalar_one()

    wait_until(lambda: logged() == 5, 30, "the answers are logged")
    (arm,) = arm_windows(engine, log_tables(), MODEL, task="regression")
    assert arm.labeled == 5
    assert arm.outcome_sum == pytest.approx(sum((v - 1.5) ** 2 for v in expected))
    gateway.terminate()

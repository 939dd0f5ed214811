"""Paired evidence under real uvicorn: a canary's requests are scored again by a deliberately slow
champion off the request path; the answers are the canary's alone and stay fast."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from sklearn.preprocessing import FunctionTransformer

from gateway.predlog import CHAMPION_PAIRED, create_engine
from tests.integration.gateway.support import register, row, training_frame, wait_until

pytestmark = pytest.mark.integration

CHAMPION_DELAY_S = 1.0
REQUESTS = 8


def slow_identity(frame, delay_s: float):
    """The frame unchanged, after `delay_s`: a champion that is slow on every call."""
    time.sleep(delay_s)
    return frame


def log_slow_champion(experiment_id: str) -> tuple[str, str]:
    """A logistic pipeline whose every prediction first waits CHAMPION_DELAY_S."""
    import mlflow
    import skops.io
    from mlflow.models import infer_signature
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    frame, labels = training_frame(400, seed=7)
    pipeline = Pipeline(
        [
            ("sleep", FunctionTransformer(slow_identity, kw_args={"delay_s": 0.0})),
            (
                "preprocess",
                ColumnTransformer(
                    [
                        ("numeric", "passthrough", ["sessions_7d", "days_since_signup"]),
                        ("categorical", OneHotEncoder(handle_unknown="ignore"), ["plan"]),
                    ]
                ),
            ),
            ("model", LogisticRegression(max_iter=500)),
        ]
    ).fit(frame, labels)
    pipeline.set_params(sleep__kw_args={"delay_s": CHAMPION_DELAY_S})
    with mlflow.start_run(experiment_id=experiment_id) as run:
        info = mlflow.sklearn.log_model(
            pipeline,
            name="model",
            signature=infer_signature(frame, np.zeros(len(frame))),
            input_example=frame.head(1),
            serialization_format="skops",
            skops_trusted_types=skops.io.get_untrusted_types(data=skops.io.dumps(pipeline)),
        )
    return info.model_uri, run.info.run_id


def test_canary_answers_are_its_own_and_fast_while_a_slow_champion_scores_them_too(
    store, start_gateway
) -> None:
    import mlflow

    import registry

    experiment_id = mlflow.create_experiment(
        "gateway-paired", artifact_location=str(store.root / "paired-artifacts")
    )
    store.models["slow_champion"] = log_slow_champion(experiment_id)
    versions = register(store, "gw_paired", {"champion": "slow_champion", "canary": "logistic"})
    registry.set_version_tags("gw_paired", versions["canary"], {"rollout.canary_share": "1.0"})
    gateway = start_gateway("--model", "gw_paired:1.0", "--refresh-interval", "60")
    canary = mlflow.sklearn.load_model(store.models["logistic"][0])
    payloads = [row(seed) for seed in range(REQUESTS)]
    answers, latencies = [], []
    with gateway.client() as client:
        for payload in payloads:
            started = time.perf_counter()
            response = client.post("/models/gw_paired/invocations", json=payload)
            latencies.append(time.perf_counter() - started)
            answers.append(response.json())
    for payload, answer in zip(payloads, answers, strict=True):
        expected = canary.predict_proba(pd.DataFrame(payload["dataframe_records"]))[:, 1]
        assert answer["role"] == "canary" and answer["version"] == versions["canary"]
        assert answer["predictions"] == pytest.approx(expected.tolist())
    # The champion takes a second per call; no answer waited for it.
    assert max(latencies) < CHAMPION_DELAY_S / 2, latencies
    wait_until(
        lambda: gateway.status("gw_paired")["paired_scored"] == REQUESTS,
        timeout_s=30,
        what="the champion scored every canary request",
    )
    gateway.terminate()  # SIGTERM: every pending log row is written before the exit
    engine = create_engine(f"sqlite:///{gateway.output.parent / 'predictions.db'}")
    with engine.connect() as connection:
        paired = connection.execute(
            sa.text(
                "SELECT request_id, row_index, version FROM prediction_log "
                "WHERE model_name = 'gw_paired' AND role = :role"
            ),
            {"role": CHAMPION_PAIRED},
        ).all()
    engine.dispose()
    assert {(r.request_id, r.row_index) for r in paired} == {(a["request_id"], 0) for a in answers}
    assert {r.version for r in paired} == {versions["champion"]}

"""The compiled scoring path answers exactly what the project's pipelines answer, for every task
and the estimators it compiles, and falls back to the pipeline, saying why, for anything else."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from demo.source_data import generate_user_features
from gateway.compiled import compile_pipeline
from gateway.payload import conform_values, parse_payload, typed_columns, typed_frame
from policies import load_policy
from policies.loader import POLICIES_DIR
from policies.schema import ModelSpec
from registry.serving import InputColumn
from workflow import modeling
from workflow.scoring import predictions

POLICY = load_policy(POLICIES_DIR / "user_churn.yaml")
FEATURES = POLICY.source.features
FRAME = generate_user_features(days=6, rows_per_day=100)
FRAME["spend"] = 2.0 * FRAME["support_tickets"] - 0.3 * FRAME["sessions_7d"].fillna(0)
FRAME["tier"] = np.select(
    [FRAME["support_tickets"] == 0, FRAME["support_tickets"] == 1], ["calm", "some"], "busy"
)
TARGETS = {"binary": "target", "multiclass": "tier", "regression": "spend"}
CASES = {
    "lightgbm-binary": (
        "binary",
        ModelSpec(flavor="lightgbm_classifier", hyperparameters={"n_estimators": 15}),
    ),
    "lightgbm-multiclass": (
        "multiclass",
        ModelSpec(
            task="multiclass", flavor="lightgbm_classifier", hyperparameters={"n_estimators": 15}
        ),
    ),
    "lightgbm-regression": (
        "regression",
        ModelSpec(
            task="regression", flavor="lightgbm_regressor", hyperparameters={"n_estimators": 15}
        ),
    ),
    "logistic-binary": (
        "binary",
        ModelSpec(flavor="sklearn_logistic_regression", hyperparameters={"max_iter": 500}),
    ),
    "logistic-multiclass": (
        "multiclass",
        ModelSpec(
            task="multiclass",
            flavor="sklearn_logistic_regression",
            hyperparameters={"max_iter": 500},
        ),
    ),
    "ridge-regression": (
        "regression",
        ModelSpec(task="regression", estimator="sklearn.linear_model.Ridge"),
    ),
}


def fitted(case: str):
    task, spec = CASES[case]
    pipeline = modeling.build_pipeline(spec, FEATURES)
    return task, pipeline.fit(FRAME[FEATURES.all], FRAME[TARGETS[task]])


@pytest.fixture(scope="module", params=list(CASES))
def compiled_case(request: pytest.FixtureRequest):
    task, pipeline = fitted(request.param)
    probes = FRAME[FEATURES.all].head(3)
    compilation = compile_pipeline(
        pipeline, task, probes, lambda rows: predictions(pipeline, rows, task)
    )
    return task, pipeline, compilation


def test_each_supported_pipeline_compiles_and_answers_as_the_pipeline(compiled_case) -> None:
    task, pipeline, compilation = compiled_case
    assert compilation.compiled is not None, compilation.note
    assert compilation.note.startswith("compiled path")
    rows = FRAME[FEATURES.all].sample(200, random_state=1)
    np.testing.assert_allclose(
        compilation.compiled.predict(rows), predictions(pipeline, rows, task), atol=1e-9, rtol=0
    )


ROW = st.fixed_dictionaries(
    {
        "sessions_7d": st.one_of(st.none(), st.floats(-1e3, 1e3)),
        "days_since_signup": st.one_of(st.none(), st.floats(0, 5000)),
        "avg_order_value": st.one_of(st.none(), st.floats(0, 1e4)),
        "support_tickets": st.one_of(st.none(), st.integers(0, 20).map(float)),
        "plan": st.one_of(st.none(), st.sampled_from(["free", "basic", "pro", "enterprise"])),
        "region": st.one_of(st.none(), st.sampled_from(["eu", "us", "apac", "mars"])),
    }
)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(rows=st.lists(ROW, min_size=1, max_size=8))
def test_any_rows_missing_values_and_unseen_categories_included_score_alike(
    compiled_case, rows: list[dict]
) -> None:
    task, pipeline, compilation = compiled_case
    frame = pd.DataFrame(rows)[FEATURES.all]
    for column in FEATURES.numeric:
        frame[column] = frame[column].astype(float)
    for column in FEATURES.categorical:
        frame[column] = frame[column].astype(object)
    np.testing.assert_allclose(
        compilation.compiled.predict(frame), predictions(pipeline, frame, task), atol=1e-9, rtol=0
    )


SCHEMA = tuple(
    [InputColumn(name, "double", False) for name in FEATURES.numeric]
    + [InputColumn(name, "string", False) for name in FEATURES.categorical]
)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(rows=st.lists(ROW, min_size=1, max_size=8))
def test_a_requests_typed_columns_score_as_its_frame_alone_or_in_a_batch(
    compiled_case, rows: list[dict]
) -> None:
    """What the gateway hands the compiled path (one array per column, no frame) answers as the
    pipeline answers the frame, and a row's answer does not depend on the rows batched with it
    (a lone missing category reads as missing, as it does beside a given one)."""
    task, pipeline, compilation = compiled_case
    values = conform_values(parse_payload({"dataframe_records": rows}, 100), SCHEMA, None)
    batch = compilation.compiled.predict(typed_columns(values, SCHEMA))
    np.testing.assert_allclose(
        batch, predictions(pipeline, typed_frame(values, SCHEMA), task), atol=1e-9, rtol=0
    )
    for index, row in enumerate(rows):
        alone = conform_values(parse_payload({"dataframe_records": [row]}, 1), SCHEMA, None)
        np.testing.assert_allclose(
            compilation.compiled.predict(typed_columns(alone, SCHEMA)),
            batch[index : index + 1],
            atol=1e-9,
            rtol=0,
        )


def test_a_pipeline_step_it_does_not_reproduce_keeps_the_pipeline_and_says_which() -> None:
    from tests.workflow.factories import scaled_logistic

    complete = FRAME.dropna()
    pipeline = scaled_logistic().fit(complete[FEATURES.all], complete["target"])
    compilation = compile_pipeline(
        pipeline, "binary", complete.head(2), lambda rows: predictions(pipeline, rows, "binary")
    )
    assert compilation.compiled is None
    assert compilation.note == "pipeline path: transformer 'numeric' is a StandardScaler"


def test_a_compiled_path_that_answers_differently_is_not_used() -> None:
    task, pipeline = fitted("logistic-binary")
    probes = FRAME[FEATURES.all].head(3)

    def shifted(rows: pd.DataFrame) -> np.ndarray:
        return predictions(pipeline, rows, task) + 1e-6

    compilation = compile_pipeline(pipeline, task, probes, shifted)
    assert compilation.compiled is None
    assert "differs from the pipeline on the probe rows" in compilation.note


def test_an_estimator_without_a_compiled_path_is_named() -> None:
    spec = ModelSpec(flavor="sklearn_random_forest", hyperparameters={"n_estimators": 5})
    pipeline = modeling.build_pipeline(spec, FEATURES).fit(FRAME[FEATURES.all], FRAME["target"])
    compilation = compile_pipeline(
        pipeline, "binary", FRAME.head(2), lambda rows: predictions(pipeline, rows, "binary")
    )
    assert (
        compilation.note
        == "pipeline path: the estimator RandomForestClassifier has no compiled path"
    )


def test_the_compiled_lightgbm_path_asks_the_booster_for_one_thread() -> None:
    # The gateway runs a process per core. Without OMP_NUM_THREADS a booster scores on every
    # core besides (its default), and on a busy machine a four-row call then cost 250 µs of CPU
    # instead of 25: the gateway's processes would spin against each other.
    task, pipeline = fitted("lightgbm-binary")
    probes = FRAME[FEATURES.all].head(3)
    compiled = compile_pipeline(
        pipeline, task, probes, lambda rows: predictions(pipeline, rows, task)
    ).compiled
    assert compiled.estimator.keywords == {"num_threads": 1}
    assert compiled.estimator.func.__self__ is pipeline[-1].booster_

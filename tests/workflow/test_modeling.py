from __future__ import annotations

from pathlib import Path

import mlflow.sklearn
import numpy as np
import pytest
from sklearn.pipeline import Pipeline

from demo.source_data import generate_user_features
from policies import load_policy
from policies.loader import POLICIES_DIR
from policies.schema import FeatureColumns, ModelSpec
from workflow import modeling

POLICY = load_policy(POLICIES_DIR / "user_churn.yaml")
FRAME = generate_user_features(days=10, rows_per_day=100)


@pytest.mark.parametrize(
    "spec",
    [
        ModelSpec(flavor="lightgbm_classifier", hyperparameters={"n_estimators": 20}),
        ModelSpec(
            flavor="sklearn_random_forest", hyperparameters={"n_estimators": 20, "max_depth": 4}
        ),
    ],
    ids=["lightgbm", "random_forest"],
)
def test_pipeline_saved_with_skops_loads_back_with_same_predictions(
    spec: ModelSpec, tmp_path: Path
) -> None:
    features = POLICY.source.features
    pipeline = modeling.build_pipeline(spec, features)
    pipeline.fit(FRAME[features.all], FRAME["target"])
    path = tmp_path / "model"
    mlflow.sklearn.save_model(
        pipeline,
        str(path),
        serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS,
        skops_trusted_types=modeling.untrusted_types(pipeline),
    )
    loaded = mlflow.sklearn.load_model(str(path))
    rows = FRAME[features.all].head(50)
    np.testing.assert_allclose(
        modeling.positive_probabilities(loaded, rows),
        modeling.positive_probabilities(pipeline, rows),
    )


def test_types_outside_trusted_modules_are_refused() -> None:
    import operator

    from sklearn.preprocessing import FunctionTransformer

    pipeline = Pipeline([("custom", FunctionTransformer(operator.neg))])
    pipeline.fit(np.ones((3, 1)))
    with pytest.raises(TypeError, match="outside the trusted modules"):
        modeling.untrusted_types(pipeline)


@pytest.mark.parametrize(
    ("metric", "expected"),
    [("accuracy", 0.75), ("precision", 1.0), ("recall", 0.5), ("f1", 2 / 3), ("roc_auc", 1.0)],
)
def test_scores_use_probabilities_and_a_half_threshold(metric: str, expected: float) -> None:
    labels = np.array([0, 0, 1, 1])
    probabilities = np.array([0.1, 0.2, 0.4, 0.9])
    assert modeling.score(metric, labels, probabilities) == pytest.approx(expected)


@pytest.mark.parametrize("flavor", ["lightgbm_classifier", "sklearn_random_forest"])
def test_a_misspelt_hyperparameter_is_named_with_the_likely_one(flavor: str) -> None:
    spec = ModelSpec(flavor=flavor, hyperparameters={"n_estimator": 10})
    with pytest.raises(
        modeling.ModelSpecError,
        match=rf"model.hyperparameters: not a parameter of {flavor}: 'n_estimator' "
        r"\(did you mean 'n_estimators'\?\)",
    ):
        modeling.build_pipeline(spec, FeatureColumns(numeric=["a"]))


def test_lightgbm_native_parameters_and_aliases_are_accepted() -> None:
    spec = ModelSpec(
        flavor="lightgbm_classifier",
        hyperparameters={"min_data_in_leaf": 5, "feature_fraction": 0.8, "lambda_l1": 0.1},
    )
    modeling.build_pipeline(spec, FeatureColumns(numeric=["a"]))

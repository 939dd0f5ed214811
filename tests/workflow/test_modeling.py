from __future__ import annotations

from pathlib import Path

import mlflow.sklearn
import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline

from demo.source_data import generate_user_features
from policies import load_policy
from policies.loader import POLICIES_DIR
from policies.schema import FeatureColumns, ModelSpec
from workflow import modeling

POLICY = load_policy(POLICIES_DIR / "user_churn.yaml")
FEATURES = POLICY.source.features
FRAME = generate_user_features(days=10, rows_per_day=100)
# A regression and a multiclass target (text classes) of the same rows.
FRAME["spend"] = 2.0 * FRAME["support_tickets"] - 0.3 * FRAME["sessions_7d"].fillna(0)
FRAME["tier"] = np.select(
    [FRAME["support_tickets"] == 0, FRAME["support_tickets"] == 1], ["calm", "some"], "busy"
)


def _save_and_load(pipeline: Pipeline, path: Path, trusted: list[str] | None = None) -> Pipeline:
    mlflow.sklearn.save_model(
        pipeline,
        str(path),
        serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS,
        skops_trusted_types=modeling.untrusted_types(pipeline, trusted or []),
        pip_requirements=modeling.pip_requirements(pipeline),
    )
    return mlflow.sklearn.load_model(str(path))


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
    pipeline = modeling.build_pipeline(spec, FEATURES)
    pipeline.fit(FRAME[FEATURES.all], FRAME["target"])
    loaded = _save_and_load(pipeline, tmp_path / "model")
    rows = FRAME[FEATURES.all].head(50)
    np.testing.assert_allclose(
        modeling.positive_probabilities(loaded, rows),
        modeling.positive_probabilities(pipeline, rows),
    )


@pytest.mark.parametrize(
    ("spec", "target", "metric", "shape"),
    [
        (ModelSpec(task="binary", flavor="lightgbm_classifier"), "target", "roc_auc", (200,)),
        (
            ModelSpec(task="binary", estimator="sklearn.linear_model.LogisticRegression"),
            "target",
            "log_loss",
            (200,),
        ),
        (ModelSpec(task="multiclass", flavor="lightgbm_classifier"), "tier", "macro_f1", (200, 3)),
        (
            ModelSpec(task="multiclass", flavor="sklearn_random_forest"),
            "tier",
            "log_loss",
            (200, 3),
        ),
        (ModelSpec(task="regression", flavor="lightgbm_regressor"), "spend", "rmse", (200,)),
        (
            ModelSpec(task="regression", estimator="sklearn.linear_model.Ridge"),
            "spend",
            "r2",
            (200,),
        ),
        (
            ModelSpec(task="regression", factory="tests.workflow.factories:ridge"),
            "spend",
            "mae",
            (200,),
        ),
    ],
    ids=[
        "binary-lightgbm",
        "binary-logistic",
        "multiclass-lightgbm",
        "multiclass-forest",
        "regression-lightgbm",
        "regression-ridge",
        "regression-factory-estimator",
    ],
)
def test_each_task_trains_and_scores_better_than_chance(
    spec: ModelSpec, target: str, metric: str, shape: tuple[int, ...], tmp_path: Path
) -> None:
    fit, check = FRAME.iloc[:800], FRAME.iloc[800:]
    pipeline = modeling.build_pipeline(spec, FEATURES, seed=3)
    pipeline.fit(fit[FEATURES.all], fit[target])
    loaded = _save_and_load(pipeline, tmp_path / "model")
    answers = modeling.predictions(loaded, check[FEATURES.all], spec.task)
    assert answers.shape == shape
    value = modeling.validation_score(loaded, check[FEATURES.all], check[target], metric, spec.task)
    truth = check[target]
    baseline = {
        "roc_auc": lambda: 0.5,
        "log_loss": lambda: np.log(3 if spec.task == "multiclass" else 2),
        "macro_f1": lambda: 1 / 3,
        "rmse": lambda: float(truth.std()),
        "mae": lambda: float((truth - truth.median()).abs().mean()),
        "r2": lambda: 0.0,
    }[metric]()
    better = value < baseline if metric in {"log_loss", "rmse", "mae"} else value > baseline
    assert better, f"{metric} {value} vs chance {baseline}"


def test_multiclass_text_classes_keep_their_names_in_probability_order() -> None:
    spec = ModelSpec(
        task="multiclass", flavor="lightgbm_classifier", hyperparameters={"n_estimators": 10}
    )
    pipeline = modeling.build_pipeline(spec, FEATURES).fit(FRAME[FEATURES.all], FRAME["tier"])
    assert modeling.class_labels(pipeline) == ["busy", "calm", "some"]
    indices = modeling.label_indices(pipeline, pd.Series(["some", "busy", "never-seen"]))
    assert indices.tolist() == [2, 0, -1]


def test_a_factory_pipeline_is_used_as_it_is() -> None:
    spec = ModelSpec(factory="tests.workflow.factories:scaled_logistic")
    pipeline = modeling.build_pipeline(spec, FEATURES)
    assert list(pipeline.named_steps) == ["preprocess", "model"]
    assert type(pipeline.named_steps["preprocess"].transformers[0][1]).__name__ == "StandardScaler"
    assert pipeline.get_params()["model__random_state"] == 0


@pytest.mark.parametrize(
    "codes",
    [
        pd.Series([1.0, 2.0, np.nan, 3.0] * 100),
        pd.Series([1, 2, 2, 3] * 100),
        pd.Series(["a", None, "b", "c"] * 100, dtype=object),
        pd.Series(["a", np.nan, "b", "c"] * 100),
        pd.Series([True, None, False, True] * 100, dtype=object),
    ],
    ids=["float-codes-nan", "int-codes", "text-none", "text-nan", "bool-none"],
)
def test_categorical_features_of_any_storage_type_train_and_serve(
    codes: pd.Series, tmp_path: Path
) -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=len(codes)), "code": codes})
    labels = (
        frame["code"].astype(str).isin(["2.0", "2", "b", "False"]) ^ (rng.random(len(codes)) < 0.1)
    ).astype(int)
    features = FeatureColumns(numeric=["x"], categorical=["code"])
    spec = ModelSpec(
        flavor="lightgbm_classifier", hyperparameters={"n_estimators": 20, "min_child_samples": 5}
    )
    pipeline = modeling.build_pipeline(spec, features).fit(frame, labels)
    loaded = _save_and_load(pipeline, tmp_path / "model")
    np.testing.assert_allclose(
        modeling.predictions(loaded, frame.head(8), "binary"),
        modeling.predictions(pipeline, frame.head(8), "binary"),
    )
    assert (
        modeling.score("roc_auc", labels.to_numpy(), modeling.predictions(loaded, frame, "binary"))
        > 0.8
    )


def test_the_same_seed_trains_the_same_model() -> None:
    spec = ModelSpec(flavor="sklearn_random_forest", hyperparameters={"n_estimators": 10})
    rows = FRAME[FEATURES.all]
    first, second, other = (
        modeling.build_pipeline(spec, FEATURES, seed=seed).fit(rows, FRAME["target"])
        for seed in (5, 5, 6)
    )
    same = modeling.predictions(first, rows, "binary")
    np.testing.assert_array_equal(same, modeling.predictions(second, rows, "binary"))
    assert not np.array_equal(same, modeling.predictions(other, rows, "binary"))


def test_parameters_used_add_the_seed_and_quiet_lightgbm() -> None:
    spec = ModelSpec(flavor="lightgbm_classifier", hyperparameters={"num_leaves": 7}, seed=11)
    assert modeling.parameters_used(spec) == {"num_leaves": 7, "random_state": 11, "verbose": -1}
    forest = ModelSpec(flavor="sklearn_random_forest")
    assert modeling.parameters_used(forest, seed=2) == {"random_state": 2, "n_jobs": 1}


def test_a_saved_model_pins_the_packages_its_types_come_from() -> None:
    spec = ModelSpec(flavor="lightgbm_classifier", hyperparameters={"n_estimators": 5})
    pipeline = modeling.build_pipeline(spec, FEATURES).fit(FRAME[FEATURES.all], FRAME["target"])
    requirements = modeling.pip_requirements(pipeline)
    import lightgbm
    import sklearn

    assert f"scikit-learn=={sklearn.__version__}" in requirements
    assert f"lightgbm=={lightgbm.__version__}" in requirements
    assert any(r.startswith("skops==") for r in requirements)


def test_types_outside_trusted_modules_are_refused() -> None:
    import operator

    from sklearn.preprocessing import FunctionTransformer

    pipeline = Pipeline([("custom", FunctionTransformer(operator.neg))])
    pipeline.fit(np.ones((3, 1)))
    with pytest.raises(TypeError, match="outside the trusted modules.*model.trusted_types"):
        modeling.untrusted_types(pipeline)


def test_types_the_policy_trusts_are_saved_and_load_back(tmp_path: Path) -> None:
    spec = ModelSpec(factory="tests.workflow.factories:clipped_logistic")
    pipeline = modeling.build_pipeline(spec, FEATURES)
    pipeline.fit(FRAME[FEATURES.numeric].fillna(0), FRAME["target"])
    with pytest.raises(TypeError, match="tests.workflow.factories.Clip"):
        modeling.untrusted_types(pipeline)
    loaded = _save_and_load(pipeline, tmp_path / "model", ["tests.workflow.factories.Clip"])
    rows = FRAME[FEATURES.numeric].fillna(0).head(20)
    np.testing.assert_allclose(loaded.predict_proba(rows), pipeline.predict_proba(rows))


@pytest.mark.parametrize(
    ("metric", "expected"),
    [("accuracy", 0.75), ("precision", 1.0), ("recall", 0.5), ("f1", 2 / 3), ("roc_auc", 1.0)],
)
def test_scores_use_probabilities_and_a_half_threshold(metric: str, expected: float) -> None:
    labels = np.array([0, 0, 1, 1])
    probabilities = np.array([0.1, 0.2, 0.4, 0.9])
    assert modeling.score(metric, labels, probabilities) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("metric", "expected"),
    [
        ("accuracy", 2 / 3),
        ("macro_f1", (1 + 2 / 3 + 0) / 3),
        ("log_loss", -(np.log(0.7) + np.log(0.6) + np.log(1e-15)) / 3),
    ],
)
def test_multiclass_scores_count_an_unseen_class_as_wrong(metric: str, expected: float) -> None:
    labels = np.array([0, 1, -1])
    probabilities = np.array([[0.7, 0.2, 0.1], [0.3, 0.6, 0.1], [0.1, 0.8, 0.1]])
    assert modeling.score(metric, labels, probabilities) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("metric", "expected"), [("rmse", np.sqrt(5 / 3)), ("mae", 1.0), ("r2", 1 - 5 / 8)]
)
def test_regression_scores_compare_values(metric: str, expected: float) -> None:
    assert modeling.score(metric, np.array([1.0, 3.0, 5.0]), np.array([2.0, 3.0, 3.0])) == (
        pytest.approx(expected)
    )


@pytest.mark.parametrize("flavor", ["lightgbm_classifier", "sklearn_random_forest"])
def test_a_misspelt_hyperparameter_is_named_with_the_likely_one(flavor: str) -> None:
    spec = ModelSpec(flavor=flavor, hyperparameters={"n_estimator": 10})
    with pytest.raises(
        modeling.ModelSpecError,
        match=r"model.hyperparameters.n_estimator: not a parameter of \S+ "
        r"\(did you mean 'n_estimators'\?\)",
    ):
        modeling.build_pipeline(spec, FeatureColumns(numeric=["a"]))


def test_lightgbm_native_parameters_and_aliases_are_accepted() -> None:
    spec = ModelSpec(
        flavor="lightgbm_classifier",
        hyperparameters={"min_data_in_leaf": 5, "feature_fraction": 0.8, "lambda_l1": 0.1},
    )
    modeling.build_pipeline(spec, FeatureColumns(numeric=["a"]))

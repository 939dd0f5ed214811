"""The estimator check a training runs first: every bad model or tuning field named."""

from __future__ import annotations

from pathlib import Path

import pytest

from policies import PolicyError, load_policy
from policies.schema import FeatureColumns, ModelSpec, Tuning
from tests.support import write_policy
from workflow import estimators

FEATURES = FeatureColumns(numeric=["a", "b"], categorical=["c"])


def problems(features: FeatureColumns = FEATURES, tuning: dict | None = None, **model) -> list[str]:
    spec = ModelSpec(**model)
    space = None if tuning is None else Tuning(search_space=tuning)
    return estimators.spec_problems(spec, features, space)


@pytest.mark.parametrize(
    ("flavor", "path"),
    [
        ("lightgbm_classifier", "lightgbm.LGBMClassifier"),
        ("sklearn_random_forest", "sklearn.ensemble.RandomForestClassifier"),
    ],
)
def test_a_misspelt_hyperparameter_is_named_with_the_likely_one(flavor: str, path: str) -> None:
    assert problems(flavor=flavor, hyperparameters={"n_estimator": 10}) == [
        f"model.hyperparameters.n_estimator: not a parameter of {path} "
        "(did you mean 'n_estimators'?)"
    ]


def test_a_value_lightgbm_refuses_is_found_by_fitting_a_small_sample() -> None:
    assert problems(flavor="lightgbm_classifier", hyperparameters={"num_leaves": -3}) == [
        "model.hyperparameters.num_leaves: -3 refused: LightGBMError: Check failed: "
        "(num_leaves) > (1)"
    ]


def test_a_wrong_type_for_lightgbm_is_named() -> None:
    [problem] = problems(
        flavor="lightgbm_regressor", task="regression", hyperparameters={"learning_rate": "fast"}
    )
    assert problem.startswith("model.hyperparameters.learning_rate: 'fast' refused: LightGBMError")


def test_scikit_learn_constraints_name_each_bad_value() -> None:
    found = problems(
        flavor="sklearn_random_forest",
        hyperparameters={"n_estimators": -1, "max_depth": "deep", "min_samples_leaf": 2},
    )
    assert found == [
        "model.hyperparameters.n_estimators: must be an int in the range [1, inf). Got -1 instead.",
        "model.hyperparameters.max_depth: must be an int in the range [1, inf) or None. "
        "Got 'deep' instead.",
    ]


def test_sound_hyperparameters_pass() -> None:
    assert (
        problems(flavor="lightgbm_classifier", hyperparameters={"num_leaves": 7, "lambda_l1": 0.1})
        == []
    )
    assert (
        problems(
            estimator="sklearn.linear_model.LogisticRegression",
            task="multiclass",
            hyperparameters={"C": 0.5},
        )
        == []
    )


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        (
            {"estimator": "nopackage.Model"},
            "model.estimator: cannot import 'nopackage.Model': No module named 'nopackage'",
        ),
        (
            {"estimator": "sklearn.linear_model.LogisticRegresion"},
            "model.estimator: cannot import 'sklearn.linear_model.LogisticRegresion': module 'sklearn.linear_model' has no 'LogisticRegresion'",
        ),
        (
            {"estimator": "sklearn.base.clone"},
            "model.estimator: 'sklearn.base.clone' is not a class",
        ),
        (
            {"estimator": "collections.OrderedDict"},
            "model.estimator: collections.OrderedDict is not a scikit-learn estimator (it needs get_params and fit)",
        ),
        (
            {"estimator": "sklearn.linear_model.Ridge"},
            "model.estimator: sklearn.linear_model.Ridge gives no class probabilities (predict_proba); a binary task needs them",
        ),
        (
            {"estimator": "lightgbm.LGBMClassifier", "task": "regression"},
            "model.estimator: lightgbm.LGBMClassifier is a classifier; a regression task needs a regressor",
        ),
        (
            {"factory": "tests.workflow.factories:NOT_CALLABLE"},
            "model.factory: 'tests.workflow.factories:NOT_CALLABLE' is not callable",
        ),
        (
            {"factory": "tests.workflow.factories:fitted"},
            "model.factory: tests.workflow.factories:fitted returned a fitted estimator; return an unfitted one",
        ),
        (
            {"factory": "tests.workflow.factories:missing"},
            "model.factory: cannot import 'tests.workflow.factories:missing': module 'tests.workflow.factories' has no 'missing'",
        ),
    ],
    ids=[
        "no-module",
        "no-class",
        "not-a-class",
        "not-an-estimator",
        "no-probabilities",
        "classifier-for-regression",
        "factory-not-callable",
        "factory-fitted",
        "factory-missing",
    ],
)
def test_an_estimator_that_cannot_serve_the_task_is_named(model: dict, expected: str) -> None:
    assert problems(**model) == [expected]


def test_a_factory_pipeline_takes_its_steps_parameters() -> None:
    factory = "tests.workflow.factories:scaled_logistic"
    assert problems(factory=factory, hyperparameters={"model__C": 0.3}) == []
    assert problems(factory=factory, hyperparameters={"model__C": -1.0}) == [
        "model.hyperparameters.model__C: must be a float in the range (0.0, inf]. Got -1.0 instead."
    ]
    [typo] = problems(factory=factory, hyperparameters={"model_C": 1.0})
    assert typo.startswith(
        "model.hyperparameters.model_C: not a parameter of tests.workflow.factories:scaled_logistic (did you mean 'model__C'?)"
    )


def test_search_space_names_and_bounds_are_checked_like_hyperparameters() -> None:
    found = problems(
        flavor="lightgbm_classifier",
        tuning={"num_leavs": {"type": "int", "low": 4, "high": 31}},
    )
    assert found == [
        "tuning.search_space.num_leavs: not a parameter of lightgbm.LGBMClassifier "
        "(did you mean 'num_leaves'?)"
    ]
    found = problems(
        flavor="lightgbm_classifier",
        tuning={"learning_rate": {"type": "float", "low": -0.1, "high": 0.3}},
    )
    assert found == [
        "tuning.search_space.learning_rate: -0.1 refused: LightGBMError: Check failed: "
        "(learning_rate) > (0.0)"
    ]
    found = problems(
        flavor="sklearn_random_forest",
        tuning={"criterion": {"type": "categorical", "choices": ["gini", "entropy", "bogus"]}},
    )
    assert [p.split(":")[0] for p in found] == ["tuning.search_space.criterion"]
    assert "Got 'bogus' instead." in found[0]


def test_check_policy_raises_a_policy_error_naming_the_file_and_field(tmp_path: Path) -> None:
    path = write_policy(
        tmp_path, "churn", model__hyperparameters={"n_estimator": 10, "num_leaves": -3}
    )
    with pytest.raises(PolicyError) as raised:
        estimators.check_policy(load_policy(path), path)
    assert str(raised.value).splitlines() == [
        f"{path}: model.hyperparameters.n_estimator: not a parameter of lightgbm.LGBMClassifier "
        "(did you mean 'n_estimators'?)",
        f"{path}: model.hyperparameters.num_leaves: -3 refused: LightGBMError: Check failed: "
        "(num_leaves) > (1)",
    ]

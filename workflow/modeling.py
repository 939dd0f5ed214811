"""The model pipeline (preprocessing inside, so serving applies the same transform) and its metrics."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from policies.schema import FeatureColumns, ModelSpec
from workflow import estimators
from workflow.estimators import ModelSpecError  # noqa: F401  (re-exported for the DAG files)
from workflow.scoring import class_labels, predictions

# Modules whose types a saved pipeline may contain without the policy trusting them
# (model.trusted_types adds more); anything else is refused when saving, so a registered model
# never needs an unreviewed type trusted to load it back.
TRUSTED_MODULE_PREFIXES = ("sklearn.", "lightgbm.", "numpy.", "builtins.", "collections.")


def build_pipeline(
    spec: ModelSpec,
    features: FeatureColumns,
    seed: int | None = None,
    hyperparameters: Mapping[str, Any] | None = None,
) -> Pipeline:
    """The model pipeline of a policy: median imputation of numeric features and one-hot
    encoding of categorical ones, then the policy's estimator with `hyperparameters` (default:
    the policy's; tuning passes its trial's) and `seed` (default: model.seed).

    A factory that returns a whole Pipeline is used as it is: it preprocesses the raw feature
    columns itself. A factory that returns an estimator gets the preprocessing in front of it.
    The one-hot encoder takes categories of any storage type (numeric codes, text, booleans) and
    keeps a missing value as a category of its own, so training and serving encode alike.
    """
    estimator, _ = estimators.make_estimator(spec, hyperparameters, seed)
    if estimators.is_full_pipeline(estimator):
        return estimator
    transformers = []
    if features.numeric:
        transformers.append(("numeric", SimpleImputer(strategy="median"), features.numeric))
    if features.categorical:
        encode = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
        transformers.append(("categorical", encode, features.categorical))
    preprocess = ColumnTransformer(transformers, verbose_feature_names_out=False)
    return Pipeline([("preprocess", preprocess), ("model", estimator)])


def parameters_used(
    spec: ModelSpec, seed: int | None = None, hyperparameters: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The hyperparameters `build_pipeline` gives the estimator (the lineage of a version)."""
    _, params = estimators.make_estimator(spec, hyperparameters, seed)
    return params


def score(metric: str, labels: np.ndarray, predictions: np.ndarray) -> float:
    """The policy metric of a model's predictions (shaped per task as `predictions` gives them).

    Binary: 0/1 labels and positive-class probabilities (label metrics at a 0.5 threshold).
    Multiclass: labels are indices into the probability columns; a label the model never saw
    (index -1) counts as wrong and gets no probability. Regression: values against values.
    """
    labels = np.asarray(labels)
    predictions = np.asarray(predictions, dtype=np.float64)
    if metric == "rmse":
        return float(np.sqrt(skm.mean_squared_error(labels, predictions)))
    if metric == "mae":
        return float(skm.mean_absolute_error(labels, predictions))
    if metric == "r2":
        return float(skm.r2_score(labels, predictions))
    if predictions.ndim == 2:
        return _multiclass_score(metric, labels.astype(int), predictions)
    predicted = (predictions >= 0.5).astype(int)
    if metric == "roc_auc":
        return float(skm.roc_auc_score(labels, predictions))
    if metric == "log_loss":
        return float(skm.log_loss(labels, predictions, labels=[0, 1]))
    if metric == "accuracy":
        return float(skm.accuracy_score(labels, predicted))
    if metric == "f1":
        return float(skm.f1_score(labels, predicted, zero_division=0))
    if metric == "precision":
        return float(skm.precision_score(labels, predicted, zero_division=0))
    if metric == "recall":
        return float(skm.recall_score(labels, predicted, zero_division=0))
    raise ValueError(f"unknown metric {metric!r}")


def _multiclass_score(metric: str, labels: np.ndarray, probabilities: np.ndarray) -> float:
    predicted = probabilities.argmax(axis=1)
    if metric == "accuracy":
        return float(np.mean(predicted == labels))
    if metric == "macro_f1":
        classes = list(range(probabilities.shape[1]))
        return float(
            skm.f1_score(labels, predicted, labels=classes, average="macro", zero_division=0)
        )
    if metric == "log_loss":
        known = labels >= 0
        chosen = np.where(known, probabilities[np.arange(len(labels)), labels.clip(0)], 0.0)
        return float(-np.mean(np.log(np.clip(chosen, 1e-15, 1.0))))
    raise ValueError(f"{metric!r} does not measure a multiclass model")


def label_indices(model: Any, labels: pd.Series | np.ndarray) -> np.ndarray:
    """Multiclass labels as indices into the model's probability columns (-1: an unseen class)."""
    position = {label: index for index, label in enumerate(class_labels(model))}
    return np.array([position.get(label, -1) for label in np.asarray(labels).tolist()])


def metric_labels(model: Any, labels: pd.Series | np.ndarray, task: str) -> np.ndarray:
    """Labels in the form `score` compares with the model's predictions of that task."""
    if task == "multiclass":
        return label_indices(model, labels)
    return np.asarray(labels)


def validation_score(model: Any, frame: pd.DataFrame, labels: pd.Series, metric: str, task: str):
    """The policy metric of a fitted model on rows it was not fitted on."""
    return score(metric, metric_labels(model, labels, task), predictions(model, frame, task))


def positive_probabilities(model: Pipeline, frame: pd.DataFrame) -> np.ndarray:
    """The model's probability of the positive class for each row."""
    return predictions(model, frame, "binary")


def untrusted_types(pipeline: Pipeline, trusted: Sequence[str] = ()) -> list[str]:
    """Types the skops format would refuse to load without being trusted, checked against the
    allow-list and the policy's `model.trusted_types` (a type's full name, or a module whose
    types are all trusted); raises for a type outside both."""
    import skops.io

    found = skops.io.get_untrusted_types(data=skops.io.dumps(pipeline))
    refused = [
        name
        for name in found
        if not name.startswith(TRUSTED_MODULE_PREFIXES)
        and not any(name == entry or name.startswith(f"{entry}.") for entry in trusted)
    ]
    if refused:
        raise TypeError(
            f"pipeline contains types outside the trusted modules: {', '.join(refused)}; "
            "list them in the policy's model.trusted_types to trust them"
        )
    return sorted(found)


def pip_requirements(pipeline: Any) -> list[str]:
    """The pinned packages a saved pipeline needs: scikit-learn and skops, plus the installed
    distribution of every other top-level module its types come from (LightGBM, a factory's
    package). Given to MLflow explicitly: inferring them loads the model in a subprocess, which
    takes longer than the training itself."""
    import importlib.metadata

    import mlflow.sklearn
    import skops.io

    requirements = mlflow.sklearn.get_default_pip_requirements(include_skops=True)
    types = skops.io.get_untrusted_types(data=skops.io.dumps(pipeline))
    modules = {name.split(".")[0] for name in types} - {"sklearn", "numpy", "builtins"}
    distributions = importlib.metadata.packages_distributions()
    for module in sorted(modules):
        for distribution in distributions.get(module, []):
            requirements.append(f"{distribution}=={importlib.metadata.version(distribution)}")
    return requirements

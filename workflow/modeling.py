"""The model pipeline (preprocessing inside, so serving applies the same transform) and its metrics."""

from __future__ import annotations

import difflib

import numpy as np
import pandas as pd
from sklearn import metrics as skm
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from policies.schema import FeatureColumns, ModelSpec
from workflow.scoring import class_labels, predictions  # noqa: F401  (re-exported)

# Modules whose types a saved pipeline may contain; anything else is refused when saving, so a
# registered model never needs an unreviewed type trusted to load it back.
TRUSTED_MODULE_PREFIXES = ("sklearn.", "lightgbm.", "numpy.", "builtins.", "collections.")


class ModelSpecError(ValueError):
    """The policy's `model` section names a hyperparameter its estimator does not have."""


def build_pipeline(spec: ModelSpec, features: FeatureColumns, seed: int = 0) -> Pipeline:
    """A scikit-learn Pipeline: imputation and one-hot encoding, then the policy's estimator."""
    transformers = []
    if features.numeric:
        transformers.append(("numeric", SimpleImputer(strategy="median"), features.numeric))
    if features.categorical:
        categorical = Pipeline(
            [
                ("impute", SimpleImputer(strategy="constant", fill_value="missing")),
                ("encode", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
            ]
        )
        transformers.append(("categorical", categorical, features.categorical))
    preprocess = ColumnTransformer(transformers, verbose_feature_names_out=False)
    return Pipeline([("preprocess", preprocess), ("model", _estimator(spec, seed))])


def _parameter_names(flavor: str) -> set[str]:
    """Every hyperparameter name the flavor's estimator takes. LightGBM also takes its native
    parameters and their aliases as keywords, and only warns at fit about one it does not know,
    so a misspelt one would otherwise train with the default in silence."""
    if flavor == "lightgbm_classifier":
        from lightgbm import LGBMClassifier
        from lightgbm.basic import _ConfigAliases

        native = _ConfigAliases._get_all_param_aliases()
        return (
            set(LGBMClassifier().get_params())
            | set(native)
            | {alias for aliases in native.values() for alias in aliases}
        )
    from sklearn.ensemble import RandomForestClassifier

    return set(RandomForestClassifier().get_params())


def _estimator(spec: ModelSpec, seed: int):
    params = dict(spec.hyperparameters)
    known = _parameter_names(spec.flavor)
    unknown = [name for name in params if name not in known]
    if unknown:
        hints = [
            f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
            for name in unknown
            for close in [difflib.get_close_matches(name, known, n=1)]
        ]
        raise ModelSpecError(
            f"model.hyperparameters: not a parameter of {spec.flavor}: {', '.join(hints)}"
        )
    if spec.flavor == "lightgbm_classifier":
        from lightgbm import LGBMClassifier

        params.setdefault("verbose", -1)
        params.setdefault("random_state", seed)
        return LGBMClassifier(**params)
    from sklearn.ensemble import RandomForestClassifier

    params.setdefault("random_state", seed)
    params.setdefault("n_jobs", 1)
    return RandomForestClassifier(**params)


def score(metric: str, labels: np.ndarray, probabilities: np.ndarray) -> float:
    """The policy metric of positive-class probabilities against 0/1 labels (threshold 0.5)."""
    predicted = (probabilities >= 0.5).astype(int)
    if metric == "roc_auc":
        return float(skm.roc_auc_score(labels, probabilities))
    if metric == "log_loss":
        return float(skm.log_loss(labels, probabilities, labels=[0, 1]))
    if metric == "accuracy":
        return float(skm.accuracy_score(labels, predicted))
    if metric == "f1":
        return float(skm.f1_score(labels, predicted, zero_division=0))
    if metric == "precision":
        return float(skm.precision_score(labels, predicted, zero_division=0))
    if metric == "recall":
        return float(skm.recall_score(labels, predicted, zero_division=0))
    raise ValueError(f"unknown metric {metric!r}")


def positive_probabilities(model: Pipeline, frame: pd.DataFrame) -> np.ndarray:
    """The model's probability of the positive class for each row."""
    return predictions(model, frame, "binary")


def untrusted_types(pipeline: Pipeline) -> list[str]:
    """Types the skops format would refuse to load without being trusted, checked against the
    allow-list; raises for a type outside it."""
    import skops.io

    found = skops.io.get_untrusted_types(data=skops.io.dumps(pipeline))
    refused = [name for name in found if not name.startswith(TRUSTED_MODULE_PREFIXES)]
    if refused:
        raise TypeError(
            f"pipeline contains types outside the trusted modules: {', '.join(refused)}"
        )
    return sorted(found)

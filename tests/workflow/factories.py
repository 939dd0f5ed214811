"""Pipeline factories a policy's `model.factory` can name in tests (`package.module:function`)."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler


class Clip(TransformerMixin, BaseEstimator):
    """Clips numeric values to [-limit, limit]: a type outside the trusted modules."""

    def __init__(self, limit: float = 5.0) -> None:
        self.limit = limit

    def fit(self, X, y=None):  # noqa: N803 (scikit-learn's argument names)
        return self

    def transform(self, X):  # noqa: N803
        return np.clip(np.asarray(X, dtype=float), -self.limit, self.limit)


def scaled_logistic() -> Pipeline:
    """A whole pipeline of its own: scaled numeric features, one-hot plan, logistic regression."""
    numeric = ["sessions_7d", "days_since_signup", "avg_order_value", "support_tickets"]
    preprocess = ColumnTransformer(
        [
            ("numeric", StandardScaler(), numeric),
            ("plan", OneHotEncoder(handle_unknown="ignore"), ["plan"]),
        ]
    )
    return Pipeline([("preprocess", preprocess), ("model", LogisticRegression(max_iter=500))])


def ridge() -> Ridge:
    """A bare estimator, which the workflow's preprocessing goes in front of."""
    return Ridge(alpha=1.0)


def clipped_logistic() -> Pipeline:
    """A whole pipeline holding a type of this module, which the policy must trust."""
    numeric = ["sessions_7d", "days_since_signup", "avg_order_value", "support_tickets"]
    preprocess = ColumnTransformer([("numeric", Clip(limit=1000.0), numeric)])
    return Pipeline([("preprocess", preprocess), ("model", LogisticRegression(max_iter=500))])


def fitted() -> LogisticRegression:
    """Returns a fitted estimator, which a factory must not."""
    return LogisticRegression().fit([[0.0], [1.0]], [0, 1])


NOT_CALLABLE = 3
